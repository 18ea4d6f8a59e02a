//! `keygate bench-rewrap`: the re-encryption stream against one ReEncrypt call per
//! ciphertext, at the same concurrency, in the same run, on the same key.
//!
//! It seals `--count` ciphertexts under v1 (BatchEncrypt), rotates twice, re-encrypts
//! `--unary-count` of them with ReEncrypt calls (`--concurrency` workers, one call in flight
//! each), then all `--count` through ReEncryptStream (`--concurrency` streams, one per
//! worker), checks every new ciphertext decrypts to its plaintext under v3, and prints both
//! rates and their ratio. With `--server-pid` it also reports the server's peak memory.

use super::CliResult;
use super::client::{Connection, Keys, describe};
use super::rewrap;
use crate::pb;
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;

#[derive(Args, Debug)]
pub struct BenchRewrapArgs {
    /// Ciphertexts to re-encrypt through the stream.
    #[arg(long, default_value_t = 100_000)]
    pub count: usize,
    /// Ciphertexts re-encrypted one call each (default: the lesser of --count and 20,000).
    #[arg(long)]
    pub unary_count: Option<usize>,
    /// Workers: unary calls in flight, and streams, at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Ciphertexts per stream message.
    #[arg(long, default_value_t = 500)]
    pub chunk: usize,
    /// Provider for the bench key (default: the gateway's default).
    #[arg(long)]
    pub provider: Option<String>,
    /// The gateway's process id, to report its peak resident memory (Linux).
    #[arg(long)]
    pub server_pid: Option<u32>,
}

fn plaintext(i: usize) -> Vec<u8> {
    format!("bench-rewrap record {i:012}").into_bytes()
}

/// Peak resident memory of a process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn clients(conn: &Connection, n: usize) -> Result<Vec<Keys>, String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(conn.keys_on(conn.channel().await?)?);
    }
    Ok(out)
}

/// Runs `work(worker, client)` on every client at once and waits for all.
async fn on_each<F, Fut, T>(clients: &[Keys], work: F) -> Result<Vec<T>, String>
where
    F: Fn(usize, Keys) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(work(i, c.clone())))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.map_err(|e| format!("bench worker failed: {e}"))??);
    }
    Ok(out)
}

/// The range of `0..n` worker `i` of `of` takes.
fn share(n: usize, i: usize, of: usize) -> std::ops::Range<usize> {
    (n * i / of)..(n * (i + 1) / of)
}

pub async fn run(conn: &Connection, a: BenchRewrapArgs) -> CliResult {
    if a.concurrency == 0 || a.count == 0 || !(1..=1000).contains(&a.chunk) {
        return Err("--concurrency and --count at least 1; --chunk 1 to 1000".into());
    }
    let workers = clients(conn, a.concurrency).await?;
    let key = format!("bench/rewrap-{}", crate::time::now_ms());
    let mut admin = workers[0].clone();
    admin
        .create_key(pb::CreateKeyRequest {
            name: key.clone(),
            purpose: String::new(),
            algorithm: "aes-256-gcm".into(),
            owner: "bench".into(),
            environment: "dev".into(),
            crypto_period: Some(prost_types::Duration {
                seconds: 365 * 86_400,
                nanos: 0,
            }),
            provider: a.provider.clone().unwrap_or_default(),
            labels: Default::default(),
            ttl: None,
        })
        .await
        .map_err(|s| format!("creating '{key}': {}", describe(s)))?;

    // Sealing under v1.
    let n = a.count;
    let c = a.concurrency;
    let started = Instant::now();
    let sealed = on_each(&workers, |i, mut keys| {
        let key = key.clone();
        async move {
            let mut out = Vec::new();
            let range = share(n, i, c);
            let indices: Vec<usize> = range.collect();
            for chunk in indices.chunks(1000) {
                let reply = keys
                    .batch_encrypt(pb::BatchEncryptRequest {
                        key: key.clone(),
                        items: chunk
                            .iter()
                            .map(|&j| pb::BatchEncryptItem {
                                plaintext: plaintext(j),
                                associated_data: Vec::new(),
                            })
                            .collect(),
                    })
                    .await
                    .map_err(describe)?
                    .into_inner();
                if reply.failed > 0 {
                    return Err(format!("{} items failed to seal", reply.failed));
                }
                out.extend(reply.results.into_iter().map(|r| r.ciphertext));
            }
            Ok(out)
        }
    })
    .await?;
    let v1: Arc<Vec<Vec<u8>>> = Arc::new(sealed.into_iter().flatten().collect());
    eprintln!(
        "sealed {n} ciphertexts under v1 in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for _ in 0..2 {
        admin
            .rotate_key(pb::RotateKeyRequest {
                key: key.clone(),
                ..Default::default()
            })
            .await
            .map_err(describe)?;
    }

    // One ReEncrypt call per ciphertext.
    let unary_n = a.unary_count.unwrap_or(n.min(20_000)).min(n);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    on_each(&workers, |_, mut keys| {
        let (v1, next) = (v1.clone(), next.clone());
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= unary_n {
                    return Ok(());
                }
                keys.re_encrypt(pb::ReEncryptRequest {
                    ciphertext: v1[i].clone(),
                    ..Default::default()
                })
                .await
                .map_err(describe)?;
            }
        }
    })
    .await?;
    let unary_seconds = started.elapsed().as_secs_f64();
    let unary_rate = unary_n as f64 / unary_seconds;
    eprintln!("unary ReEncrypt: {unary_n} in {unary_seconds:.1} s ({unary_rate:.0}/s)");

    // The stream: one per worker, each over its share.
    let chunk = a.chunk;
    let started = Instant::now();
    let moved = on_each(&workers, |i, mut keys| {
        let (v1, key) = (v1.clone(), key.clone());
        async move {
            let (sink, chunks) = mpsc::channel(4);
            let range = share(n, i, c);
            let feeder = tokio::spawn(async move {
                let indices: Vec<usize> = range.collect();
                for part in indices.chunks(chunk) {
                    let items = part
                        .iter()
                        .map(|&j| pb::BatchReEncryptItem {
                            ciphertext: v1[j].clone(),
                            ..Default::default()
                        })
                        .collect();
                    if sink.send(items).await.is_err() {
                        return;
                    }
                }
            });
            let mut out = Vec::new();
            let tally = rewrap::stream(&mut keys, key, String::new(), chunks, |r| {
                out.extend(r.results.into_iter().map(|x| (x.key_version, x.ciphertext)));
                Ok(())
            })
            .await?;
            let _ = feeder.await;
            if tally.failed > 0 {
                return Err(format!("{} ciphertexts failed to re-encrypt", tally.failed));
            }
            Ok(out)
        }
    })
    .await?;
    let stream_seconds = started.elapsed().as_secs_f64();
    let stream_rate = n as f64 / stream_seconds;
    eprintln!("ReEncryptStream: {n} in {stream_seconds:.1} s ({stream_rate:.0}/s)");

    // Every new ciphertext decrypts, under v3, to its plaintext.
    let moved: Arc<Vec<(u32, Vec<u8>)>> = Arc::new(moved.into_iter().flatten().collect());
    if moved.len() != n || moved.iter().any(|(v, _)| *v != 3) {
        return Err("the stream did not return one v3 ciphertext per input".into());
    }
    let verified = on_each(&workers, |i, mut keys| {
        let (moved, key) = (moved.clone(), key.clone());
        async move {
            let indices: Vec<usize> = share(n, i, c).collect();
            let mut ok = 0usize;
            for part in indices.chunks(1000) {
                let reply = keys
                    .batch_decrypt(pb::BatchDecryptRequest {
                        key: key.clone(),
                        items: part
                            .iter()
                            .map(|&j| pb::BatchDecryptItem {
                                ciphertext: moved[j].1.clone(),
                                associated_data: Vec::new(),
                            })
                            .collect(),
                    })
                    .await
                    .map_err(describe)?
                    .into_inner();
                for (r, &j) in reply.results.iter().zip(part) {
                    if r.status.as_ref().is_none_or(|s| s.code == 0)
                        && r.key_version == 3
                        && r.plaintext == plaintext(j)
                    {
                        ok += 1;
                    }
                }
            }
            Ok(ok)
        }
    })
    .await?
    .into_iter()
    .sum::<usize>();
    let report = serde_json::json!({
        "key": key,
        "concurrency": c,
        "chunk": chunk,
        "unary": {"ciphertexts": unary_n, "seconds": unary_seconds, "per_second": unary_rate},
        "stream": {"ciphertexts": n, "seconds": stream_seconds, "per_second": stream_rate},
        "ratio": stream_rate / unary_rate,
        "verified": verified,
        "server_peak_rss_kb": a.server_pid.and_then(peak_rss_kb),
    });
    println!("{report}");
    Ok(if verified == n {
        ExitCode::SUCCESS
    } else {
        eprintln!("only {verified} of {n} new ciphertexts decrypted to their plaintext under v3");
        ExitCode::FAILURE
    })
}
