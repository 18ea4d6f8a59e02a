//! WAL checkpoints, kept off the audit commit path (SQLite's own checkpoints, not the signed
//! audit checkpoints of `audit::anchor`).
//!
//! SQLite's automatic checkpoint runs inside whichever commit crosses the threshold: that
//! commit copies the whole WAL into the database and fsyncs it while every call in the batch
//! waits, which was the latency tail of the audit log. So automatic checkpoints are off
//! (`db::open`) and two steps share the work:
//!
//! 1. this task, on its own connection, runs a PASSIVE checkpoint every [`INTERVAL`]. It
//!    copies the frames committed so far while the writer goes on appending.
//! 2. the writer, between two batches, runs another PASSIVE checkpoint that copies only the
//!    frames committed during step 1 ([`CatchUp`]). With every frame copied and nothing
//!    written since, the writer's next commit starts the WAL over from its beginning, so the
//!    WAL stays bounded under a load that never pauses (a lone background checkpoint is always
//!    behind the writer, and the WAL would only grow).

use sqlx::{Row, SqliteConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the background checkpoint runs. Short enough that each one, and the writer's
/// catch-up after it, copies little; long enough that its fsyncs cost nothing measurable.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Set by the background checkpoint, taken by the writer.
#[derive(Clone, Default)]
pub struct CatchUp(Arc<AtomicBool>);

impl CatchUp {
    fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether a catch-up is due; clears the request.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// One PASSIVE checkpoint: copies what it can without waiting for readers or the writer.
/// Returns how many frames the WAL holds.
pub async fn passive(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    // The row is (busy, frames in the WAL, frames copied).
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await?
        .try_get(1)
}

/// [`passive`] on the writer's own connection, on its thread.
pub fn passive_here(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

/// The background half; runs until the process ends.
pub async fn run(mut conn: SqliteConnection, catch_up: CatchUp) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match passive(&mut conn).await {
            // An empty WAL needs nothing; otherwise let the writer finish the job.
            Ok(wal_frames) if wal_frames > 0 => catch_up.request(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
        }
    }
}
