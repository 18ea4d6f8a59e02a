//! The messages that carry plaintext or data keys, or what is signed or MACed: their `Debug`
//! shows only lengths (so a request or response logged by mistake shows no secret), and
//! dropping a reply zeroizes its plaintext, so it is wiped once tonic has encoded it. A request's plaintext is moved, not
//! copied, into a zeroizing buffer when the request is converted, so requests need no `Drop`
//! (which would also forbid building them with `..Default::default()`). tonic's own encode
//! and decode buffers are outside keygate's reach.
//!
//! `build.rs` skips the derived `Debug` for exactly these messages.

use super::{
    BatchDecryptResult, BatchEncryptItem, DecryptResponse, EncryptRequest, GenerateDataKeyResponse,
    GenerateMacRequest, SignRequest, VerifyMacRequest, VerifyRequest, sign_request, verify_request,
};
use std::fmt;
use zeroize::Zeroize as _;

/// How a secret field appears in `Debug`.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[REDACTED {} bytes]", self.0)
    }
}

macro_rules! secret_message {
    (reply $message:ident { secret: $secret:ident, shown: [$($field:ident),*] }) => {
        secret_message!($message { secret: $secret, shown: [$($field),*] });

        impl Drop for $message {
            fn drop(&mut self) {
                self.$secret.zeroize();
            }
        }
    };
    ($message:ident { secret: $secret:ident, shown: [$($field:ident),*] }) => {
        impl fmt::Debug for $message {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($message))
                    .field(stringify!($secret), &Redacted(self.$secret.len()))
                    $(.field(stringify!($field), &self.$field))*
                    .finish()
            }
        }
    };
}

secret_message!(EncryptRequest {
    secret: plaintext,
    shown: [key, associated_data]
});
secret_message!(reply DecryptResponse { secret: plaintext, shown: [key_id, key_name, key_version] });
secret_message!(reply GenerateDataKeyResponse {
    secret: plaintext,
    shown: [ciphertext, key_id, key_version]
});
secret_message!(GenerateMacRequest {
    secret: message,
    shown: [key]
});
secret_message!(VerifyMacRequest {
    secret: message,
    shown: [key, mac, key_version]
});

/// A signing input (message or digest) as `Debug` shows it: its kind and length.
fn signing_input(message: Option<&[u8]>, digest: Option<&[u8]>) -> String {
    match (message, digest) {
        (Some(m), _) => format!("message [REDACTED {} bytes]", m.len()),
        (None, Some(d)) => format!("digest [REDACTED {} bytes]", d.len()),
        (None, None) => "none".into(),
    }
}

impl fmt::Debug for SignRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (message, digest) = match &self.input {
            Some(sign_request::Input::Message(m)) => (Some(m.as_slice()), None),
            Some(sign_request::Input::Digest(d)) => (None, Some(d.as_slice())),
            None => (None, None),
        };
        f.debug_struct("SignRequest")
            .field("key", &self.key)
            .field("input", &format_args!("{}", signing_input(message, digest)))
            .finish()
    }
}

impl fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (message, digest) = match &self.input {
            Some(verify_request::Input::Message(m)) => (Some(m.as_slice()), None),
            Some(verify_request::Input::Digest(d)) => (None, Some(d.as_slice())),
            None => (None, None),
        };
        f.debug_struct("VerifyRequest")
            .field("key", &self.key)
            .field("input", &format_args!("{}", signing_input(message, digest)))
            .field("signature", &self.signature)
            .field("key_version", &self.key_version)
            .finish()
    }
}

secret_message!(BatchEncryptItem {
    secret: plaintext,
    shown: [associated_data]
});
secret_message!(reply BatchDecryptResult { secret: plaintext, shown: [status, key_version] });

/// The Kubernetes KMS v2 plugin's messages that carry plaintext (`super::kms_v2`).
mod kms {
    use super::super::kms_v2::{DecryptResponse, EncryptRequest};
    use super::Redacted;
    use std::fmt;
    use zeroize::Zeroize as _;

    secret_message!(EncryptRequest {
        secret: plaintext,
        shown: [uid]
    });
    secret_message!(reply DecryptResponse { secret: plaintext, shown: [] });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_plaintext() {
        let secret = b"attack at dawn".to_vec();
        let mut decrypted = DecryptResponse::default();
        decrypted.plaintext = secret.clone();
        let mut data_key = GenerateDataKeyResponse::default();
        data_key.plaintext = secret.clone();
        let mut item = BatchDecryptResult::default();
        item.plaintext = secret.clone();
        let mut kms_decrypted = crate::pb::kms_v2::DecryptResponse::default();
        kms_decrypted.plaintext = secret.clone();
        let shown = [
            format!(
                "{:?}",
                EncryptRequest {
                    plaintext: secret.clone(),
                    ..Default::default()
                }
            ),
            format!("{decrypted:?}"),
            format!("{data_key:?}"),
            format!(
                "{:?}",
                BatchEncryptItem {
                    plaintext: secret.clone(),
                    ..Default::default()
                }
            ),
            format!("{item:?}"),
            format!("{kms_decrypted:?}"),
            format!(
                "{:?}",
                crate::pb::kms_v2::EncryptRequest {
                    plaintext: secret.clone(),
                    uid: "u".into(),
                }
            ),
            format!(
                "{:?}",
                GenerateMacRequest {
                    key: "k".into(),
                    message: secret.clone()
                }
            ),
            format!(
                "{:?}",
                SignRequest {
                    key: "k".into(),
                    input: Some(sign_request::Input::Message(secret.clone())),
                }
            ),
            format!(
                "{:?}",
                VerifyRequest {
                    input: Some(verify_request::Input::Digest(secret.clone())),
                    ..Default::default()
                }
            ),
        ];
        // The derived Debug prints bytes as a list of numbers.
        let as_numbers = format!("{:?}", secret);
        for text in shown {
            assert!(text.contains("[REDACTED 14 bytes]"), "{text}");
            assert!(!text.contains(&as_numbers[1..20]), "{text}");
        }
    }
}
