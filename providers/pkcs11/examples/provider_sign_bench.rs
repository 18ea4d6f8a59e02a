//! ECDSA P-256 sign throughput through `Pkcs11Provider` (session pool, spawn_blocking, object
//! lookup), for comparison with `softhsm_sign_bench` (SoftHSM2 called directly).
//!
//! ```text
//! cargo run --release -p keygate-provider-pkcs11 --example provider_sign_bench -- [POOL] [CONCURRENCY] [SECONDS]
//! ```

use keygate_provider::{Algorithm, KeyProvider, KeySpec, SecretBytes, SignInput, VersionRef};
use keygate_provider_pkcs11::{Pkcs11Config, Pkcs11Provider};
use keygate_test_backends::softhsm::SoftHsm;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let pool: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2);
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);

    let hsm = SoftHsm::new("bench", "1234", "5678")?;
    // SAFETY: set before the module is initialised; nothing else touches the environment.
    unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf_path()) };
    let mut config = Pkcs11Config::new(hsm.module_path(), "bench");
    config.session_pool_size = pool;
    let provider =
        Arc::new(Pkcs11Provider::connect("bench", &config, SecretBytes::copy_from(b"5678")).await?);
    let key = provider
        .create_key(&KeySpec {
            name: "bench".into(),
            key_id: "bench-p256".into(),
            algorithm: Algorithm::EcdsaP256,
            owner: "bench".into(),
            environment: "dev".into(),
            crypto_period: Duration::from_secs(86_400),
            labels: BTreeMap::new(),
        })
        .await?
        .value;
    let v = key.versions.last().ok_or("no version")?;
    let version = VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: v.number,
        provider_version: v.provider_version.clone(),
    };
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (provider, version, count, stop) = (
            provider.clone(),
            version.clone(),
            count.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let digest = [7u8; 32];
            while !stop.load(Ordering::Relaxed) {
                provider.sign(&version, SignInput::Digest(&digest)).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), keygate_provider::ProviderError>(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start_count = count.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let ops = count.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    println!(
        "pkcs11 provider ECDSA P-256 sign: pool {pool}, concurrency {concurrency}, {:.0} ops/s ({ops} ops in {elapsed:.1} s)",
        ops as f64 / elapsed
    );
    Ok(())
}
