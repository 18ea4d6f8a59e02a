//! The guard around a fake provider (see `fake`) whose answers, delays and call counts the
//! tests control. Time is tokio's paused clock, so nothing here depends on the machine's speed.

mod fake;

use fake::{Answer, Fake, Recorded};
use keygate_provider::kit::{
    BreakerSettings, BreakerState, FaultKind, FaultSettings, GuardSettings, Guarded, Op, Outcome,
    RateSettings, RetrySettings,
};
use keygate_provider::{
    Algorithm, KeyProvider, KeySpec, KeyUri, ProviderError, Replied, Result, SecretBytes,
    VersionRef, context,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Settings with retries and the breaker out of the way unless a test sets them.
fn settings() -> GuardSettings {
    GuardSettings {
        deadline: Some(Duration::from_secs(10)),
        retry: RetrySettings {
            max_attempts: 1,
            ..Default::default()
        },
        breaker: BreakerSettings {
            failures: 1000,
            open_for: Duration::from_secs(30),
        },
        ..Default::default()
    }
}

fn guard(fake: &Arc<Fake>, settings: GuardSettings) -> (Guarded, Arc<Recorded>) {
    let metrics = Arc::new(Recorded::default());
    let guarded = Guarded::new(
        fake.clone(),
        &settings,
        Duration::from_secs(60),
        metrics.clone(),
    );
    (guarded, metrics)
}

fn version() -> VersionRef {
    VersionRef {
        uri: KeyUri::new("fake://k"),
        algorithm: Algorithm::Aes256Gcm,
        version: 1,
        provider_version: "1".into(),
    }
}

async fn encrypt(g: &Guarded) -> Result<Replied<Vec<u8>>> {
    g.encrypt(&version(), &SecretBytes::copy_from(b"x"), b"")
        .await
}

fn spec() -> KeySpec {
    KeySpec {
        name: "n".into(),
        key_id: "i".into(),
        algorithm: Algorithm::Aes256Gcm,
        owner: "o".into(),
        environment: "dev".into(),
        crypto_period: Duration::from_secs(86_400),
        labels: Default::default(),
    }
}

fn reason(e: &ProviderError) -> String {
    e.to_string()
}

#[tokio::test(start_paused = true)]
async fn a_deadline_miss_is_unavailable_naming_provider_operation_and_deadline() {
    let fake = Fake::new(Answer::Ok);
    *fake.delay.lock().unwrap() = Duration::from_secs(30);
    let mut s = settings();
    s.deadline = Some(Duration::from_secs(2));
    let (g, _) = guard(&fake, s);
    let started = Instant::now();
    let err = g.describe(&KeyUri::new("fake://k")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        reason(&err),
        "fake is unavailable: describe did not finish within its deadline of 2s"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_change_that_misses_its_deadline_has_an_unknown_outcome_not_unavailable() {
    let fake = Fake::new(Answer::Ok);
    *fake.delay.lock().unwrap() = Duration::from_secs(30);
    let mut s = settings();
    s.deadline = Some(Duration::from_secs(2));
    let (g, _) = guard(&fake, s);
    let err = g.rotate(&KeyUri::new("fake://k")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(
        reason(&err),
        "fake: rotate did not finish within its deadline of 2s; whether the backend carried it \
         out is unknown"
    );
    assert_eq!(fake.calls(), 1, "never retried");
}

#[tokio::test(start_paused = true)]
async fn the_calls_deadline_bounds_a_provider_call_with_a_longer_deadline_of_its_own() {
    let fake = Fake::new(Answer::Ok);
    *fake.delay.lock().unwrap() = Duration::from_secs(30);
    let (g, _) = guard(&fake, settings());
    let started = Instant::now();
    let scope = context::CallScope::new("req", Some(started + Duration::from_secs(3)));
    let err = context::within(scope, encrypt(&g)).await.unwrap_err();
    assert!(reason(&err).contains("deadline of 3s"), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn replies_request_ids_are_noted_in_the_calls_scope() {
    let fake = Fake::new(Answer::Ok);
    let (g, _) = guard(&fake, settings());
    let scope = context::CallScope::new("req", None);
    context::within(scope.clone(), async {
        encrypt(&g).await.unwrap();
        g.describe(&KeyUri::new("fake://k")).await.unwrap();
    })
    .await;
    assert_eq!(scope.backend_request_ids(), ["fake-1", "fake-2"]);
}

#[tokio::test(start_paused = true)]
async fn the_default_deadline_applies_when_the_table_sets_none() {
    let fake = Fake::new(Answer::Ok);
    *fake.delay.lock().unwrap() = Duration::from_secs(90);
    let mut s = settings();
    s.deadline = None;
    let (g, _) = guard(&fake, s);
    assert_eq!(g.deadline(), Duration::from_secs(60));
    let err = encrypt(&g).await.unwrap_err();
    assert!(reason(&err).contains("deadline of 1m"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn only_idempotent_operations_are_retried_and_only_on_retryable_errors() {
    let mut s = settings();
    s.retry.max_attempts = 3;
    for (answer, op, calls) in [
        (Answer::Unavailable, Op::Encrypt, 3),
        (Answer::Throttled, Op::Describe, 3),
        (Answer::NotFound, Op::Encrypt, 1),
        (Answer::Unavailable, Op::CreateKey, 1),
        (Answer::Unavailable, Op::Rotate, 1),
    ] {
        let fake = Fake::new(answer);
        let (g, _) = guard(&fake, s.clone());
        let err = match op {
            Op::Encrypt => encrypt(&g).await.map(|_| ()),
            Op::Describe => g.describe(&KeyUri::new("fake://k")).await.map(|_| ()),
            Op::CreateKey => g.create_key(&spec()).await.map(|_| ()),
            Op::Rotate => g.rotate(&KeyUri::new("fake://k")).await.map(|_| ()),
            _ => unreachable!(),
        }
        .unwrap_err();
        assert_eq!(fake.calls(), calls, "{op} answered {answer:?}");
        if calls > 1 {
            assert!(reason(&err).contains("(after 3 attempts)"), "{err}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_hides_the_failures() {
    let fake = Fake::new(Answer::Ok);
    fake.failures_first.store(2, Ordering::SeqCst);
    let mut s = settings();
    s.retry.max_attempts = 3;
    let (g, metrics) = guard(&fake, s);
    assert!(encrypt(&g).await.is_ok());
    assert_eq!(fake.calls(), 3);
    assert_eq!(
        metrics.calls.lock().unwrap().as_slice(),
        [(Op::Encrypt, Outcome::Ok, 3)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_from_the_backend_is_the_least_pause() {
    let fake = Fake::new(Answer::Throttled);
    *fake.retry_after.lock().unwrap() = Some(Duration::from_secs(2));
    let mut s = settings();
    s.retry = RetrySettings {
        max_attempts: 3,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
        budget_ratio: 1.0,
    };
    let (g, _) = guard(&fake, s);
    let started = Instant::now();
    let err = encrypt(&g).await.unwrap_err();
    // Paused clock: the only time that passes is the guard's pauses.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.calls(), 3);
    assert!(matches!(err, ProviderError::Throttled { .. }), "{err:?}");
    assert!(reason(&err).contains("after 3 attempts"), "{err}");

    // Once the backend answers, the call succeeds after its pause.
    fake.set(Answer::Ok);
    fake.failures_first.store(0, Ordering::SeqCst);
    assert!(encrypt(&g).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_deadline_ends_the_call_at_once() {
    let fake = Fake::new(Answer::Throttled);
    *fake.retry_after.lock().unwrap() = Some(Duration::from_secs(30));
    let mut s = settings();
    s.retry.max_attempts = 5;
    s.retry.budget_ratio = 1.0;
    let (g, _) = guard(&fake, s);
    let started = Instant::now();
    let err = encrypt(&g).await.unwrap_err();
    assert_eq!(fake.calls(), 1, "no retry the deadline would cut short");
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no sleeping into the deadline"
    );
    assert!(matches!(err, ProviderError::Throttled { .. }), "{err:?}");
    assert!(
        reason(&err).contains("asked to retry after 30s, past the deadline of 10s"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_that_the_deadline_would_cut_short() {
    let fake = Fake::new(Answer::Unavailable);
    let mut s = settings();
    s.deadline = Some(Duration::from_millis(100));
    s.retry = RetrySettings {
        max_attempts: 10,
        base_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(1),
        budget_ratio: 1.0,
    };
    let (g, _) = guard(&fake, s);
    let err = encrypt(&g).await.unwrap_err();
    // Each pause is below 1 s; with 100 ms in all, few retries fit and the error is the
    // backend's, not a deadline miss.
    assert!(fake.calls() < 10, "{}", fake.calls());
    assert!(reason(&err).contains("connection refused"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_retries_to_the_reserve_plus_the_ratio() {
    let fake = Fake::new(Answer::Unavailable);
    let mut s = settings();
    s.retry.max_attempts = 3;
    s.retry.budget_ratio = 0.0;
    let (g, _) = guard(&fake, s);
    for _ in 0..20 {
        let _ = encrypt(&g).await;
    }
    let reserve = keygate_provider::kit::retry::RESERVE as u32;
    assert_eq!(
        fake.calls(),
        20 + reserve,
        "20 calls and the reserve's retries"
    );
}

fn breaker_settings(failures: u32) -> GuardSettings {
    let mut s = settings();
    s.breaker = BreakerSettings {
        failures,
        open_for: Duration::from_secs(30),
    };
    s
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_n_failures_and_then_fails_fast_without_calling() {
    let fake = Fake::new(Answer::Unavailable);
    let (g, metrics) = guard(&fake, breaker_settings(3));
    for _ in 0..3 {
        let err = encrypt(&g).await.unwrap_err();
        assert!(reason(&err).contains("connection refused"), "{err}");
    }
    assert_eq!(g.breaker_state(), BreakerState::Open);
    fake.set(Answer::Ok);
    for _ in 0..5 {
        let err = encrypt(&g).await.unwrap_err();
        assert!(matches!(err, ProviderError::Unavailable { .. }));
        let text = reason(&err);
        assert!(
            text.starts_with("fake is unavailable: encrypt: circuit open since "),
            "{text}"
        );
        assert!(
            text.contains("after 3 consecutive unavailable calls"),
            "{text}"
        );
        assert!(
            text.contains("until a probe at ") && text.contains("(in 30s)"),
            "{text}"
        );
    }
    assert_eq!(fake.calls(), 3, "an open circuit calls nothing");
    assert_eq!(
        metrics.states.lock().unwrap().as_slice(),
        [BreakerState::Open]
    );
    let refused = metrics.calls.lock().unwrap().last().cloned();
    assert_eq!(
        refused,
        Some((Op::Encrypt, Outcome::Error("unavailable"), 0))
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_counts_calls_not_attempts_and_a_probe_is_one_attempt() {
    let fake = Fake::new(Answer::Unavailable);
    let mut s = breaker_settings(2);
    s.retry.max_attempts = 3;
    let (g, _) = guard(&fake, s);
    let _ = encrypt(&g).await;
    assert_eq!(fake.calls(), 3);
    assert_eq!(
        g.breaker_state(),
        BreakerState::Closed,
        "three attempts, one call"
    );
    let _ = encrypt(&g).await;
    assert_eq!(g.breaker_state(), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(30)).await;
    let err = encrypt(&g).await.unwrap_err();
    assert!(!reason(&err).contains("attempts"), "{err}");
    assert_eq!(fake.calls(), 7, "the probe was not retried");
}

#[tokio::test(start_paused = true)]
async fn other_answers_reset_the_count() {
    let fake = Fake::new(Answer::Unavailable);
    let (g, _) = guard(&fake, breaker_settings(3));
    for _ in 0..2 {
        let _ = encrypt(&g).await;
    }
    fake.set(Answer::NotFound);
    let _ = encrypt(&g).await;
    fake.set(Answer::Unavailable);
    for _ in 0..2 {
        let _ = encrypt(&g).await;
    }
    assert_eq!(g.breaker_state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_successful_probe_closes_the_circuit() {
    let fake = Fake::new(Answer::Unavailable);
    let (g, metrics) = guard(&fake, breaker_settings(2));
    for _ in 0..2 {
        let _ = encrypt(&g).await;
    }
    fake.set(Answer::Ok);
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(encrypt(&g).await.is_err(), "still open before open_for");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(encrypt(&g).await.is_ok(), "the probe goes through");
    assert!(encrypt(&g).await.is_ok());
    assert_eq!(fake.calls(), 4);
    assert_eq!(
        metrics.states.lock().unwrap().as_slice(),
        [
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::Closed
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_the_circuit() {
    let fake = Fake::new(Answer::Unavailable);
    let (g, _) = guard(&fake, breaker_settings(2));
    for _ in 0..2 {
        let _ = encrypt(&g).await;
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    let err = encrypt(&g).await.unwrap_err();
    assert!(
        reason(&err).contains("connection refused"),
        "the probe reached it: {err}"
    );
    assert_eq!(fake.calls(), 3);
    let err = encrypt(&g).await.unwrap_err();
    assert!(reason(&err).contains("circuit open"), "{err}");
    assert_eq!(fake.calls(), 3);
    assert_eq!(g.breaker_state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn while_a_probe_is_in_flight_other_calls_fail_fast() {
    let fake = Fake::new(Answer::Unavailable);
    let (g, _) = guard(&fake, breaker_settings(1));
    let _ = encrypt(&g).await;
    tokio::time::advance(Duration::from_secs(30)).await;
    fake.set(Answer::Ok);
    *fake.delay.lock().unwrap() = Duration::from_secs(1);
    // join! polls the probe first; it is at the backend when the second call arrives.
    let (probe, other) = tokio::join!(encrypt(&g), encrypt(&g));
    assert!(probe.is_ok());
    let err = other.unwrap_err();
    assert!(
        reason(&err).contains("while a probe call is in flight"),
        "{err}"
    );
    assert_eq!(fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_bucket_refuses_past_its_burst_when_the_deadline_is_too_short_to_wait() {
    let fake = Fake::new(Answer::Ok);
    let mut s = settings();
    s.deadline = Some(Duration::from_millis(500));
    s.rate = Some(RateSettings {
        per_second: 1.0,
        burst: Some(2),
    });
    let (g, _) = guard(&fake, s);
    assert!(encrypt(&g).await.is_ok());
    assert!(encrypt(&g).await.is_ok());
    let err = encrypt(&g).await.unwrap_err();
    assert!(matches!(err, ProviderError::Throttled { .. }), "{err:?}");
    let text = reason(&err);
    assert!(text.contains("1 requests/s, burst 2"), "{text}");
    assert_eq!(fake.calls(), 2, "a refused call reaches nothing");
}

#[tokio::test(start_paused = true)]
async fn the_bucket_waits_for_a_token_that_comes_in_time() {
    let fake = Fake::new(Answer::Ok);
    let mut s = settings();
    s.rate = Some(RateSettings {
        per_second: 4.0,
        burst: Some(1),
    });
    let (g, _) = guard(&fake, s);
    let started = Instant::now();
    for _ in 0..5 {
        encrypt(&g).await.unwrap();
    }
    // One at once, then one every 250 ms.
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn faults_delay_and_fail_the_listed_operations_only() {
    let fake = Fake::new(Answer::Ok);
    let mut s = settings();
    s.faults = Some(FaultSettings {
        delay: Duration::from_secs(2),
        delay_after: Duration::ZERO,
        ops: Some(vec![Op::Rotate]),
        fail: Some(FaultKind::Unavailable),
    });
    let (g, _) = guard(&fake, s.clone());
    let started = Instant::now();
    let err = g.rotate(&KeyUri::new("fake://k")).await.unwrap_err();
    assert!(reason(&err).contains("rotate: injected fault"), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(
        fake.calls(),
        0,
        "a failing fault does not call the provider"
    );
    let started = Instant::now();
    encrypt(&g).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO, "encrypt is not listed");

    // A delay alone makes the provider slow: the call still happens after it, or the
    // deadline passes first.
    s.faults = Some(FaultSettings {
        delay: Duration::from_secs(2),
        delay_after: Duration::ZERO,
        ops: Some(vec![Op::Rotate]),
        fail: None,
    });
    let (g, _) = guard(&fake, s.clone());
    let started = Instant::now();
    g.rotate(&KeyUri::new("fake://k")).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    s.deadline = Some(Duration::from_secs(1));
    let (g, _) = guard(&fake, s);
    let err = g.rotate(&KeyUri::new("fake://k")).await.unwrap_err();
    assert!(reason(&err).contains("deadline of 1s"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_late_reply_fault_lets_the_backend_act_and_then_misses_the_deadline() {
    let fake = Fake::new(Answer::Ok);
    let mut s = settings();
    s.deadline = Some(Duration::from_secs(1));
    s.faults = Some(FaultSettings {
        delay: Duration::ZERO,
        delay_after: Duration::from_secs(2),
        ops: Some(vec![Op::Rotate]),
        fail: None,
    });
    let (g, _) = guard(&fake, s);
    let err = g.rotate(&KeyUri::new("fake://k")).await.unwrap_err();
    assert_eq!(fake.calls(), 1, "the backend was asked");
    assert!(
        matches!(err, ProviderError::OutcomeUnknown { .. }),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn faults_without_a_list_apply_to_every_operation() {
    let fake = Fake::new(Answer::Ok);
    let mut s = settings();
    s.faults = Some(FaultSettings {
        delay: Duration::from_millis(300),
        delay_after: Duration::ZERO,
        ops: None,
        fail: None,
    });
    let (g, _) = guard(&fake, s);
    let started = Instant::now();
    encrypt(&g).await.unwrap();
    g.describe(&KeyUri::new("fake://k")).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(600));
}

/// A backend without a master key of keygate's refuses its rotation as unsupported (a failed
/// precondition at the API), through the guard, without being called; and reports no erasure.
#[tokio::test]
async fn master_key_rotation_is_unsupported_by_default_and_passes_the_guard() {
    let fake = Fake::new(Answer::Ok);
    let (guarded, _) = guard(&fake, settings());
    let refused = guarded.rotate_master_key().await.unwrap_err();
    assert!(
        matches!(refused, ProviderError::Unsupported { .. }),
        "{refused:?}"
    );
    assert!(
        reason(&refused).contains("master-key rotation"),
        "{refused}"
    );
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    assert_eq!(guarded.destruction_method(), None);
}
