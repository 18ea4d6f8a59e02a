//! Every SQL statement of key posture (scans, their inventory, findings), one text for SQLite
//! and PostgreSQL (see [`crate::db::Db`]).

use super::{Acknowledgement, Finding, ProviderListing, ScanSummary, ScannedKey, Violation};
use crate::db::Db;
use crate::on_db;
use std::collections::{HashMap, HashSet};

/// The SELECT list [`finding`] reads (a literal, so the statements stay static).
macro_rules! finding_columns {
    () => {
        "SELECT id, rule, severity, provider, provider_uri, key_id, key_name, evidence, \
         opened_at_ms, last_seen_ms, closed_at_ms, closed_because, acked_by, acked_at_ms, \
         ack_reason"
    };
}

#[derive(Debug, thiserror::Error)]
pub enum PostureError {
    #[error("no finding with id {0}")]
    NotFound(i64),
    #[error("finding {0} is closed: the condition it reported no longer holds")]
    Closed(i64),
    #[error("posture store: {0}")]
    Store(#[from] sqlx::Error),
}

/// Which findings to list.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    /// `open` (the default when empty), `closed` or `all`.
    pub state: String,
    /// A rule name; empty: all.
    pub rule: String,
    /// A severity; empty: all.
    pub severity: String,
    /// A catalog key id or a provider URI; empty: all.
    pub key: String,
}

impl FindingFilter {
    /// The filters as page tokens digest them.
    pub fn digest_input(&self) -> String {
        format!(
            "{}\0{}\0{}\0{}",
            self.state, self.rule, self.severity, self.key
        )
    }
}

/// Which keys of the newest scan to list.
#[derive(Debug, Clone, Default)]
pub struct InventoryFilter {
    pub provider: String,
    pub unmanaged_only: bool,
    /// Only keys that appeared or vanished since the provider's previous listing.
    pub changed_only: bool,
}

impl InventoryFilter {
    pub fn digest_input(&self) -> String {
        format!(
            "{}\0{}\0{}",
            self.provider, self.unmanaged_only, self.changed_only
        )
    }
}

/// A scan as it is recorded.
pub struct ScanRecord<'a> {
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub started_by: &'a str,
    pub listings: &'a [ProviderListing],
    /// With their changes marked ([`PostureStore::mark_changes`]).
    pub keys: &'a [ScannedKey],
    pub violations: &'a [Violation],
    /// (rule, subject) pairs this scan could not decide (a key's settings could not be read):
    /// their open findings stay open, as a failed listing's do.
    pub undecided: &'a HashSet<(String, String)>,
}

/// Scans whose inventory is kept (a week of hourly scans); older inventories are deleted,
/// except each provider's newest successful listing, which the next scan compares with.
/// Scan summaries and findings are kept.
const KEEP_SCANS: i64 = 168;

/// The advisory lock serialising scan records on PostgreSQL: "kgscan\0\0" as a big-endian
/// integer (beside the leader's "keygate\0").
const SCAN_LOCK_KEY: i64 = 0x6b67_7363_616e_0000;

#[derive(Clone)]
pub struct PostureStore {
    db: Db,
}

impl PostureStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Marks each key `appeared` when the provider's previous successful listing lacked it,
    /// and adds the keys that listing had and this one lacks as `vanished`. A provider never
    /// listed before has nothing appear (its first listing is the baseline).
    pub async fn mark_changes(
        &self,
        mut keys: Vec<ScannedKey>,
        listed: &HashSet<String>,
    ) -> Result<Vec<ScannedKey>, PostureError> {
        let mut vanished = Vec::new();
        for provider in listed {
            let Some(previous) = self.previous_listing(provider).await? else {
                continue;
            };
            let now: HashSet<String> = keys
                .iter()
                .filter(|k| &k.provider == provider)
                .map(|k| k.provider_uri.clone())
                .collect();
            for key in keys.iter_mut().filter(|k| &k.provider == provider) {
                if !previous.contains_key(&key.provider_uri) {
                    key.change = "appeared".into();
                }
            }
            for (uri, mut before) in previous {
                if !now.contains(&uri) {
                    before.change = "vanished".into();
                    vanished.push(before);
                }
            }
        }
        keys.extend(vanished);
        Ok(keys)
    }

    async fn previous_listing(
        &self,
        provider: &str,
    ) -> Result<Option<HashMap<String, ScannedKey>>, PostureError> {
        let rows: Vec<ScannedKey> = on_db!(&self.db, |pool| {
            let scan: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(scan_id) FROM posture_listings WHERE provider = $1 AND error = ''",
            )
            .bind(provider)
            .fetch_one(pool)
            .await?;
            let Some(scan) = scan else {
                return Ok(None);
            };
            sqlx::query_as(
                "SELECT provider, provider_uri, algorithm, state, key_id, change
                 FROM posture_inventory
                 WHERE scan_id = $1 AND provider = $2 AND change != 'vanished'",
            )
            .bind(scan)
            .bind(provider)
            .fetch_all(pool)
            .await?
        });
        let mut keys = HashMap::with_capacity(rows.len());
        for mut key in rows {
            key.change.clear();
            keys.insert(key.provider_uri.clone(), key);
        }
        Ok(Some(keys))
    }

    /// Records the scan, its listings and inventory, and brings the findings up to date in
    /// one transaction: a violation without an open finding opens one, one with an open
    /// finding refreshes its evidence, and an open finding whose violation is gone closes
    /// (unless its provider's listing failed in this scan, which proves nothing).
    pub async fn record_scan(&self, scan: ScanRecord<'_>) -> Result<ScanSummary, PostureError> {
        let now = scan.finished_at_ms;
        let listed: HashSet<&str> = scan
            .listings
            .iter()
            .filter(|l| l.error.is_empty())
            .map(|l| l.provider.as_str())
            .collect();
        let present = || scan.keys.iter().filter(|k| k.change != "vanished");
        let postgres = self.db.is_postgres();
        let (scan_id, opened, closed) = on_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            if postgres {
                // Scans on two replicas at once would each read the open findings before the
                // other's commit and open the same one twice (the open-findings unique index
                // then fails one scan). Replicas record scans one at a time instead, each
                // reading what the previous one committed. Released at commit or rollback.
                // A long scan may hold it past the session's lock_timeout: wait longer here.
                sqlx::query("SET LOCAL lock_timeout = '60s'")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SCAN_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
            }
            let scan_id: i64 = sqlx::query_scalar(
                "INSERT INTO posture_scans (started_at_ms, finished_at_ms, started_by, keys, unmanaged)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(scan.started_at_ms)
            .bind(now)
            .bind(scan.started_by)
            .bind(present().count() as i64)
            .bind(present().filter(|k| k.key_id.is_empty()).count() as i64)
            .fetch_one(&mut *tx)
            .await?;
            for l in scan.listings {
                sqlx::query(
                    "INSERT INTO posture_listings (scan_id, provider, keys, elapsed_ms, error)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(scan_id)
                .bind(&l.provider)
                .bind(l.keys as i64)
                .bind(l.elapsed_ms as i64)
                .bind(&l.error)
                .execute(&mut *tx)
                .await?;
            }
            for k in scan.keys {
                sqlx::query(
                    "INSERT INTO posture_inventory
                         (scan_id, provider, provider_uri, algorithm, state, key_id, change)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(scan_id)
                .bind(&k.provider)
                .bind(&k.provider_uri)
                .bind(&k.algorithm)
                .bind(&k.state)
                .bind(&k.key_id)
                .bind(&k.change)
                .execute(&mut *tx)
                .await?;
            }
            let open: Vec<(i64, String, String, String)> = sqlx::query_as(
                "SELECT id, rule, subject, provider FROM posture_findings WHERE closed_at_ms IS NULL",
            )
            .fetch_all(&mut *tx)
            .await?;
            let open_by: HashMap<(String, String), i64> = open
                .iter()
                .map(|(id, rule, subject, _)| ((rule.clone(), subject.clone()), *id))
                .collect();
            let mut seen = HashSet::new();
            let mut opened = 0;
            for v in scan.violations {
                let subject = v.subject();
                let rule = v.rule.as_str();
                seen.insert((rule.to_string(), subject.clone()));
                if let Some(id) = open_by.get(&(rule.to_string(), subject.clone())) {
                    sqlx::query(
                        "UPDATE posture_findings SET last_seen_ms = $1, evidence = $2, key_name = $3
                         WHERE id = $4",
                    )
                    .bind(now)
                    .bind(&v.evidence)
                    .bind(&v.key_name)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    continue;
                }
                sqlx::query(
                    "INSERT INTO posture_findings (rule, severity, subject, provider, provider_uri,
                         key_id, key_name, evidence, opened_at_ms, last_seen_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(rule)
                .bind(v.severity.as_str())
                .bind(&subject)
                .bind(&v.provider)
                .bind(&v.provider_uri)
                .bind(&v.key_id)
                .bind(&v.key_name)
                .bind(&v.evidence)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                opened += 1;
            }
            let mut closed = 0;
            let because = format!("no longer found by scan {scan_id}");
            for (id, rule, subject, provider) in &open {
                let pair = (rule.clone(), subject.clone());
                if seen.contains(&pair)
                    || scan.undecided.contains(&pair)
                    || !listed.contains(provider.as_str())
                {
                    continue;
                }
                sqlx::query(
                    "UPDATE posture_findings SET closed_at_ms = $1, closed_because = $2
                     WHERE id = $3 AND closed_at_ms IS NULL",
                )
                .bind(now)
                .bind(&because)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                closed += 1;
            }
            sqlx::query(
                "DELETE FROM posture_inventory WHERE scan_id <= $1
                   AND scan_id NOT IN
                     (SELECT MAX(scan_id) FROM posture_listings WHERE error = '' GROUP BY provider)",
            )
            .bind(scan_id - KEEP_SCANS)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            (scan_id, opened, closed)
        });
        Ok(ScanSummary {
            scan_id,
            started_at_ms: scan.started_at_ms,
            finished_at_ms: now,
            keys: present().count() as u64,
            unmanaged: present().filter(|k| k.key_id.is_empty()).count() as u64,
            appeared: present().filter(|k| k.change == "appeared").count() as u64,
            vanished: scan.keys.iter().filter(|k| k.change == "vanished").count() as u64,
            opened,
            closed,
            listings: scan.listings.to_vec(),
        })
    }

    /// The newest scan's id and time, if any scan ran.
    pub async fn latest_scan(&self) -> Result<Option<(i64, i64)>, PostureError> {
        Ok(on_db!(&self.db, |pool| {
            sqlx::query_as("SELECT id, finished_at_ms FROM posture_scans ORDER BY id DESC LIMIT 1")
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Keys of scan `scan_id` after `after` (provider, URI), in that order.
    pub async fn inventory(
        &self,
        scan_id: i64,
        filter: &InventoryFilter,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Vec<ScannedKey>, PostureError> {
        let (after_provider, after_uri) = after.unwrap_or_default();
        // The flags as 0/1: PostgreSQL and SQLite bind an integer alike.
        Ok(on_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT provider, provider_uri, algorithm, state, key_id, change
                 FROM posture_inventory
                 WHERE scan_id = $1
                   AND ($2 = '' OR provider = $2)
                   AND ($3 = 0 OR key_id = '')
                   AND ($4 = 0 OR change != '')
                   AND (provider > $5 OR (provider = $5 AND provider_uri > $6))
                 ORDER BY provider, provider_uri LIMIT $7",
            )
            .bind(scan_id)
            .bind(&filter.provider)
            .bind(i64::from(filter.unmanaged_only))
            .bind(i64::from(filter.changed_only))
            .bind(&after_provider)
            .bind(&after_uri)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn findings(
        &self,
        filter: &FindingFilter,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Finding>, PostureError> {
        let state = if filter.state.is_empty() {
            "open"
        } else {
            filter.state.as_str()
        };
        let rows: Vec<FindingRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(concat!(
                finding_columns!(),
                " FROM posture_findings
                 WHERE id > $1
                   AND ($2 = 'all' OR ($2 = 'closed') = (closed_at_ms IS NOT NULL))
                   AND ($3 = '' OR rule = $3)
                   AND ($4 = '' OR severity = $4)
                   AND ($5 = '' OR key_id = $5 OR provider_uri = $5)
                 ORDER BY id LIMIT $6"
            ))
            .bind(after_id)
            .bind(state)
            .bind(&filter.rule)
            .bind(&filter.severity)
            .bind(&filter.key)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(Finding::from).collect())
    }

    pub async fn finding(&self, id: i64) -> Result<Finding, PostureError> {
        let row: Option<FindingRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(concat!(
                finding_columns!(),
                " FROM posture_findings WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(Finding::from).ok_or(PostureError::NotFound(id))
    }

    /// Acknowledges an open finding (again, if it was: the newest acknowledgement stands).
    pub async fn acknowledge(
        &self,
        id: i64,
        ack: &Acknowledgement,
    ) -> Result<Finding, PostureError> {
        let done = on_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE posture_findings SET acked_by = $1, acked_at_ms = $2, ack_reason = $3
                 WHERE id = $4 AND closed_at_ms IS NULL",
            )
            .bind(&ack.by)
            .bind(ack.at_ms)
            .bind(&ack.reason)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        let finding = self.finding(id).await?;
        if done == 0 {
            return Err(PostureError::Closed(id));
        }
        Ok(finding)
    }

    /// Closes the unmanaged-key finding of a provider key keygate now manages.
    pub async fn close_adopted(
        &self,
        provider: &str,
        uri: &str,
        key_name: &str,
        now_ms: i64,
    ) -> Result<u64, PostureError> {
        let because = format!("adopted as key '{key_name}'");
        let subject = format!("{provider}|{uri}");
        Ok(on_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE posture_findings SET closed_at_ms = $1, closed_because = $2
                 WHERE rule = 'unmanaged-key' AND subject = $3 AND closed_at_ms IS NULL",
            )
            .bind(now_ms)
            .bind(&because)
            .bind(&subject)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }
}

/// A `posture_findings` row as [`finding_columns!`] selects it.
#[derive(sqlx::FromRow)]
struct FindingRow {
    id: i64,
    rule: String,
    severity: String,
    provider: String,
    provider_uri: String,
    key_id: String,
    key_name: String,
    evidence: String,
    opened_at_ms: i64,
    last_seen_ms: i64,
    closed_at_ms: Option<i64>,
    closed_because: String,
    acked_by: String,
    acked_at_ms: Option<i64>,
    ack_reason: String,
}

impl From<FindingRow> for Finding {
    fn from(row: FindingRow) -> Self {
        Finding {
            id: row.id,
            rule: row.rule,
            severity: row.severity,
            provider: row.provider,
            provider_uri: row.provider_uri,
            key_id: row.key_id,
            key_name: row.key_name,
            evidence: row.evidence,
            opened_at_ms: row.opened_at_ms,
            last_seen_ms: row.last_seen_ms,
            closed_at_ms: row.closed_at_ms,
            closed_because: row.closed_because,
            acknowledgement: row.acked_at_ms.map(|at_ms| Acknowledgement {
                by: row.acked_by,
                at_ms,
                reason: row.ack_reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
