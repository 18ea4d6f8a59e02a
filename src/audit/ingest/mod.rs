//! Providers' own audit records, brought into the log beside keygate's events.
//!
//! An [`Ingester`] reads a [`feed::Feed`] (a followed file, log files in a bucket), normalises
//! each record with its source's [`record::Normaliser`] into keygate's one schema, and appends
//! them through the writer together with its cursor, in one transaction: a restart resumes
//! exactly after the last record committed, and a record already in the log (the same input
//! read twice) is recognised by its id and skipped. It runs in the background, never on a
//! call's path.
//!
//! **Linking.** A record whose provider request id is one a gateway call got back, or which
//! carries keygate's request id (an audited header, a user agent, a client request id), is
//! linked to that call's event: the event's `details.link` names it, and a query by the
//! call's request id returns both. A record about a key keygate manages that no gateway call
//! made is a **bypass finding**: someone used the key around keygate. Since a provider may log
//! a request before the gateway has committed its event, such a record is decided only once it
//! is `grace` old (at least the request timeout).

pub mod feed;
pub mod file;
pub mod objects;
pub mod record;
pub mod sources;

use super::store::{CursorRow, FeedCounters, IngestedRow};
use super::{AuditLog, AuditRecord, Batch};
use feed::{Feed, RawRecord};
use record::{Normalised, Normaliser, ProviderRecord};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The action of the event that reports records skipped as malformed.
pub const SKIPPED_ACTION: &str = "AuditIngestSkipped";
/// The action of the event that reports what happened to an ingester's input (rotations).
pub const NOTICE_ACTION: &str = "AuditIngestNotice";

/// Positions listed in one skipped-records event at most.
const MAX_LISTED: usize = 50;

/// A key keygate manages, as ingestion needs it.
#[derive(Debug, Clone)]
pub struct ManagedKey {
    pub id: String,
    pub name: String,
    /// (keygate version, the provider's version).
    pub versions: Vec<(u32, String)>,
}

/// The keys keygate manages, by provider URI.
pub trait KeyDirectory: Send + Sync {
    fn managed(&self) -> HashMap<String, ManagedKey>;
}

pub struct IngestSettings {
    /// The cursor's name (`[[audit.ingest]] name`).
    pub name: String,
    pub normaliser: Arc<dyn Normaliser>,
    pub feed: Arc<dyn Feed>,
    /// How often an idle feed is read again.
    pub poll: Duration,
    /// How old a record about a managed key with no gateway call must be before it is a
    /// bypass finding.
    pub grace: Duration,
    /// Records per batch.
    pub batch: usize,
}

pub struct Ingester {
    s: IngestSettings,
    log: AuditLog,
    keys: Arc<dyn KeyDirectory>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Records (or the cursor) moved on; more may follow at once.
    Progress(usize),
    /// Nothing new.
    Idle,
    /// A record waits until it is old enough to decide.
    Wait(Duration),
}

fn lookup<'a>(managed: &'a HashMap<String, ManagedKey>, uri: &str) -> Option<&'a ManagedKey> {
    if uri.is_empty() {
        return None;
    }
    managed
        .get(uri)
        .or_else(|| managed.get(&uri.to_ascii_lowercase()))
}

impl Ingester {
    pub fn new(s: IngestSettings, log: AuditLog, keys: Arc<dyn KeyDirectory>) -> Self {
        Self { s, log, keys }
    }

    pub fn name(&self) -> &str {
        &self.s.name
    }

    /// Reads and commits until `stop`.
    pub async fn run(&self, stop: CancellationToken) {
        loop {
            let pause = match self.step().await {
                Ok(Step::Progress(_)) => Duration::ZERO,
                Ok(Step::Idle) => self.s.poll,
                Ok(Step::Wait(d)) => d.clamp(Duration::from_millis(50), self.s.poll),
                Err(e) => {
                    tracing::warn!(feed = %self.s.name, input = %self.s.feed.describe(), error = %e, "audit ingestion failed; retrying");
                    self.s.poll.max(Duration::from_secs(1))
                }
            };
            if stop.is_cancelled() {
                return;
            }
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }

    /// One batch: read, normalise, link, commit with the cursor.
    pub async fn step(&self) -> Result<Step, String> {
        let store = self.log.store();
        let source = self.s.normaliser.source();
        let row = store
            .cursor(&self.s.name)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| CursorRow {
                feed: self.s.name.clone(),
                position: "null".into(),
                ..Default::default()
            });
        let cursor: Value = serde_json::from_str(&row.position).unwrap_or(Value::Null);
        let read = self.s.feed.read(&cursor, self.s.batch).await?;
        let hasher = self.log.hasher();
        let items: Vec<(RawRecord, Normalised)> = read
            .records
            .into_iter()
            .map(|raw| {
                let n = match &raw.value {
                    Ok(v) => self.s.normaliser.normalise(v, hasher),
                    Err(e) => Normalised::Malformed(e.clone()),
                };
                (raw, n)
            })
            .collect();
        let records = || {
            items.iter().filter_map(|(_, n)| match n {
                Normalised::Record(r) => Some(r.as_ref()),
                _ => None,
            })
        };
        let ids: Vec<String> = records().map(|r| r.record_id.clone()).collect();
        let known = store
            .known_records(source, &ids)
            .await
            .map_err(|e| e.to_string())?;
        let provider_ids: Vec<String> = records()
            .map(|r| r.provider_request_id.clone())
            .filter(|id| !id.is_empty())
            .collect();
        let keygate_ids: Vec<String> = records()
            .filter_map(|r| r.keygate_request_id.clone())
            .collect();
        let by_provider = store
            .gateway_by_provider_request_ids(&provider_ids)
            .await
            .map_err(|e| e.to_string())?;
        let by_keygate = store
            .gateway_by_request_ids(&keygate_ids)
            .await
            .map_err(|e| e.to_string())?;
        let managed = self.keys.managed();
        let now = crate::time::now_ms();
        let grace = self.s.grace.as_millis() as i64;

        let mut counters = row.counters;
        let mut last_malformed = row.last_malformed.clone();
        let mut batch = Batch::default();
        let mut skipped: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut end: Option<Value> = None;
        let mut wait = None;
        for (raw, normalised) in &items {
            match normalised {
                Normalised::Malformed(reason) => {
                    counters.malformed += 1;
                    last_malformed = format!("{}: {reason}", raw.position);
                    skipped.push(last_malformed.clone());
                }
                Normalised::Ignored(_) => counters.ignored += 1,
                Normalised::Record(r) => {
                    if known.contains(&r.record_id) || !seen.insert(r.record_id.clone()) {
                        counters.duplicates += 1;
                    } else {
                        let gateway = by_provider.get(&r.provider_request_id).or_else(|| {
                            r.keygate_request_id
                                .as_ref()
                                .and_then(|k| by_keygate.get(k))
                        });
                        let key = lookup(&managed, &r.key_uri);
                        if gateway.is_none() && key.is_some() && now < r.time_ms + grace {
                            // The gateway may not have committed this call's event yet.
                            wait = Some(Duration::from_millis((r.time_ms + grace - now) as u64));
                            break;
                        }
                        let (record, ingested) = self.event(
                            r,
                            raw,
                            key,
                            gateway.map(|g| (g.sequence, g.request_id.clone())),
                        );
                        counters.ingested += 1;
                        counters.linked += u64::from(ingested.gateway_sequence.is_some());
                        counters.bypass += u64::from(ingested.bypass);
                        batch.records.push((record, Some(ingested)));
                    }
                }
            }
            end = Some(raw.after.clone());
        }
        // Without a wait every record was taken: the feed's end (which may have moved past a
        // rotation or an empty file). With one: just before the waiting record.
        let end = match (wait, end) {
            (None, _) => read.end.clone(),
            (Some(_), Some(e)) => e,
            (Some(_), None) => cursor.clone(),
        };
        let moved = end != cursor;
        if !skipped.is_empty() {
            batch.records.push((self.skipped_event(&skipped), None));
        }
        // What happened to the input is recorded with the step that moves past it.
        if moved && !read.notes.is_empty() {
            for note in &read.notes {
                tracing::warn!(feed = %self.s.name, "{note}");
            }
            batch.records.push((self.notice_event(&read.notes), None));
        }
        if batch.records.is_empty() && !moved {
            return Ok(match wait {
                Some(d) => Step::Wait(d),
                None => Step::Idle,
            });
        }
        let n = batch.records.len();
        batch.side.cursors.push(CursorRow {
            feed: self.s.name.clone(),
            position: end.to_string(),
            counters,
            last_malformed,
            updated_ms: now,
        });
        self.log
            .append_batch(batch)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match wait {
            Some(d) if n == 0 => Step::Wait(d),
            _ => Step::Progress(n),
        })
    }

    /// The event for one provider record, and what the ingested table keeps of it.
    fn event(
        &self,
        r: &ProviderRecord,
        raw: &RawRecord,
        key: Option<&ManagedKey>,
        gateway: Option<(u64, String)>,
    ) -> (AuditRecord, IngestedRow) {
        let source = self.s.normaliser.source();
        let bypass = gateway.is_none() && key.is_some();
        let mut details: Map<String, Value> = r.details.clone();
        details.insert("native_operation".into(), r.native_operation.clone().into());
        if !r.native_version.is_empty() {
            details.insert("native_version".into(), r.native_version.clone().into());
        }
        details.insert(
            "ingest".into(),
            json!({"feed": self.s.name, "position": raw.position, "record_id": r.record_id}),
        );
        match &gateway {
            Some((sequence, request_id)) => {
                details.insert(
                    "link".into(),
                    json!({"gateway_sequence": sequence, "gateway_request_id": request_id}),
                );
            }
            None if bypass => {
                details.insert("bypass".into(), true.into());
            }
            None => {}
        }
        let version = key
            .and_then(|k| {
                k.versions
                    .iter()
                    .find(|(_, pv)| !r.native_version.is_empty() && *pv == r.native_version)
            })
            .map_or(0, |(v, _)| *v);
        let record = AuditRecord {
            time_ms: r.time_ms,
            source: source.into(),
            actor: r.actor.clone(),
            actor_kind: r.actor_kind.clone(),
            action: r.operation.clone(),
            key_id: key.map(|k| k.id.clone()).unwrap_or_default(),
            key_name: key.map(|k| k.name.clone()).unwrap_or_default(),
            key_version: version,
            key_uri: r.key_uri.clone(),
            outcome: r.outcome.into(),
            reason: r.reason.clone(),
            error_reason: r.error_code.clone(),
            policy: if bypass {
                "bypass: no gateway call made this request on a key keygate manages".into()
            } else {
                String::new()
            },
            request_id: gateway
                .as_ref()
                .map(|(_, id)| id.clone())
                .or_else(|| r.keygate_request_id.clone())
                .unwrap_or_default(),
            provider_request_id: r.provider_request_id.clone(),
            client_address: r.client_address.clone(),
            details: Value::Object(details).to_string(),
            ..Default::default()
        };
        let ingested = IngestedRow {
            source: source.into(),
            record_id: r.record_id.clone(),
            feed: self.s.name.clone(),
            provider_request_id: r.provider_request_id.clone(),
            gateway_sequence: gateway.map(|(s, _)| s),
            bypass,
        };
        (record, ingested)
    }

    fn system_record(&self, action: &str) -> AuditRecord {
        AuditRecord {
            time_ms: crate::time::now_ms(),
            source: self.s.normaliser.source().into(),
            actor: format!("keygate:ingester:{}", self.s.name),
            actor_kind: "ingester".into(),
            action: action.into(),
            policy: "system: audit ingestion".into(),
            ..Default::default()
        }
    }

    fn skipped_event(&self, skipped: &[String]) -> AuditRecord {
        let mut r = self.system_record(SKIPPED_ACTION);
        r.outcome = "error".into();
        r.error_reason = "RECORD_MALFORMED".into();
        r.reason = format!(
            "{} record(s) from {} could not be read and were skipped; the first: {}",
            skipped.len(),
            self.s.feed.describe(),
            skipped[0]
        );
        r.details = json!({
            "feed": self.s.name,
            "input": self.s.feed.describe(),
            "count": skipped.len(),
            "skipped": skipped.iter().take(MAX_LISTED).collect::<Vec<_>>(),
        })
        .to_string();
        r
    }

    fn notice_event(&self, notes: &[String]) -> AuditRecord {
        let mut r = self.system_record(NOTICE_ACTION);
        r.outcome = "ok".into();
        r.reason = notes.join("; ");
        r.details = json!({"feed": self.s.name, "input": self.s.feed.describe(), "notes": notes})
            .to_string();
        r
    }
}

/// An ingester's state as `keygate audit ingesters` shows it.
#[derive(Debug, Clone)]
pub struct FeedStatus {
    pub name: String,
    pub format: String,
    pub input: String,
    pub counters: FeedCounters,
    pub position: String,
    pub last_malformed: String,
    pub updated_ms: i64,
}
