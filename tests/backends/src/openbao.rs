//! An OpenBao dev server (Vault's open fork: same HTTP API and Transit engine) on loopback.
//!
//! Dev mode keeps everything in memory, is unsealed at start and has the root token `root`.
//! A file audit device is declared in a config file, since OpenBao 2.x refuses to enable audit
//! devices over the API. Transit is mounted at `transit/` once the server is ready.
//!
//! The program comes from `KEYGATE_BAO_BIN` (printed by `tests/backends/install.sh openbao`)
//! or `bao` on `PATH`.

use crate::process::{ChildGuard, find_program, free_port};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ROOT_TOKEN: &str = "root";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running OpenBao dev server, killed when dropped. Its config, logs and audit log live in a
/// temporary directory owned by this handle.
pub struct OpenBao {
    child: ChildGuard,
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

impl OpenBao {
    /// Starts a dev server on a free port, waits until it answers `/v1/sys/health`, and mounts
    /// Transit at `transit/`.
    pub fn start() -> io::Result<Self> {
        let bin = find_program("KEYGATE_BAO_BIN", "bao")?;
        let dir = tempfile::Builder::new()
            .prefix("keygate-openbao-")
            .tempdir()?;
        let audit_log = dir.path().join("audit.log");
        let config = format!(
            "audit \"file\" \"keygate\" {{\n  options {{\n    file_path = {:?}\n  }}\n}}\n",
            audit_log.display().to_string()
        );
        std::fs::write(dir.path().join("config.hcl"), config)?;
        let port = free_port()?;
        let child = launch(&bin, dir.path(), port)?;
        let mut bao = Self {
            child,
            bin,
            port,
            dir,
        };
        bao.wait_ready()?;
        bao.enable_transit()?;
        Ok(bao)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The dev root token.
    pub fn token(&self) -> &str {
        ROOT_TOKEN
    }

    /// The file audit device's log: one JSON request or response record per line.
    pub fn audit_log_path(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// Kills the server now, for outage tests.
    pub fn stop(&mut self) {
        self.child.kill();
    }

    /// Starts a fresh server on the same port (and the same audit log). Dev mode keeps nothing
    /// on disk, so every key, policy and token except the root token is gone afterwards.
    pub fn restart(&mut self) -> io::Result<()> {
        self.child.kill();
        self.child = launch(&self.bin, self.dir.path(), self.port)?;
        self.wait_ready()?;
        self.enable_transit()
    }

    /// One HTTP request with the root token; returns the status and the body. For tests that
    /// set things up behind a provider's back (keys, policies, tokens).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<(u16, String)> {
        http(self.socket_addr(), method, path, Some(ROOT_TOKEN), body)
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if !self.child.is_running() {
                return Err(io::Error::other(format!(
                    "bao server exited during start-up:\n{}",
                    self.child.log_tail()
                )));
            }
            // 200 = initialized, unsealed and active: what dev mode reaches once ready.
            if let Ok((200, _)) = http(self.socket_addr(), "GET", "/v1/sys/health", None, None) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "bao server on port {} not healthy within {READY_TIMEOUT:?}:\n{}",
                        self.port,
                        self.child.log_tail()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn enable_transit(&self) -> io::Result<()> {
        let (status, body) = self.request(
            "POST",
            "/v1/sys/mounts/transit",
            Some(r#"{"type":"transit"}"#),
        )?;
        if status / 100 != 2 {
            return Err(io::Error::other(format!(
                "enabling transit gave HTTP {status}: {body}"
            )));
        }
        Ok(())
    }
}

fn launch(bin: &Path, dir: &Path, port: u16) -> io::Result<ChildGuard> {
    let mut command = Command::new(bin);
    command
        .arg("server")
        .arg("-dev")
        .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .arg(format!("-config={}", dir.join("config.hcl").display()))
        // The dev server writes the root token to ~/.vault-token unless told otherwise.
        .env("HOME", dir)
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR");
    ChildGuard::spawn(command, &dir.join("server.log"))
}

/// A minimal HTTP/1.1 exchange (`Connection: close`), enough for set-up calls without pulling
/// an HTTP client into every test binary.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("malformed HTTP response"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| io::Error::other(format!("no status in HTTP response: {head}")))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut input: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = input.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let (Some(chunk), Some(after)) = (rest.get(..n), rest.get(n..)) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(chunk);
        input = after.trim_start_matches("\r\n");
    }
    out
}
