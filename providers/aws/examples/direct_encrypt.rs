//! Drives KMS Encrypt straight through aws-sdk-kms (no keygate in the path) at a fixed
//! concurrency for a fixed time and prints operations per second: the baseline for keygate's
//! overhead on the same backend.
//!
//! ```text
//! cargo run --release -p keygate-provider-aws --example direct_encrypt -- [CONCURRENCY] [SECONDS] [ENDPOINT]
//! ```
//! Without ENDPOINT it starts LocalStack itself (needs `KEYGATE_LOCALSTACK_PYTHON`, printed by
//! `tests/backends/install.sh localstack`). Credentials are LocalStack's dummy pair.

use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::primitives::Blob;
use keygate_test_backends::localstack::LocalStack;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
        .build();
    let client = aws_sdk_kms::Client::from_conf(config);
    let key = client.create_key().send().await?;
    let key_id = key
        .key_metadata()
        .map(|m| m.key_id().to_string())
        .ok_or("CreateKey returned no metadata")?;

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, key_id, done, failed) =
            (client.clone(), key_id.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let r = client
                    .encrypt()
                    .key_id(&key_id)
                    .plaintext(Blob::new(vec![0x42; 32]))
                    .send()
                    .await;
                match r {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = done.load(Ordering::Relaxed);
    println!(
        "direct aws-sdk-kms Encrypt (32 bytes) against {endpoint}: concurrency {concurrency}, {elapsed:.1} s, {ok} ok, {} failed, {:.0} ops/s",
        failed.load(Ordering::Relaxed),
        ok as f64 / elapsed
    );
    Ok(())
}
