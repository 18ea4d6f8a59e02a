//! Vault's answers mapped onto keygate's typed [`ProviderError`].
//!
//! Vault reports most failures as HTTP 400 with free text in `errors`, so the mapping reads the
//! text for the few cases keygate distinguishes. Messages name the provider instance, the
//! operation and the key; they never carry the token or plaintext (Vault's own error texts do
//! not echo request data).

use keygate_provider::ProviderError;

/// What one request to Vault was for, so failures can say so.
#[derive(Debug, Clone)]
pub struct Op<'a> {
    pub provider: &'a str,
    /// `encrypt`, `describe`, …
    pub name: &'static str,
    /// The key URI (or `-` for calls without a key).
    pub key: &'a str,
    /// Decryption and MAC checks: a malformed or altered input is an authentication failure,
    /// not bad input, and says no more than that.
    pub input_is_authenticated: bool,
}

impl<'a> Op<'a> {
    pub fn new(provider: &'a str, name: &'static str, key: &'a str) -> Self {
        Self {
            provider,
            name,
            key,
            input_is_authenticated: false,
        }
    }

    pub fn authenticated(mut self) -> Self {
        self.input_is_authenticated = true;
        self
    }
}

/// How a request to Vault failed, before it is given keygate's meaning.
#[derive(Debug)]
pub enum VaultFailure {
    /// No HTTP answer: connection refused, TLS failure, timeout.
    Transport { timed_out: bool, detail: String },
    /// Vault answered with an error status and its `errors` texts.
    Status { status: u16, errors: Vec<String> },
    /// HTTP 429: a rate limit quota.
    Throttled { errors: Vec<String> },
    /// A 2xx answer without the fields the operation needs.
    Malformed(String),
}

/// Caps how much of Vault's own text goes into a message.
fn vault_text(errors: &[String]) -> String {
    let joined = errors
        .iter()
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("; ");
    let mut text: String = joined.chars().take(300).collect();
    if text.is_empty() {
        text.push_str("no error text");
    }
    text
}

impl VaultFailure {
    pub fn into_provider_error(self, op: &Op<'_>) -> ProviderError {
        let (provider, what, key) = (op.provider, op.name, op.key);
        match self {
            VaultFailure::Transport { timed_out, detail } => {
                let why = if timed_out {
                    "timed out"
                } else {
                    "no connection"
                };
                ProviderError::unavailable(provider, format!("{what} on {key}: {why} ({detail})"))
            }
            VaultFailure::Throttled { errors } => ProviderError::Throttled {
                provider: provider.into(),
                reason: format!(
                    "{what} on {key}: Vault answered 429 ({})",
                    vault_text(&errors)
                ),
            },
            VaultFailure::Malformed(detail) => ProviderError::internal(
                provider,
                format!("{what} on {key}: unexpected answer from Vault: {detail}"),
            ),
            VaultFailure::Status { status, errors } => {
                let text = vault_text(&errors);
                let lower = text.to_ascii_lowercase();
                match status {
                    403 => ProviderError::BackendDenied {
                        provider: provider.into(),
                        reason: format!(
                            "Vault refused {what} on {key} for keygate's token (HTTP 403: {text})"
                        ),
                    },
                    404 => ProviderError::not_found(provider, format!("key {key}")),
                    405 => ProviderError::unsupported(
                        provider,
                        format!("{what} (this Vault server has no such endpoint)"),
                    ),
                    502..=504 => ProviderError::unavailable(
                        provider,
                        format!(
                            "{what} on {key}: Vault is sealed, standby or unreachable (HTTP {status}: {text})"
                        ),
                    ),
                    _ if lower.contains("soft-deleted") => ProviderError::precondition(
                        provider,
                        format!("{what} on {key}: the key is disabled (soft-deleted in Transit)"),
                    ),
                    _ if lower.contains("sealed") => ProviderError::unavailable(
                        provider,
                        format!("{what} on {key}: Vault is sealed"),
                    ),
                    400 if lower.contains("key not found") || lower.contains("no existing key") => {
                        ProviderError::not_found(provider, format!("key {key}"))
                    }
                    400 if lower.contains("does not support")
                        || lower.contains("not supported") =>
                    {
                        ProviderError::precondition(
                            provider,
                            format!("{what} on {key}: Vault says the key cannot do this ({text})"),
                        )
                    }
                    400 if lower.contains("disallowed by policy") => ProviderError::precondition(
                        provider,
                        format!(
                            "{what} on {key}: the version is below the key's minimum allowed version"
                        ),
                    ),
                    400 if op.input_is_authenticated => ProviderError::auth_failed(provider),
                    // Transit reports a failed RSA-OAEP decryption as an internal error.
                    500 if op.input_is_authenticated && lower.contains("decrypt") => {
                        ProviderError::auth_failed(provider)
                    }
                    400 => ProviderError::invalid(
                        provider,
                        format!("{what} on {key}: Vault rejected the request ({text})"),
                    ),
                    _ => ProviderError::internal(
                        provider,
                        format!("{what} on {key}: Vault answered HTTP {status} ({text})"),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, text: &str) -> VaultFailure {
        VaultFailure::Status {
            status,
            errors: vec![text.to_string()],
        }
    }

    #[test]
    fn kinds() {
        let op = Op::new("vault-a", "decrypt", "hashivault://transit/keys/k").authenticated();
        let kind = |f: VaultFailure| f.into_provider_error(&op).kind();
        assert_eq!(kind(status(403, "permission denied")), "backend_denied");
        assert_eq!(
            kind(status(400, "invalid ciphertext: no prefix")),
            "authentication_failed"
        );
        assert_eq!(
            kind(status(400, "cipher: message authentication failed")),
            "authentication_failed"
        );
        assert_eq!(kind(status(400, "encryption key not found")), "not_found");
        assert_eq!(
            kind(status(400, "refusing to use soft-deleted key")),
            "failed_precondition"
        );
        assert_eq!(kind(status(503, "Vault is sealed")), "unavailable");
        assert_eq!(
            kind(status(
                500,
                "failed to RSA decrypt the ciphertext: crypto/rsa: decryption error"
            )),
            "authentication_failed"
        );
        let plain = Op::new("vault-a", "encrypt", "k");
        assert_eq!(
            status(400, "key type ed25519 does not support encryption")
                .into_provider_error(&plain)
                .kind(),
            "failed_precondition"
        );
    }

    #[test]
    fn denial_says_vault_refused() {
        let op = Op::new("vault-a", "encrypt", "hashivault://transit/keys/k");
        let e =
            status(403, "1 error occurred:\n\t* permission denied\n\n").into_provider_error(&op);
        let text = e.to_string();
        assert!(
            text.contains("Vault refused encrypt on hashivault://transit/keys/k"),
            "{text}"
        );
    }
}
