//! BatchEncrypt, BatchDecrypt, BatchReEncrypt: many items under one key in one call.
//!
//! A batch is authorized and audited as the single-item action it repeats (Encrypt, Decrypt,
//! ReEncrypt), so every policy that governs the single call governs the batch, unchanged. It
//! writes one event per batch, not one per item: the event names the RPC, the item count,
//! the failed items (index and reason, the first [`FAILURES_LISTED`]) and how many items used
//! each key version, which is what version usage counts. One event per item would cost one
//! durable append per item, which is what a batch exists to avoid.
//!
//! Items are independent: one that fails has its own status and leaves nothing behind (no
//! ciphertext is returned for it); the others go on. A request wrong as a whole (no items,
//! more than [`MAX_BATCH_ITEMS`], a key the caller may not use) fails before any item runs.

use super::backend_batch::{self, ToOpen, ToSeal};
use super::crypto::{check_aad, max_ciphertext, open_version, seal};
use crate::gateway::envelope;
use crate::gateway::runner::{Admitted, Exec, Operation, Reads, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::Action;
use futures::StreamExt as _;
use keygate_provider::SecretBytes;
use std::collections::BTreeMap;

/// The most items one batch call (or one message of a stream) carries.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// Items of one batch in flight against the provider at once.
const ITEMS_IN_FLIGHT: usize = 32;

/// Failed items listed by index in the batch's event; the count covers them all.
const FAILURES_LISTED: usize = 100;

/// An item's own result.
pub type ItemResult<T> = Result<T, GatewayError>;

fn check_count(len: usize) -> Result<(), GatewayError> {
    if len == 0 {
        return Err(GatewayError::invalid(
            "items",
            "the batch has no items; send 1 to 1000",
        ));
    }
    if len > MAX_BATCH_ITEMS {
        return Err(GatewayError::invalid(
            "items",
            format!(
                "the batch has {len} items, more than the {MAX_BATCH_ITEMS} a call takes; split it (or use ReEncryptStream)"
            ),
        ));
    }
    Ok(())
}

/// What a batch's event says about its items.
#[derive(Default)]
struct Tally {
    failed: u64,
    failures: Vec<serde_json::Value>,
    versions: BTreeMap<u32, u64>,
}

impl Tally {
    fn of<T>(results: &[ItemResult<T>], version: impl Fn(&T) -> u32) -> Self {
        let mut tally = Tally::default();
        for (index, result) in results.iter().enumerate() {
            match result {
                Ok(item) => *tally.versions.entry(version(item)).or_default() += 1,
                Err(e) => {
                    tally.failed += 1;
                    if tally.failures.len() < FAILURES_LISTED {
                        tally
                            .failures
                            .push(serde_json::json!({"index": index, "reason": e.reason()}));
                    }
                }
            }
        }
        tally
    }

    /// Into the call's event. `versions` maps a version (as text: JSON keys are strings) to
    /// the items that used it.
    fn note(self, cx: &mut Exec<'_, Reads>, rpc: &str, items: usize) {
        cx.detail("rpc", rpc);
        cx.detail("items", items);
        cx.detail("failed", self.failed);
        if !self.failures.is_empty() {
            cx.detail("failures", self.failures);
        }
        if self.versions.len() == 1
            && let Some(&version) = self.versions.keys().next()
        {
            cx.note_version(version);
        }
        let versions: serde_json::Map<String, serde_json::Value> = self
            .versions
            .into_iter()
            .map(|(v, n)| (v.to_string(), n.into()))
            .collect();
        cx.detail("versions", serde_json::Value::Object(versions));
    }
}

/// Runs `work` on every item, a few at a time, and keeps their order.
async fn each<'c, I, T, F, Fut>(items: Vec<I>, work: F) -> Vec<ItemResult<T>>
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = ItemResult<T>> + 'c,
{
    futures::stream::iter(items)
        .map(work)
        .buffered(ITEMS_IN_FLIGHT)
        .collect()
        .await
}

/// Opens each item's ciphertext under `key`, through the backend's batches where it has
/// them; `(plaintext, version)` per item, in order.
async fn opened<T>(
    cx: &Exec<'_, Reads>,
    key: &Admitted,
    items: &[T],
    parts: impl Fn(&T) -> (&Vec<u8>, &Vec<u8>),
) -> Result<Vec<ItemResult<(SecretBytes, u32)>>, GatewayError> {
    let limit = cx.batch_limit(key)?;
    if limit > 0 {
        let items: Vec<ToOpen<'_>> = items
            .iter()
            .map(|i| {
                let (ciphertext, aad) = parts(i);
                ToOpen { ciphertext, aad }
            })
            .collect();
        return Ok(backend_batch::open_all(cx, key, &items, limit).await);
    }
    // By index: a closure over borrowed items is not general enough for the call's future.
    Ok(each((0..items.len()).collect(), |i| {
        let (ciphertext, aad) = parts(&items[i]);
        open_item(cx, key, ciphertext, aad)
    })
    .await)
}

/// Seals each opened plaintext under `destination` (through the backend's batches where it
/// has them); an item refused before (`refused`) or not opened keeps its error.
async fn resealed(
    cx: &Exec<'_, Reads>,
    destination: &Admitted,
    items: &[ReEncryptItem],
    refused: Vec<Option<GatewayError>>,
    opened: &mut impl Iterator<Item = ItemResult<(SecretBytes, u32)>>,
) -> Result<Vec<ItemResult<ReSealedItem>>, GatewayError> {
    // Each item's source plaintext and version, or its error so far.
    let mut staged: Vec<ItemResult<(SecretBytes, u32)>> = Vec::with_capacity(items.len());
    for refusal in refused {
        staged.push(match refusal {
            Some(e) => Err(e),
            None => opened
                .next()
                .unwrap_or_else(|| Err(GatewayError::Internal("an item was not opened".into()))),
        });
    }
    let to_seal: Vec<(usize, ToSeal<'_>)> = staged
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.as_ref().ok().map(|(plaintext, _)| {
                (
                    i,
                    ToSeal {
                        plaintext,
                        aad: &items[i].destination_associated_data,
                    },
                )
            })
        })
        .collect();
    let limit = cx.batch_limit(destination)?;
    let sealed: Vec<ItemResult<(Vec<u8>, u32)>> = if limit > 0 {
        let batch: Vec<ToSeal<'_>> = to_seal
            .iter()
            .map(|(_, t)| ToSeal {
                plaintext: t.plaintext,
                aad: t.aad,
            })
            .collect();
        backend_batch::seal_all(cx, destination, &batch, limit).await
    } else {
        let to_seal = &to_seal;
        each((0..to_seal.len()).collect(), |i| {
            let (_, t) = &to_seal[i];
            seal(cx, destination, t.plaintext, t.aad)
        })
        .await
    };
    let mut sealed = sealed.into_iter();
    Ok(staged
        .into_iter()
        .map(|r| {
            let (_, source_key_version) = r?;
            let (ciphertext, key_version) = sealed
                .next()
                .unwrap_or_else(|| Err(GatewayError::Internal("an item was not sealed".into())))?;
            Ok(ReSealedItem {
                ciphertext,
                source_key_version,
                key_version,
            })
        })
        .collect())
}

/// Opens one ciphertext that should be under `key`.
async fn open_item(
    cx: &Exec<'_, Reads>,
    key: &Admitted,
    ciphertext: &[u8],
    aad: &[u8],
) -> ItemResult<(SecretBytes, u32)> {
    validate::size(
        "ciphertext",
        "ciphertext",
        ciphertext.len(),
        max_ciphertext(&cx.settings()),
    )?;
    let env = envelope::open(ciphertext)?;
    let named = env.key_id.to_string();
    if named != key.id {
        return Err(GatewayError::CiphertextOtherKey {
            key: key.name.clone(),
            other: named,
        });
    }
    let plaintext = open_version(cx, key, env.key_version, ciphertext, aad).await?;
    Ok((plaintext, env.key_version))
}

pub struct EncryptItem {
    pub plaintext: SecretBytes,
    pub associated_data: Vec<u8>,
}

pub struct BatchEncrypt {
    pub key: String,
    pub items: Vec<EncryptItem>,
}

pub struct SealedItem {
    pub ciphertext: Vec<u8>,
    pub key_version: u32,
}

pub struct BatchSealed {
    pub key_id: String,
    pub results: Vec<ItemResult<SealedItem>>,
}

impl Operation for BatchEncrypt {
    type Output = BatchSealed;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::Encrypt
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        check_count(self.items.len())
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<BatchSealed, GatewayError> {
        let key = cx.key()?.clone();
        let count = self.items.len();
        let limit = cx.batch_limit(&key)?;
        let results = if limit > 0 {
            let items: Vec<ToSeal<'_>> = self
                .items
                .iter()
                .map(|i| ToSeal {
                    plaintext: &i.plaintext,
                    aad: &i.associated_data,
                })
                .collect();
            backend_batch::seal_all(cx, &key, &items, limit)
                .await
                .into_iter()
                .map(|r| {
                    r.map(|(ciphertext, key_version)| SealedItem {
                        ciphertext,
                        key_version,
                    })
                })
                .collect()
        } else {
            let cx = &*cx;
            let key = &key;
            let max = cx.settings().limits.max_plaintext_bytes;
            each(self.items, |item| async move {
                validate::size("plaintext", "plaintext", item.plaintext.len(), max)?;
                check_aad(&cx.settings(), key, &item.associated_data)?;
                let (ciphertext, key_version) =
                    seal(cx, key, &item.plaintext, &item.associated_data).await?;
                Ok(SealedItem {
                    ciphertext,
                    key_version,
                })
            })
            .await
        };
        Tally::of(&results, |r| r.key_version).note(cx, "BatchEncrypt", count);
        Ok(BatchSealed {
            key_id: key.id.clone(),
            results,
        })
    }
}

pub struct DecryptItem {
    pub ciphertext: Vec<u8>,
    pub associated_data: Vec<u8>,
}

pub struct BatchDecrypt {
    pub key: String,
    pub items: Vec<DecryptItem>,
}

pub struct OpenedItem {
    pub plaintext: SecretBytes,
    pub key_version: u32,
}

pub struct BatchOpened {
    pub key_id: String,
    pub results: Vec<ItemResult<OpenedItem>>,
}

impl Operation for BatchDecrypt {
    type Output = BatchOpened;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::Decrypt
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        check_count(self.items.len())
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<BatchOpened, GatewayError> {
        let key = cx.key()?.clone();
        let count = self.items.len();
        let results: Vec<ItemResult<OpenedItem>> = opened(cx, &key, &self.items, |i| {
            (&i.ciphertext, &i.associated_data)
        })
        .await?
        .into_iter()
        .map(|r| {
            r.map(|(plaintext, key_version)| OpenedItem {
                plaintext,
                key_version,
            })
        })
        .collect();
        Tally::of(&results, |r| r.key_version).note(cx, "BatchDecrypt", count);
        Ok(BatchOpened {
            key_id: key.id.clone(),
            results,
        })
    }
}

pub struct ReEncryptItem {
    pub ciphertext: Vec<u8>,
    pub source_associated_data: Vec<u8>,
    pub destination_associated_data: Vec<u8>,
}

/// Re-encrypts ciphertexts of one key to another key (or to the same key's newest version).
/// The event is about the source key, whose versions it counts; the destination is in its
/// details.
pub struct BatchReEncrypt {
    pub key: String,
    /// Empty: the source key's newest version.
    pub destination_key: String,
    pub items: Vec<ReEncryptItem>,
    /// Set for a chunk of a ReEncryptStream: the stream's first request id and the chunk's
    /// position, for the event.
    pub stream: Option<(String, u64)>,
}

pub struct ReSealedItem {
    pub ciphertext: Vec<u8>,
    pub source_key_version: u32,
    pub key_version: u32,
}

pub struct BatchReSealed {
    pub source_key_id: String,
    pub key_id: String,
    pub results: Vec<ItemResult<ReSealedItem>>,
}

impl Operation for BatchReEncrypt {
    type Output = BatchReSealed;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ReEncrypt
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        check_count(self.items.len())
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    fn second_key(&self) -> Option<&str> {
        Some(&self.destination_key)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<BatchReSealed, GatewayError> {
        let source = cx.key()?.clone();
        let destination = cx.destination().cloned().unwrap_or_else(|| source.clone());
        let count = self.items.len();
        // An item whose destination associated data is refused is not opened.
        let refused: Vec<Option<GatewayError>> = self
            .items
            .iter()
            .map(|i| check_aad(&cx.settings(), &destination, &i.destination_associated_data).err())
            .collect();
        let wanted: Vec<&ReEncryptItem> = self
            .items
            .iter()
            .zip(&refused)
            .filter(|(_, r)| r.is_none())
            .map(|(i, _)| i)
            .collect();
        let mut plaintexts = opened(cx, &source, &wanted, |i| {
            (&i.ciphertext, &i.source_associated_data)
        })
        .await?
        .into_iter();
        let results = resealed(cx, &destination, &self.items, refused, &mut plaintexts).await?;
        let rpc = match &self.stream {
            Some((stream, offset)) => {
                cx.detail("stream", stream.clone());
                cx.detail("offset", *offset);
                "ReEncryptStream"
            }
            None => "BatchReEncrypt",
        };
        cx.detail("destination_key_id", destination.id.clone());
        cx.detail("destination_key_version", destination.primary().version);
        Tally::of(&results, |r| r.source_key_version).note(cx, rpc, count);
        Ok(BatchReSealed {
            source_key_id: source.id.clone(),
            key_id: destination.id.clone(),
            results,
        })
    }
}
