//! Requests and lookups the BYOK tests share.

use keygate::pb;

/// An import of a new key generated in the `hsm` provider into `targets`, owned by root, with a
/// 90-day crypto-period.
pub fn byok_import(name: &str, algorithm: &str, targets: &[&str]) -> pb::ByokImportRequest {
    pb::ByokImportRequest {
        name: name.into(),
        algorithm: algorithm.into(),
        owner: "root".into(),
        environment: "dev".into(),
        crypto_period: super::days(90),
        source: "hsm".into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
        labels: Default::default(),
        material_expiry: None,
    }
}

/// The family's copy in `provider`.
pub fn copy<'a>(family: &'a pb::KeyFamily, provider: &str) -> &'a pb::KeyCopy {
    family
        .copies
        .iter()
        .find(|c| c.provider == provider)
        .unwrap_or_else(|| panic!("no copy for {provider} in {family:?}"))
}
