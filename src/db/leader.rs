//! One leader among the replicas sharing a PostgreSQL database, for the background jobs that
//! must not run on two replicas at once (rotation scheduler, destruction, checkpoints,
//! ingesters). On SQLite the single process is always the leader ([`Leadership::always`]).
//!
//! The leader holds a session-level advisory lock on a connection of its own, outside the
//! pool: PostgreSQL releases it the moment that session ends, so a replica that dies (or loses
//! the database) hands leadership over without any lease to expire. The holder pings its
//! connection every `interval`; when a ping fails it stops calling itself leader, so two
//! replicas can both believe they lead for at most about one interval after a network split.
//! Jobs therefore keep writing with compare-and-set updates (`catalog::store::set_state`),
//! which make a job that ran twice in that window change nothing the second time.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The advisory lock key: "keygate\0" as a big-endian integer, unlikely to meet another
/// application's key in a shared database.
pub const LEADER_LOCK_KEY: i64 = 0x6b65_7967_6174_6500;

/// Whether this replica is the leader now, kept current by the election task.
#[derive(Clone, Debug)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    /// The single process on SQLite: leader for good.
    pub fn always() -> Self {
        let (_, rx) = watch::channel(true);
        Self(rx)
    }

    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until this replica is the leader (or the election task has ended).
    pub async fn wait_until_leader(&mut self) {
        let _ = self.0.wait_for(|leader| *leader).await;
    }

    /// Campaigns for the lock on PostgreSQL until `stop`: tries to take it every `interval`
    /// while another replica holds it, and checks it still holds it every `interval` once it
    /// does. `options` should name this replica (`application_name`), so operators can see in
    /// `pg_stat_activity` which one leads.
    pub fn campaign(
        options: PgConnectOptions,
        interval: Duration,
        stop: CancellationToken,
    ) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let mut held: Option<PgConnection> = None;
            loop {
                held = match held.take() {
                    Some(conn) => keep(conn).await,
                    None => take(&options).await,
                };
                tx.send_replace(held.is_some());
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(interval) => {}
                }
            }
            tx.send_replace(false);
            if let Some(conn) = held {
                // Closing the session releases the lock at once, for a quick hand-over.
                let _ = conn.close().await;
            }
        });
        Self(rx)
    }
}

/// Connects and tries the lock; the connection if the lock is ours.
async fn take(options: &PgConnectOptions) -> Option<PgConnection> {
    let mut conn = match options.connect().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "leader election: cannot reach the database");
            return None;
        }
    };
    match sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
        .bind(LEADER_LOCK_KEY)
        .fetch_one(&mut conn)
        .await
    {
        Ok(true) => {
            tracing::info!("leader election: this replica leads the background jobs");
            Some(conn)
        }
        Ok(false) => {
            let _ = conn.close().await;
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "leader election: taking the lock failed");
            None
        }
    }
}

/// Checks that the session holding the lock is alive; `None` once it is not (the lock went
/// with it).
async fn keep(mut conn: PgConnection) -> Option<PgConnection> {
    match conn.ping().await {
        Ok(()) => Some(conn),
        Err(e) => {
            tracing::warn!(error = %e, "leader election: lost the database session holding the lock; no longer leader");
            None
        }
    }
}
