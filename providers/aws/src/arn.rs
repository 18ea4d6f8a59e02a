//! Key URIs: `awskms:///arn:aws:kms:REGION:ACCOUNT:key/KEY-ID`.
//!
//! The provider mints full key ARNs. It also accepts an alias ARN, a bare key id or an
//! `alias/…` name (resolved in the configured region and account). An ARN of another region
//! or account is refused before anything is sent: this instance's credentials and endpoint
//! belong to one region and account.

use keygate_provider::{KeyUri, ProviderError, Result};

pub const SCHEME: &str = "awskms";

/// The URI for a key ARN.
pub fn uri(arn: &str) -> KeyUri {
    KeyUri::new(format!("{SCHEME}:///{arn}"))
}

/// The `KeyId` to send to KMS for `uri`, after checking region and account.
pub fn key_id(provider: &str, uri: &KeyUri, region: &str, account: Option<&str>) -> Result<String> {
    let id = uri
        .strip_scheme(SCHEME)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            ProviderError::invalid(
                provider,
                format!("'{uri}' is not an AWS KMS key URI (expected awskms:///arn:aws:kms:…)"),
            )
        })?;
    if let Some(arn) = id.strip_prefix("arn:") {
        // arn:PARTITION:kms:REGION:ACCOUNT:key/ID or …:alias/NAME
        let parts: Vec<&str> = arn.splitn(5, ':').collect();
        let [_partition, service, arn_region, arn_account, resource] = parts[..] else {
            return Err(ProviderError::invalid(
                provider,
                format!("'{uri}' holds a malformed ARN"),
            ));
        };
        if service != "kms" || !(resource.starts_with("key/") || resource.starts_with("alias/")) {
            return Err(ProviderError::invalid(
                provider,
                format!("'{uri}' is not a KMS key or alias ARN"),
            ));
        }
        if arn_region != region {
            return Err(ProviderError::invalid(
                provider,
                format!(
                    "'{uri}' is in region {arn_region} but this provider serves region {region}"
                ),
            ));
        }
        if let Some(account) = account
            && arn_account != account
        {
            return Err(ProviderError::invalid(
                provider,
                format!(
                    "'{uri}' belongs to account {arn_account} but this provider serves account {account}"
                ),
            ));
        }
    }
    Ok(id.to_string())
}

/// The account in a key ARN, if it is one.
pub fn account_of(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")?.split(':').nth(3)
}

/// The alias keygate gives a key: `alias/keygate/<name>`. KMS allows letters, digits, `/`,
/// `_` and `-` in alias names; any other character becomes `-`.
pub fn alias_for(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("alias/keygate/{}", mapped.trim_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kms:us-east-1:000000000000:key/1234";

    #[test]
    fn own_arn_is_accepted() {
        let id = key_id("p", &uri(ARN), "us-east-1", Some("000000000000"));
        assert_eq!(id.ok().as_deref(), Some(ARN));
    }

    #[test]
    fn other_region_and_account_are_named() {
        let e = key_id("p", &uri(ARN), "eu-west-1", None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("us-east-1") && e.contains("eu-west-1"), "{e}");
        let e = key_id("p", &uri(ARN), "us-east-1", Some("111111111111"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("000000000000") && e.contains("111111111111"),
            "{e}"
        );
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(key_id("p", &KeyUri::new("local://x"), "us-east-1", None).is_err());
        assert!(key_id("p", &KeyUri::new("awskms:///"), "us-east-1", None).is_err());
    }

    #[test]
    fn aliases_keep_only_allowed_characters() {
        assert_eq!(
            alias_for("payments/card-dek"),
            "alias/keygate/payments/card-dek"
        );
        assert_eq!(alias_for("a.b c"), "alias/keygate/a-b-c");
    }
}
