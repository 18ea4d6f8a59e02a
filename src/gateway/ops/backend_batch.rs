//! Batch items sent to a backend that takes many in one request (Vault Transit's
//! `batch_input`), as many per request as [`keygate_provider::KeyProvider::batch_limit`]
//! allows. Every item is checked exactly as a single call checks it first (a refused item never
//! reaches the backend), and the results come back in the items' order with the same meaning
//! as the single calls'. A request that fails as a whole (the backend unreachable) is not
//! taken as every item's answer: its items are sent one by one, so each gets its own status
//! (each in a request of its own: never shared again by the guard's `coalesce`).

use super::crypto::{Sealing, check_aad, max_ciphertext, open_version, opening, seal, sealing};
use crate::gateway::envelope;
use crate::gateway::runner::{Admitted, Exec, Reads};
use crate::gateway::{GatewayError, validate};
use futures::StreamExt as _;
use keygate_provider::context::one_request_each;
use keygate_provider::{BatchItem, SecretBytes};
use std::collections::BTreeMap;

type ItemResult<T> = Result<T, GatewayError>;
/// Items of a failed batch request in flight at once when sent one by one (as batches of a
/// backend without batch requests are); the guard's breaker stops a dead backend early.
const ONE_BY_ONE_IN_FLIGHT: usize = 32;
/// Each item's result once known (`None`: still to come from the backend).
type Pending<T> = Vec<Option<ItemResult<T>>>;

/// A plaintext to seal and its caller's associated data.
pub(super) struct ToSeal<'a> {
    pub plaintext: &'a SecretBytes,
    pub aad: &'a [u8],
}

/// A ciphertext to open and its caller's associated data.
pub(super) struct ToOpen<'a> {
    pub ciphertext: &'a [u8],
    pub aad: &'a [u8],
}

/// Seals every item under the key's primary version; `(ciphertext, version)` per item.
pub(super) async fn seal_all(
    cx: &Exec<'_, Reads>,
    key: &Admitted,
    items: &[ToSeal<'_>],
    limit: usize,
) -> Vec<ItemResult<(Vec<u8>, u32)>> {
    let max = cx.settings().limits.max_plaintext_bytes;
    let mut results: Pending<(Vec<u8>, u32)> = Vec::with_capacity(items.len());
    let mut ready: Vec<(usize, Sealing<'_>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let checked = validate::size("plaintext", "plaintext", item.plaintext.len(), max)
            .and_then(|()| check_aad(&cx.settings(), key, item.aad))
            .and_then(|()| sealing(key, item.plaintext, item.aad));
        match checked {
            Ok(s) => {
                ready.push((i, s));
                results.push(None);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    for chunk in ready.chunks(limit.max(1)) {
        let Some((_, first)) = chunk.first() else {
            continue;
        };
        // Every item seals under the primary version, with the same header.
        let version = first.version;
        let batch: Vec<BatchItem<'_>> = chunk
            .iter()
            .map(|(i, s)| BatchItem {
                data: items[*i].plaintext.expose(),
                aad: &s.provider_aad,
            })
            .collect();
        match cx.encrypt_batch(key, version, &batch).await {
            Ok(blobs) => {
                for ((i, s), blob) in chunk.iter().zip(blobs) {
                    results[*i] =
                        Some(blob.map(|b| (envelope::seal(&s.header, &b), s.version.version)));
                }
            }
            Err(e) => {
                tracing::warn!(key = %key.name, error = %e, "a batch request failed whole; its items go one by one");
                // By index: a closure over borrowed entries is not general enough for the
                // call's future.
                let indices: Vec<usize> = chunk.iter().map(|(i, _)| *i).collect();
                let one_by_one = futures::stream::iter(indices.into_iter().map(|i| {
                    let item = &items[i];
                    seal(cx, key, item.plaintext, item.aad)
                }))
                .buffered(ONE_BY_ONE_IN_FLIGHT)
                .collect::<Vec<_>>();
                let one_by_one = one_request_each(one_by_one).await;
                for ((i, _), result) in chunk.iter().zip(one_by_one) {
                    results[*i] = Some(result);
                }
            }
        }
    }
    results.into_iter().map(finished).collect()
}

/// Opens every item, each a ciphertext that should be under `key`; `(plaintext, version)` per
/// item. Items are grouped by the version their header names, one group per request.
pub(super) async fn open_all(
    cx: &Exec<'_, Reads>,
    key: &Admitted,
    items: &[ToOpen<'_>],
    limit: usize,
) -> Vec<ItemResult<(SecretBytes, u32)>> {
    let settings = cx.settings();
    let mut results: Pending<(SecretBytes, u32)> = Vec::with_capacity(items.len());
    let mut by_version: BTreeMap<u32, Vec<(usize, super::crypto::Opening<'_, '_>)>> =
        BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let checked = validate::size(
            "ciphertext",
            "ciphertext",
            item.ciphertext.len(),
            max_ciphertext(&settings),
        )
        .and_then(|()| envelope::open(item.ciphertext))
        .and_then(|env| {
            let named = env.key_id.to_string();
            if named != key.id {
                return Err(GatewayError::CiphertextOtherKey {
                    key: key.name.clone(),
                    other: named,
                });
            }
            opening(&settings, key, env.key_version, item.ciphertext, item.aad)
                .map(|o| (env.key_version, o))
        });
        match checked {
            Ok((number, o)) => {
                by_version.entry(number).or_default().push((i, o));
                results.push(None);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    for (number, group) in &by_version {
        for chunk in group.chunks(limit.max(1)) {
            let Some((_, first)) = chunk.first() else {
                continue;
            };
            let batch: Vec<BatchItem<'_>> = chunk
                .iter()
                .map(|(_, o)| BatchItem {
                    data: o.blob,
                    aad: &o.provider_aad,
                })
                .collect();
            match cx.decrypt_batch(key, first.version, &batch).await {
                Ok(plaintexts) => {
                    for ((i, _), plaintext) in chunk.iter().zip(plaintexts) {
                        results[*i] = Some(plaintext.map(|p| (p, *number)));
                    }
                }
                Err(e) => {
                    tracing::warn!(key = %key.name, error = %e, "a batch request failed whole; its items go one by one");
                    let indices: Vec<usize> = chunk.iter().map(|(i, _)| *i).collect();
                    let number = *number;
                    let one_by_one = futures::stream::iter(indices.into_iter().map(|i| {
                        let item = &items[i];
                        open_version(cx, key, number, item.ciphertext, item.aad)
                    }))
                    .buffered(ONE_BY_ONE_IN_FLIGHT)
                    .collect::<Vec<_>>();
                    let one_by_one = one_request_each(one_by_one).await;
                    for ((i, _), result) in chunk.iter().zip(one_by_one) {
                        results[*i] = Some(result.map(|p| (p, number)));
                    }
                }
            }
        }
    }
    results.into_iter().map(finished).collect()
}

/// Every item has its result by the end; one the backend's answer left out fails rather than
/// vanishing.
fn finished<T>(result: Option<ItemResult<T>>) -> ItemResult<T> {
    result.unwrap_or_else(|| {
        Err(GatewayError::Internal(
            "the backend's batch answer left an item out".into(),
        ))
    })
}
