//! `keygate bench-abuse`: a hostile load and a legitimate one against the same gateway, at
//! once, for a bounded time (benches/abuse.sh). The hostile side opens `--attack-connections`
//! HTTP/2 connections, each with `--attack-concurrency` unauthenticated calls in flight that
//! carry a `--message-bytes` message, and a token-guessing flood of small calls with random
//! tokens on `--guess-connections` more. The legitimate side runs Encrypt with a valid token
//! on a connection of its own and records every call's latency. Then it waits for the flood
//! windows to end and reads from the audit log what the run left there.

use super::CliResult;
use super::bench::BenchOp;
use super::bench::{algorithm_for, ensure_key};
use super::client::{Connection, describe};
use crate::pb;
use clap::Args;
use hdrhistogram::Histogram;
use prost::bytes::{Buf as _, BufMut as _, Bytes};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

#[derive(Args, Debug)]
pub struct BenchAbuseArgs {
    /// How long the attack runs, e.g. 20s.
    #[arg(long, default_value = "20s")]
    pub duration: String,
    /// Connections of unauthenticated large calls.
    #[arg(long, default_value_t = 8)]
    pub attack_connections: usize,
    /// Unauthenticated calls in flight per attacking connection.
    #[arg(long, default_value_t = 1024)]
    pub attack_concurrency: usize,
    /// Bytes in each unauthenticated call's message.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub message_bytes: usize,
    /// Connections of the token-guessing flood.
    #[arg(long, default_value_t = 2)]
    pub guess_connections: usize,
    /// Guesses in flight per guessing connection.
    #[arg(long, default_value_t = 64)]
    pub guess_concurrency: usize,
    /// Legitimate Encrypt calls in flight (on their own connection, with --token).
    #[arg(long, default_value_t = 4)]
    pub legit_concurrency: usize,
    /// After the attack, how long to wait for the flood aggregates to be written
    /// (`audit.flood.window` plus a little).
    #[arg(long, default_value = "7s")]
    pub settle: String,
}

/// Sends any bytes as the message, and takes any reply.
#[derive(Clone, Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

const ENCRYPT: &str = "/keygate.v1.KeyService/Encrypt";

/// Answers by gRPC code, across the tasks of one side.
#[derive(Default)]
struct Tally {
    codes: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn add(&self, code: tonic::Code) {
        if let Ok(mut codes) = self.codes.lock() {
            *codes.entry(format!("{code:?}")).or_default() += 1;
        }
    }

    fn take(&self) -> BTreeMap<String, u64> {
        self.codes.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// One raw call of Encrypt with `token` (none: no header); its answer's code.
async fn raw_call(channel: Channel, token: Option<String>, body: Bytes) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
    if grpc.ready().await.is_err() {
        return tonic::Code::Unavailable;
    }
    let mut request = tonic::Request::new(body);
    if let Some(token) = token
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        request.metadata_mut().insert("authorization", value);
    }
    match grpc
        .unary::<Bytes, Bytes, _>(
            request,
            http::uri::PathAndQuery::from_static(ENCRYPT),
            RawCodec,
        )
        .await
    {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    // A guess need not be secret; a failed draw only repeats the zero token.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// `concurrency` loops of raw calls on `channel` until `stop`.
fn hostile(
    channel: Channel,
    concurrency: usize,
    body: Bytes,
    guess: bool,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..concurrency)
        .map(|_| {
            let (channel, body, stop, tally) =
                (channel.clone(), body.clone(), stop.clone(), tally.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let token = guess.then(random_token);
                    tally.add(raw_call(channel.clone(), token, body.clone()).await);
                }
            })
        })
        .collect()
}

struct Legit {
    histogram: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl Legit {
    fn new() -> Self {
        Legit {
            histogram: Histogram::<u64>::new(3).expect("3 significant figures is valid"),
            ok: 0,
            errors: BTreeMap::new(),
        }
    }
}

/// Runs `work` on a thread of its own with its own runtime, so the thousands of hostile calls
/// in this process cannot starve the other sides of the client of their turn.
fn on_own_thread<T, F>(
    work: impl FnOnce() -> F + Send + 'static,
) -> std::thread::JoinHandle<Result<T, String>>
where
    F: std::future::Future<Output = Result<T, String>>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?
            .block_on(work())
    })
}

fn joined<T>(handle: std::thread::JoinHandle<Result<T, String>>) -> Result<T, String> {
    handle
        .join()
        .map_err(|_| "a load thread panicked".to_string())?
}

/// `connections` connections with `concurrency` loops each of raw calls until `stop`.
async fn hostile_side(
    conn: Connection,
    connections: usize,
    concurrency: usize,
    body: Bytes,
    guess: bool,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Result<(), String> {
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let channel = conn.channel().await?;
        tasks.extend(hostile(
            channel,
            concurrency,
            body.clone(),
            guess,
            stop.clone(),
            tally.clone(),
        ));
    }
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Calls under way end when the server answers them; give them a bounded time.
    let _ = tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(tasks)).await;
    Ok(())
}

/// Legitimate encrypts, `concurrency` at once on one connection, for `duration`.
async fn legitimate_side(
    conn: Connection,
    key: String,
    concurrency: usize,
    duration: Duration,
) -> Result<Legit, String> {
    let channel = conn.channel().await?;
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mut keys = conn.keys_on(channel.clone())?;
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut result = Legit::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let answer = keys
                    .encrypt(pb::EncryptRequest {
                        key: key.clone(),
                        plaintext: vec![0x5a; 32],
                        associated_data: Vec::new(),
                    })
                    .await;
                let micros = sent.elapsed().as_micros() as u64;
                let _ = result.histogram.record(micros.max(1));
                match answer {
                    Ok(_) => result.ok += 1,
                    Err(s) => *result.errors.entry(format!("{:?}", s.code())).or_default() += 1,
                }
            }
            result
        }));
    }
    let mut legit = Legit::new();
    for task in tasks {
        let part = task
            .await
            .map_err(|e| format!("a legitimate caller failed: {e}"))?;
        legit
            .histogram
            .add(&part.histogram)
            .map_err(|e| e.to_string())?;
        legit.ok += part.ok;
        for (code, n) in part.errors {
            *legit.errors.entry(code).or_default() += n;
        }
    }
    Ok(legit)
}

pub async fn run(conn: &Connection, args: BenchAbuseArgs) -> CliResult {
    let duration =
        crate::time::parse_duration(&args.duration).map_err(|e| format!("--duration: {e}"))?;
    let settle = crate::time::parse_duration(&args.settle).map_err(|e| format!("--settle: {e}"))?;
    if args.legit_concurrency == 0 {
        return Err("--legit-concurrency must be at least 1".into());
    }
    let key = format!("bench/{}", algorithm_for(BenchOp::Encrypt));
    let mut keys = conn.keys().await?;
    ensure_key(&mut keys, &key, BenchOp::Encrypt, None).await?;
    let mut audit = conn.audit().await?;
    let started_at = std::time::SystemTime::now();

    let stop = Arc::new(AtomicBool::new(false));
    let attack = Arc::new(Tally::default());
    let guesses = Arc::new(Tally::default());
    let large = Bytes::from(vec![0x5a; args.message_bytes]);
    let small = Bytes::from(prost::Message::encode_to_vec(&pb::EncryptRequest {
        key: key.clone(),
        plaintext: b"guess".to_vec(),
        associated_data: Vec::new(),
    }));
    eprintln!(
        "attacking for {}: {} connections x {} unauthenticated calls of {} bytes, {} x {} token guesses; {} legitimate calls in flight",
        humantime::format_duration(duration),
        args.attack_connections,
        args.attack_concurrency,
        args.message_bytes,
        args.guess_connections,
        args.guess_concurrency,
        args.legit_concurrency
    );
    let attackers = {
        let (conn, stop, tally) = (conn.clone(), stop.clone(), attack.clone());
        let (connections, concurrency) = (args.attack_connections, args.attack_concurrency);
        on_own_thread(move || {
            hostile_side(conn, connections, concurrency, large, false, stop, tally)
        })
    };
    let guessers = {
        let (conn, stop, tally) = (conn.clone(), stop.clone(), guesses.clone());
        let (connections, concurrency) = (args.guess_connections, args.guess_concurrency);
        on_own_thread(move || {
            hostile_side(conn, connections, concurrency, small, true, stop, tally)
        })
    };
    let legit = {
        let (conn, key, concurrency) = (conn.clone(), key.clone(), args.legit_concurrency);
        on_own_thread(move || legitimate_side(conn, key, concurrency, duration))
    };
    // The threads block; wait for them off the async workers.
    let legit = tokio::task::spawn_blocking(move || joined(legit))
        .await
        .map_err(|e| e.to_string())??;
    stop.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || {
        joined(attackers)?;
        joined(guessers)
    })
    .await
    .map_err(|e| e.to_string())??;

    eprintln!(
        "waiting {} for the flood aggregates",
        humantime::format_duration(settle)
    );
    tokio::time::sleep(settle).await;
    let (individual, aggregated, aggregates) = flood_on_record(&mut audit, started_at).await?;

    let attack = attack.take();
    let guesses = guesses.take();
    let sum = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    let secs = duration.as_secs_f64();
    println!(
        "unauthenticated {}-byte calls answered: {} ({:.0}/s) {:?}",
        args.message_bytes,
        sum(&attack),
        sum(&attack) as f64 / secs,
        attack
    );
    println!(
        "token guesses answered: {} ({:.0}/s) {:?}",
        sum(&guesses),
        sum(&guesses) as f64 / secs,
        guesses
    );
    println!(
        "legitimate encrypts: {} ok ({:.0}/s), errors {:?}; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        legit.ok,
        legit.ok as f64 / secs,
        legit.errors,
        legit.histogram.value_at_quantile(0.50) as f64 / 1000.0,
        legit.histogram.value_at_quantile(0.99) as f64 / 1000.0,
        legit.histogram.max() as f64 / 1000.0,
    );
    println!(
        "audit: {individual} refused calls recorded one by one, {aggregates} aggregate events counting {aggregated} more"
    );
    if legit.ok == 0 || !legit.errors.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// From the audit log since `since`: anonymous refusals recorded one by one, the calls the
/// flood aggregates counted, and how many aggregate events there are.
async fn flood_on_record(
    audit: &mut super::client::Audit,
    since: std::time::SystemTime,
) -> Result<(u64, u64, u64), String> {
    let start_time = Some(prost_types::Timestamp::from(since));
    let mut individual = 0;
    let mut aggregated = 0;
    let mut aggregates = 0;
    let mut page_token = String::new();
    loop {
        let page = audit
            .query(pb::AuditQueryRequest {
                start_time,
                outcome: "denied".into(),
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .map_err(describe)?
            .into_inner();
        for event in &page.events {
            if event.action == crate::audit::flood::AGGREGATE_ACTION {
                aggregates += 1;
                let details: serde_json::Value =
                    serde_json::from_str(&event.details).unwrap_or_default();
                aggregated += details["count"].as_u64().unwrap_or(0);
            } else if event.actor == "anonymous" {
                individual += 1;
            }
        }
        if page.next_page_token.is_empty() {
            return Ok((individual, aggregated, aggregates));
        }
        page_token = page.next_page_token;
    }
}
