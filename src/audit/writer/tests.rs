//! The writer against a store whose flushes the test releases by hand: the writer commits
//! the next batch while the last one's flush is pending, acknowledges nothing before its
//! flush, acknowledges in commit order, and records a failed flush.

use super::*;
use crate::audit::store::{Durable, StoreResult};
use std::sync::Mutex;
use tokio::sync::oneshot::error::TryRecvError;

/// Commits into a list; each commit's flush waits for the test.
#[derive(Clone, Default)]
struct HeldStore {
    committed: Arc<Mutex<Vec<AuditEvent>>>,
    flushes: Arc<Mutex<Vec<oneshot::Sender<StoreResult<()>>>>>,
}

#[async_trait::async_trait]
impl StoreWriter for HeldStore {
    async fn commit(&mut self, events: &[AuditEvent], _: &SideRows) -> StoreResult<Durable> {
        self.committed
            .lock()
            .unwrap()
            .extend(events.iter().cloned());
        let (tx, rx) = oneshot::channel();
        self.flushes.lock().unwrap().push(tx);
        Ok(Box::pin(async move {
            rx.await.unwrap_or_else(|_| Err(sqlx::Error::PoolClosed))
        }))
    }

    async fn between_batches(&mut self) {}
}

impl HeldStore {
    fn commits(&self) -> usize {
        self.flushes.lock().unwrap().len()
    }

    fn release(&self, commit: usize, outcome: StoreResult<()>) {
        let tx = std::mem::replace(
            &mut self.flushes.lock().unwrap()[commit],
            oneshot::channel().0,
        );
        tx.send(outcome).unwrap();
    }

    fn actions(&self) -> Vec<String> {
        let events = self.committed.lock().unwrap();
        events.iter().map(|e| e.record.action.clone()).collect()
    }
}

struct Writer {
    store: HeldStore,
    tx: mpsc::Sender<Job>,
    writable: watch::Receiver<bool>,
    done: tokio::task::JoinHandle<()>,
}

fn start() -> Writer {
    let store = HeldStore::default();
    let (tx, rx) = mpsc::channel(64);
    let (live, _) = broadcast::channel(64);
    let (writable, writable_rx) = watch::channel(true);
    let done = tokio::spawn(run(
        Box::new(store.clone()),
        None,
        rx,
        live,
        Health {
            writable,
            refused: Arc::default(),
        },
        crate::telemetry::AuditWriterMetrics::default(),
    ));
    Writer {
        store,
        tx,
        writable: writable_rx,
        done,
    }
}

async fn append(w: &Writer, action: &str) -> oneshot::Receiver<Result<u64, String>> {
    let (ack, rx) = oneshot::channel();
    let record = AuditRecord {
        action: action.into(),
        ..Default::default()
    };
    w.tx.send(Job::Event(record, ack)).await.unwrap();
    rx
}

async fn until(what: impl Fn() -> bool) {
    for _ in 0..1000 {
        if what() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("did not happen");
}

#[tokio::test]
async fn commits_the_next_batch_while_a_flush_is_pending_and_acknowledges_in_order() {
    let w = start();
    let mut first = append(&w, "first").await;
    until(|| w.store.commits() == 1).await;
    // The first batch's flush is still pending, and yet the second batch is committed.
    let mut second = append(&w, "second").await;
    until(|| w.store.commits() == 2).await;
    assert_eq!(
        first.try_recv(),
        Err(TryRecvError::Empty),
        "not durable yet"
    );
    // The second flush returns first; the second call still waits for the first's.
    w.store.release(1, Ok(()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(second.try_recv(), Err(TryRecvError::Empty));
    w.store.release(0, Ok(()));
    assert_eq!(first.await.unwrap(), Ok(1));
    assert_eq!(second.await.unwrap(), Ok(2));
    drop(w.tx);
    w.done.await.unwrap();
}

#[tokio::test]
async fn a_failed_flush_fails_its_calls_and_the_next_batch_records_the_outage() {
    let mut w = start();
    let lost = append(&w, "lost").await;
    until(|| w.store.commits() == 1).await;
    w.store.release(0, Err(sqlx::Error::PoolClosed));
    assert!(
        lost.await.unwrap().is_err(),
        "a call whose event may not be on disk fails"
    );
    w.writable.wait_for(|writable| !writable).await.unwrap();
    // The writer probes on its own: a recovery event, committed and flushed before the log
    // is writable again.
    until(|| w.store.commits() == 2).await;
    w.store.release(1, Ok(()));
    w.writable.wait_for(|writable| *writable).await.unwrap();
    let next = append(&w, "next").await;
    until(|| w.store.commits() == 3).await;
    w.store.release(2, Ok(()));
    assert_eq!(next.await.unwrap(), Ok(3));
    // The failed batch's event stays in the chain, before the recovery event.
    assert_eq!(w.store.actions(), ["lost", "AuditStoreRecovered", "next"]);
    drop(w.tx);
    w.done.await.unwrap();
}

#[tokio::test]
async fn shutdown_acknowledges_every_committed_batch() {
    let w = start();
    let pending = append(&w, "last").await;
    until(|| w.store.commits() == 1).await;
    drop(w.tx);
    w.store.release(0, Ok(()));
    assert_eq!(pending.await.unwrap(), Ok(1));
    w.done.await.unwrap();
}
