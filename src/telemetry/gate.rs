//! Keeps a call that is not traced free of spans: the gate in front of the subscriber that
//! refuses keygate's OpenTelemetry spans outside a traced RPC before the registry makes them.
//!
//! The OpenTelemetry layer's own per-layer filter already leaves such spans out of the export,
//! but `tracing-subscriber`'s registry still creates every span some per-layer filter calls
//! "sometimes" (it records that a filter said no, not that all did), and then enters, exits,
//! records and closes it at every poll of the call. A global layer's `false` stops that at the
//! macro: the span is never created.

use super::otlp::SPANS;
use tracing::Metadata;
use tracing::span::{Attributes, Id};
use tracing::subscriber::{Interest, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The target of the gateway's `call` span (the runner's module).
const RUNNER: &str = "keygate::gateway::runner";

/// Marks a span of a traced RPC: the RPC's server span and every span opened below it.
struct Traced;

pub struct TracedOnly {
    /// Whether the log may show the runner's `call` span (its level lets INFO through): then
    /// that span is the log's too, and made whether or not the call is traced.
    log_wants_calls: bool,
    /// The most verbose level any layer wants: the log's, or INFO for the export.
    max_level: LevelFilter,
}

impl TracedOnly {
    /// `log_level`: the most verbose level the log's filter lets through (`None`: unknown).
    pub fn new(log_level: Option<LevelFilter>) -> Self {
        let log_level = log_level.unwrap_or(LevelFilter::TRACE);
        Self {
            log_wants_calls: log_level >= LevelFilter::INFO,
            max_level: log_level.max(LevelFilter::INFO),
        }
    }

    /// Spans that exist for the OpenTelemetry export only, except the RPC's own (which the
    /// RPC layer makes only for a call it traces).
    fn gated(&self, meta: &Metadata<'_>) -> bool {
        if !meta.is_span() {
            return false;
        }
        match meta.target() {
            SPANS => meta.name() != "rpc",
            RUNNER => meta.name() == "call" && !self.log_wants_calls,
            _ => false,
        }
    }
}

impl<S> Layer<S> for TracedOnly
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Not `never`: whether such a span is made depends on the call it is in.
        if self.gated(meta) {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    /// Said outright: a layer without a hint makes the whole stack's hint "anything", which
    /// lets every `debug!` and `trace!` (and `log` record) in the dependencies through to the
    /// filters.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max_level)
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        !self.gated(meta)
            || cx
                .lookup_current()
                .is_some_and(|span| span.extensions().get::<Traced>().is_some())
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        let Some(span) = cx.span(id) else {
            return;
        };
        let meta = attrs.metadata();
        let traced = (meta.target() == SPANS && meta.name() == "rpc")
            || span
                .parent()
                .is_some_and(|parent| parent.extensions().get::<Traced>().is_some());
        if traced {
            span.extensions_mut().insert(Traced);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Counts the spans the registry makes.
    struct Made(Arc<AtomicUsize>);

    impl<S: Subscriber> Layer<S> for Made {
        fn on_new_span(&self, _: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn spans_are_made_only_below_a_traced_rpc() {
        let made = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(Made(made.clone()))
            .with(TracedOnly::new(Some(LevelFilter::WARN)));
        tracing::subscriber::with_default(subscriber, || {
            // An untraced call: neither the runner's span nor the export's spans exist.
            let call = tracing::info_span!(target: "keygate::gateway::runner", "call");
            let policy = tracing::info_span!(target: "keygate_spans", "policy");
            assert!(call.is_disabled() && policy.is_disabled());
            assert_eq!(made.load(Ordering::Relaxed), 0);
            // A traced one: the RPC's span, and everything below it.
            let rpc = tracing::info_span!(target: "keygate_spans", "rpc");
            rpc.in_scope(|| {
                let call = tracing::info_span!(target: "keygate::gateway::runner", "call");
                call.in_scope(|| {
                    let audit = tracing::info_span!(target: "keygate_spans", "audit");
                    assert!(!audit.is_disabled());
                });
            });
            assert_eq!(made.load(Ordering::Relaxed), 3);
            // Other spans are not the gate's business.
            let _other = tracing::info_span!(target: "h2", "conn");
            assert_eq!(made.load(Ordering::Relaxed), 4);
        });
    }

    #[test]
    fn a_log_that_shows_info_keeps_the_call_span() {
        let gate = TracedOnly::new(Some(LevelFilter::INFO));
        assert!(gate.log_wants_calls);
        assert_eq!(gate.max_level, LevelFilter::INFO);
        let gate = TracedOnly::new(Some(LevelFilter::ERROR));
        assert!(!gate.log_wants_calls);
        assert_eq!(gate.max_level, LevelFilter::INFO);
        assert!(TracedOnly::new(None).log_wants_calls);
    }
}
