//! Audit rows into their types, for either database's rows: times, sequences and 0/1 flags are
//! 64-bit integers on both, so one decoder serves both.

use crate::audit::event::{AuditEvent, AuditRecord, Link};
use crate::audit::store::{Checkpoint, CursorRow, FeedCounters};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::Row;

/// The column reads the decoders need, on a row of either database.
pub trait ReadRow {
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// `None` also when the row has no such column.
    fn opt_text(&self, column: &str) -> Option<String>;
}

macro_rules! read_row {
    ($row:ty) => {
        impl ReadRow for $row {
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(column)
            }
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_text(&self, column: &str) -> Option<String> {
                self.try_get(column).ok().flatten()
            }
        }
    };
}

read_row!(sqlx::sqlite::SqliteRow);
read_row!(sqlx::postgres::PgRow);

pub fn event(row: &impl ReadRow) -> Result<AuditEvent, sqlx::Error> {
    let link = match row.opt_text("link_feed") {
        Some(feed) => Some(Link {
            feed,
            gateway_sequence: row.opt_int("link_gateway")?.map(|s| s as u64),
            bypass: row.opt_int("link_bypass")?.unwrap_or(0) != 0,
        }),
        None => None,
    };
    Ok(AuditEvent {
        sequence: row.int("sequence")? as u64,
        // Out-of-range values become 0, which verification reports as an unknown format.
        format: u8::try_from(row.int("format")?).unwrap_or(0),
        previous_hash: row.text("previous_hash")?,
        hash: row.text("hash")?,
        link,
        record: AuditRecord {
            time_ms: row.int("time_ms")?,
            source: row.text("source")?,
            actor: row.text("actor")?,
            actor_kind: row.text("actor_kind")?,
            action: row.text("action")?,
            key_id: row.text("key_id")?,
            key_name: row.text("key_name")?,
            key_version: row.int("key_version")? as u32,
            outcome: row.text("outcome")?,
            reason: row.text("reason")?,
            error_reason: row.text("error_reason")?,
            policy: row.text("policy")?,
            request_id: row.text("request_id")?,
            provider_request_id: row.text("provider_request_id")?,
            client_address: row.text("client_address")?,
            details: row.text("details")?,
            caller_gone: row.int("caller_gone")? != 0,
            key_uri: row.text("key_uri")?,
            more_provider_request_ids: Vec::new(),
        },
    })
}

pub fn checkpoint(row: &impl ReadRow) -> Result<Checkpoint, sqlx::Error> {
    let b64 = |column: &str| -> Result<Vec<u8>, sqlx::Error> {
        let text = row.text(column)?;
        // A value that is not base64 cannot verify; verification names the checkpoint.
        Ok(B64.decode(text.as_bytes()).unwrap_or_default())
    };
    Ok(Checkpoint {
        sequence: row.int("sequence")? as u64,
        head_hash: row.text("head_hash")?,
        time_ms: row.int("time_ms")?,
        previous_digest: row.text("previous_digest")?,
        key_id: row.text("key_id")?,
        key_name: row.text("key_name")?,
        key_version: row.int("key_version")? as u32,
        algorithm: row.text("algorithm")?,
        public_key: b64("public_key")?,
        signature: b64("signature")?,
    })
}

pub fn cursor(row: &impl ReadRow) -> Result<CursorRow, sqlx::Error> {
    let n = |c: &str| -> Result<u64, sqlx::Error> { Ok(row.int(c)? as u64) };
    Ok(CursorRow {
        feed: row.text("feed")?,
        position: row.text("position")?,
        counters: FeedCounters {
            ingested: n("ingested")?,
            linked: n("linked")?,
            bypass: n("bypass")?,
            ignored: n("ignored")?,
            duplicates: n("duplicates")?,
            malformed: n("malformed")?,
        },
        last_malformed: row.text("last_malformed")?,
        updated_ms: row.int("updated_ms")?,
    })
}
