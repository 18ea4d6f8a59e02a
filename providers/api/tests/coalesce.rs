//! Shared batch requests in the guard: concurrent encrypts (decrypts) of one key version past
//! `coalesce.in_flight` go to the backend together, each call with its own result, request id
//! and deadline. The fake backend answers only when the test opens its gate, so which calls
//! wait is decided by the test, not by the machine's speed.

use keygate_provider::kit::{
    BreakerSettings, BreakerState, CallEvent, CoalesceSettings, GuardSettings, Guarded, Metrics,
    Op, Outcome, RetrySettings,
};
use keygate_provider::{
    Algorithm, BatchItem, Capabilities, KeyProvider, KeySpec, KeyUri, ProviderError, ProviderKey,
    Replied, Result, SecretBytes, VersionRef, context,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Request {
    Encrypt,
    EncryptBatch(usize),
    Decrypt,
    DecryptBatch(usize),
}

/// A backend with batch requests of up to 4 items. Every request waits for a permit of
/// `gate`; ciphertexts are `ct:` and the plaintext; an item `bad` is refused on its own.
struct Batcher {
    gate: Semaphore,
    requests: Mutex<Vec<Request>>,
    fail_batches: AtomicBool,
}

impl Batcher {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            gate: Semaphore::new(0),
            requests: Mutex::new(Vec::new()),
            fail_batches: AtomicBool::new(false),
        })
    }

    /// Records the request; its id is its number.
    async fn request(&self, r: Request) -> String {
        let n = {
            let mut requests = self.requests.lock().unwrap();
            requests.push(r);
            requests.len()
        };
        self.gate.acquire().await.unwrap().forget();
        format!("backend-{n}")
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn open(&self) {
        self.gate.add_permits(1000);
    }

    fn seal(data: &[u8]) -> Result<Vec<u8>> {
        if data == b"bad" {
            return Err(ProviderError::invalid("batcher", "item refused"));
        }
        Ok([b"ct:".as_slice(), data].concat())
    }

    fn open_blob(blob: &[u8]) -> Result<SecretBytes> {
        blob.strip_prefix(b"ct:")
            .map(SecretBytes::copy_from)
            .ok_or_else(|| ProviderError::auth_failed("batcher"))
    }
}

#[async_trait::async_trait]
impl KeyProvider for Batcher {
    fn name(&self) -> &str {
        "batcher"
    }
    fn kind(&self) -> &'static str {
        "batcher"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn create_key(&self, _spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        Err(ProviderError::unsupported("batcher", "create"))
    }
    async fn describe(&self, _key: &KeyUri) -> Result<Replied<ProviderKey>> {
        Err(ProviderError::unsupported("batcher", "describe"))
    }
    async fn encrypt(
        &self,
        _key: &VersionRef,
        plaintext: &SecretBytes,
        _aad: &[u8],
    ) -> Result<Replied<Vec<u8>>> {
        let id = self.request(Request::Encrypt).await;
        Ok(Replied::with_request_id(
            Self::seal(plaintext.expose())?,
            Some(id),
        ))
    }
    async fn decrypt(
        &self,
        _key: &VersionRef,
        blob: &[u8],
        _aad: &[u8],
    ) -> Result<Replied<SecretBytes>> {
        let id = self.request(Request::Decrypt).await;
        Ok(Replied::with_request_id(Self::open_blob(blob)?, Some(id)))
    }
    fn batch_limit(&self) -> usize {
        4
    }
    async fn encrypt_batch(
        &self,
        _key: &VersionRef,
        items: &[BatchItem<'_>],
    ) -> Result<Replied<Vec<Result<Vec<u8>>>>> {
        let id = self.request(Request::EncryptBatch(items.len())).await;
        if self.fail_batches.load(Ordering::SeqCst) {
            return Err(ProviderError::unavailable("batcher", "batch refused whole"));
        }
        let out = items.iter().map(|i| Self::seal(i.data)).collect();
        Ok(Replied::with_request_id(out, Some(id)))
    }
    async fn decrypt_batch(
        &self,
        _key: &VersionRef,
        items: &[BatchItem<'_>],
    ) -> Result<Replied<Vec<Result<SecretBytes>>>> {
        let id = self.request(Request::DecryptBatch(items.len())).await;
        let out = items.iter().map(|i| Self::open_blob(i.data)).collect();
        Ok(Replied::with_request_id(out, Some(id)))
    }
}

/// The guard's metrics: each call's operation and outcome.
#[derive(Default)]
struct Calls(Mutex<Vec<(Op, Outcome)>>);

impl Metrics for Calls {
    fn call(&self, e: &CallEvent<'_>) {
        self.0.lock().unwrap().push((e.op, e.outcome));
    }
    fn breaker(&self, _provider: &str, _state: BreakerState) {}
}

impl Calls {
    fn count(&self, op: Op) -> usize {
        let calls = self.0.lock().unwrap();
        calls
            .iter()
            .filter(|(o, outcome)| *o == op && *outcome == Outcome::Ok)
            .count()
    }
}

fn guard(backend: &Arc<Batcher>, in_flight: usize) -> Arc<Guarded> {
    guard_with(backend, in_flight, Arc::new(Calls::default()))
}

fn guard_with(backend: &Arc<Batcher>, in_flight: usize, metrics: Arc<Calls>) -> Arc<Guarded> {
    let settings = GuardSettings {
        deadline: Some(Duration::from_secs(10)),
        retry: RetrySettings {
            max_attempts: 1,
            ..Default::default()
        },
        breaker: BreakerSettings {
            failures: 1000,
            open_for: Duration::from_secs(30),
        },
        coalesce: CoalesceSettings { in_flight },
        ..Default::default()
    };
    Arc::new(Guarded::new(
        backend.clone(),
        &settings,
        Duration::from_secs(60),
        metrics,
    ))
}

fn version(n: u32) -> VersionRef {
    VersionRef {
        uri: KeyUri::new("batcher://k"),
        algorithm: Algorithm::Aes256Gcm,
        version: n,
        provider_version: n.to_string(),
    }
}

/// What one call returned, and the backend request ids noted in its scope.
type Answered<T> = (Result<T>, Vec<String>);

/// Starts an encrypt of `plaintext` as call `name`, with an optional deadline.
fn encrypt(
    g: &Arc<Guarded>,
    name: &str,
    plaintext: &str,
    deadline: Option<Duration>,
) -> tokio::task::JoinHandle<Answered<Vec<u8>>> {
    let (g, name, plaintext) = (g.clone(), name.to_string(), plaintext.to_string());
    tokio::spawn(async move {
        let scope = context::CallScope::new(&name, deadline.map(|d| Instant::now() + d));
        let result = context::within(scope.clone(), async {
            g.encrypt(
                &version(1),
                &SecretBytes::copy_from(plaintext.as_bytes()),
                b"",
            )
            .await
            .map(|r| r.value)
        })
        .await;
        (result, scope.backend_request_ids())
    })
}

/// Lets spawned calls run until `done` holds (the runtime is single-threaded: each yield
/// runs every other task that can go on).
async fn until(done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the calls never reached the expected state");
}

#[tokio::test]
async fn calls_past_the_requests_in_flight_share_one_batch_each_with_its_own_result() {
    let backend = Batcher::new();
    let metrics = Arc::new(Calls::default());
    let g = guard_with(&backend, 1, metrics.clone());
    let calls: Vec<_> = (0..6)
        .map(|i| encrypt(&g, &format!("call-{i}"), &format!("secret-{i}"), None))
        .collect();
    // The first call is out alone; the other five wait for it.
    until(|| backend.requests().len() == 1 && g.calls_waiting_to_share() == 5).await;
    backend.open();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    // Five waiting calls, four to a request: one batch, and the last alone.
    assert_eq!(
        backend.requests(),
        [Request::Encrypt, Request::EncryptBatch(4), Request::Encrypt]
    );
    for (i, (result, ids)) in outcomes.iter().enumerate() {
        let ciphertext = result.as_ref().expect("every call succeeds");
        assert_eq!(ciphertext, format!("ct:secret-{i}").as_bytes(), "call {i}");
        assert_eq!(
            ids.len(),
            1,
            "call {i} names the one request it went in: {ids:?}"
        );
    }
    let in_batch = outcomes.iter().filter(|(_, ids)| ids[0] == "backend-2");
    assert_eq!(
        in_batch.count(),
        4,
        "four calls name the batch's request id"
    );
    assert_eq!(g.calls_waiting_to_share(), 0);
    // Metrics count every call as an encrypt, and the shared request once as a batch.
    assert_eq!(metrics.count(Op::Encrypt), 6);
    assert_eq!(metrics.count(Op::EncryptBatch), 1);
}

#[tokio::test]
async fn an_item_the_backend_refuses_fails_alone_and_its_batch_goes_on() {
    let backend = Batcher::new();
    let g = guard(&backend, 1);
    let first = encrypt(&g, "first", "a", None);
    until(|| backend.requests().len() == 1).await;
    let bad = encrypt(&g, "bad", "bad", None);
    let good = encrypt(&g, "good", "b", None);
    until(|| g.calls_waiting_to_share() == 2).await;
    backend.open();
    assert!(first.await.unwrap().0.is_ok());
    let (bad, _) = bad.await.unwrap();
    assert!(
        matches!(bad, Err(ProviderError::InvalidInput { .. })),
        "{bad:?}"
    );
    assert_eq!(good.await.unwrap().0.unwrap(), b"ct:b");
    assert_eq!(
        backend.requests(),
        [Request::Encrypt, Request::EncryptBatch(2)]
    );
}

#[tokio::test]
async fn a_batch_that_fails_whole_sends_each_of_its_calls_on_its_own() {
    let backend = Batcher::new();
    backend.fail_batches.store(true, Ordering::SeqCst);
    let g = guard(&backend, 1);
    let calls: Vec<_> = (0..4)
        .map(|i| encrypt(&g, &format!("call-{i}"), &format!("s{i}"), None))
        .collect();
    until(|| g.calls_waiting_to_share() == 3).await;
    backend.open();
    for (i, call) in calls.into_iter().enumerate() {
        let (result, ids) = call.await.unwrap();
        assert_eq!(result.unwrap(), format!("ct:s{i}").as_bytes());
        assert_eq!(ids.len(), 1, "{ids:?}");
    }
    let requests = backend.requests();
    assert_eq!(requests[..2], [Request::Encrypt, Request::EncryptBatch(3)]);
    assert_eq!(
        requests[2..],
        [Request::Encrypt, Request::Encrypt, Request::Encrypt],
        "the batch's three calls, each alone"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_gives_up_at_its_deadline_and_the_lane_goes_on_without_it() {
    let backend = Batcher::new();
    let g = guard(&backend, 1);
    let first = encrypt(&g, "first", "a", None);
    until(|| backend.requests().len() == 1).await;
    let hurried = encrypt(&g, "hurried", "b", Some(Duration::from_secs(2)));
    let patient = encrypt(&g, "patient", "c", None);
    until(|| g.calls_waiting_to_share() == 2).await;
    let started = Instant::now();
    let (result, ids) = hurried.await.unwrap();
    assert_eq!(
        g.calls_waiting_to_share(),
        1,
        "the hurried call left the queue"
    );
    let err = result.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "batcher is unavailable: encrypt did not finish within its deadline of 2s"
    );
    assert!(ids.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    backend.open();
    assert_eq!(first.await.unwrap().0.unwrap(), b"ct:a");
    assert_eq!(patient.await.unwrap().0.unwrap(), b"ct:c");
    assert_eq!(
        backend.requests(),
        [Request::Encrypt, Request::Encrypt],
        "the hurried call's item was never sent"
    );
    assert_eq!(g.calls_waiting_to_share(), 0);
}

#[tokio::test]
async fn a_leader_whose_caller_goes_away_hands_its_slot_on() {
    let backend = Batcher::new();
    let g = guard(&backend, 1);
    let leader = encrypt(&g, "leader", "a", None);
    until(|| backend.requests().len() == 1).await;
    let waiting = encrypt(&g, "waiting", "b", None);
    until(|| g.calls_waiting_to_share() == 1).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // The waiting call now leads, alone: it reaches the backend without the leader's answer.
    until(|| backend.requests().len() == 2).await;
    backend.open();
    assert_eq!(waiting.await.unwrap().0.unwrap(), b"ct:b");
}

#[tokio::test]
async fn decrypts_share_too_and_versions_keep_their_own_lanes() {
    let backend = Batcher::new();
    let g = guard(&backend, 1);
    let decrypt = |n: u32, blob: &'static [u8]| {
        let g = g.clone();
        tokio::spawn(async move { g.decrypt(&version(n), blob, b"").await })
    };
    let v1 = decrypt(1, b"ct:one");
    let v2 = decrypt(2, b"ct:two");
    until(|| backend.requests().len() == 2).await;
    let more: Vec<_> = [b"ct:x".as_slice(), b"ct:y", b"ct:z"]
        .into_iter()
        .map(|b| decrypt(1, b))
        .collect();
    until(|| g.calls_waiting_to_share() == 3).await;
    backend.open();
    assert_eq!(v1.await.unwrap().unwrap().value.expose(), b"one");
    assert_eq!(v2.await.unwrap().unwrap().value.expose(), b"two");
    for (call, want) in more.into_iter().zip([b"x", b"y", b"z"]) {
        assert_eq!(call.await.unwrap().unwrap().value.expose(), want);
    }
    assert_eq!(
        backend.requests(),
        [Request::Decrypt, Request::Decrypt, Request::DecryptBatch(3)],
        "version 2's call went alone beside version 1's"
    );
}

#[tokio::test]
async fn with_in_flight_zero_every_call_is_its_own_request() {
    let backend = Batcher::new();
    let g = guard(&backend, 0);
    let calls: Vec<_> = (0..3)
        .map(|i| encrypt(&g, &format!("c{i}"), "p", None))
        .collect();
    until(|| backend.requests().len() == 3).await;
    assert_eq!(g.calls_waiting_to_share(), 0);
    backend.open();
    for call in calls {
        assert!(call.await.unwrap().0.is_ok());
    }
    assert_eq!(backend.requests(), [Request::Encrypt; 3]);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_waited_has_only_the_rest_of_its_deadline_for_its_request() {
    // The guard's deadline is 10 s; the call waits 6 s, then leads a request that never ends.
    let backend = Batcher::new();
    let g = guard(&backend, 1);
    let first = encrypt(&g, "first", "a", None);
    until(|| backend.requests().len() == 1).await;
    let started = Instant::now();
    let waited = encrypt(&g, "waited", "b", None);
    until(|| g.calls_waiting_to_share() == 1).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    first.abort();
    let (result, _) = waited.await.unwrap();
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "batcher is unavailable: encrypt did not finish within its deadline of 10s"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(10), "not 6 s + 10 s");
    assert_eq!(backend.requests(), [Request::Encrypt, Request::Encrypt]);
}

#[tokio::test]
async fn work_that_sends_one_request_each_never_shares() {
    let backend = Batcher::new();
    let g = guard(&backend, 1);
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let g = g.clone();
            tokio::spawn(context::one_request_each(async move {
                g.encrypt(&version(1), &SecretBytes::copy_from(&[i]), b"")
                    .await
                    .map(|r| r.value)
            }))
        })
        .collect();
    until(|| backend.requests().len() == 3).await;
    assert_eq!(g.calls_waiting_to_share(), 0);
    backend.open();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(
            call.await.unwrap().unwrap(),
            [b"ct:".as_slice(), &[i as u8]].concat()
        );
    }
}
