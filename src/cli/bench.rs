//! `keygate bench`: a closed-loop load generator over several HTTP/2 channels.
//!
//! Each of `--concurrency` workers sends one call, waits for the reply, and sends the next,
//! until `--duration` ends (or, with `--requests N`, until N calls were sent: a fixed amount of
//! work, for tests that must not depend on the machine's speed). Latency is recorded per call
//! in an HDR histogram.

use super::CliResult;
use super::client::{Connection, Keys, describe};
use crate::cli::output::Format;
use crate::pb;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchOp {
    Encrypt,
    Decrypt,
    DataKey,
    Sign,
    Mac,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The operation to drive.
    #[arg(long, value_enum, default_value = "encrypt")]
    pub op: BenchOp,
    /// Calls in flight at once (closed loop).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to measure, e.g. 10s.
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Unmeasured warm-up before, e.g. 1s (none with --requests).
    #[arg(long, default_value = "1s")]
    pub warmup: String,
    /// Send exactly this many calls (successful or not), then stop; replaces --duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// HTTP/2 connections to spread the workers over.
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
    /// Key to use (created if missing: aes-256-gcm, ecdsa-p256 or hmac-sha256 by --op).
    #[arg(long)]
    pub key: Option<String>,
    /// Payload bytes per call.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Provider for a key the bench creates.
    #[arg(long)]
    pub provider: Option<String>,
    /// Write the request id of every call that returned OK to this file, one per line.
    #[arg(long)]
    pub record_ok: Option<PathBuf>,
    /// Show progress on stderr (calls sent, every second) even when stderr is not a terminal.
    #[arg(long)]
    pub progress: bool,
}

struct WorkerResult {
    histogram: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    ok_ids: Vec<String>,
}

pub(super) fn algorithm_for(op: BenchOp) -> &'static str {
    match op {
        BenchOp::Encrypt | BenchOp::Decrypt | BenchOp::DataKey => "aes-256-gcm",
        BenchOp::Sign => "ecdsa-p256",
        BenchOp::Mac => "hmac-sha256",
    }
}

pub(super) async fn ensure_key(
    keys: &mut Keys,
    name: &str,
    op: BenchOp,
    provider: Option<String>,
) -> Result<(), String> {
    match keys
        .get_key(pb::GetKeyRequest {
            key: name.to_string(),
            usage: false,
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => keys
            .create_key(pb::CreateKeyRequest {
                name: name.to_string(),
                purpose: String::new(),
                algorithm: algorithm_for(op).into(),
                owner: "bench".into(),
                environment: "dev".into(),
                crypto_period: Some(prost_types::Duration {
                    seconds: 365 * 86_400,
                    nanos: 0,
                }),
                provider: provider.unwrap_or_default(),
                labels: Default::default(),
                ttl: None,
            })
            .await
            .map(|_| ())
            .map_err(|s| format!("creating bench key '{name}': {}", describe(s))),
        Err(s) => Err(format!("looking up bench key '{name}': {}", describe(s))),
    }
}

/// One call; returns the request id on success.
async fn call(
    keys: &mut Keys,
    op: BenchOp,
    key: &str,
    payload: &[u8],
    ciphertext: &[u8],
) -> Result<String, tonic::Status> {
    fn id(md: &tonic::metadata::MetadataMap) -> String {
        md.get(crate::server::call::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
    let key = key.to_string();
    Ok(match op {
        BenchOp::Encrypt => id(keys
            .encrypt(pb::EncryptRequest {
                key,
                plaintext: payload.to_vec(),
                associated_data: Vec::new(),
            })
            .await?
            .metadata()),
        BenchOp::Decrypt => id(keys
            .decrypt(pb::DecryptRequest {
                ciphertext: ciphertext.to_vec(),
                associated_data: Vec::new(),
            })
            .await?
            .metadata()),
        BenchOp::DataKey => id(keys
            .generate_data_key(pb::GenerateDataKeyRequest {
                key,
                length_bytes: 32,
                without_plaintext: true,
                associated_data: Vec::new(),
            })
            .await?
            .metadata()),
        BenchOp::Sign => id(keys
            .sign(pb::SignRequest {
                key,
                input: Some(pb::sign_request::Input::Message(payload.to_vec())),
            })
            .await?
            .metadata()),
        BenchOp::Mac => id(keys
            .generate_mac(pb::GenerateMacRequest {
                key,
                message: payload.to_vec(),
            })
            .await?
            .metadata()),
    })
}

pub async fn run(conn: &Connection, fmt: Format, args: BenchArgs) -> CliResult {
    let duration =
        crate::time::parse_duration(&args.duration).map_err(|e| format!("--duration: {e}"))?;
    let warmup = crate::time::parse_duration(&args.warmup).map_err(|e| format!("--warmup: {e}"))?;
    if args.concurrency == 0 || args.channels == 0 {
        return Err("--concurrency and --channels must be at least 1".into());
    }
    let key = args
        .key
        .clone()
        .unwrap_or_else(|| format!("bench/{}", algorithm_for(args.op)));
    let mut clients = Vec::with_capacity(args.channels);
    for _ in 0..args.channels {
        clients.push(conn.keys_on(conn.channel().await?)?);
    }
    ensure_key(&mut clients[0], &key, args.op, args.provider.clone()).await?;
    let payload = vec![0x5a; args.size];
    let ciphertext = if args.op == BenchOp::Decrypt {
        clients[0]
            .encrypt(pb::EncryptRequest {
                key: key.clone(),
                plaintext: payload.clone(),
                associated_data: Vec::new(),
            })
            .await
            .map_err(describe)?
            .into_inner()
            .ciphertext
    } else {
        Vec::new()
    };
    let length = match args.requests {
        Some(n) => format!("{n} calls"),
        None => format!(
            "{}s (+{}s warm-up)",
            duration.as_secs_f64(),
            warmup.as_secs_f64()
        ),
    };
    eprintln!(
        "bench: {:?} on '{key}', {} workers over {} channels, {length}, {}-byte payload",
        args.op, args.concurrency, args.channels, args.size
    );
    let start = Instant::now();
    let (measure_from, end) = match args.requests {
        // Far enough never to be reached: the count ends the run.
        Some(_) => (start, start + Duration::from_secs(100 * 365 * 86_400)),
        None => (start + warmup, start + warmup + duration),
    };
    let remaining = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(
        args.requests.unwrap_or(u64::MAX),
    ));
    let record = args.record_ok.is_some();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker =
        (args.progress || std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let sent = sent.clone();
            let of = match args.requests {
                Some(n) => format!("of {n}"),
                None => format!("in {:.0}s", (warmup + duration).as_secs_f64()),
            };
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    eprint!(
                        "\rbench: {} calls sent {of}, {:.0}s   ",
                        sent.load(std::sync::atomic::Ordering::Relaxed),
                        start.elapsed().as_secs_f64()
                    );
                }
            })
        });
    let mut tasks = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let mut keys = clients[i % clients.len()].clone();
        let (key, payload, ciphertext) = (key.clone(), payload.clone(), ciphertext.clone());
        let op = args.op;
        let remaining = remaining.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = WorkerResult {
                histogram: Histogram::new_with_bounds(1, 60_000_000, 3)
                    .expect("static histogram bounds"),
                ok: 0,
                errors: BTreeMap::new(),
                ok_ids: Vec::new(),
            };
            loop {
                let t0 = Instant::now();
                let more = remaining
                    .fetch_update(
                        std::sync::atomic::Ordering::AcqRel,
                        std::sync::atomic::Ordering::Acquire,
                        |n| n.checked_sub(1),
                    )
                    .is_ok();
                if t0 >= end || !more {
                    break;
                }
                let result = call(&mut keys, op, &key, &payload, &ciphertext).await;
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let measured = t0 >= measure_from;
                match result {
                    Ok(id) => {
                        if measured {
                            r.ok += 1;
                            let _ = r.histogram.record(t0.elapsed().as_micros().max(1) as u64);
                        }
                        if record {
                            r.ok_ids.push(id);
                        }
                    }
                    Err(status) => {
                        *r.errors.entry(format!("{:?}", status.code())).or_default() += 1;
                        // Do not spin while the server is away.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            r
        }));
    }
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut ok = 0;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut ok_ids = Vec::new();
    for task in tasks {
        let r = task
            .await
            .map_err(|e| format!("bench worker failed: {e}"))?;
        histogram.add(&r.histogram).map_err(|e| e.to_string())?;
        ok += r.ok;
        for (code, n) in r.errors {
            *errors.entry(code).or_default() += n;
        }
        ok_ids.extend(r.ok_ids);
    }
    if let Some(ticker) = ticker {
        ticker.abort();
        eprintln!();
    }
    if let Some(path) = &args.record_ok {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| format!("--record-ok {}: {e}", path.display()))?,
        );
        for id in &ok_ids {
            writeln!(file, "{id}").map_err(|e| format!("--record-ok: {e}"))?;
        }
        file.flush().map_err(|e| format!("--record-ok: {e}"))?;
    }
    let secs = match args.requests {
        Some(_) => start.elapsed().as_secs_f64(),
        None => duration.as_secs_f64(),
    };
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let total_errors: u64 = errors.values().sum();
    if let Some(data) = fmt.data() {
        data.print(&serde_json::json!({
                "op": format!("{:?}", args.op).to_lowercase(),
                "concurrency": args.concurrency,
                "channels": args.channels,
                "duration_seconds": secs,
                "ok": ok,
                "errors": errors,
                "ops_per_second": ok as f64 / secs,
                "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p99.9": ms(0.999), "max": histogram.max() as f64 / 1000.0},
            }));
    } else {
        println!("ops/s:    {:.0}", ok as f64 / secs);
        println!("ok:       {ok}");
        println!("errors:   {total_errors} {errors:?}");
        println!(
            "latency:  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            histogram.max() as f64 / 1000.0
        );
    }
    Ok(if ok > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
