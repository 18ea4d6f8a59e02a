//! Drives Cloud KMS Encrypt straight through google-cloud-kms-v1 (no keygate in the path) at
//! a fixed concurrency for a fixed time: the baseline for keygate's overhead on the same
//! backend. Each call does what the provider does for an encrypt: 32 bytes with their CRC32C,
//! a new ciphertext each time, the reply's checksums checked. It prints one JSON line shaped
//! like `keygate bench --json`'s (ops/s, latency percentiles, errors).
//!
//! ```text
//! cargo run --release -p keygate-provider-gcp --example gcp_direct_encrypt -- ENDPOINT [CONCURRENCY] [SECONDS]
//! ```
//! ENDPOINT is a Cloud KMS emulator (`keygate-emulators gcp --listen ADDR`); credentials are
//! anonymous. A one-second warm-up is not measured, as with `keygate bench`.

use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::{CryptoKey, crypto_key};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .ok_or("usage: gcp_direct_encrypt ENDPOINT [CONCURRENCY] [SECONDS]")?;
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10);
    let client = KeyManagementService::builder()
        .with_endpoint(&endpoint)
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .with_retry_policy(NeverRetry)
        .build()
        .await?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let ring = client
        .create_key_ring()
        .set_parent("projects/bench/locations/global")
        .set_key_ring_id(format!("direct-{run}"))
        .send()
        .await?;
    let key = client
        .create_crypto_key()
        .set_parent(&ring.name)
        .set_crypto_key_id("dek")
        .set_crypto_key(CryptoKey::new().set_purpose(crypto_key::CryptoKeyPurpose::EncryptDecrypt))
        .send()
        .await?;
    let version = format!("{}/cryptoKeyVersions/1", key.name);

    let warm_until = Instant::now() + Duration::from_secs(1);
    let deadline = warm_until + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, version) = (client.clone(), version.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            let mut errors = 0u64;
            let plaintext = vec![0x42u8; 32];
            let crc = i64::from(crc32c::crc32c(&plaintext));
            loop {
                let started = Instant::now();
                if started >= deadline {
                    break;
                }
                let r = client
                    .encrypt()
                    .set_name(&version)
                    .set_plaintext(plaintext.clone())
                    .set_plaintext_crc32c(crc)
                    .send()
                    .await;
                let ok = r.is_ok_and(|out| {
                    out.verified_plaintext_crc32c
                        && out.name == version
                        && out.ciphertext_crc32c == Some(i64::from(crc32c::crc32c(&out.ciphertext)))
                });
                if started >= warm_until {
                    if ok {
                        latencies_us.push(started.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies_us, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
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
            "target": "direct google-cloud-kms-v1 Encrypt",
            "endpoint": endpoint,
            "concurrency": concurrency,
            "ops_per_second": latencies.len() as f64 / seconds as f64,
            "errors": errors,
            "latency_ms": {
                "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "p99.9": pct(0.999),
                "max": latencies.last().map(|us| *us as f64 / 1000.0).unwrap_or(0.0),
            },
        })
    );
    Ok(())
}
