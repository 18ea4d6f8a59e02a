//! [`Guarded`]: the decorator every provider instance runs inside.
//!
//! One call, in order: the breaker admits it (or it fails at once). Then each attempt takes a
//! rate token, waiting for one if it comes before the deadline; injected faults (dev mode)
//! delay or fail it; the provider runs. An idempotent operation that failed with
//! `Unavailable` or `Throttled` is tried again after a jittered pause (never shorter than a
//! `Retry-After` the backend gave, see [`super::backend_asked_to_wait`]), while attempts, the
//! retry budget and the deadline allow. The call's outcome goes to the breaker. The deadline
//! bounds all of it.
//!
//! Concurrent encrypts and decrypts of one key version may share a batch request
//! ([`coalesce`], `coalesce.in_flight`); each call keeps its own deadline, result and audit.
//!
//! Retries happen here and only here: the provider crates turn their SDKs' own retries off, so
//! attempts do not multiply, every attempt is seen by the breaker and the bucket, and no
//! operation that creates or destroys is ever repeated.

mod coalesce;

use super::Op;
use super::breaker::{Admission, Breaker, BreakerState};
use super::bucket::TokenBucket;
use super::metrics::{CallEvent, Metrics, Outcome};
use super::retry::{RetryBudget, backoff};
use super::retry_after;
use super::settings::{FaultKind, FaultSettings, GuardSettings, RetrySettings};
use crate::{
    BatchItem, Capabilities, DataKey, DataKeySpec, ImportOptions, ImportParams, ImportSpec,
    KeyProvider, KeySpec, KeyUri, KeyVersionInfo, Listing, MasterKeyRotation, OwnRotation,
    PageRequest, ProviderError, ProviderKey, PublicKeyInfo, Replied, Result, SecretBytes,
    SettingConflict, SignInput, VersionRef, WrappedForImport, WrappedKey,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument as _;

/// A provider inside its deadline, retries, circuit breaker, rate limit and metrics.
pub struct Guarded {
    inner: Arc<dyn KeyProvider>,
    deadline: Duration,
    retry: RetrySettings,
    budget: RetryBudget,
    breaker: Breaker,
    bucket: Option<TokenBucket>,
    rate: Option<(f64, u32)>,
    faults: Option<FaultSettings>,
    metrics: Arc<dyn Metrics>,
    /// `None`: every call is its own request.
    coalescer: Option<coalesce::Coalescer>,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("provider", &self.inner.name())
            .field("deadline", &self.deadline)
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

/// Ends a probe that never got an outcome (the caller dropped the call), so the breaker
/// does not wait forever for it.
struct ProbeGuard<'a> {
    guarded: &'a Guarded,
    admission: Admission,
    settled: bool,
}

impl ProbeGuard<'_> {
    fn settle(mut self, unavailable: bool) {
        self.settled = true;
        let change = self.guarded.breaker.record(self.admission, unavailable);
        self.guarded.report(change);
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if !self.settled && self.admission == Admission::Probe {
            let change = self.guarded.breaker.abandon_probe();
            self.guarded.report(change);
        }
    }
}

impl Guarded {
    /// Wraps `inner`. `default_deadline` applies when the settings name none.
    pub fn new(
        inner: Arc<dyn KeyProvider>,
        settings: &GuardSettings,
        default_deadline: Duration,
        metrics: Arc<dyn Metrics>,
    ) -> Self {
        Self {
            deadline: settings.deadline.unwrap_or(default_deadline),
            retry: settings.retry.clone(),
            budget: RetryBudget::new(settings.retry.budget_ratio),
            breaker: Breaker::new(settings.breaker.clone()),
            bucket: settings.rate.as_ref().map(TokenBucket::new),
            rate: settings.rate.as_ref().map(|r| (r.per_second, r.burst())),
            faults: settings.faults.clone(),
            metrics,
            coalescer: coalesce::Coalescer::new(settings.coalesce.in_flight, inner.batch_limit()),
            inner,
        }
    }

    /// The provider inside.
    pub fn inner(&self) -> &Arc<dyn KeyProvider> {
        &self.inner
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The lanes calls may share requests in: none when sharing is off, and none for work
    /// that sends one request per item on purpose ([`crate::context::one_request_each`]).
    fn sharing(&self) -> Option<&coalesce::Coalescer> {
        self.coalescer
            .as_ref()
            .filter(|_| crate::context::may_share_requests())
    }

    /// Calls now waiting to share a batch request with others of their key version.
    pub fn calls_waiting_to_share(&self) -> usize {
        self.coalescer
            .as_ref()
            .map_or(0, coalesce::Coalescer::waiting)
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn report(&self, change: Option<BreakerState>) {
        let Some(state) = change else { return };
        let provider = self.inner.name();
        match state {
            BreakerState::Open => tracing::warn!(
                provider,
                "circuit opened: calls fail at once for {}",
                humantime::format_duration(self.breaker_open_for())
            ),
            BreakerState::HalfOpen => tracing::info!(provider, "circuit half-open: probing"),
            BreakerState::Closed => tracing::info!(provider, "circuit closed: backend answers"),
        }
        self.metrics.breaker(provider, state);
    }

    fn breaker_open_for(&self) -> Duration {
        self.breaker.open_for()
    }

    /// Runs `call` (one attempt per invocation) under the guard. The deadline is the
    /// instance's or the call's ([`crate::context::deadline`]), whichever comes first; the
    /// backend's request id of a successful reply is noted for the call's audit event.
    async fn run<T, F, Fut>(&self, op: Op, call: F) -> Result<Replied<T>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Replied<T>>>,
    {
        self.run_within(op, self.window(), call).await
    }

    /// [`Guarded::run`] within a window that began earlier (a call that waited to share a
    /// request has only what is left of its own).
    async fn run_within<T, F, Fut>(&self, op: Op, window: Window, call: F) -> Result<Replied<T>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Replied<T>>>,
    {
        let mut attempts = 0;
        // For OpenTelemetry (the gateway's `keygate_spans` target; never in the log).
        let span = tracing::info_span!(
            target: "keygate_spans",
            "provider",
            otel.name = %format_args!("{} {}", self.inner.kind(), op.as_str()),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            keygate.provider = %self.inner.name(),
            keygate.operation = op.as_str(),
            keygate.attempts = tracing::field::Empty,
            keygate.outcome = tracing::field::Empty,
        );
        let result = self
            .attempts(op, window, &call, &mut attempts)
            .instrument(span.clone())
            .await;
        span.record("keygate.attempts", attempts);
        match &result {
            Ok(_) => span.record("keygate.outcome", "ok"),
            Err(e) => span
                .record("keygate.outcome", e.kind())
                .record("otel.status_code", "ERROR"),
        };
        if let Ok(replied) = &result
            && let Some(id) = &replied.request_id
        {
            crate::context::note_backend_request_id(id);
        }
        self.count_call(op, window, &result, attempts);
        result
    }

    /// A call's outcome in the metrics: one through [`Guarded::run_within`], or one answered
    /// from a shared request (1 attempt) or that gave up waiting for one (0); a shared request
    /// itself counts once, as a batch.
    fn count_call<T>(&self, op: Op, window: Window, result: &Result<T>, attempts: u32) {
        self.metrics.call(&CallEvent {
            provider: self.inner.name(),
            op,
            outcome: match result {
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Error(e.kind()),
            },
            latency: window.started.elapsed(),
            attempts,
        });
    }

    /// The instance's deadline or the call's ([`crate::context::deadline`]), whichever comes
    /// first, from now.
    fn window(&self) -> Window {
        let started = Instant::now();
        let own = started + self.deadline;
        let ends = crate::context::deadline().map_or(own, |call_ends| call_ends.min(own));
        Window {
            started,
            ends,
            length: ends.saturating_duration_since(started),
        }
    }

    async fn attempts<T, F, Fut>(
        &self,
        op: Op,
        window: Window,
        call: &F,
        attempts: &mut u32,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let name = self.inner.name();
        // The breaker judges calls, not attempts: one call is one failure however many
        // attempts it made.
        let (admission, change) = self
            .breaker
            .admit()
            .map_err(|refusal| ProviderError::unavailable(name, format!("{op}: {refusal}")))?;
        self.report(change);
        let probe = ProbeGuard {
            guarded: self,
            admission,
            settled: false,
        };
        // A probe is one request: it tests the backend, it does not lean on it.
        let max_attempts = match admission {
            Admission::Probe => 1,
            Admission::Normal => self.retry.max_attempts,
        };
        self.budget.deposit();
        let result = self.retried(op, window, call, attempts, max_attempts).await;
        probe.settle(matches!(result, Err(ProviderError::Unavailable { .. })));
        result
    }

    async fn retried<T, F, Fut>(
        &self,
        op: Op,
        window: Window,
        call: &F,
        attempts: &mut u32,
        max_attempts: u32,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = window.ends;
        loop {
            if let Some(bucket) = &self.bucket {
                let wait = bucket
                    .reserve(deadline)
                    .map_err(|no| self.no_token(op, no.wait, window.length))?;
                if !wait.is_zero() {
                    self.metrics.rate_wait(self.inner.name(), wait);
                    tokio::time::sleep(wait).await;
                }
            }
            *attempts += 1;
            let attempt = retry_after::attempt(self.attempt(op, call));
            let (error, asked) = match tokio::time::timeout_at(deadline, attempt).await {
                Ok((Ok(value), _)) => return Ok(value),
                Ok((Err(e), asked)) => (e, asked),
                Err(_) => (self.deadline_missed(op, window.length), None),
            };
            if !(error.is_retryable() && op.is_idempotent() && *attempts < max_attempts) {
                return Err(after(error, *attempts));
            }
            // The backend's Retry-After is the least pause; jitter may make it longer.
            let pause = backoff(&self.retry, *attempts).max(asked.unwrap_or_default());
            // No retry that could not finish in time, and none past the budget.
            if Instant::now() + pause >= deadline || !self.budget.withdraw() {
                let error = match asked {
                    Some(wait) if Instant::now() + wait >= deadline => {
                        self.asked_past_deadline(error, wait, window.length)
                    }
                    _ => error,
                };
                return Err(after(error, *attempts));
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// One attempt: injected faults first, as a slow or failing backend would behave.
    async fn attempt<T, F, Fut>(&self, op: Op, call: &F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if let Some(faults) = self.faults.as_ref().filter(|f| f.applies_to(op)) {
            if !faults.delay.is_zero() {
                tokio::time::sleep(faults.delay).await;
            }
            if faults.fail == Some(FaultKind::Unavailable) {
                return Err(ProviderError::unavailable(
                    self.inner.name(),
                    format!("{op}: injected fault (guard.faults.fail = \"unavailable\")"),
                ));
            }
            let result = call().await;
            if !faults.delay_after.is_zero() {
                tokio::time::sleep(faults.delay_after).await;
            }
            return result;
        }
        call().await
    }

    /// A missed deadline. A change that was sent may have been carried out: that is not
    /// "unavailable" (which promises nothing happened) but an unknown outcome.
    fn deadline_missed(&self, op: Op, allowed: Duration) -> ProviderError {
        let reason = format!(
            "{op} did not finish within its deadline of {}",
            humantime::format_duration(Duration::from_millis(allowed.as_millis() as u64))
        );
        if op.is_idempotent() {
            ProviderError::unavailable(self.inner.name(), reason)
        } else {
            ProviderError::OutcomeUnknown {
                provider: self.inner.name().to_string(),
                reason,
            }
        }
    }

    /// The backend asked for a pause that would end past the deadline: give up now, saying so.
    fn asked_past_deadline(
        &self,
        error: ProviderError,
        wait: Duration,
        allowed: Duration,
    ) -> ProviderError {
        let note = format!(
            " (the backend asked to retry after {}, past the deadline of {})",
            humantime::format_duration(wait),
            humantime::format_duration(Duration::from_millis(allowed.as_millis() as u64))
        );
        match error {
            ProviderError::Unavailable { provider, reason } => ProviderError::Unavailable {
                provider,
                reason: reason + &note,
            },
            ProviderError::Throttled { provider, reason } => ProviderError::Throttled {
                provider,
                reason: reason + &note,
            },
            other => other,
        }
    }

    fn no_token(&self, op: Op, wait: Duration, allowed: Duration) -> ProviderError {
        let (per_second, burst) = self.rate.unwrap_or_default();
        ProviderError::throttled(
            self.inner.name(),
            format!(
                "{op}: keygate's rate limit for this provider ({per_second} requests/s, burst \
                 {burst}) has no token for {} and the deadline of {} comes first",
                humantime::format_duration(Duration::from_millis(wait.as_millis() as u64)),
                humantime::format_duration(Duration::from_millis(allowed.as_millis() as u64))
            ),
        )
    }
}

/// When a call must be done, and how long it was given (for messages).
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    ends: Instant,
    length: Duration,
}

/// Says how many attempts a retryable failure took, when there were several.
fn after(error: ProviderError, attempts: u32) -> ProviderError {
    if attempts < 2 {
        return error;
    }
    match error {
        ProviderError::Unavailable { provider, reason } => ProviderError::Unavailable {
            provider,
            reason: format!("{reason} (after {attempts} attempts)"),
        },
        ProviderError::Throttled { provider, reason } => ProviderError::Throttled {
            provider,
            reason: format!("{reason} (after {attempts} attempts)"),
        },
        ProviderError::IntegrityFailed { provider, reason } => ProviderError::IntegrityFailed {
            provider,
            reason: format!("{reason} (after {attempts} attempts)"),
        },
        other => other,
    }
}

#[async_trait::async_trait]
impl KeyProvider for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        self.run(Op::CreateKey, || self.inner.create_key(spec))
            .await
    }

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        self.run(Op::Describe, || self.inner.describe(key)).await
    }

    async fn list(&self, page: &PageRequest) -> Result<Replied<Listing>> {
        self.run(Op::List, || self.inner.list(page)).await
    }

    async fn setting_conflicts(&self, key: &KeyUri) -> Result<Replied<Vec<SettingConflict>>> {
        self.run(Op::SettingConflicts, || self.inner.setting_conflicts(key))
            .await
    }

    async fn encrypt(
        &self,
        key: &VersionRef,
        plaintext: &SecretBytes,
        aad: &[u8],
    ) -> Result<Replied<Vec<u8>>> {
        let single = |window| {
            self.run_within(Op::Encrypt, window, || {
                self.inner.encrypt(key, plaintext, aad)
            })
        };
        match self.sharing() {
            Some(c) => {
                let item = BatchItem {
                    data: plaintext.expose(),
                    aad,
                };
                self.shared(c, Op::Encrypt, key, item, single).await
            }
            None => single(self.window()).await,
        }
    }

    async fn decrypt(
        &self,
        key: &VersionRef,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<Replied<SecretBytes>> {
        let single =
            |window| self.run_within(Op::Decrypt, window, || self.inner.decrypt(key, blob, aad));
        match self.sharing() {
            Some(c) => {
                let item = BatchItem { data: blob, aad };
                self.shared(c, Op::Decrypt, key, item, single).await
            }
            None => single(self.window()).await,
        }
    }

    async fn generate_data_key(
        &self,
        key: &VersionRef,
        spec: DataKeySpec,
        aad: &[u8],
    ) -> Result<Replied<DataKey>> {
        self.run(Op::GenerateDataKey, || {
            self.inner.generate_data_key(key, spec, aad)
        })
        .await
    }

    async fn sign(&self, key: &VersionRef, input: SignInput<'_>) -> Result<Replied<Vec<u8>>> {
        self.run(Op::Sign, || self.inner.sign(key, input)).await
    }

    async fn verify(
        &self,
        key: &VersionRef,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<Replied<bool>> {
        self.run(Op::Verify, || self.inner.verify(key, input, signature))
            .await
    }

    async fn public_key(&self, key: &VersionRef) -> Result<Replied<PublicKeyInfo>> {
        self.run(Op::PublicKey, || self.inner.public_key(key)).await
    }

    async fn mac(&self, key: &VersionRef, message: &[u8]) -> Result<Replied<Vec<u8>>> {
        self.run(Op::Mac, || self.inner.mac(key, message)).await
    }

    async fn verify_mac(
        &self,
        key: &VersionRef,
        message: &[u8],
        tag: &[u8],
    ) -> Result<Replied<bool>> {
        self.run(Op::VerifyMac, || self.inner.verify_mac(key, message, tag))
            .await
    }

    async fn rotate(&self, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        self.run(Op::Rotate, || self.inner.rotate(key)).await
    }

    fn batch_limit(&self) -> usize {
        self.inner.batch_limit()
    }

    async fn encrypt_batch(
        &self,
        key: &VersionRef,
        items: &[BatchItem<'_>],
    ) -> Result<Replied<Vec<Result<Vec<u8>>>>> {
        self.run(Op::EncryptBatch, || self.inner.encrypt_batch(key, items))
            .await
    }

    async fn decrypt_batch(
        &self,
        key: &VersionRef,
        items: &[BatchItem<'_>],
    ) -> Result<Replied<Vec<Result<SecretBytes>>>> {
        self.run(Op::DecryptBatch, || self.inner.decrypt_batch(key, items))
            .await
    }

    async fn own_rotation(
        &self,
        key: &KeyUri,
        newest: &KeyVersionInfo,
    ) -> Result<Replied<OwnRotation>> {
        self.run(Op::OwnRotation, || self.inner.own_rotation(key, newest))
            .await
    }

    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        self.run(Op::SetEnabled, || self.inner.set_enabled(key, enabled))
            .await
    }

    async fn retire_versions(&self, key: &KeyUri, below: u32) -> Result<Replied<()>> {
        self.run(Op::RetireVersions, || {
            self.inner.retire_versions(key, below)
        })
        .await
    }

    async fn schedule_destroy(&self, key: &KeyUri, window: Duration) -> Result<Replied<()>> {
        self.run(Op::ScheduleDestroy, || {
            self.inner.schedule_destroy(key, window)
        })
        .await
    }

    async fn cancel_destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        self.run(Op::CancelDestroy, || self.inner.cancel_destroy(key))
            .await
    }

    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        self.run(Op::Destroy, || self.inner.destroy(key)).await
    }

    fn destruction_method(&self) -> Option<&'static str> {
        self.inner.destruction_method()
    }

    fn keys_it_needs(&self) -> Vec<crate::NeededKey> {
        self.inner.keys_it_needs()
    }

    /// Passed straight through: a rotation is not retried (each attempt is a new master key)
    /// and not cut short by the call deadline (it rewraps every key, then commits at once).
    async fn rotate_master_key(&self) -> Result<Replied<MasterKeyRotation>> {
        self.inner.rotate_master_key().await
    }

    async fn import_parameters(&self, spec: &ImportSpec) -> Result<Replied<ImportParams>> {
        self.run(Op::ImportParameters, || self.inner.import_parameters(spec))
            .await
    }

    async fn import_key(
        &self,
        key: &KeyUri,
        wrapped: &WrappedKey,
        params: &ImportParams,
    ) -> Result<Replied<KeyVersionInfo>> {
        self.run(Op::ImportKey, || {
            self.inner.import_key(key, wrapped, params)
        })
        .await
    }

    async fn import_key_with(
        &self,
        key: &KeyUri,
        wrapped: &WrappedKey,
        params: &ImportParams,
        options: &ImportOptions,
    ) -> Result<Replied<KeyVersionInfo>> {
        self.run(Op::ImportKey, || {
            self.inner.import_key_with(key, wrapped, params, options)
        })
        .await
    }

    async fn prepare_import(&self, spec: &KeySpec) -> Result<Replied<KeyUri>> {
        self.run(Op::PrepareImport, || self.inner.prepare_import(spec))
            .await
    }

    async fn create_wrappable_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        self.run(Op::CreateWrappableKey, || {
            self.inner.create_wrappable_key(spec)
        })
        .await
    }

    async fn wrap_for_import(
        &self,
        key: &VersionRef,
        params: &ImportParams,
    ) -> Result<Replied<WrappedForImport>> {
        self.run(Op::WrapForImport, || {
            self.inner.wrap_for_import(key, params)
        })
        .await
    }
}
