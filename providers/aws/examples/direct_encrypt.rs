//! Drives KMS Encrypt straight through aws-sdk-kms (no keygate in the path) at a fixed
//! concurrency for a fixed time: the baseline for keygate's overhead on the same backend.
//! Each call is the one the provider sends for an encrypt: 32 bytes under the key's ARN with
//! SYMMETRIC_DEFAULT, the SDK's retries off. It prints one JSON line shaped like
//! `keygate bench --json`'s (ops/s, latency percentiles, errors), with the calls sent in all
//! (warm-up included) and the CPU ticks this process used, for the client's CPU per call.
//!
//! ```text
//! cargo run --release -p keygate-provider-aws --example direct_encrypt -- [CONCURRENCY] [SECONDS] [ENDPOINT]
//! ```
//! Without ENDPOINT it starts LocalStack itself (needs `KEYGATE_LOCALSTACK_PYTHON`, printed by
//! `tests/backends/install.sh localstack`). Credentials are LocalStack's dummy pair. A
//! one-second warm-up is not measured, as with `keygate bench`.

use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::EncryptionAlgorithmSpec;
use aws_smithy_types::retry::RetryConfig;
use keygate_test_backends::localstack::LocalStack;
use std::time::{Duration, Instant};

/// User + system CPU ticks this process has used so far (Linux; 0 elsewhere).
fn cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name, which is in parentheses.
            let rest = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state (3rd).
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10);
    let (endpoint, _localstack) = match args.next() {
        Some(e) => (e, None),
        None => {
            let ls = tokio::task::spawn_blocking(LocalStack::start).await??;
            (ls.endpoint(), Some(ls))
        }
    };
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::from_keys("test", "test", None))
        .retry_config(RetryConfig::disabled())
        .build();
    let client = aws_sdk_kms::Client::from_conf(config);
    let key = client.create_key().send().await?;
    let key_arn = key
        .key_metadata()
        .and_then(|m| m.arn())
        .map(str::to_string)
        .ok_or("CreateKey returned no key ARN")?;

    let ticks_before = cpu_ticks();
    let warm_until = Instant::now() + Duration::from_secs(1);
    let deadline = warm_until + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, key_arn) = (client.clone(), key_arn.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            let (mut errors, mut sent) = (0u64, 0u64);
            loop {
                let started = Instant::now();
                if started >= deadline {
                    break;
                }
                let r = client
                    .encrypt()
                    .key_id(&key_arn)
                    .plaintext(Blob::new(vec![0x42; 32]))
                    .encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
                    .send()
                    .await;
                sent += 1;
                let ok = r.is_ok_and(|out| out.ciphertext_blob().is_some());
                if started >= warm_until {
                    if ok {
                        latencies_us.push(started.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies_us, errors, sent)
        }));
    }
    let (mut latencies, mut errors, mut sent) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, e, s) = t.await?;
        latencies.extend(l);
        errors += e;
        sent += s;
    }
    let ticks = cpu_ticks() - ticks_before;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|us| *us as f64 / 1000.0)
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "target": "direct aws-sdk-kms Encrypt",
            "endpoint": endpoint,
            "concurrency": concurrency,
            "ops_per_second": latencies.len() as f64 / seconds as f64,
            "errors": errors,
            "calls_sent": sent,
            "cpu_ticks": ticks,
            "latency_ms": {
                "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "p99.9": pct(0.999),
                "max": latencies.last().map(|us| *us as f64 / 1000.0).unwrap_or(0.0),
            },
        })
    );
    Ok(())
}
