//! A private PostgreSQL cluster on loopback: `initdb` in a temporary directory, then `postgres`
//! on a free port, stopped (fast shutdown) when the handle drops.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the cluster is created and
//! run as the user named by `KEYGATE_PG_USER` (`postgres`, printed by
//! `tests/backends/install.sh postgres`), and the directory is handed to that user.
//!
//! The programs come from `KEYGATE_PG_BIN_DIR` (Debian keeps them in
//! `/usr/lib/postgresql/MAJOR/bin`, off `PATH`), else from `PATH`.
//!
//! The cluster has one superuser, [`Postgres::USER`], with a generated password and
//! `scram-sha-256` authentication, so a test exercises the password the gateway must send.

use crate::process::{ChildGuard, free_port};
use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running private cluster; shut down when dropped, its directory removed.
pub struct Postgres {
    child: ChildGuard,
    bin_dir: PathBuf,
    run_as: Option<(u32, u32)>,
    port: u16,
    tls: bool,
    password: String,
    // Declared last: dropped after the server has stopped.
    dir: tempfile::TempDir,
}

impl Postgres {
    /// The cluster's superuser.
    pub const USER: &'static str = "keygate";

    /// Creates a cluster in a new temporary directory and starts it on a free port; returns
    /// once it accepts connections.
    pub fn start() -> io::Result<Self> {
        Self::start_inner(None)
    }

    /// As [`Postgres::start`], also offering TLS with this certificate and key (PEM);
    /// plaintext is still accepted, so a client that asks for TLS must get it.
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> io::Result<Self> {
        Self::start_inner(Some((cert_pem, key_pem)))
    }

    fn start_inner(tls: Option<(&str, &str)>) -> io::Result<Self> {
        let bin_dir = bin_dir()?;
        let run_as = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("keygate-postgres-")
            .tempdir()?;
        if let Some((uid, gid)) = run_as {
            chown(dir.path(), uid, gid)?;
        }
        let password = generated_password();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n"))?;
        if let Some((uid, gid)) = run_as {
            chown(&pwfile, uid, gid)?;
        }
        let mut initdb = Command::new(bin_dir.join("initdb"));
        initdb
            .arg("--pgdata")
            .arg(dir.path().join("data"))
            .arg("--username")
            .arg(Self::USER)
            .arg("--pwfile")
            .arg(&pwfile)
            .arg("--auth=scram-sha-256")
            .arg("--encoding=UTF8")
            .arg("--no-locale");
        checked(as_user(&mut initdb, run_as, dir.path()).output()?, "initdb")?;
        std::fs::remove_file(&pwfile)?;
        if let Some((cert, key)) = tls {
            for (name, text) in [("server.crt", cert), ("server.key", key)] {
                let path = dir.path().join(name);
                std::fs::write(&path, text)?;
                // PostgreSQL refuses a key file others can read.
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )?;
                if let Some((uid, gid)) = run_as {
                    chown(&path, uid, gid)?;
                }
            }
        }
        let port = free_port()?;
        let child = launch(&bin_dir, run_as, dir.path(), port, tls.is_some())?;
        let mut pg = Self {
            child,
            bin_dir,
            run_as,
            port,
            tls: tls.is_some(),
            password,
            dir,
        };
        pg.wait_ready()?;
        Ok(pg)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgres://keygate@127.0.0.1:PORT/DB`: no password (pass it separately, as the
    /// gateway's config does).
    pub fn url_without_password(&self, db: &str) -> String {
        format!("postgres://{}@127.0.0.1:{}/{db}", Self::USER, self.port)
    }

    /// `postgres://keygate:PASSWORD@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{db}",
            Self::USER,
            self.password,
            self.port
        )
    }

    /// Creates an empty database (one per test keeps tests independent on one cluster).
    pub fn create_database(&self, name: &str) -> io::Result<()> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(io::Error::other(format!("unsafe database name {name:?}")));
        }
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .map(drop)
    }

    /// Runs one SQL command through `psql`; returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> io::Result<String> {
        let out = Command::new(self.bin_dir.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", Self::USER, "-d", db, "-c", sql])
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()?;
        checked(out, "psql").map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Stops the server (fast shutdown: open sessions are ended, nothing is lost).
    pub fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SIGINT is PostgreSQL's fast shutdown.
            // SAFETY: kill(2) on our own child's pid; no memory is shared.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGINT);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while self.child.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.child.kill();
    }

    /// Starts the server again on the same port and data, after [`Postgres::stop`].
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.child = launch(
            &self.bin_dir,
            self.run_as,
            self.dir.path(),
            self.port,
            self.tls,
        )?;
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if !self.child.is_running() {
                return Err(io::Error::other(format!(
                    "postgres exited during start-up:\n{}",
                    self.child.log_tail()
                )));
            }
            let ready = Command::new(self.bin_dir.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .status()?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "postgres on port {} not ready within {READY_TIMEOUT:?}:\n{}",
                        self.port,
                        self.child.log_tail()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn launch(
    bin_dir: &Path,
    run_as: Option<(u32, u32)>,
    dir: &Path,
    port: u16,
    tls: bool,
) -> io::Result<ChildGuard> {
    let mut command = Command::new(bin_dir.join("postgres"));
    command
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .args(["-c", "listen_addresses=127.0.0.1"])
        // The socket goes in the private directory, not /var/run/postgresql (may not exist).
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        // Several gateway replicas with their pools and listeners share one cluster.
        .args(["-c", "max_connections=300"]);
    if tls {
        command.args(["-c", "ssl=on"]).arg("-c").arg(format!(
            "ssl_cert_file={}",
            dir.join("server.crt").display()
        ));
        command
            .arg("-c")
            .arg(format!("ssl_key_file={}", dir.join("server.key").display()));
    }
    as_user(&mut command, run_as, dir);
    ChildGuard::spawn(command, &dir.join("server.log"))
}

/// Makes `command` run as `run_as` (uid, gid) when set, with HOME in `dir`.
fn as_user<'a>(
    command: &'a mut Command,
    run_as: Option<(u32, u32)>,
    dir: &Path,
) -> &'a mut Command {
    if let Some((uid, gid)) = run_as {
        // std drops supplementary groups when a root parent sets the uid.
        command.uid(uid).gid(gid).env("HOME", dir);
    }
    command.current_dir(dir)
}

fn bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KEYGATE_PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let initdb = crate::process::find_program("KEYGATE_PG_INITDB", "initdb").map_err(|_| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "PostgreSQL not found: set KEYGATE_PG_BIN_DIR or run tests/run.sh postgres, which installs it",
        )
    })?;
    let real = std::fs::canonicalize(&initdb)?;
    Ok(real.parent().unwrap_or(Path::new("/")).to_path_buf())
}

/// The (uid, gid) to run the server as: none unless we are root, since PostgreSQL refuses
/// root.
fn run_as() -> io::Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::env::var("KEYGATE_PG_USER").unwrap_or_else(|_| "postgres".into());
    let c_name = CString::new(name.clone()).map_err(io::Error::other)?;
    // SAFETY: getpwnam with a valid C string; the result is read at once, before any other
    // call that could reuse its static buffer (tests start clusters from one thread each, and
    // a race would at worst give another valid user entry's ids).
    let entry = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if entry.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "running as root and user {name:?} does not exist to run PostgreSQL: run tests/run.sh postgres, which creates it"
            ),
        ));
    }
    // SAFETY: non-null pointer returned by getpwnam.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some((uid, gid)))
}

fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}

fn generated_password() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("kg{:x}{:x}", nanos, std::process::id())
}

fn checked(out: Output, what: &str) -> io::Result<Output> {
    if out.status.success() {
        return Ok(out);
    }
    Err(io::Error::other(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}
