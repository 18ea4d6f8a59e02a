//! Shared harness for the end-to-end tests: a real `keygate serve` process on a free port,
//! and gRPC clients for it.
#![allow(dead_code)]

pub mod backends;
pub mod byok;
pub mod cluster;
pub mod hsm;
pub mod pg_proxy;
pub mod pki;
pub mod posture;
pub mod storage;
pub mod suite;
pub mod team;
pub mod vault;

use keygate::pb::admin_service_client::AdminServiceClient;
use keygate::pb::audit_service_client::AuditServiceClient;
use keygate::pb::key_service_client::KeyServiceClient;
use keygate::pb::posture_service_client::PostureServiceClient;
use keygate_test_backends::process::ChildGuard;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub const ROOT_TOKEN: &str = "kg_test_root_token_0123456789abcdef";

pub fn keygate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_keygate")
}

/// How a command that ran to its end ended, and what it printed.
pub struct Exited {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its exit, its output kept in files under `dir` (a pipe could fill up);
/// panics if it still runs after `timeout` (e.g. a `serve` that started instead of refusing),
/// with what it printed.
pub fn run_to_exit(mut cmd: Command, dir: &Path, timeout: Duration) -> Exited {
    let stdout_path = dir.join("run-stdout.txt");
    let stderr_path = dir.join("run-stderr.txt");
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{cmd:?} still ran after {timeout:?}: {}",
                std::fs::read_to_string(&stdout_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Exited {
        status,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

/// A running gateway. Killed when dropped.
pub struct Server {
    pub child: ChildGuard,
    pub endpoint: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

pub struct ServerOptions {
    pub dev: bool,
    pub config: Option<PathBuf>,
    pub log_filter: String,
    pub env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            dev: true,
            config: None,
            log_filter: "info".into(),
            env: Vec::new(),
        }
    }
}

impl Server {
    /// `keygate serve --dev` on a free port with a known root token.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, ServerOptions::default())
    }

    pub fn start_with(data_dir: &Path, options: ServerOptions) -> Server {
        let log = data_dir.with_extension(format!("log-{}", std::process::id()));
        let log = unique(&log);
        let mut cmd = Command::new(keygate_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--log")
            .arg(&options.log_filter);
        if options.dev {
            cmd.arg("--dev").arg("--dev-token").arg(ROOT_TOKEN);
        }
        if let Some(config) = &options.config {
            cmd.arg("--config").arg(dev_only_copy(config, options.dev));
        }
        for (k, v) in storage::server_env(data_dir, options.dev)
            .iter()
            .chain(&options.env)
        {
            cmd.env(k, v);
        }
        let mut child = ChildGuard::spawn(cmd, &log).expect("spawn keygate");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find(|l| l.starts_with("keygate listening on "))
            {
                let url = line.trim_start_matches("keygate listening on ").trim();
                // Certificates in the TLS tests are issued for `localhost`.
                let endpoint = url.replace("https://127.0.0.1", "https://localhost");
                return Server {
                    child,
                    endpoint,
                    data_dir: data_dir.to_path_buf(),
                    log,
                };
            }
            if !child.is_running() || Instant::now() > deadline {
                panic!("keygate did not start:\n{}", child.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the server printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to keygate")
    }

    pub async fn keys(&self, token: &str) -> Keys {
        KeyServiceClient::with_interceptor(self.channel().await, Bearer::new(token))
    }

    pub async fn root(&self) -> Keys {
        self.keys(ROOT_TOKEN).await
    }

    pub async fn audit(&self, token: &str) -> Audit {
        AuditServiceClient::with_interceptor(self.channel().await, Bearer::new(token))
    }

    pub async fn admin(&self, token: &str) -> Admin {
        AdminServiceClient::with_interceptor(self.channel().await, Bearer::new(token))
    }

    pub async fn posture(&self, token: &str) -> Posture {
        PostureServiceClient::with_interceptor(self.channel().await, Bearer::new(token))
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        self.child.kill();
    }

    /// SIGTERM, then waits for the process to end: the shutdown path runs (calls drain, the
    /// audit feed stops, a last checkpoint is signed).
    pub fn stop_gracefully(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.is_running() {
            assert!(
                Instant::now() < deadline,
                "keygate did not stop within 60 s of SIGTERM:\n{}",
                self.child.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill();
    }

    /// The keygate CLI pointed at this server.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(keygate_bin());
        cmd.env("KEYGATE_ENDPOINT", &self.endpoint)
            .env("KEYGATE_TOKEN", ROOT_TOKEN);
        cmd
    }
}

/// A gateway started with `config` as its configuration file in `dir` (its data in
/// `dir/data`), with these environment variables.
pub fn start_with_config(dir: &Path, config: &str, env: Vec<(String, String)>) -> Server {
    let config_path = dir.join("keygate.toml");
    std::fs::write(&config_path, config).unwrap();
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config_path),
            env,
            ..Default::default()
        },
    )
}

/// `--dev` takes only a file marked `dev_only = true`: the tests' files for dev mode get the
/// marker in a copy beside them.
pub fn dev_only_copy(config: &Path, dev: bool) -> PathBuf {
    if !dev {
        return config.to_path_buf();
    }
    let text = std::fs::read_to_string(config).expect("read the test's configuration");
    let copy = config.with_extension("dev-only.toml");
    std::fs::write(&copy, format!("dev_only = true\n{text}")).expect("write the dev-only copy");
    copy
}

fn unique(path: &Path) -> PathBuf {
    let mut n = 0;
    loop {
        let candidate = PathBuf::from(format!("{}-{n}", path.display()));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        if token.is_empty() {
            Bearer(None)
        } else {
            Bearer(Some(
                format!("Bearer {token}").parse().expect("ascii token"),
            ))
        }
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

pub type Keys = KeyServiceClient<InterceptedService<Channel, Bearer>>;
pub type Audit = AuditServiceClient<InterceptedService<Channel, Bearer>>;
pub type Admin = AdminServiceClient<InterceptedService<Channel, Bearer>>;
pub type Posture = PostureServiceClient<InterceptedService<Channel, Bearer>>;

pub fn days(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n * 86_400,
        nanos: 0,
    })
}

/// A CreateKey request with sensible defaults.
/// Adds a version to `key` and makes it primary.
pub async fn rotate(keys: &mut Keys, key: &str) {
    keys.rotate_key(keygate::pb::RotateKeyRequest {
        key: key.into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Encrypts `plaintext` under `key` (no associated data); the ciphertext.
pub async fn seal(keys: &mut Keys, key: &str, plaintext: &[u8]) -> Vec<u8> {
    keys.encrypt(keygate::pb::EncryptRequest {
        key: key.into(),
        plaintext: plaintext.to_vec(),
        associated_data: vec![],
    })
    .await
    .unwrap()
    .into_inner()
    .ciphertext
}

/// Decrypts a ciphertext made by [`seal`].
pub async fn open(
    keys: &mut Keys,
    ciphertext: &[u8],
) -> Result<keygate::pb::DecryptResponse, tonic::Status> {
    keys.decrypt(keygate::pb::DecryptRequest {
        ciphertext: ciphertext.to_vec(),
        associated_data: vec![],
    })
    .await
    .map(|r| r.into_inner())
}

pub fn create(name: &str, algorithm: &str, owner: &str) -> keygate::pb::CreateKeyRequest {
    keygate::pb::CreateKeyRequest {
        name: name.into(),
        purpose: String::new(),
        algorithm: algorithm.into(),
        owner: owner.into(),
        environment: "dev".into(),
        crypto_period: days(90),
        provider: String::new(),
        labels: Default::default(),
        ttl: None,
    }
}

/// Signs `message` with the key's primary version.
pub async fn sign(keys: &mut Keys, key: &str, message: &[u8]) -> keygate::pb::SignResponse {
    keys.sign(keygate::pb::SignRequest {
        key: key.into(),
        input: Some(keygate::pb::sign_request::Input::Message(message.to_vec())),
    })
    .await
    .unwrap()
    .into_inner()
}

/// Audit events for a request id.
pub async fn events_for(audit: &mut Audit, request_id: &str) -> Vec<keygate::pb::AuditEvent> {
    audit
        .query(keygate::pb::AuditQueryRequest {
            request_id: request_id.into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .expect("audit query")
        .into_inner()
        .events
}

/// Every event a query matches, all pages.
pub async fn query_all(
    audit: &mut Audit,
    query: keygate::pb::AuditQueryRequest,
) -> Vec<keygate::pb::AuditEvent> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = audit
            .query(keygate::pb::AuditQueryRequest {
                page_size: 1000,
                page_token,
                ..query.clone()
            })
            .await
            .expect("audit query")
            .into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        page_token = page.next_page_token;
    }
}

pub fn request_id<T>(r: &tonic::Response<T>) -> String {
    r.metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub fn status_request_id(s: &tonic::Status) -> String {
    s.metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Polls `attempt` until it returns true and returns how long that took; fails the test past
/// `bound` (give it room: machines under load are slow).
pub async fn within<F, Fut>(bound: Duration, what: &str, mut attempt: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if attempt().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{what}: not seen within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A full verification: started as a background job on the gateway, polled to its end.
pub async fn verify_full(audit: &mut Audit) -> keygate::pb::AuditVerifyResponse {
    let job = audit
        .start_verification(keygate::pb::StartVerificationRequest {})
        .await
        .expect("start verification")
        .into_inner()
        .job;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = audit
            .get_verification(keygate::pb::GetVerificationRequest { job: job.clone() })
            .await
            .expect("verification status")
            .into_inner();
        if status.done {
            assert!(status.error.is_empty(), "{}", status.error);
            return status.report.expect("a finished job has a report");
        }
        assert!(Instant::now() < deadline, "the verification did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ErrorInfo reason of a failed call (empty if it carries none).
pub fn reason(status: &tonic::Status) -> String {
    team::error_info(status).0
}

/// Copies directory `from` to `to`, recursively (a backup, as an operator would take one).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Schedules `key`'s destruction with a 1 s window as the dev root (which needs no
/// approvals) and waits until the scheduler has destroyed it (the server's
/// `lifecycle.scan_interval` must be short).
pub async fn destroy_as_root(keys: &mut Keys, key: &str) {
    keys.schedule_key_destruction(keygate::pb::ScheduleKeyDestructionRequest {
        family: false,
        key: key.into(),
        pending_window: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = keys
            .get_key(keygate::pb::GetKeyRequest {
                key: key.into(),
                usage: false,
            })
            .await
            .unwrap()
            .into_inner()
            .state;
        if state == "destroyed" {
            return;
        }
        assert!(Instant::now() < deadline, "{key} never destroyed: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The destruction records of `key`, read as the dev root.
pub async fn destruction_records(
    server: &Server,
    key: &str,
) -> Vec<keygate::pb::DestructionRecord> {
    server
        .admin(ROOT_TOKEN)
        .await
        .list_destruction_records(keygate::pb::ListDestructionRecordsRequest { key: key.into() })
        .await
        .unwrap()
        .into_inner()
        .records
}
