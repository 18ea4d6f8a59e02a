//! A pool of logged-in read/write sessions on one token, each owned by a thread of its own,
//! with a cache of the object handles it has looked up.
//!
//! PKCS#11 sessions are not thread-safe and every call blocks, so no call runs on an async
//! worker. Each session lives on a dedicated thread; calls wait in one shared queue, and a
//! session thread that finishes a call takes the next one straight away. The token therefore
//! stays busy while work is queued, without a round trip through the async runtime between
//! two calls (a semaphore in front of `spawn_blocking` put one on the critical path of every
//! call: release, wake the next task, spawn, wake a blocking thread). A call whose caller has
//! gone (deadline passed, client cancelled) before a session took it is skipped, so it cannot
//! change the token after its caller was told it failed. A session whose call fails with a
//! session-level error (closed, device removed, logged out, …) is dropped; its thread opens
//! and logs in a fresh one for the next call.
//!
//! Why a handle cache: finding an object (C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal)
//! costs more than the operation itself on some tokens — SoftHSM2's file store opens, locks
//! and re-reads every object file of the token on each search — and a key's objects never
//! change once generated. PKCS#11 v2.40 promises that a handle a session has used keeps naming
//! the same object for as long as that session and the object exist, so a cache per session
//! is exact while the object lives. Objects keygate destroys are forgotten by every session
//! ([`SessionPool::forget_handles`]); an object destroyed outside keygate makes its cached
//! handle fail with CKR_OBJECT_HANDLE_INVALID or CKR_KEY_HANDLE_INVALID, which evicts it and
//! repeats the lookup once.

use crate::errors::{OpError, is_rv, is_session_level};
use crate::naming::VersionId;
use crate::ops;
use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::RawAuthPin;
use keygate_provider::SecretBytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;

/// Which object a cached handle names: the key id (CKA_LABEL), the version's CKA_ID, and the
/// object's class (a key pair has two objects per version).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjectKey {
    key_id: String,
    version: Vec<u8>,
    /// CK_OBJECT_CLASS (`ObjectClass` itself is not `Hash`).
    class: <ObjectClass as std::ops::Deref>::Target,
}

/// A logged-in session and the handles it has found.
pub struct PooledSession {
    session: Session,
    handles: HashMap<ObjectKey, ObjectHandle>,
    /// The pool's handle generation this cache is valid for.
    generation: u64,
}

impl std::ops::Deref for PooledSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

/// A cached handle that no longer names an object.
fn stale_handle(e: &OpError) -> bool {
    matches!(e, OpError::Ck(ck) if is_rv(ck, RvError::ObjectHandleInvalid)
        || is_rv(ck, RvError::KeyHandleInvalid))
}

impl PooledSession {
    /// Runs `op` on the object of one version of a key, found through the cache. `op` may run
    /// twice: once with a cached handle that turns out stale, then with a fresh one.
    pub fn with_object<T>(
        &mut self,
        key_id: &str,
        id: VersionId,
        class: ObjectClass,
        mut op: impl FnMut(&Session, ObjectHandle) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        let key = ObjectKey {
            key_id: key_id.to_string(),
            version: id.to_bytes(),
            class: *class,
        };
        if let Some(&handle) = self.handles.get(&key) {
            match op(&self.session, handle) {
                Err(e) if stale_handle(&e) => {
                    self.handles.remove(&key);
                }
                result => return result,
            }
        }
        let handle = ops::version_object(&self.session, key_id, id, class)?;
        // Bounded: a gateway holds few keys per token, but never let a long run grow it
        // without limit.
        if self.handles.len() >= MAX_CACHED_HANDLES {
            self.handles.clear();
        }
        self.handles.insert(key, handle);
        op(&self.session, handle)
    }
}

/// Per session; cleared when full.
const MAX_CACHED_HANDLES: usize = 4096;

/// Why [`SessionPool::open`] failed.
#[derive(Debug)]
pub enum PoolError {
    /// Opening the first session or logging in.
    Login(CkError),
    /// Starting a session thread.
    Thread(std::io::Error),
}

/// Calls waiting for a session, at most; further callers wait to enqueue (backpressure).
const QUEUE_CAPACITY: usize = 4096;

/// One queued call. It gets the thread's session (or the error opening one) and answers
/// whether the session must be dropped.
type Job = Box<dyn FnOnce(Result<&mut PooledSession, OpError>) -> bool + Send>;

pub struct SessionPool {
    /// `None` only while dropping.
    jobs: Option<flume::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    inner: Arc<Inner>,
}

impl Drop for SessionPool {
    /// Closes the queue and waits for the session threads, so every session is closed before
    /// the pool is gone (a thread still inside the module while the process exits crashes it).
    fn drop(&mut self) {
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

struct Inner {
    ctx: Pkcs11,
    slot: Slot,
    pin: RawAuthPin,
    /// Bumped when keygate destroys objects: a session whose cache is older clears it.
    generation: AtomicU64,
}

impl Inner {
    /// Opens a session and logs the user in. Login state is per token and application, so
    /// every session after the first finds the user already logged in.
    fn open_session(&self) -> Result<PooledSession, CkError> {
        let session = self.ctx.open_rw_session(self.slot)?;
        match session.login_with_raw(UserType::User, &self.pin) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(PooledSession {
                session,
                handles: HashMap::new(),
                generation: self.generation.load(Ordering::Acquire),
            }),
            Err(e) => Err(e),
        }
    }

    /// The thread's session, opened if it has none, with its cache brought up to date.
    fn ready<'s>(
        &self,
        slot: &'s mut Option<PooledSession>,
    ) -> Result<&'s mut PooledSession, CkError> {
        let pooled = match slot {
            Some(pooled) => pooled,
            empty => empty.insert(self.open_session()?),
        };
        let current = self.generation.load(Ordering::Acquire);
        if pooled.generation != current {
            pooled.handles.clear();
            pooled.generation = current;
        }
        Ok(pooled)
    }
}

/// The loop of one session thread; ends when the pool is dropped.
fn serve(inner: Arc<Inner>, jobs: flume::Receiver<Job>, mut session: Option<PooledSession>) {
    while let Ok(job) = jobs.recv() {
        let drop_session = match inner.ready(&mut session) {
            Ok(pooled) => {
                // A panic inside a call must not take the thread (and a session) with it;
                // the caller sees the call as not completed.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(pooled))))
                    .unwrap_or(true)
            }
            Err(e) => {
                job(Err(e.into()));
                false
            }
        };
        if drop_session {
            session = None;
        }
    }
}

impl SessionPool {
    /// Opens and logs in the first session, so a wrong PIN or missing token shows at start-up,
    /// and starts `size` session threads (the others open their sessions on first use).
    /// Blocking: call it from a blocking context.
    pub fn open(
        ctx: Pkcs11,
        slot: Slot,
        pin: SecretBytes,
        size: usize,
        name: &str,
    ) -> Result<Self, PoolError> {
        let inner = Arc::new(Inner {
            ctx,
            slot,
            pin: RawAuthPin::new(Box::new(pin.expose().to_vec())),
            generation: AtomicU64::new(0),
        });
        let mut first = Some(inner.open_session().map_err(PoolError::Login)?);
        let (jobs, queue) = flume::bounded(QUEUE_CAPACITY);
        let mut pool = Self {
            jobs: Some(jobs),
            threads: Vec::with_capacity(size),
            inner,
        };
        for i in 0..size {
            let (inner, queue, session) = (Arc::clone(&pool.inner), queue.clone(), first.take());
            let thread = std::thread::Builder::new()
                .name(format!("pkcs11-{name}-{i}"))
                .spawn(move || serve(inner, queue, session))
                .map_err(PoolError::Thread)?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Makes every session drop its cached handles before its next call (after objects were
    /// destroyed, whose handles a token may give to new objects).
    pub fn forget_handles(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Runs `f` on the next free session's thread.
    pub async fn run<T, F>(&self, f: F) -> Result<T, OpError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PooledSession) -> Result<T, OpError> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |session| {
            if done.is_closed() {
                return false; // the caller gave up: do nothing on its behalf
            }
            let result = session.and_then(f);
            let drop_session = match &result {
                Err(OpError::Ck(e)) if is_session_level(e) => {
                    tracing::warn!(error = %e, "dropping a PKCS#11 session after a session-level error");
                    true
                }
                _ => false,
            };
            let _ = done.send(result);
            drop_session
        });
        let closed = || OpError::Internal("the session pool is closed".into());
        let jobs = self.jobs.as_ref().ok_or_else(closed)?;
        jobs.send_async(job).await.map_err(|_| closed())?;
        result
            .await
            .map_err(|_| OpError::Internal("the PKCS#11 call did not complete".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_test_backends::softhsm::SoftHsm;
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    const LABEL: &str = "pool-tests";

    /// One token for this test binary (SoftHSM2 reads `SOFTHSM2_CONF` once per process).
    fn hsm() -> &'static SoftHsm {
        static HSM: OnceLock<SoftHsm> = OnceLock::new();
        HSM.get_or_init(|| {
            let hsm = SoftHsm::new(LABEL, "1234", "5678")
                .unwrap_or_else(|e| panic!("SoftHSM2 is required for these tests: {e}"));
            hsm.remove_at_exit();
            // SAFETY: set once, before any test here initialises the module; no other test in
            // this binary touches the environment.
            unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf_path()) };
            hsm
        })
    }

    fn pool(size: usize) -> Arc<SessionPool> {
        let ctx = crate::module::load(hsm().module_path()).expect("load SoftHSM2");
        let slot =
            keygate_test_backends::softhsm::slot_with_label(&ctx, LABEL).expect("the test token");
        let pin = SecretBytes::copy_from(b"5678");
        Arc::new(SessionPool::open(ctx, slot, pin, size, "test").expect("open the pool"))
    }

    /// Occupies the pool's only session until the returned sender is dropped or sent to.
    async fn occupy(
        pool: &Arc<SessionPool>,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel();
        let busy_pool = Arc::clone(pool);
        let busy = tokio::spawn(async move {
            busy_pool
                .run(move |_| {
                    let _ = started.send(());
                    let _ = wait.recv();
                    Ok(())
                })
                .await
                .expect("the occupying call");
        });
        running.await.expect("the occupying call started");
        (release, busy)
    }

    #[tokio::test]
    async fn a_call_whose_caller_gave_up_does_not_run() {
        let pool = pool(1);
        let (release, busy) = occupy(&pool).await;
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let abandoned = tokio::time::timeout(
            Duration::from_millis(20),
            pool.run(move |_| {
                flag.store(true, Ordering::SeqCst);
                Ok(())
            }),
        )
        .await;
        assert!(abandoned.is_err(), "the call waits behind the busy session");
        release.send(()).expect("release");
        busy.await.expect("join");
        // The queue is first in, first out: once this one ran, the abandoned one was taken.
        pool.run(|_| Ok(())).await.expect("a later call");
        assert!(
            !ran.load(Ordering::SeqCst),
            "a call nobody waits for must not touch the token"
        );
    }

    #[tokio::test]
    async fn a_panicking_call_leaves_the_pool_working() {
        let pool = pool(1);
        let result: Result<(), OpError> = pool.run(|_| panic!("a bug inside a call")).await;
        assert!(
            matches!(&result, Err(OpError::Internal(m)) if m.contains("did not complete")),
            "{result:?}"
        );
        let state = pool
            .run(|s| Ok(s.get_session_info()?.session_state()))
            .await
            .expect("the session thread survived the panic");
        assert_eq!(
            state,
            cryptoki::session::SessionState::RwUser,
            "the session after the panic is a fresh, logged-in one"
        );
    }

    #[tokio::test]
    async fn calls_run_in_parallel_on_every_session() {
        // Two calls that each wait for the other can only finish if two sessions serve them.
        let pool = pool(2);
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let calls = (0..2).map(|_| {
            let (pool, barrier) = (Arc::clone(&pool), Arc::clone(&barrier));
            tokio::spawn(async move {
                pool.run(move |_| {
                    barrier.wait();
                    Ok(())
                })
                .await
            })
        });
        for call in calls.collect::<Vec<_>>() {
            tokio::time::timeout(Duration::from_secs(10), call)
                .await
                .expect("both calls finish")
                .expect("join")
                .expect("call");
        }
    }
}
