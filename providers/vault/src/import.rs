//! BYOK into Transit: `GET transit/wrapping_key` gives the mount's RSA-4096 wrapping key, and
//! `POST transit/keys/:name/import` takes `OAEP(ephemeral AES key) || KWP(material)` and
//! creates the key. The OAEP hash is the caller's choice (`hash_function`), so a source whose
//! OAEP knows only SHA-1 can do the whole wrap itself.

use crate::algorithms;
use crate::provider::VaultProvider;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keygate_provider::{
    ImportParams, ImportSpec, KeySpec, KeyUri, KeyVersionInfo, ProviderError, Replied, Result,
    WrappedKey,
};
use reqwest::Method;
use serde_json::{Value, json};

/// The DER inside one PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    STANDARD.decode(body.trim()).ok()
}

/// Names the key the import will create (Transit's import is its creation); refuses a name
/// that is taken, since an import into an existing key would add a version to it.
pub(crate) async fn prepare_import(p: &VaultProvider, spec: &KeySpec) -> Result<Replied<KeyUri>> {
    let vault_name = algorithms::vault_key_name(&spec.name, spec.algorithm, &spec.key_id)
        .map_err(|e| ProviderError::invalid(&p.name, e))?;
    let uri = p.uri_for(&vault_name);
    match p.read_key(&uri).await {
        Ok(_) => Err(ProviderError::AlreadyExists {
            provider: p.name.clone(),
            what: format!("key {uri}"),
        }),
        Err(ProviderError::NotFound { .. }) => Ok(Replied::local(uri)),
        Err(e) => Err(e),
    }
}

pub(crate) async fn import_parameters(
    p: &VaultProvider,
    spec: &ImportSpec,
) -> Result<Replied<ImportParams>> {
    if !spec.wrapping.two_step() {
        return Err(ProviderError::unsupported(
            &p.name,
            format!(
                "importing with {}: Transit takes RSA-AES key wrap only",
                spec.wrapping
            ),
        ));
    }
    let op = p.op("import parameters", &spec.key);
    let reply = p.send(&op, Method::GET, "wrapping_key", None).await?;
    let der = reply
        .data
        .get("public_key")
        .and_then(Value::as_str)
        .and_then(pem_body)
        .ok_or_else(|| {
            ProviderError::internal(&p.name, "the wrapping key reply has no PEM public_key")
        })?;
    Ok(Replied::with_request_id(
        ImportParams {
            wrapping: spec.wrapping,
            wrapping_key_spki_der: der,
            import_token: Vec::new(),
            expires_at: None,
        },
        reply.request_id,
    ))
}

pub(crate) async fn import_key(
    p: &VaultProvider,
    uri: &KeyUri,
    wrapped: &WrappedKey,
    params: &ImportParams,
) -> Result<Replied<KeyVersionInfo>> {
    let name = p.key_name(uri)?;
    let (algorithm, _) = algorithms::parse_vault_key_name(name).ok_or_else(|| {
        ProviderError::invalid(
            &p.name,
            format!("{uri} is not a key name keygate prepared for import"),
        )
    })?;
    let op = p.op("import key", uri);
    let body = json!({
        "ciphertext": STANDARD.encode(wrapped.expose()),
        "hash_function": if params.wrapping.oaep_sha1() { "SHA1" } else { "SHA256" },
        "type": algorithms::vault_type(algorithm),
        "exportable": false,
        "allow_plaintext_backup": false,
    });
    let reply = p
        .send(
            &op,
            Method::POST,
            &format!("keys/{name}/import"),
            Some(&body),
        )
        .await?;
    let (_, key) = p.read_key(uri).await?;
    let latest = key.versions.last().cloned().ok_or_else(|| {
        ProviderError::internal(&p.name, format!("{uri} has no version after the import"))
    })?;
    Ok(Replied::with_request_id(latest, reply.request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bodies_decode() {
        let pem = "-----BEGIN PUBLIC KEY-----\nAQID\nBA==\n-----END PUBLIC KEY-----\n";
        assert_eq!(pem_body(pem), Some(vec![1, 2, 3, 4]));
        assert_eq!(pem_body("-----BEGIN X-----\n!!\n-----END X-----"), None);
    }
}
