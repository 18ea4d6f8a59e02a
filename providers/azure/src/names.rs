//! Key URIs and Key Vault names.
//!
//! A key is `azurekms://HOST/keys/NAME`, HOST being the vault's (with a port if the URL has
//! one). Its Key Vault name is made from keygate's name, which may hold characters Key Vault
//! refuses (`payments/card-dek`): anything but letters, digits and `-` becomes `-`, and a
//! short digest of keygate's key id keeps two such names apart (`payments-card-dek-3f9a1c2e`).
//! Versions are Key Vault's opaque version ids, carried as `provider_version`.

use keygate_provider::{KeySpec, KeyUri, ProviderError, Result};

pub const SCHEME: &str = "azurekms";

/// Key Vault's longest key name.
const MAX_NAME: usize = 127;

pub fn uri(host: &str, name: &str) -> KeyUri {
    KeyUri::new(format!("{SCHEME}://{host}/keys/{name}"))
}

/// The Key Vault name keygate gives a new key.
pub fn vault_name(spec: &KeySpec) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spec.key_id.as_bytes());
    let suffix: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut base: String = spec
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(MAX_NAME - suffix.len() - 1);
    match base.trim_matches('-') {
        "" => format!("kg-{suffix}"),
        base => format!("{base}-{suffix}"),
    }
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The Key Vault name in `uri`, which must name a key of the vault at `host`.
pub fn key_name<'a>(provider: &str, host: &str, uri: &'a KeyUri) -> Result<&'a str> {
    let bad = |why: &str| {
        ProviderError::invalid(
            provider,
            format!("key URI {uri}: {why}; expected {SCHEME}://{host}/keys/NAME"),
        )
    };
    let rest = uri
        .strip_scheme(SCHEME)
        .ok_or_else(|| bad("not an Azure Key Vault URI"))?;
    let (their_host, path) = rest.split_once('/').ok_or_else(|| bad("no key path"))?;
    if !their_host.eq_ignore_ascii_case(host) {
        return Err(bad("it names another vault"));
    }
    let name = path
        .strip_prefix("keys/")
        .ok_or_else(|| bad("no keys/ path"))?;
    if !valid_name(name) {
        return Err(bad("the key name is not a Key Vault name"));
    }
    Ok(name)
}

/// (host, name, version) of a `kid`: `https://HOST/keys/NAME/VERSION` (version may be empty).
pub fn parse_kid(kid: &str) -> Option<(&str, &str, &str)> {
    let rest = kid.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let path = path.strip_prefix("keys/")?;
    let (name, version) = path.split_once('/').unwrap_or((path, ""));
    Some((host, name, version.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_provider::Algorithm;
    use std::time::Duration;

    fn spec(name: &str, id: &str) -> KeySpec {
        KeySpec {
            name: name.into(),
            key_id: id.into(),
            algorithm: Algorithm::EcdsaP256,
            owner: "alice".into(),
            environment: "dev".into(),
            crypto_period: Duration::from_secs(86_400),
            labels: Default::default(),
        }
    }

    #[test]
    fn names_are_key_vault_names_and_distinct() {
        let a = vault_name(&spec("payments/card-dek", "id-1"));
        let b = vault_name(&spec("payments-card/dek", "id-2"));
        assert!(valid_name(&a) && valid_name(&b), "{a} {b}");
        assert!(a.starts_with("payments-card-dek-"), "{a}");
        assert_ne!(a, b);
        let long = vault_name(&spec(&"x".repeat(300), "id"));
        assert!(valid_name(&long) && long.len() <= MAX_NAME);
        let odd = vault_name(&spec("_/.", "id"));
        assert!(valid_name(&odd) && odd.starts_with("kg-"), "{odd}");
    }

    #[test]
    fn uris_round_trip_and_foreign_ones_are_refused() {
        let u = uri("kv.vault.azure.net", "k-1");
        assert_eq!(key_name("p", "kv.vault.azure.net", &u).ok(), Some("k-1"));
        let other = uri("other.vault.azure.net", "k-1");
        let err = key_name("p", "kv.vault.azure.net", &other).unwrap_err();
        assert_eq!(err.kind(), "invalid_input");
        assert!(err.to_string().contains("another vault"), "{err}");
        assert!(key_name("p", "h", &KeyUri::new("awskms:///arn")).is_err());
        assert!(key_name("p", "h", &KeyUri::new("azurekms://h/keys/a/b")).is_err());
        assert_eq!(
            parse_kid("https://h:1/keys/k/abc"),
            Some(("h:1", "k", "abc"))
        );
    }
}
