//! WAL checkpoints, kept off the audit commit path.
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

/// What one `PRAGMA wal_checkpoint` reported: frames in the WAL and frames copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpointed {
    pub wal_frames: i64,
    pub copied_frames: i64,
}

/// One PASSIVE checkpoint: copies what it can without waiting for readers or the writer.
pub async fn passive(conn: &mut SqliteConnection) -> Result<Checkpointed, sqlx::Error> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await?;
    Ok(Checkpointed {
        wal_frames: row.try_get(1)?,
        copied_frames: row.try_get(2)?,
    })
}

/// The background half; runs until the process ends.
pub async fn run(mut conn: SqliteConnection, catch_up: CatchUp) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match passive(&mut conn).await {
            // An empty WAL needs nothing; otherwise let the writer finish the job.
            Ok(done) if done.wal_frames > 0 => catch_up.request(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
        }
    }
}
