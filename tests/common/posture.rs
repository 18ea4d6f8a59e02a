//! Shared by the key posture tests (`tests/posture_*.rs`): a gateway configured with
//! principals of each posture role, and the PostureService calls the tests repeat.

use super::{Bearer, Server, ServerOptions};
use keygate::pb;
use keygate::pb::posture_service_client::PostureServiceClient;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Posture = PostureServiceClient<InterceptedService<Channel, Bearer>>;

/// (principal, kind, role): a security officer, a key admin, an auditor, a service using keys.
pub const PEOPLE: &[(&str, &str, &str)] = &[
    ("sol", "user", "security-officer"),
    ("kim", "user", "key-admin"),
    ("dana", "user", "auditor"),
    ("svc-app", "service-account", "key-user"),
];

pub fn token(principal: &str) -> String {
    format!(
        "kg_posture_{}_token_0123456789abcdef",
        principal.replace('-', "_")
    )
}

// Not `KEYGATE_*`: keygate reads those as configuration overrides.
fn token_var(principal: &str) -> String {
    format!(
        "E2E_POSTURE_TOKEN_{}",
        principal.replace('-', "_").to_uppercase()
    )
}

/// Every principal configured for the `dev` environment alone.
fn tokens_config(people: &[(&str, &str, &str)]) -> String {
    people
        .iter()
        .map(|(name, kind, role)| {
            format!(
                "[[tokens]]\nprincipal = \"{name}\"\nkind = \"{kind}\"\nroles = [\"{role}\"]\nenvironments = [\"dev\"]\ntoken = {{ env = \"{}\" }}\n\n",
                token_var(name)
            )
        })
        .collect()
}

/// What a posture test's gateway is started with.
pub struct Setup<'a> {
    /// `[providers.*]` sections (the local provider comes with dev mode).
    pub providers: String,
    /// Environment variables the providers' settings name.
    pub env: Vec<(String, String)>,
    /// The rotation scheduler's interval (`[lifecycle] scan_interval`).
    pub scheduler: &'a str,
    pub people: &'a [(&'a str, &'a str, &'a str)],
    /// Further settings, appended as they are (`[posture]` keys go into `posture`).
    pub extra: String,
    /// Further `[posture]` keys.
    pub posture: String,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Self {
            providers: String::new(),
            env: Vec::new(),
            scheduler: "24h",
            people: PEOPLE,
            extra: String::new(),
            posture: String::new(),
        }
    }
}

/// The configuration: the lifecycle floors low enough for a test to outlive a crypto-period
/// and a time to live, the rotation scheduler as given, the background scan off (scans run
/// on demand).
fn write_config(dir: &Path, s: &Setup<'_>) -> PathBuf {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "{providers}\n[lifecycle]\nmin_crypto_period = \"1s\"\nmin_ttl = \"1s\"\nscan_interval = \"{scheduler}\"\n\n\
             [posture]\nscan_interval = \"0s\"\ndestruction_grace = \"0s\"\n{posture}\n\n{extra}\n\n{tokens}",
            providers = s.providers,
            scheduler = s.scheduler,
            posture = s.posture,
            extra = s.extra,
            tokens = tokens_config(s.people),
        ),
    )
    .expect("write config");
    config
}

pub fn start(dir: &Path, s: &Setup<'_>) -> Server {
    let config = write_config(dir, s);
    let mut env = s.env.clone();
    env.extend(
        s.people
            .iter()
            .map(|(name, ..)| (token_var(name), token(name))),
    );
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env,
            ..Default::default()
        },
    )
}

pub async fn posture_as(server: &Server, principal: &str) -> Posture {
    PostureServiceClient::with_interceptor(server.channel().await, Bearer::new(&token(principal)))
}

/// A scan in which every provider was listed.
pub async fn scan(posture: &mut Posture) -> pb::ScanSummary {
    let scan = posture
        .run_scan(pb::RunScanRequest {})
        .await
        .expect("scan")
        .into_inner();
    for l in &scan.listings {
        assert!(
            l.error.is_empty(),
            "provider {} not listed: {}",
            l.provider,
            l.error
        );
    }
    scan
}

pub async fn inventory(posture: &mut Posture) -> Vec<pb::ScannedKey> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        // A small page, so paging is exercised too.
        let page = posture
            .get_inventory(pb::GetInventoryRequest {
                page_size: 3,
                page_token,
                ..Default::default()
            })
            .await
            .expect("inventory")
            .into_inner();
        all.extend(page.keys);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

pub async fn findings(posture: &mut Posture, state: &str, rule: &str) -> Vec<pb::Finding> {
    posture
        .list_findings(pb::ListFindingsRequest {
            state: state.into(),
            rule: rule.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list findings")
        .into_inner()
        .findings
}

/// The open finding of `rule` about `subject` (a key id or a provider URI), if any.
pub async fn open_finding(posture: &mut Posture, rule: &str, subject: &str) -> Option<pb::Finding> {
    findings(posture, "open", rule)
        .await
        .into_iter()
        .find(|f| f.key_id == subject || f.provider_uri == subject)
}

/// Scans until `rule` is open for `subject` (a condition that takes time to arise: a
/// crypto-period or a time to live running out, a provider record being ingested), for at
/// most a minute.
pub async fn scan_until_open(posture: &mut Posture, rule: &str, subject: &str) -> pb::Finding {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        scan(posture).await;
        if let Some(f) = open_finding(posture, rule, subject).await {
            return f;
        }
        assert!(Instant::now() < deadline, "no {rule} finding for {subject}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Scans until `rule` is no longer open for `subject` (a condition that ends with time: an
/// audit window passing), for at most a minute; the closed finding.
pub async fn scan_until_closed(posture: &mut Posture, rule: &str, subject: &str) -> pb::Finding {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        scan(posture).await;
        if open_finding(posture, rule, subject).await.is_none() {
            return findings(posture, "closed", rule)
                .await
                .into_iter()
                .rfind(|f| f.key_id == subject || f.provider_uri == subject)
                .unwrap_or_else(|| panic!("{rule} for {subject} is neither open nor closed"));
        }
        assert!(
            Instant::now() < deadline,
            "{rule} for {subject} never closed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn cli_json(server: &Server, principal: &str, args: &[&str]) -> Value {
    let out = server
        .cli()
        .env("KEYGATE_TOKEN", token(principal))
        .arg("--json")
        .args(args)
        .output()
        .expect("run the keygate CLI");
    assert!(
        out.status.success(),
        "keygate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

pub fn create(name: &str, provider: &str, owner: &str) -> pb::CreateKeyRequest {
    pb::CreateKeyRequest {
        provider: provider.into(),
        ..super::create(name, "aes-256-gcm", owner)
    }
}

/// Every ScanPosture event in the audit log.
pub async fn scan_events(server: &Server) -> Vec<pb::AuditEvent> {
    let mut audit = server.audit(super::ROOT_TOKEN).await;
    super::query_all(
        &mut audit,
        pb::AuditQueryRequest {
            action: "ScanPosture".into(),
            ..Default::default()
        },
    )
    .await
}

pub async fn keys_like(posture: &mut Posture, needle: &str) -> String {
    inventory(posture)
        .await
        .into_iter()
        .find(|k| k.provider_uri.contains(needle) && k.change != "vanished")
        .unwrap_or_else(|| panic!("no key like {needle}"))
        .provider_uri
}
