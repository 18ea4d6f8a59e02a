//! Batches: items in, per-item results out (a failed item carries its status, no result).

use crate::gateway::{GatewayError, ops};
use crate::pb;
use keygate_provider::SecretBytes;

/// An item's status as the single call would have ended.
fn item_status<T>(result: &ops::ItemResult<T>) -> pb::ItemStatus {
    match result {
        Ok(_) => pb::ItemStatus::default(),
        Err(e) => item_error(e),
    }
}

fn item_error(e: &GatewayError) -> pb::ItemStatus {
    pb::ItemStatus {
        code: crate::server::status::code(e) as i32,
        reason: e.reason().to_string(),
        message: e.to_string(),
    }
}

fn failed<T>(results: &[ops::ItemResult<T>]) -> u32 {
    u32::try_from(results.iter().filter(|r| r.is_err()).count()).unwrap_or(u32::MAX)
}

impl From<pb::BatchEncryptRequest> for ops::BatchEncrypt {
    fn from(r: pb::BatchEncryptRequest) -> Self {
        ops::BatchEncrypt {
            key: r.key,
            items: r
                .items
                .into_iter()
                .map(|i| ops::EncryptItem {
                    plaintext: SecretBytes::new(i.plaintext),
                    associated_data: i.associated_data,
                })
                .collect(),
        }
    }
}

impl From<ops::BatchSealed> for pb::BatchEncryptResponse {
    fn from(b: ops::BatchSealed) -> Self {
        let failed = failed(&b.results);
        pb::BatchEncryptResponse {
            key_id: b.key_id,
            results: b
                .results
                .into_iter()
                .map(|r| {
                    let status = Some(item_status(&r));
                    match r {
                        Ok(s) => pb::BatchEncryptResult {
                            status,
                            ciphertext: s.ciphertext,
                            key_version: s.key_version,
                        },
                        Err(_) => pb::BatchEncryptResult {
                            status,
                            ..Default::default()
                        },
                    }
                })
                .collect(),
            failed,
        }
    }
}

impl From<pb::BatchDecryptRequest> for ops::BatchDecrypt {
    fn from(r: pb::BatchDecryptRequest) -> Self {
        ops::BatchDecrypt {
            key: r.key,
            items: r
                .items
                .into_iter()
                .map(|i| ops::DecryptItem {
                    ciphertext: i.ciphertext,
                    associated_data: i.associated_data,
                })
                .collect(),
        }
    }
}

impl From<ops::BatchOpened> for pb::BatchDecryptResponse {
    fn from(b: ops::BatchOpened) -> Self {
        let failed = failed(&b.results);
        pb::BatchDecryptResponse {
            key_id: b.key_id,
            results: b
                .results
                .into_iter()
                .map(|r| {
                    let status = Some(item_status(&r));
                    match r {
                        Ok(o) => pb::BatchDecryptResult {
                            status,
                            plaintext: o.plaintext.into_unprotected(),
                            key_version: o.key_version,
                        },
                        Err(_) => pb::BatchDecryptResult {
                            status,
                            plaintext: Vec::new(),
                            key_version: 0,
                        },
                    }
                })
                .collect(),
            failed,
        }
    }
}

pub fn re_encrypt_items(items: Vec<pb::BatchReEncryptItem>) -> Vec<ops::ReEncryptItem> {
    items
        .into_iter()
        .map(|i| ops::ReEncryptItem {
            ciphertext: i.ciphertext,
            source_associated_data: i.source_associated_data,
            destination_associated_data: i.destination_associated_data,
        })
        .collect()
}

impl From<pb::BatchReEncryptRequest> for ops::BatchReEncrypt {
    fn from(r: pb::BatchReEncryptRequest) -> Self {
        ops::BatchReEncrypt {
            key: r.key,
            destination_key: r.destination_key,
            items: re_encrypt_items(r.items),
            stream: None,
        }
    }
}

/// The per-item results of a re-encryption, and how many failed.
pub fn re_encrypt_results(
    results: Vec<ops::ItemResult<ops::batch::ReSealedItem>>,
) -> (Vec<pb::BatchReEncryptResult>, u32) {
    let failed = failed(&results);
    let results = results
        .into_iter()
        .map(|r| {
            let status = Some(item_status(&r));
            match r {
                Ok(s) => pb::BatchReEncryptResult {
                    status,
                    ciphertext: s.ciphertext,
                    source_key_version: s.source_key_version,
                    key_version: s.key_version,
                },
                Err(_) => pb::BatchReEncryptResult {
                    status,
                    ..Default::default()
                },
            }
        })
        .collect();
    (results, failed)
}

impl From<ops::BatchReSealed> for pb::BatchReEncryptResponse {
    fn from(b: ops::BatchReSealed) -> Self {
        let (results, failed) = re_encrypt_results(b.results);
        pb::BatchReEncryptResponse {
            source_key_id: b.source_key_id,
            key_id: b.key_id,
            results,
            failed,
        }
    }
}
