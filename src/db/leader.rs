//! One leader among the replicas sharing a PostgreSQL database, for the background jobs that
//! must not run on two replicas at once (rotation scheduler, destruction, checkpoints,
//! ingesters). On SQLite the single process is always the leader ([`Leadership::always`]).
//!
//! The leader holds a session-level advisory lock on a connection of its own, outside the
//! pool: PostgreSQL releases it the moment that session ends, so a replica that dies (or loses
//! the database) hands leadership over without any lease to expire. Followers wait for the
//! lock in a session of their own (`pg_advisory_lock`, a wait of one `interval` at a time), so
//! one of them holds it the moment it is free: at once after a leader's graceful stop, which
//! closes its session after its last checkpoint ([`Leadership::released`]), or its crash.
//!
//! The holder pings its connection every `interval`, each ping bounded by `interval`: when one
//! fails or does not answer in time it stops calling itself leader (its jobs stop) and drops
//! the connection, so two replicas can both believe they lead for at most about two intervals
//! after a network split. The lock's session asks PostgreSQL for short TCP keepalives, so the
//! server ends a partitioned leader's session, and frees the lock, within about 11 s rather
//! than the system default of hours. Jobs still write with compare-and-set updates
//! (`catalog::store::set_state`), which make a job that ran twice in that window change
//! nothing the second time.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The advisory lock key: "keygate\0" as a big-endian integer, unlikely to meet another
/// application's key in a shared database.
pub const LEADER_LOCK_KEY: i64 = 0x6b65_7967_6174_6500;

/// The server-side TCP keepalive of the campaign's sessions (PostgreSQL 12 or newer): idle
/// seconds, probe interval, probes. A leader cut off from the database loses the lock after
/// about 5 + 2 × 3 = 11 s, when PostgreSQL gives up on its connection.
const SERVER_KEEPALIVE: [(&str, &str); 4] = [
    ("tcp_keepalives_idle", "5"),
    ("tcp_keepalives_interval", "2"),
    ("tcp_keepalives_count", "3"),
    // Unacknowledged data (a reply the partitioned client never gets) counts too.
    ("tcp_user_timeout", "11000"),
];

/// How long a replica that stops leading keeps the lock while its jobs wind down (an
/// in-flight provider call ends by `limits.provider_timeout`); past it the lock goes anyway.
const JOBS_STOP_BOUND: Duration = Duration::from_secs(60);

/// Whether this replica is the leader now, kept current by the election task, and how many
/// leader-only jobs ([`while_leader`]) are running here.
#[derive(Clone, Debug)]
pub struct Leadership {
    state: watch::Receiver<bool>,
    jobs: Arc<watch::Sender<usize>>,
}

impl Leadership {
    /// The single process on SQLite: leader for good.
    pub fn always() -> Self {
        let (_, rx) = watch::channel(true);
        Self::new(rx)
    }

    fn new(state: watch::Receiver<bool>) -> Self {
        Self {
            state,
            jobs: Arc::new(watch::Sender::new(0)),
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.state.borrow()
    }

    /// Waits until no leader-only job runs here.
    async fn jobs_stopped(&self) {
        let _ = self
            .jobs
            .subscribe()
            .wait_for(|running| *running == 0)
            .await;
    }

    /// Waits until this replica is the leader; forever if the election has ended without it.
    pub async fn wait_until_leader(&mut self) {
        if self.state.wait_for(|leader| *leader).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until this replica is no longer the leader; forever if that cannot change
    /// ([`Leadership::always`]).
    pub async fn wait_until_follower(&mut self) {
        if self.state.wait_for(|leader| !*leader).await.is_err() && self.is_leader() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until the campaign has ended and its session is closed (the lock released), once
    /// its `stop` was cancelled; at once for [`Leadership::always`].
    pub async fn released(&mut self) {
        // The campaign drops its sender only after closing the session.
        while self.state.changed().await.is_ok() {}
    }

    /// Campaigns for the lock on PostgreSQL until `stop`: waits for it (in one session,
    /// `interval` at a time) while another replica holds it, and checks it still holds it
    /// every `interval` once it does (a check that takes longer than `interval` counts as
    /// lost). `options` should name this replica (`application_name`), so operators can see
    /// in `pg_stat_activity` which one leads.
    pub fn campaign(
        options: PgConnectOptions,
        interval: Duration,
        stop: CancellationToken,
    ) -> Self {
        let options = options.options(SERVER_KEEPALIVE);
        let (tx, rx) = watch::channel(false);
        let leadership = Self::new(rx);
        let jobs = leadership.clone();
        tokio::spawn(async move {
            let mut session = Session::None;
            loop {
                let was = std::mem::replace(&mut session, Session::None);
                // A step cut short by the stop drops its connection, and the lock with it.
                session = tokio::select! {
                    next = step(was, &options, interval) => next,
                    () = stop.cancelled() => break,
                };
                tx.send_replace(matches!(session, Session::Leading(_)));
                if let Session::SteppingDown(conn) = session {
                    // The lock goes only after this replica's jobs have stopped, so another
                    // replica's never overlap them (a rotation half done here, begun again
                    // there). A dead session has lost the lock already; holding it costs nothing.
                    tokio::select! {
                        () = stop.cancelled() => {}
                        _ = tokio::time::timeout(JOBS_STOP_BOUND, jobs.jobs_stopped()) => {}
                    }
                    drop(conn);
                    session = Session::None;
                }
                // A waiting follower's wait paces the loop; otherwise pause for `interval`.
                if !matches!(session, Session::Waiting(_)) {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(interval) => {}
                    }
                }
            }
            tx.send_replace(false);
            if let Session::Leading(conn) | Session::Waiting(conn) = session {
                // Closing the session releases the lock at once, for a quick hand-over (an
                // unanswered goodbye is dropped with the connection: the server ends it).
                let _ = tokio::time::timeout(interval, conn.close()).await;
            }
        });
        leadership
    }
}

/// Where a replica stands in the campaign.
enum Session {
    /// No session (not yet, or it failed).
    None,
    /// A follower's session, waiting for the lock.
    Waiting(PgConnection),
    /// The session holding the lock.
    Leading(PgConnection),
    /// The session that held the lock and failed its check: kept until the jobs stop.
    SteppingDown(PgConnection),
}

/// One step of the campaign from `session`.
async fn step(session: Session, options: &PgConnectOptions, interval: Duration) -> Session {
    match session {
        Session::Leading(conn) => match keep(conn, interval).await {
            Ok(conn) => Session::Leading(conn),
            Err(conn) => Session::SteppingDown(conn),
        },
        // Not reached: the campaign ends a step-down before the next step.
        Session::SteppingDown(_) => Session::None,
        Session::Waiting(conn) => wait(conn, interval).await,
        Session::None => match connect(options, interval).await {
            Some(conn) => wait(conn, interval).await,
            None => Session::None,
        },
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
        // Counted down when the job ends, also if this task is dropped mid-job.
        let running = JobRunning::start(leadership.jobs.clone());
        let run = job(term.clone());
        tokio::pin!(run);
        tokio::select! {
            () = &mut run => {
                drop(running);
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
                drop(running);
            }
        }
        if stop.is_cancelled() {
            return;
        }
    }
}

/// One running job in [`Leadership`]'s count, for as long as it lives.
struct JobRunning(Arc<watch::Sender<usize>>);

impl JobRunning {
    fn start(jobs: Arc<watch::Sender<usize>>) -> Self {
        jobs.send_modify(|running| *running += 1);
        Self(jobs)
    }
}

impl Drop for JobRunning {
    fn drop(&mut self) {
        self.0
            .send_modify(|running| *running = running.saturating_sub(1));
    }
}

/// A session for the campaign, within `bound` (an unreachable database must not hold the
/// campaign for a TCP timeout), whose lock waits last one `bound` each.
async fn connect(options: &PgConnectOptions, bound: Duration) -> Option<PgConnection> {
    let connected = tokio::time::timeout(bound, async {
        let mut conn = options.connect().await?;
        sqlx::query("SELECT set_config('lock_timeout', $1, false)")
            .bind(format!("{}ms", bound.as_millis().max(1)))
            .execute(&mut conn)
            .await?;
        Ok::<_, sqlx::Error>(conn)
    })
    .await;
    match connected {
        Ok(Ok(conn)) => Some(conn),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "leader election: cannot reach the database");
            None
        }
        Err(_) => {
            tracing::warn!(
                ?bound,
                "leader election: the database did not answer in time"
            );
            None
        }
    }
}

/// Waits up to `bound` (the session's lock_timeout) for the lock: leading once it is ours,
/// still waiting if another replica kept it.
async fn wait(mut conn: PgConnection, bound: Duration) -> Session {
    // The server ends the wait after `bound`; this is for a server that does not answer.
    let waited = tokio::time::timeout(
        bound * 2 + Duration::from_secs(1),
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LEADER_LOCK_KEY)
            .execute(&mut conn),
    )
    .await;
    match waited {
        Ok(Ok(_)) => {
            tracing::info!("leader election: this replica leads the background jobs");
            Session::Leading(conn)
        }
        // lock_not_available: the leader still holds it.
        Ok(Err(sqlx::Error::Database(e))) if e.code().as_deref() == Some("55P03") => {
            Session::Waiting(conn)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "leader election: waiting for the lock failed");
            Session::None
        }
        // Unanswered: the connection is dropped, and the lock, if it was granted, with it.
        Err(_) => {
            tracing::warn!(
                ?bound,
                "leader election: waiting for the lock did not answer in time"
            );
            Session::None
        }
    }
}

/// Checks that the session holding the lock is alive; `Err` with it once it is not (the lock
/// went with it) or does not answer within `bound` (a partition: the server ends the session
/// when its keepalives go unanswered).
async fn keep(mut conn: PgConnection, bound: Duration) -> Result<PgConnection, PgConnection> {
    if alive(conn.ping(), bound).await {
        Ok(conn)
    } else {
        Err(conn)
    }
}

/// Whether `ping` succeeded within `bound`.
async fn alive<F>(ping: F, bound: Duration) -> bool
where
    F: Future<Output = Result<(), sqlx::Error>>,
{
    match tokio::time::timeout(bound, ping).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "leader election: lost the database session holding the lock; no longer leader");
            false
        }
        Err(_) => {
            tracing::warn!(
                ?bound,
                "leader election: the database session holding the lock did not answer in time; no longer leader"
            );
            false
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
            Leadership::new(rx),
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
    async fn a_ping_that_does_not_answer_in_time_loses_leadership() {
        let bound = Duration::from_millis(100);
        assert!(alive(async { Ok(()) }, bound).await);
        assert!(!alive(async { Err(sqlx::Error::PoolClosed) }, bound).await);
        let started = std::time::Instant::now();
        assert!(!alive(std::future::pending(), bound).await);
        let took = started.elapsed();
        assert!(took >= bound && took < bound * 20, "{took:?}");
    }

    #[tokio::test]
    async fn released_returns_once_the_campaign_has_ended() {
        let (tx, rx) = watch::channel(true);
        let mut leadership = Leadership::new(rx);
        let ended = tokio::spawn(async move { leadership.released().await });
        settle().await;
        assert!(!ended.is_finished(), "returned while the campaign runs");
        tx.send_replace(false);
        drop(tx);
        ended.await.expect("returns once the sender is gone");
        Leadership::always().released().await;
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
