//! `keygate serve`

use super::CliResult;
use crate::config::{Config, ListenConfig};
use crate::lifecycle::scheduler;
use crate::telemetry::otlp::{self, Otlp};
use clap::Args;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use zeroize::Zeroizing;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Development mode: no configuration needed; a generated master key for the local
    /// provider (stored in the data directory, NOT protected) and a root token.
    #[arg(long)]
    pub dev: bool,
    /// TOML configuration file (see README); `KEYGATE_…` variables override it.
    #[arg(long, env = "KEYGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address (default 127.0.0.1:50051; port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<String>,
    /// Data directory (catalog, audit log, local keys).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Dev mode's root token (default: a random one, printed at start-up).
    #[arg(
        long,
        env = "KEYGATE_DEV_TOKEN",
        hide_env_values = true,
        requires = "dev"
    )]
    pub dev_token: Option<String>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive. Never logs
    /// plaintext, key material or tokens at any level.
    #[arg(long, env = "KEYGATE_LOG", default_value = "info")]
    pub log: String,
}

const DEV_BANNER: &str = "\
================================================================================
  keygate is running in DEV MODE.
  The local provider's master key is generated and stored UNPROTECTED in the data
  directory, and the root token below can do everything. Never use dev mode for
  real keys.
================================================================================";

pub async fn run(args: ServeArgs) -> CliResult {
    let mut config = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let otlp = init_tracing(&args.log, &config)?;
    check_dev_mode(args.dev, args.config.as_deref(), &config)?;
    if let Some(listen) = args.listen {
        config.listen.address = listen;
    }
    if let Some(dir) = args.data_dir {
        config.storage.data_dir = dir;
    } else if args.dev && args.config.is_none() {
        config.storage.data_dir = PathBuf::from(".keygate/dev");
    }
    // Held in buffers wiped on drop: the token is printed once and kept only as a digest.
    let (dev_token, token_given) = match (args.dev, args.dev_token.map(Zeroizing::new)) {
        (false, _) => (None, false),
        (true, Some(t)) => {
            if t.len() < crate::auth::MIN_TOKEN_BYTES {
                return Err(format!(
                    "--dev-token is {} bytes; a token needs at least {} (leave --dev-token out for a random one)",
                    t.len(),
                    crate::auth::MIN_TOKEN_BYTES
                ));
            }
            (Some(t), true)
        }
        (true, None) => (Some(crate::auth::random_token()), false),
    };
    // Bound (and checked) before anything is built, so a refused address leaves nothing
    // behind.
    let listener = tokio::net::TcpListener::bind(&config.listen.address)
        .await
        .map_err(|e| format!("listen.address {}: {e}", config.listen.address))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("listen.address: {e}"))?;
    check_plaintext(&config.listen, addr)?;
    // The plugin's socket too (its directory checked; a stale one is replaced, anything else
    // refused).
    let kms_listener = match &config.kms_plugin {
        Some(plugin) => Some(
            crate::server::kms_plugin::bind(&plugin.socket)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let metrics_listener = match &config.telemetry.prometheus_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| format!("telemetry.prometheus_listen {address}: {e}"))?,
        ),
        None => None,
    };
    let jwks_listener = match &config.jwks {
        Some(jwks) => Some(
            tokio::net::TcpListener::bind(&jwks.listen)
                .await
                .map_err(|e| format!("jwks.listen {}: {e}", jwks.listen))?,
        ),
        None => None,
    };
    let console_listener = match &config.console {
        Some(console) => Some(crate::server::console::bind(console).await?),
        None => None,
    };
    let timeout = config
        .duration("limits.request_timeout", &config.limits.request_timeout)
        .map_err(|e| e.to_string())?;
    let started = crate::server::startup::build(&config, dev_token.as_ref().map(|t| t.as_str()))
        .await
        .map_err(|e| e.to_string())?;
    let gateway = started.gateway;
    if args.dev {
        eprintln!("{DEV_BANNER}");
        if token_given {
            println!("root token: the one given with --dev-token");
        } else if let Some(token) = &dev_token {
            println!("root token: {}", token.as_str());
        }
    }
    drop(dev_token);
    let scheme = if config.listen.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // Before the listening line, which tells whoever waits for it that everything is up.
    if let Some(plugin) = &config.kms_plugin {
        println!(
            "kms plugin (Kubernetes KMS v2) on unix://{}: key '{}', principal '{}'",
            plugin.socket.display(),
            plugin.key,
            plugin.principal
        );
    }
    let stop_jwks = tokio_util::sync::CancellationToken::new();
    if let Some((listener, jwks)) = jwks_listener.zip(config.jwks.as_ref()) {
        let jwks_addr = listener
            .local_addr()
            .map_err(|e| format!("jwks.listen: {e}"))?;
        let cache = config
            .duration("jwks.cache", &jwks.cache)
            .map_err(|e| e.to_string())?;
        println!(
            "jwks on http://{jwks_addr}: {} key(s) at /keys/{{key}}/jwks.json{}",
            jwks.keys.len(),
            match jwks.well_known() {
                Some(key) => format!(", '{key}' at {}", crate::server::jwks::WELL_KNOWN),
                None => String::new(),
            }
        );
        tokio::spawn(crate::server::jwks::serve(
            listener,
            std::sync::Arc::new(crate::server::jwks::Jwks::new(
                gateway.clone(),
                jwks,
                cache,
                timeout,
            )),
            stop_jwks.clone(),
        ));
    }
    // Ends with the gRPC listener's stop, when shutdown begins (not after the drain).
    let stop = tokio_util::sync::CancellationToken::new();
    if let Some((listener, console)) = console_listener.zip(config.console.as_ref()) {
        crate::server::console::start(
            listener,
            console,
            &config,
            gateway.clone(),
            timeout,
            stop.child_token(),
        )?;
    }
    println!("keygate listening on {scheme}://{addr}");
    println!(
        "data directory: {}; providers: {}; {} policies",
        config.storage.data_dir.display(),
        gateway.provider_names().join(", "),
        gateway.policy_count()
    );
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    if let Some(listener) = metrics_listener {
        let metrics_addr = listener
            .local_addr()
            .map_err(|e| format!("telemetry.prometheus_listen: {e}"))?;
        println!("prometheus metrics on http://{metrics_addr}/metrics");
        tokio::spawn(crate::telemetry::endpoint::serve(
            listener,
            gateway.telemetry().clone(),
            stop_metrics.clone(),
        ));
    }
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, "serving");

    let stop_scheduler = tokio_util::sync::CancellationToken::new();
    let scheduler_task = tokio::spawn({
        let gateway = gateway.clone();
        crate::db::leader::while_leader(
            started.leadership.clone(),
            stop_scheduler.clone(),
            move |term| {
                let gateway = gateway.clone();
                let every = gateway.lifecycle().scan_interval;
                scheduler::run(gateway, every, term)
            },
        )
    });
    // Inventory scans are background work too: only the leader runs them.
    let posture_every = config
        .posture_settings()
        .map_err(|e| e.to_string())?
        .scan_interval;
    let posture_task = tokio::spawn({
        let gateway = gateway.clone();
        crate::db::leader::while_leader(
            started.leadership.clone(),
            stop_scheduler.clone(),
            move |term| crate::posture::job::run(gateway.clone(), posture_every, term),
        )
    });
    let watch_every = config
        .duration("policy.watch_interval", &config.policy.watch_interval)
        .map_err(|e| e.to_string())?;
    let watcher_task = (!watch_every.is_zero()).then(|| {
        tokio::spawn(
            gateway
                .clone()
                .watch_policies(watch_every, stop_scheduler.clone()),
        )
    });
    let settings = config.server_settings().map_err(|e| e.to_string())?;
    let signal = tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
            std::time::Instant::now()
        }
    });
    let kms_task = kms_listener
        .zip(config.kms_plugin.as_ref())
        .map(|(listener, plugin)| {
            tokio::spawn(crate::server::kms_plugin::serve(
                gateway.clone(),
                listener,
                crate::server::kms_plugin::PluginOptions {
                    key: plugin.key.clone(),
                    request_timeout: timeout,
                    stop: stop.clone(),
                },
            ))
        });
    let result = crate::server::serve(
        gateway.clone(),
        listener,
        crate::server::ServeOptions {
            tls: config.listen.tls.as_ref(),
            request_timeout: timeout,
            settings,
            stop: stop.clone(),
        },
    )
    .await;
    // Everything after the signal fits in server.shutdown_grace.
    let began = if stop.is_cancelled() {
        signal.await.unwrap_or_else(|_| std::time::Instant::now())
    } else {
        signal.abort();
        std::time::Instant::now()
    };
    let deadline = began + settings.shutdown_grace;
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    let drain_left =
        || (began + settings.drain_grace()).saturating_duration_since(std::time::Instant::now());
    // The plugin's socket closes with the gRPC listener (which may also have ended by itself).
    stop.cancel();
    stop_jwks.cancel();
    if let Some(task) = kms_task {
        match tokio::time::timeout(drain_left(), task).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the kms plugin's server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "the kms plugin's server task failed"),
            Ok(Ok(Ok(()))) | Err(_) => {}
        }
    }
    // Nothing is cut off half-way: the scheduler finishes the operation under way, and calls
    // whose clients left finish (and are audited) before the process ends.
    stop_scheduler.cancel();
    let _ = tokio::time::timeout(drain_left(), scheduler_task).await;
    let _ = tokio::time::timeout(drain_left(), posture_task).await;
    if let Some(watcher) = watcher_task {
        let _ = tokio::time::timeout(drain_left(), watcher).await;
    }
    if !gateway.drain(drain_left()).await {
        tracing::error!(
            grace = ?settings.shutdown_grace,
            "calls were still running three quarters into server.shutdown_grace; stopping anyway"
        );
    }
    // Then the audit feed: ingesters stop, flood counts are recorded, a last checkpoint
    // covers every event. Every call's own event was committed before its reply.
    if tokio::time::timeout(left(), started.audit.shutdown())
        .await
        .is_err()
    {
        tracing::error!(
            "the audit feed's last work (final checkpoint, flood counts) did not finish within server.shutdown_grace"
        );
    }
    // Only now, after the final checkpoint, may another replica lead: close the lock's
    // session rather than leave PostgreSQL to notice the process is gone.
    started.resign.cancel();
    let mut leadership = started.leadership;
    if tokio::time::timeout(left(), leadership.released())
        .await
        .is_err()
    {
        tracing::warn!("the leader lock's session did not close within server.shutdown_grace");
    }
    stop_metrics.cancel();
    if let Some(otlp) = otlp {
        otlp.shutdown(left()).await;
    }
    result.map_err(|e| e.to_string())?;
    eprintln!("keygate stopped");
    Ok(ExitCode::SUCCESS)
}

/// The log (stderr, filtered by `--log`) and, when OTLP export is configured, the bridge of
/// keygate's spans to OpenTelemetry.
fn init_tracing(log: &str, config: &Config) -> Result<Option<Otlp>, String> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let spans_off = format!("{}=off", otlp::SPANS)
        .parse()
        .map_err(|e| format!("log filter: {e}"))?;
    let filter = EnvFilter::try_new(log)
        .map_err(|e| format!("--log {log}: {e}"))?
        // The spans made for OpenTelemetry only stay out of the log.
        .add_directive(spans_off);
    // The most verbose level the log shows (the gate below needs it).
    let log_level = <EnvFilter as tracing_subscriber::layer::Filter<
        tracing_subscriber::Registry,
    >>::max_level_hint(&filter);
    let log_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let (otlp, otel_layer) = match otlp::start(&config.telemetry)? {
        Some((otlp, tracer)) => {
            use tracing_subscriber::filter::FilterExt as _;
            // keygate's spans, and only inside a traced RPC: the RPC layer opens the server
            // span only for a call it traces, so the rest of an untraced call costs nothing.
            let keygate_spans = tracing_subscriber::filter::Targets::new()
                .with_target(otlp::SPANS, tracing::Level::INFO)
                .with_target("keygate::gateway::runner", tracing::Level::INFO)
                .and(tracing_subscriber::filter::dynamic_filter_fn(|meta, cx| {
                    (meta.name() == "rpc" && meta.target() == otlp::SPANS)
                        || cx.lookup_current().is_some()
                }));
            // Only what the spans' own fields say: no source locations, thread or target
            // attributes, busy/idle timings or context switching on every poll, each of which
            // costs on every span (and spans are entered at every poll of a call).
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_context_activation(false)
                .with_filter(keygate_spans);
            // Outermost: an untraced call's spans are refused before the registry makes them.
            let gate = crate::telemetry::gate::TracedOnly::new(log_level);
            (Some(otlp), Some((layer, gate)))
        }
        None => (None, None),
    };
    let (otel_layer, gate) = otel_layer.unzip();
    tracing_subscriber::registry()
        .with(log_layer)
        .with(otel_layer)
        .with(gate)
        .init();
    Ok(otlp)
}

/// `--dev` adds a root principal that may do everything and lowers the destruction floor to
/// a second: it must never do so to a production configuration. It runs only without a file
/// or with one marked `dev_only = true`, and such a file only with `--dev`.
fn check_dev_mode(dev: bool, file: Option<&Path>, config: &Config) -> Result<(), String> {
    match (dev, file) {
        (true, Some(file)) if !config.dev_only => Err(format!(
            "--dev cannot be used with --config {} (or KEYGATE_CONFIG): dev mode adds a root token that may do everything and lets destructions happen within a second, which must never happen to a production configuration. Run without --dev, or, for a file written for dev mode only, put `dev_only = true` at its top",
            file.display()
        )),
        (false, Some(file)) if config.dev_only => Err(format!(
            "{} is marked `dev_only = true`: it is for `keygate serve --dev` only; remove the marker to use it without dev mode",
            file.display()
        )),
        _ => Ok(()),
    }
}

/// Refuses plaintext on an address other than loopback unless `listen.allow_plaintext` says
/// something else encrypts the traffic.
fn check_plaintext(listen: &ListenConfig, addr: SocketAddr) -> Result<(), String> {
    if listen.tls.is_some() || addr.ip().is_loopback() || listen.allow_plaintext {
        return Ok(());
    }
    Err(format!(
        "listen.address {addr} is not a loopback address and listen.tls is not configured: bearer tokens, plaintext and key material would cross the network unencrypted. Configure [listen.tls] (with client_ca_file for mTLS), listen on 127.0.0.1, or set listen.allow_plaintext = true if a TLS-terminating proxy or mesh encrypts the traffic"
    ))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_only_on_loopback_unless_allowed() {
        let mut listen = ListenConfig::default();
        assert!(check_plaintext(&listen, "127.0.0.1:1".parse().unwrap()).is_ok());
        assert!(check_plaintext(&listen, "[::1]:1".parse().unwrap()).is_ok());
        let err = check_plaintext(&listen, "0.0.0.0:1".parse().unwrap()).unwrap_err();
        assert!(err.contains("listen.allow_plaintext"), "{err}");
        assert!(check_plaintext(&listen, "[::]:1".parse().unwrap()).is_err());
        listen.allow_plaintext = true;
        assert!(check_plaintext(&listen, "10.0.0.1:1".parse().unwrap()).is_ok());
    }
}
