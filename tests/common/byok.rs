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

/// The key's primary public key (DER SubjectPublicKeyInfo), through keygate.
pub async fn public_key(keys: &mut super::Keys, key: &str) -> Vec<u8> {
    keys.get_public_key(pb::GetPublicKeyRequest {
        key: key.into(),
        key_version: 0,
    })
    .await
    .unwrap_or_else(|e| panic!("GetPublicKey {key}: {e}"))
    .into_inner()
    .der
}

/// A signature of `message` by the key's primary version, through keygate.
pub async fn signature_of(keys: &mut super::Keys, key: &str, message: &[u8]) -> Vec<u8> {
    keys.sign(pb::SignRequest {
        key: key.into(),
        input: Some(pb::sign_request::Input::Message(message.to_vec())),
    })
    .await
    .unwrap_or_else(|e| panic!("Sign with {key}: {e}"))
    .into_inner()
    .signature
}

/// The MAC of `message` under the key's primary version, through keygate.
pub async fn mac(keys: &mut super::Keys, key: &str, message: &[u8]) -> Vec<u8> {
    keys.generate_mac(pb::GenerateMacRequest {
        key: key.into(),
        message: message.to_vec(),
    })
    .await
    .unwrap_or_else(|e| panic!("GenerateMac with {key}: {e}"))
    .into_inner()
    .mac
}
