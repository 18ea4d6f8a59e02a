//! LocalStack (AWS emulator) in host mode, serving KMS and S3 on a loopback port (S3 holds
//! CloudTrail-format log files for keygate's audit ingestion: LocalStack's community edition
//! has no CloudTrail).
//!
//! Installed by `tests/backends/install.sh localstack`, which prints
//! `KEYGATE_LOCALSTACK_PYTHON` (the venv's python). Start-up takes about 20 s, so a test
//! binary should start one and share it. Credentials are any static pair; the region is
//! whatever the client sends; the account is [`LocalStack::ACCOUNT`].

use crate::process::{ChildGuard, find_program, free_port};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long LocalStack may take to report KMS available.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

pub struct LocalStack {
    python: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<ChildGuard>,
    /// Start-ups so far; each writes its own log.
    starts: u32,
}

impl LocalStack {
    /// The account LocalStack puts every resource in.
    pub const ACCOUNT: &'static str = "000000000000";

    /// Starts LocalStack with KMS and S3, on a free port, and waits until both are available.
    pub fn start() -> io::Result<Self> {
        let python = find_program("KEYGATE_LOCALSTACK_PYTHON", "python3").and_then(|p| {
            if std::env::var_os("KEYGATE_LOCALSTACK_PYTHON").is_some() {
                Ok(p)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "LocalStack is not installed for the tests: run `tests/backends/install.sh localstack` \
                     and export the KEYGATE_LOCALSTACK_PYTHON=… line it prints (tests/run.sh does both)",
                ))
            }
        })?;
        let port = free_port()?;
        let dir =
            std::env::temp_dir().join(format!("keygate-localstack-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("volume"))?;
        let mut me = Self {
            python,
            port,
            dir,
            child: None,
            starts: 0,
        };
        me.spawn()?;
        Ok(me)
    }

    /// `http://127.0.0.1:PORT`, for the SDK's `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills LocalStack now (an outage). Its in-memory state is lost.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Starts it again on the same port after [`LocalStack::stop`].
    pub fn start_again(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// The last lines of LocalStack's output.
    pub fn log_tail(&self) -> String {
        self.child
            .as_ref()
            .map(|c| c.log_tail())
            .unwrap_or_default()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "localstack.runtime.main"])
            .current_dir(&self.dir)
            .env("GATEWAY_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("SERVICES", "kms,s3")
            .env("EAGER_SERVICE_LOADING", "1")
            // Keep it off the network and out of the user's home: no analytics, no DNS
            // server, no certificate or infrastructure downloads, no persistence.
            .env("DISABLE_EVENTS", "1")
            .env("DNS_ADDRESS", "0")
            .env("SKIP_SSL_CERT_DOWNLOAD", "1")
            .env("SKIP_INFRA_DOWNLOADS", "1")
            .env("PERSISTENCE", "0")
            .env("LOCALSTACK_VOLUME_DIR", self.dir.join("volume"))
            // Its own TLS certificate: inside a container LocalStack otherwise rewrites one
            // shared file (/var/lib/localstack/cache/server.test.pem) at every start, and an
            // instance starting alongside reads it half-written ("PEM routines: no start line").
            .env("CUSTOM_SSL_CERT_PATH", self.dir.join("server.test.pem"))
            .env("FILESYSTEM_ROOT", self.dir.join("fs"));
        self.starts += 1;
        let log = self.dir.join(format!("localstack-{}.log", self.starts));
        let mut child = ChildGuard::spawn(cmd, &log)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if services_available(addr) {
                self.child = Some(child);
                return Ok(());
            }
            if !child.is_running() || Instant::now() > deadline {
                let tail = child.log_tail();
                child.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "LocalStack did not report KMS and S3 available on {addr} within {START_TIMEOUT:?}; log tail:\n{tail}"
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `/_localstack/health` lists KMS and S3 as available or running.
fn services_available(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        "GET /_localstack/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    ["kms", "s3"].iter().all(|service| {
        compact.contains(&format!("\"{service}\":\"available\""))
            || compact.contains(&format!("\"{service}\":\"running\""))
    })
}
