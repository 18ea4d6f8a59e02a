//! Sensitive values a provider's record carries (tokens, accessors, access key ids,
//! encryption contexts) are kept only as an HMAC under a server key, never raw.
//! `keygate audit hash VALUE` computes the same HMAC, so an investigator holding a value can
//! find the events that carry it.

use aws_lc_rs::hmac;

/// The prefix of every value hashed by keygate (Vault's own hashes start `hmac-sha256:`).
pub const PREFIX: &str = "hmac-sha256:keygate:";

#[derive(Clone)]
pub struct Hasher(hmac::Key);

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher(…)")
    }
}

impl Hasher {
    /// A hasher under `key` (at least 32 bytes of secret).
    pub fn new(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    pub fn hash(&self, value: &str) -> String {
        format!(
            "{PREFIX}{}",
            hex::encode(hmac::sign(&self.0, value.as_bytes()).as_ref())
        )
    }

    /// `value` hashed, unless it is already a hash (Vault's audit device HMACs what it logs;
    /// its own `sys/audit-hash` finds those).
    pub fn protect(&self, value: &str) -> String {
        if value.is_empty() || value.starts_with("hmac-sha256:") {
            value.to_string()
        } else {
            self.hash(value)
        }
    }

    /// Every string in `value` hashed (an encryption context, a request body), keeping its
    /// shape and names.
    pub fn protect_all(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.protect(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.protect_all(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.protect_all(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The server key: from `audit.hmac_key` (a reference), or else generated once into the data
/// directory (`audit-hmac.key`, mode 0600).
pub fn load_or_create(
    configured: Option<&keygate_provider::SecretRef>,
    data_dir: &std::path::Path,
) -> Result<(Hasher, bool), String> {
    if let Some(r) = configured {
        let key = r.resolve("audit.hmac_key").map_err(|e| e.to_string())?;
        if key.expose().len() < 32 {
            return Err("audit.hmac_key: needs at least 32 bytes".into());
        }
        return Ok((Hasher::new(key.expose()), false));
    }
    let path = data_dir.join("audit-hmac.key");
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= 32 => return Ok((Hasher::new(&bytes), false)),
        Ok(_) => {
            return Err(format!(
                "{} is shorter than 32 bytes; remove it to have a new key made (earlier hashes will no longer match)",
                path.display()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| "no randomness for the audit HMAC key")?;
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, key.as_ref())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((Hasher::new(key.as_ref()), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_hashed_once_and_stably() {
        let h = Hasher::new(&[7; 32]);
        let a = h.hash("AKIAIOSFODNN7EXAMPLE");
        assert!(a.starts_with(PREFIX));
        assert_eq!(a, h.protect("AKIAIOSFODNN7EXAMPLE"));
        assert!(!a.contains("AKIA"));
        assert_eq!(h.protect("hmac-sha256:abc"), "hmac-sha256:abc");
        let other = Hasher::new(&[8; 32]);
        assert_ne!(a, other.hash("AKIAIOSFODNN7EXAMPLE"));
        let ctx = serde_json::json!({"tenant": "acme", "n": 1});
        let p = h.protect_all(&ctx);
        assert_eq!(p["n"], 1);
        assert_eq!(p["tenant"], h.hash("acme"));
    }

    #[test]
    fn a_generated_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (first, made) = load_or_create(None, dir.path()).unwrap();
        assert!(made);
        let (again, made) = load_or_create(None, dir.path()).unwrap();
        assert!(!made);
        assert_eq!(first.hash("x"), again.hash("x"));
    }
}
