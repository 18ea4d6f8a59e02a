//! A provider whose answers, delays and call counts a test controls, and metrics that record
//! what the guard reports.

use keygate_provider::kit::{BreakerState, CallEvent, Metrics, Op, Outcome};
use keygate_provider::{
    Algorithm, Capabilities, KeyProvider, KeySpec, KeyUri, KeyVersionInfo, ProviderError,
    ProviderKey, ProviderKeyState, Replied, Result, SecretBytes, VersionRef,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer {
    Ok,
    Unavailable,
    Throttled,
    NotFound,
}

/// Answers every call with `answer` (after `failures_first` Unavailable answers, if set),
/// after `delay`, counting calls.
pub struct Fake {
    pub answer: Mutex<Answer>,
    pub failures_first: AtomicU32,
    pub delay: Mutex<Duration>,
    pub calls: AtomicU32,
}

impl Fake {
    pub fn new(answer: Answer) -> Arc<Self> {
        Arc::new(Self {
            answer: Mutex::new(answer),
            failures_first: AtomicU32::new(0),
            delay: Mutex::new(Duration::ZERO),
            calls: AtomicU32::new(0),
        })
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    async fn reply<T>(&self, value: T) -> Result<Replied<T>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let scripted = self
            .failures_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let answer = if scripted {
            Answer::Unavailable
        } else {
            *self.answer.lock().unwrap()
        };
        match answer {
            Answer::Ok => Ok(Replied::with_request_id(
                value,
                Some(format!("fake-{call}")),
            )),
            Answer::Unavailable => Err(ProviderError::unavailable("fake", "connection refused")),
            Answer::Throttled => Err(ProviderError::throttled("fake", "429")),
            Answer::NotFound => Err(ProviderError::not_found("fake", "key local://k")),
        }
    }
}

pub fn key() -> ProviderKey {
    ProviderKey {
        uri: KeyUri::new("fake://k"),
        algorithm: Algorithm::Aes256Gcm,
        state: ProviderKeyState::Enabled,
        versions: vec![KeyVersionInfo {
            number: 1,
            provider_version: "1".into(),
        }],
    }
}

#[async_trait::async_trait]
impl KeyProvider for Fake {
    fn name(&self) -> &str {
        "fake"
    }
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn create_key(&self, _spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        self.reply(key()).await
    }
    async fn describe(&self, _key: &KeyUri) -> Result<Replied<ProviderKey>> {
        self.reply(key()).await
    }
    async fn encrypt(
        &self,
        _key: &VersionRef,
        _plaintext: &SecretBytes,
        _aad: &[u8],
    ) -> Result<Replied<Vec<u8>>> {
        self.reply(vec![1, 2, 3]).await
    }
    async fn rotate(&self, _key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        self.reply(key().versions[0].clone()).await
    }
}

#[derive(Default)]
pub struct Recorded {
    pub calls: Mutex<Vec<(Op, Outcome, u32)>>,
    pub states: Mutex<Vec<BreakerState>>,
}

impl Metrics for Recorded {
    fn call(&self, e: &CallEvent<'_>) {
        assert_eq!(e.provider, "fake");
        self.calls
            .lock()
            .unwrap()
            .push((e.op, e.outcome, e.attempts));
    }
    fn breaker(&self, _provider: &str, state: BreakerState) {
        self.states.lock().unwrap().push(state);
    }
}
