//! Shared batch requests: concurrent encrypts (or decrypts) of one key version go to the
//! backend together, for backends that take many items in one request
//! ([`KeyProvider::batch_limit`], Vault Transit's `batch_input`).
//!
//! A call goes alone while fewer than `coalesce.in_flight` requests for its key version and
//! operation are out; past that it waits in the version's lane. When a request ends, its slot
//! passes to the first call waiting, which leads: it sends itself and as many waiting calls as
//! one request carries, then hands each its own result. A call therefore waits only while the
//! backend is busy with the same key, never on a timer, and a quiet gateway sends every call
//! alone, as it would without sharing. One backend request then does the work of many: the
//! backend's per-request cost (HTTP, authentication, its own audit record) and keygate's are
//! paid once per batch.
//!
//! Each call keeps what a single call has: its deadline (a waiting call gives up at it), the
//! batch's backend request id noted in its own scope for its audit event, and its own status.
//! A batch that fails as a whole is not every item's answer: each of its calls is then sent on
//! its own. A leader whose caller goes away hands its slot on, so no waiting call is stranded.

use super::{Guarded, Window};
use crate::kit::Op;
use crate::{BatchItem, KeyProvider, Replied, Result, SecretBytes, VersionRef};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::oneshot;

/// The lanes of one provider instance.
pub(super) struct Coalescer {
    /// Requests in flight per lane before calls wait to share the next one.
    in_flight: usize,
    /// Items one batch request carries (the backend's limit).
    limit: usize,
    encrypts: Lanes<Vec<u8>>,
    decrypts: Lanes<SecretBytes>,
}

impl Coalescer {
    /// `None` when sharing is off or the backend has no batch requests.
    pub(super) fn new(in_flight: usize, limit: usize) -> Option<Self> {
        (in_flight > 0 && limit > 1).then(|| Self {
            in_flight,
            limit,
            encrypts: Lanes::default(),
            decrypts: Lanes::default(),
        })
    }

    /// Calls now waiting to share a request.
    pub(super) fn waiting(&self) -> usize {
        self.encrypts.waiting() + self.decrypts.waiting()
    }
}

/// What a result type needs to go in a batch: its lanes and its batch request.
pub(super) trait Batched: Sized + Send + 'static {
    /// The batch request's operation (metrics, spans, faults).
    const BATCH: Op;
    fn lanes(c: &Coalescer) -> &Lanes<Self>;
    fn batch<'a>(
        p: &'a dyn KeyProvider,
        key: &'a VersionRef,
        items: &'a [BatchItem<'a>],
    ) -> BoxFuture<'a, Result<Replied<Vec<Result<Self>>>>>;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Batched for Vec<u8> {
    const BATCH: Op = Op::EncryptBatch;
    fn lanes(c: &Coalescer) -> &Lanes<Self> {
        &c.encrypts
    }
    fn batch<'a>(
        p: &'a dyn KeyProvider,
        key: &'a VersionRef,
        items: &'a [BatchItem<'a>],
    ) -> BoxFuture<'a, Result<Replied<Vec<Result<Self>>>>> {
        p.encrypt_batch(key, items)
    }
}

impl Batched for SecretBytes {
    const BATCH: Op = Op::DecryptBatch;
    fn lanes(c: &Coalescer) -> &Lanes<Self> {
        &c.decrypts
    }
    fn batch<'a>(
        p: &'a dyn KeyProvider,
        key: &'a VersionRef,
        items: &'a [BatchItem<'a>],
    ) -> BoxFuture<'a, Result<Replied<Vec<Result<Self>>>>> {
        p.decrypt_batch(key, items)
    }
}

impl Guarded {
    /// One call through its lane: alone, or in a batch another call leads, or leading one.
    /// `single` is the call on its own within a window (the guard's run of the plain
    /// operation). The call's window starts here: waiting spends it, and what is left bounds
    /// the request the call then makes or leads.
    pub(super) async fn shared<T, S, F>(
        &self,
        c: &Coalescer,
        op: Op,
        key: &VersionRef,
        item: BatchItem<'_>,
        single: S,
    ) -> Result<Replied<T>>
    where
        T: Batched,
        S: Fn(Window) -> F,
        F: Future<Output = Result<Replied<T>>>,
    {
        let window = self.window();
        let lanes = T::lanes(c);
        let slot = match lanes.enter(key, c.in_flight, &item) {
            Entry::Slot(slot) => slot,
            Entry::Wait(waiting) => {
                match tokio::time::timeout_at(window.ends, waiting.wake()).await {
                    Ok(Woken::Lead(slot)) => slot,
                    Ok(Woken::Done(result, request_id)) => {
                        if let Some(id) = &request_id {
                            crate::context::note_backend_request_id(id);
                        }
                        self.count_call(op, window, &result, 1);
                        return result.map(|value| Replied::with_request_id(value, request_id));
                    }
                    // The batch failed as a whole, or its leader went away mid-request.
                    Ok(Woken::Alone) => return single(window).await,
                    Err(_) => {
                        let missed = Err(self.deadline_missed(op, window.length));
                        self.count_call(op, window, &missed, 0);
                        return missed;
                    }
                }
            }
        };
        let followers = slot.followers(c.limit - 1);
        if followers.is_empty() {
            return single(window).await;
        }
        let mut items = Vec::with_capacity(1 + followers.len());
        items.push(item);
        items.extend(followers.iter().map(|w| BatchItem {
            data: w.data.expose(),
            aad: &w.aad,
        }));
        // The leader's window bounds the batch; a follower gives up at its own deadline.
        let sent = self
            .run_within(T::BATCH, window, || {
                T::batch(self.inner.as_ref(), key, &items)
            })
            .await;
        match sent {
            Ok(Replied { value, request_id }) if value.len() == items.len() => {
                let mut results = value.into_iter();
                let own = results.next();
                for (waiter, result) in followers.into_iter().zip(results) {
                    waiter.wake(Wake::Done(result, request_id.clone()));
                }
                match own {
                    Some(own) => {
                        self.count_call(op, window, &own, 1);
                        own.map(|value| Replied::with_request_id(value, request_id))
                    }
                    None => single(window).await,
                }
            }
            // Failed whole (or answered for some other number of items): each call on its own,
            // the leader too while its window lasts.
            sent => {
                for waiter in followers {
                    waiter.wake(Wake::Alone);
                }
                drop(slot);
                match sent {
                    Err(e) if tokio::time::Instant::now() >= window.ends => Err(e),
                    _ => single(window).await,
                }
            }
        }
    }
}

/// What a waiting call is told.
enum Wake<T> {
    /// Its result from a batch another call led, with the batch's backend request id.
    Done(Result<T>, Option<String>),
    /// The slot is its own: it leads the next batch.
    Lead,
    /// Its batch failed as a whole: it goes on its own.
    Alone,
}

/// A call waiting in a lane, with copies of its input (wiped when dropped).
struct Waiter<T> {
    data: SecretBytes,
    aad: Vec<u8>,
    wake: oneshot::Sender<Wake<T>>,
}

impl<T> Waiter<T> {
    fn wake(self, wake: Wake<T>) {
        // A call that went away (its deadline passed) takes no answer.
        let _ = self.wake.send(wake);
    }
}

struct Lane<T> {
    in_flight: usize,
    waiting: VecDeque<Waiter<T>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LaneKey {
    uri: String,
    version: u32,
}

/// One operation's lanes, by key version; a lane exists while requests for it are out.
pub(super) struct Lanes<T> {
    lanes: Mutex<HashMap<LaneKey, Lane<T>>>,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Self {
            lanes: Mutex::new(HashMap::new()),
        }
    }
}

enum Entry<'a, T> {
    Slot(Slot<'a, T>),
    Wait(Waiting<'a, T>),
}

enum Woken<'a, T> {
    Lead(Slot<'a, T>),
    Done(Result<T>, Option<String>),
    Alone,
}

impl<T> Lanes<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<LaneKey, Lane<T>>> {
        // The map is consistent between statements; a panic elsewhere does not spoil it.
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn waiting(&self) -> usize {
        self.lock().values().map(|l| l.waiting.len()).sum()
    }

    /// A slot if one is free, or a place in the queue.
    fn enter(&self, key: &VersionRef, in_flight: usize, item: &BatchItem<'_>) -> Entry<'_, T> {
        let key = LaneKey {
            uri: key.uri.as_str().to_owned(),
            version: key.version,
        };
        let mut lanes = self.lock();
        let lane = lanes.entry(key.clone()).or_insert_with(|| Lane {
            in_flight: 0,
            waiting: VecDeque::new(),
        });
        if lane.in_flight < in_flight {
            lane.in_flight += 1;
            return Entry::Slot(Slot { lanes: self, key });
        }
        let (wake, rx) = oneshot::channel();
        lane.waiting.push_back(Waiter {
            data: SecretBytes::copy_from(item.data),
            aad: item.aad.to_vec(),
            wake,
        });
        Entry::Wait(Waiting {
            lanes: self,
            key: Some(key),
            rx,
        })
    }

    /// Drops the lane's calls that went away while waiting.
    fn forget_closed(&self, key: &LaneKey) {
        if let Some(lane) = self.lock().get_mut(key) {
            lane.waiting.retain(|w| !w.wake.is_closed());
        }
    }

    /// Passes a slot on: to the first waiting call still there, or back to the lane.
    fn hand_on(&self, key: &LaneKey) {
        let mut lanes = self.lock();
        let Some(lane) = lanes.get_mut(key) else {
            return;
        };
        while let Some(waiter) = lane.waiting.pop_front() {
            if waiter.wake.send(Wake::Lead).is_ok() {
                return;
            }
        }
        lane.in_flight = lane.in_flight.saturating_sub(1);
        if lane.in_flight == 0 {
            lanes.remove(key);
        }
    }
}

/// A request slot of a lane; dropped, it passes on.
struct Slot<'a, T> {
    lanes: &'a Lanes<T>,
    key: LaneKey,
}

impl<T> Slot<'_, T> {
    /// Up to `max` calls waiting in the lane, oldest first, taken to go with the leader.
    fn followers(&self, max: usize) -> Vec<Waiter<T>> {
        let mut lanes = self.lanes.lock();
        let Some(lane) = lanes.get_mut(&self.key) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        while taken.len() < max {
            match lane.waiting.pop_front() {
                Some(w) if w.wake.is_closed() => continue,
                Some(w) => taken.push(w),
                None => break,
            }
        }
        taken
    }
}

impl<T> Drop for Slot<'_, T> {
    fn drop(&mut self) {
        self.lanes.hand_on(&self.key);
    }
}

/// A call's place in a lane's queue.
struct Waiting<'a, T> {
    lanes: &'a Lanes<T>,
    /// The lane's key until the call is answered.
    key: Option<LaneKey>,
    rx: oneshot::Receiver<Wake<T>>,
}

impl<'a, T> Waiting<'a, T> {
    async fn wake(mut self) -> Woken<'a, T> {
        let woken = (&mut self.rx).await;
        // Answered (or abandoned by its leader): nothing is left for the drop to settle.
        let key = self.key.take();
        match (woken, key) {
            (Ok(Wake::Lead), Some(key)) => Woken::Lead(Slot {
                lanes: self.lanes,
                key,
            }),
            (Ok(Wake::Done(result, request_id)), _) => Woken::Done(result, request_id),
            // Told to go alone, or the leader's caller went away with the call's item.
            _ => Woken::Alone,
        }
    }
}

impl<T> Drop for Waiting<'_, T> {
    /// A call that goes away unanswered (its deadline passed) leaves the queue; if it was
    /// handed the slot meanwhile, it passes the slot on: a handed slot is never lost.
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        self.rx.close();
        match self.rx.try_recv() {
            Ok(Wake::Lead) => self.lanes.hand_on(&key),
            Ok(_) => {}
            // Still queued (or taken into a batch in flight): out of the queue, its copy of
            // the input wiped with it.
            Err(_) => self.lanes.forget_closed(&key),
        }
    }
}
