//! Encryption through Transit: encrypt, decrypt and data keys, each pinned to the version the
//! gateway names.

use crate::client::{Answer, WipedOnDrop};
use crate::provider::VaultProvider;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    BatchItem, DataKey, DataKeySpec, KeyPurpose, ProviderError, Replied, Result, SecretBytes,
    VersionRef,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

/// Base fields every encrypt-like call sends.
fn sealing_body(p: &VaultProvider, v: &VersionRef, aad: &[u8]) -> Result<Map<String, Value>> {
    let mut body = Map::new();
    body.insert("key_version".into(), json!(p.version_of(v)?));
    if let Some(aad) = sealing_aad(p, v, aad)? {
        body.insert("associated_data".into(), json!(aad));
    }
    Ok(body)
}

/// The associated data as Transit takes it (base64), if any; RSA-OAEP takes none.
fn sealing_aad(p: &VaultProvider, v: &VersionRef, aad: &[u8]) -> Result<Option<String>> {
    if aad.is_empty() {
        return Ok(None);
    }
    if v.algorithm.rsa_bits().is_some() {
        return Err(ProviderError::invalid(
            &p.name,
            format!("{}: RSA-OAEP in Transit takes no associated data", v.uri),
        ));
    }
    Ok(Some(B64.encode(aad)))
}

/// An encrypt request's body (or one `batch_input` item), serialized straight from its fields.
#[derive(Serialize)]
struct EncryptBody<'a> {
    key_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    associated_data: Option<&'a str>,
    plaintext: &'a str,
}

/// The `data` of an encrypt answer that keygate reads (the rest is skipped unread).
#[derive(Deserialize)]
struct Encrypted {
    ciphertext: String,
}

pub(crate) async fn encrypt(
    p: &VaultProvider,
    key: &VersionRef,
    plaintext: &SecretBytes,
    aad: &[u8],
) -> Result<Replied<Vec<u8>>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Encrypt, Op::Encrypt)?;
    let name = p.key_name(&key.uri)?;
    let op = p.op("encrypt", &key.uri);
    let key_version = p.version_of(key)?;
    let aad = sealing_aad(p, key, aad)?;
    let body = {
        let plaintext = Zeroizing::new(B64.encode(plaintext.expose()));
        let aad = aad.as_deref();
        // Room for the fields' names and the version: the buffer is never grown (and so never
        // copied) while it takes the plaintext.
        let room = plaintext.len() + aad.map_or(0, str::len) + 96;
        let body = EncryptBody {
            key_version,
            associated_data: aad,
            plaintext: &plaintext,
        };
        WipedOnDrop::json(&body, room).map_err(|f| f.into_provider_error(&op))?
    };
    match p
        .post_typed::<Encrypted>(&op, &format!("encrypt/{name}"), body)
        .await?
    {
        Answer::Typed { request_id, data } => Ok(Replied::with_request_id(
            data.ciphertext.into_bytes(),
            request_id,
        )),
        // Not the answer expected: said as the generic reading says it.
        Answer::Other(reply) => {
            let blob = reply.text(&op, "ciphertext")?.as_bytes().to_vec();
            Ok(Replied::with_request_id(blob, reply.request_id))
        }
    }
}

pub(crate) async fn decrypt(
    p: &VaultProvider,
    key: &VersionRef,
    blob: &[u8],
    aad: &[u8],
) -> Result<Replied<SecretBytes>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Encrypt, Op::Decrypt)?;
    let name = p.key_name(&key.uri)?;
    let op = p.op("decrypt", &key.uri).authenticated();
    // The blob is Transit's `vault:vN:…`; it must name the version the gateway recorded.
    let version = p.version_of(key)?;
    let Ok(ciphertext) = std::str::from_utf8(blob) else {
        return Err(ProviderError::auth_failed(&p.name));
    };
    if !ciphertext.starts_with(&format!("vault:v{version}:")) {
        return Err(ProviderError::auth_failed(&p.name));
    }
    let mut body = sealing_body(p, key, aad)?;
    body.remove("key_version");
    body.insert("ciphertext".into(), json!(ciphertext));
    let reply = p
        .post(&op, &format!("decrypt/{name}"), &Value::Object(body))
        .await?;
    let plaintext = reply.secret(&op, "plaintext")?;
    Ok(Replied::with_request_id(plaintext, reply.request_id))
}

/// Items one Transit batch request carries. OpenBao refuses a JSON body of more than 1,000
/// strings (`max_request_json_strings`; "refused JSON input due to high complexity"), and an
/// item is up to five (three names, two values): 190 items stay under it with room.
pub(crate) const BATCH_LIMIT: usize = 190;

/// One `batch_input` entry's associated data, where the key takes it; an item the key cannot
/// take (associated data for RSA-OAEP) is refused alone, as its single call would be.
fn batch_aad(
    p: &VaultProvider,
    v: &VersionRef,
    aad: &[u8],
    entry: &mut Map<String, Value>,
) -> Result<()> {
    if let Some(aad) = sealing_aad(p, v, aad)? {
        entry.insert("associated_data".into(), json!(aad));
    }
    Ok(())
}

/// Each item's entry of `batch_results`: its own error, or the entry.
fn batch_results<'r>(
    p: &VaultProvider,
    op: &crate::errors::Op<'_>,
    reply: &'r crate::client::Reply,
    expected: usize,
) -> Result<Vec<std::result::Result<&'r Map<String, Value>, ProviderError>>> {
    let results = reply
        .data
        .get("batch_results")
        .and_then(Value::as_array)
        .filter(|r| r.len() == expected)
        .ok_or_else(|| {
            ProviderError::internal(
                &p.name,
                format!(
                    "{} on {}: the answer does not hold one batch result per item ({expected})",
                    op.name, op.key
                ),
            )
        })?;
    Ok(results
        .iter()
        .map(|r| {
            let entry = r.as_object().ok_or_else(|| {
                ProviderError::internal(
                    &p.name,
                    format!("{} on {}: a batch result is not an object", op.name, op.key),
                )
            })?;
            match entry.get("error").and_then(Value::as_str) {
                Some(e) if !e.is_empty() => Err(item_error(op, e)),
                _ => Ok(entry),
            }
        })
        .collect())
}

/// An item's own error, mapped as a single call's 400 answer with that text would be (an
/// altered ciphertext is an authentication failure; a retired version a precondition).
fn item_error(op: &crate::errors::Op<'_>, error: &str) -> ProviderError {
    crate::errors::VaultFailure::Status {
        status: 400,
        errors: vec![error.to_string()],
    }
    .into_provider_error(op)
}

/// A batch encrypt request's body: each item as a single encrypt's body.
#[derive(Serialize)]
struct SealBatch<'a> {
    batch_input: Vec<EncryptBody<'a>>,
    partial_failure_response_code: u16,
}

/// The `data` of a batch encrypt answer: per item, its ciphertext or its own error.
#[derive(Deserialize)]
struct SealedBatch {
    batch_results: Vec<SealedItem>,
}

#[derive(Deserialize)]
struct SealedItem {
    #[serde(default)]
    ciphertext: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

pub(crate) async fn encrypt_batch(
    p: &VaultProvider,
    key: &VersionRef,
    items: &[BatchItem<'_>],
) -> Result<Replied<Vec<Result<Vec<u8>>>>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Encrypt, Op::Encrypt)?;
    let name = p.key_name(&key.uri)?;
    let op = p.op("encrypt", &key.uri);
    // Transit reads the version of each batch item from the item (0, or none: its newest),
    // never from the top level: each names keygate's version.
    let version = p.version_of(key)?;
    // Per item: its associated data as Transit takes it, or why it is refused unsent.
    let checked: Vec<Result<Option<String>>> = items
        .iter()
        .map(|item| sealing_aad(p, key, item.aad))
        .collect();
    let sent: Vec<(&BatchItem<'_>, Option<&str>)> = items
        .iter()
        .zip(&checked)
        .filter_map(|(item, aad)| aad.as_ref().ok().map(|aad| (item, aad.as_deref())))
        .collect();
    let (sealed, request_id) = if sent.is_empty() {
        (Vec::new(), None)
    } else {
        seal_batch(p, &op, name, version, &sent).await?
    };
    // Back in the items' order: refused items with their reason, sent ones with their result.
    let mut results = sealed.into_iter();
    let out = checked
        .into_iter()
        .map(|aad| match aad {
            Err(refused) => Err(refused),
            Ok(_) => results.next().unwrap_or_else(|| {
                Err(ProviderError::internal(
                    &p.name,
                    format!("{} on {}: a batch result is missing", op.name, op.key),
                ))
            }),
        })
        .collect();
    Ok(Replied::with_request_id(out, request_id))
}

/// One Transit batch encrypt of `sent` (each with its associated data, already checked): each
/// item's result in order, and the request id.
async fn seal_batch(
    p: &VaultProvider,
    op: &crate::errors::Op<'_>,
    name: &str,
    version: u32,
    sent: &[(&BatchItem<'_>, Option<&str>)],
) -> Result<(Vec<Result<Vec<u8>>>, Option<String>)> {
    let body = {
        let plaintexts: Vec<Zeroizing<String>> = sent
            .iter()
            .map(|(item, _)| Zeroizing::new(B64.encode(item.data)))
            .collect();
        // Room for every field: the buffer is never grown (and so never copied) while it
        // takes the plaintexts.
        let room = sent
            .iter()
            .zip(&plaintexts)
            .map(|((_, aad), pt)| pt.len() + aad.map_or(0, str::len) + 96)
            .sum::<usize>()
            + 96;
        let body = SealBatch {
            batch_input: sent
                .iter()
                .zip(&plaintexts)
                .map(|((_, aad), pt)| EncryptBody {
                    key_version: version,
                    associated_data: *aad,
                    plaintext: pt,
                })
                .collect(),
            partial_failure_response_code: 200,
        };
        WipedOnDrop::json(&body, room).map_err(|f| f.into_provider_error(op))?
    };
    let prefix = format!("vault:v{version}:");
    let missing = || {
        ProviderError::internal(
            &p.name,
            format!(
                "{} on {}: a batch result has no ciphertext",
                op.name, op.key
            ),
        )
    };
    match p
        .post_typed::<SealedBatch>(op, &format!("encrypt/{name}"), body)
        .await?
    {
        Answer::Typed { request_id, data } => {
            if data.batch_results.len() != sent.len() {
                return Err(ProviderError::internal(
                    &p.name,
                    format!(
                        "{} on {}: the answer does not hold one batch result per item ({})",
                        op.name,
                        op.key,
                        sent.len()
                    ),
                ));
            }
            let results = data
                .batch_results
                .into_iter()
                .map(|r| match (r.error, r.ciphertext) {
                    (Some(e), _) if !e.is_empty() => Err(item_error(op, &e)),
                    // Under the version keygate named, or it could never be opened.
                    (_, Some(c)) if c.starts_with(&prefix) => Ok(c.into_bytes()),
                    _ => Err(missing()),
                })
                .collect();
            Ok((results, request_id))
        }
        // Not the answer expected: said as the generic reading says it.
        Answer::Other(reply) => {
            let results = batch_results(p, op, &reply, sent.len())?
                .into_iter()
                .map(|r| {
                    r.and_then(|entry| {
                        entry
                            .get("ciphertext")
                            .and_then(Value::as_str)
                            .filter(|c| c.starts_with(&prefix))
                            .map(|c| c.as_bytes().to_vec())
                            .ok_or_else(missing)
                    })
                })
                .collect();
            Ok((results, reply.request_id))
        }
    }
}

pub(crate) async fn decrypt_batch(
    p: &VaultProvider,
    key: &VersionRef,
    items: &[BatchItem<'_>],
) -> Result<Replied<Vec<Result<SecretBytes>>>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Encrypt, Op::Decrypt)?;
    let name = p.key_name(&key.uri)?;
    let op = p.op("decrypt", &key.uri).authenticated();
    let prefix = format!("vault:v{}:", p.version_of(key)?);
    // Blobs that are not Transit's of this version, and associated data the key cannot take,
    // never leave: those items fail on their own.
    let mut sent: Vec<Result<()>> = Vec::with_capacity(items.len());
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        match std::str::from_utf8(item.data) {
            Ok(c) if c.starts_with(&prefix) => {
                let mut entry = Map::new();
                match batch_aad(p, key, item.aad, &mut entry) {
                    Ok(()) => {
                        entry.insert("ciphertext".into(), json!(c));
                        entries.push(Value::Object(entry));
                        sent.push(Ok(()));
                    }
                    Err(refused) => sent.push(Err(refused)),
                }
            }
            _ => sent.push(Err(ProviderError::auth_failed(&p.name))),
        }
    }
    let mut request_id = None;
    let mut opened = if entries.is_empty() {
        Vec::new()
    } else {
        let body = json!({ "batch_input": entries, "partial_failure_response_code": 200 });
        let reply = p.post(&op, &format!("decrypt/{name}"), &body).await?;
        request_id = reply.request_id.clone();
        let results: Vec<Result<SecretBytes>> = batch_results(p, &op, &reply, entries.len())?
            .into_iter()
            .map(|r| {
                r.and_then(|entry| {
                    let text = entry
                        .get("plaintext")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            ProviderError::internal(
                                &p.name,
                                format!(
                                    "{} on {}: a batch result has no plaintext",
                                    op.name, op.key
                                ),
                            )
                        })?;
                    B64.decode(text).map(SecretBytes::new).map_err(|e| {
                        ProviderError::internal(
                            &p.name,
                            format!("{} on {}: plaintext is not base64: {e}", op.name, op.key),
                        )
                    })
                })
            })
            .collect();
        results.into_iter().rev().collect::<Vec<_>>()
    };
    let out = sent
        .into_iter()
        .map(|was_sent| match was_sent {
            Ok(()) => opened
                .pop()
                .unwrap_or_else(|| Err(ProviderError::auth_failed(&p.name))),
            Err(refused) => Err(refused),
        })
        .collect();
    Ok(Replied::with_request_id(out, request_id))
}

pub(crate) async fn generate_data_key(
    p: &VaultProvider,
    key: &VersionRef,
    spec: DataKeySpec,
    aad: &[u8],
) -> Result<Replied<DataKey>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Encrypt, Op::GenerateDataKey)?;
    if !key.algorithm.is_symmetric() {
        return Err(ProviderError::precondition(
            &p.name,
            format!(
                "generate a data key with {}: Transit makes data keys under symmetric keys only",
                key.uri
            ),
        ));
    }
    let bits = match spec.len {
        16 | 32 | 64 => spec.len * 8,
        other => {
            return Err(ProviderError::invalid(
                &p.name,
                format!("Transit makes data keys of 16, 32 or 64 bytes, not {other}"),
            ));
        }
    };
    let name = p.key_name(&key.uri)?;
    let op = p.op("generate data key", &key.uri);
    let mut body = sealing_body(p, key, aad)?;
    body.insert("bits".into(), json!(bits));
    let reply = p
        .post(
            &op,
            &format!("datakey/plaintext/{name}"),
            &Value::Object(body),
        )
        .await?;
    let sealed = reply.text(&op, "ciphertext")?.as_bytes().to_vec();
    let plaintext = reply.secret(&op, "plaintext")?;
    Ok(Replied::with_request_id(
        DataKey { plaintext, sealed },
        reply.request_id,
    ))
}
