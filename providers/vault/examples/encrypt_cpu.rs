//! The Vault provider's own CPU per encrypt, without the gateway around it: CONCURRENCY loops
//! call `VaultProvider::encrypt` (32 bytes, AES-256-GCM) against an OpenBao dev server started
//! here, for SECONDS, then print calls/s and this process's CPU (user + system) per call. The
//! gateway's share of a Vault call is what `benches/overhead.sh` measures; this is the part the
//! provider crate owns (serialization, reqwest, hyper, the connection pool).
//!
//!   eval "$(tests/backends/install.sh openbao)"; export KEYGATE_BAO_BIN
//!   cargo run --release -p keygate-provider-vault --example encrypt_cpu [CONCURRENCY] [SECONDS]

use keygate_provider::{Algorithm, KeyProvider, KeySpec, SecretBytes, VersionRef};
use keygate_provider_vault::{SecretRef, VaultConfig, VaultCredentials, VaultProvider};
use keygate_test_backends::openbao::OpenBao;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// This process's CPU time so far, in clock ticks (100 per second on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name (which may hold spaces) start after its ')'.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let concurrency: usize = args.next().map_or(32, |a| a.parse().expect("CONCURRENCY"));
    let seconds: u64 = args.next().map_or(8, |a| a.parse().expect("SECONDS"));
    let bao = OpenBao::start().expect("OpenBao starts (set KEYGATE_BAO_BIN)");
    let config = VaultConfig::with_token(bao.addr(), SecretRef::Env("UNUSED".into()));
    let provider = VaultProvider::connect(
        "vault",
        config,
        VaultCredentials::Token(SecretBytes::copy_from(bao.token().as_bytes())),
    )
    .await
    .expect("provider connects");
    let spec = KeySpec {
        name: "bench/dek".into(),
        key_id: "bench-dek".into(),
        algorithm: Algorithm::Aes256Gcm,
        owner: "bench".into(),
        environment: "dev".into(),
        crypto_period: Duration::from_secs(86_400),
        labels: BTreeMap::new(),
    };
    let key = provider.create_key(&spec).await.expect("key").value;
    let v = key.versions.last().expect("a version");
    let version = Arc::new(VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: v.number,
        provider_version: v.provider_version.clone(),
    });
    let provider = Arc::new(provider);
    let calls = Arc::new(AtomicU64::new(0));
    let run = |until: Instant, count: bool| {
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (provider, version, calls) = (provider.clone(), version.clone(), calls.clone());
                tokio::spawn(async move {
                    let plaintext = SecretBytes::copy_from(&[7u8; 32]);
                    while Instant::now() < until {
                        provider
                            .encrypt(&version, &plaintext, b"")
                            .await
                            .expect("encrypts");
                        if count {
                            calls.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        async move {
            for task in tasks {
                task.await.expect("loop");
            }
        }
    };
    // One second of warm-up: connections opened, allocator warm.
    run(Instant::now() + Duration::from_secs(1), false).await;
    let (started, ticks) = (Instant::now(), cpu_ticks());
    run(started + Duration::from_secs(seconds), true).await;
    let (elapsed, used) = (started.elapsed(), cpu_ticks() - ticks);
    let n = calls.load(Ordering::Relaxed);
    println!(
        "{{\"calls_per_second\": {:.0}, \"cpu_us_per_call\": {:.1}}}",
        n as f64 / elapsed.as_secs_f64(),
        used as f64 * 10_000.0 / n.max(1) as f64
    );
}
