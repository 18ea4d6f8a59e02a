use std::fmt;
use zeroize::Zeroizing;

/// Plaintext or key material. Zeroized on drop; `Debug` shows only the length.
///
/// There is deliberately no `Display`, `Serialize` or `Clone`: a secret is moved, not copied,
/// and reaches the outside world only through [`SecretBytes::expose`].
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies `bytes` into a zeroizing buffer. The caller remains responsible for its own copy.
    pub fn copy_from(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// A buffer of `len` zero bytes, for a backend to fill in place.
    pub fn zeroed(len: usize) -> Self {
        Self(Zeroizing::new(vec![0; len]))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn expose_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Hands the bytes to a consumer that takes ownership (e.g. a protobuf field on its way
    /// out). The returned vector is no longer zeroized: use only at the edge.
    pub fn into_unprotected(mut self) -> Vec<u8> {
        std::mem::take(&mut *self.0)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {} bytes])", self.0.len())
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = SecretBytes::copy_from(b"hunter2-plaintext");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("17 bytes"));
    }
}
