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

    /// Waits until this replica is the leader; forever if the election has ended without it.
    pub async fn wait_until_leader(&mut self) {
        if self.0.wait_for(|leader| *leader).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until this replica is no longer the leader; forever if that cannot change
    /// ([`Leadership::always`]).
    pub async fn wait_until_follower(&mut self) {
        if self.0.wait_for(|leader| !*leader).await.is_err() && self.is_leader() {
            std::future::pending::<()>().await;
        }
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

/// Runs a background job only while this replica leads, until `stop`: starts `job` when
/// leadership is won, cancels the token it was given when leadership is lost (and waits for it
/// to return), and starts it again if won back. The job itself knows nothing of leaders.
pub async fn while_leader<F, Fut>(mut leadership: Leadership, stop: CancellationToken, mut job: F)
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = leadership.wait_until_leader() => {}
            () = stop.cancelled() => return,
        }
        let term = stop.child_token();
        let run = job(term.clone());
        tokio::pin!(run);
        tokio::select! {
            () = &mut run => {
                // The job ended by itself (it is turned off, or it stopped): running it again
                // at once would spin. It starts again only after leadership is lost and won.
                tokio::select! {
                    () = leadership.wait_until_follower() => {}
                    () = stop.cancelled() => return,
                }
            }
            () = leadership.wait_until_follower() => {
                term.cancel();
                run.await;
            }
        }
        if stop.is_cancelled() {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A job that counts its starts and runs until its token is cancelled.
    fn counting_job(
        starts: Arc<AtomicUsize>,
    ) -> impl FnMut(CancellationToken) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        move |term| {
            starts.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { term.cancelled().await })
        }
    }

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_job_runs_only_while_leading_and_restarts_when_leadership_returns() {
        let (tx, rx) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let task = tokio::spawn(while_leader(
            Leadership(rx),
            stop.clone(),
            counting_job(starts.clone()),
        ));
        settle().await;
        assert_eq!(starts.load(Ordering::SeqCst), 0, "ran as a follower");
        tx.send_replace(true);
        settle().await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        tx.send_replace(false);
        settle().await;
        tx.send_replace(true);
        settle().await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "not restarted on winning back"
        );
        stop.cancel();
        task.await.expect("ends on stop");
    }

    #[tokio::test]
    async fn always_leader_runs_the_job_once_until_stop() {
        let starts = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let task = tokio::spawn(while_leader(
            Leadership::always(),
            stop.clone(),
            counting_job(starts.clone()),
        ));
        settle().await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        stop.cancel();
        task.await.expect("ends on stop");
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }
}
