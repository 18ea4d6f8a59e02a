//! Drives ECDSA P-256 Sign straight at a Key Vault endpoint through
//! `azure_security_keyvault_keys` (no keygate in the path) at a fixed concurrency for a fixed
//! time, hashing each message as keygate does, and prints operations per second and latency
//! percentiles: the baseline for keygate's overhead on the same backend
//! (`benches/azure-sign.sh` runs both, interleaved).
//!
//! ```text
//! cargo run --release -p keygate-provider-azure --example direct_sign -- CONCURRENCY SECONDS VAULT_URL CA_PEM [SIZE]
//! ```
//! The token is a fixed string: point it at the emulator (`keygate-emulators azure`), which
//! accepts any bearer token.

use aws_lc_rs::digest;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, KeyType, SignParameters, SignatureAlgorithm,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct FixedToken;

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "bench",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [concurrency, seconds, url, ca, rest @ ..] = args.as_slice() else {
        return Err("usage: direct_sign CONCURRENCY SECONDS VAULT_URL CA_PEM [SIZE]".into());
    };
    let concurrency: usize = concurrency.parse()?;
    let seconds: u64 = seconds.parse()?;
    let size: usize = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(32);
    let ca = reqwest::Certificate::from_pem_bundle(&std::fs::read(ca)?)?;
    let http = reqwest::Client::builder().tls_certs_merge(ca).build()?;
    let options = KeyClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            retry: RetryOptions::none(),
            ..Default::default()
        },
        verify_challenge_resource: Some(false),
        ..Default::default()
    };
    let client = Arc::new(KeyClient::new(url, Arc::new(FixedToken), Some(options))?);
    let name = format!("direct-bench-{}", std::process::id());
    let params = CreateKeyParameters {
        kty: Some(KeyType::Ec),
        curve: Some(CurveName::P256),
        ..Default::default()
    };
    client.create_key(&name, params.try_into()?, None).await?;

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, name) = (client.clone(), name.clone());
        tasks.push(tokio::spawn(async move {
            let message = vec![0x42u8; size];
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let params = SignParameters {
                    algorithm: Some(SignatureAlgorithm::Es256),
                    value: Some(digest::digest(&digest::SHA256, &message).as_ref().to_vec()),
                };
                let ok = match params.try_into() {
                    Ok(body) => client.sign(&name, body, None).await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t.elapsed().as_micros() as u64);
                } else {
                    failed += 1;
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await?;
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    println!(
        "{{\"ops_per_second\": {:.1}, \"ok\": {}, \"errors\": {failed}, \"latency_ms\": {{\"p50\": {:.3}, \"p99\": {:.3}}}}}",
        latencies.len() as f64 / elapsed,
        latencies.len(),
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
