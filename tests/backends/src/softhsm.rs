//! A throwaway SoftHSM2 token directory with initialised tokens.
//!
//! SoftHSM2 reads its configuration from the `SOFTHSM2_CONF` environment variable once, when
//! the module is initialised (`C_Initialize`), and keeps it for the life of the process. So:
//!
//! - the caller must set `SOFTHSM2_CONF` to [`SoftHsm::conf_path`] in the process environment
//!   before anything initialises the module;
//! - every test in one test binary shares that one variable, so make one [`SoftHsm`] per test
//!   binary (e.g. in a `OnceLock`) and give each test its own token with
//!   [`SoftHsm::add_token`], or its own keys on a shared token. Tokens must be added before the
//!   module is initialised: SoftHSM2 scans the directory at `C_Initialize`.
//!
//! The directory is removed when the handle drops, or at process exit for a fixture kept in a
//! `static` (see [`SoftHsm::remove_at_exit`]).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once};

use crate::process::find_program;

/// Where Debian's `softhsm2` package puts the module.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The slot holding the token labelled `label`, in an initialised module. Look tokens up by
/// label, never by slot index: SoftHSM2 renumbers slots when a token is initialised.
pub fn slot_with_label(
    ctx: &cryptoki::context::Pkcs11,
    label: &str,
) -> Option<cryptoki::slot::Slot> {
    ctx.get_slots_with_token().ok()?.into_iter().find(|s| {
        ctx.get_token_info(*s)
            .map(|i| i.label().trim_end() == label)
            .unwrap_or(false)
    })
}

/// A temporary SoftHSM2 token directory and its configuration file.
pub struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
    module: PathBuf,
}

impl SoftHsm {
    /// Creates the directory and config, and initialises one token.
    ///
    /// The module is `KEYGATE_PKCS11_MODULE` if set (printed by `tests/backends/install.sh
    /// softhsm`), else [`DEFAULT_MODULE`]. Fails with a message naming the install script when
    /// the module or `softhsm2-util` is missing.
    pub fn new(label: &str, so_pin: &str, user_pin: &str) -> io::Result<Self> {
        let module = std::env::var_os("KEYGATE_PKCS11_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE));
        if !module.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "SoftHSM2 module {} not found: run tests/backends/install.sh softhsm \
                     (or set KEYGATE_PKCS11_MODULE)",
                    module.display()
                ),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("keygate-softhsm-")
            .tempdir()?;
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens)?;
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )?;
        let hsm = Self { dir, conf, module };
        hsm.add_token(label, so_pin, user_pin)?;
        Ok(hsm)
    }

    /// Initialises another token in the same directory (before the module is initialised).
    pub fn add_token(&self, label: &str, so_pin: &str, user_pin: &str) -> io::Result<()> {
        let util = find_program("KEYGATE_SOFTHSM2_UTIL", "softhsm2-util")?;
        let output = Command::new(util)
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", so_pin, "--pin", user_pin])
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "softhsm2-util --init-token --label {label} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(())
    }

    pub fn module_path(&self) -> &Path {
        &self.module
    }

    /// The config file to put in `SOFTHSM2_CONF` (see the module docs for when).
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// For a fixture held in a `static`, which is never dropped: removes the directory when
    /// the process exits (the test harness exits through `exit`, which runs `atexit` hooks).
    pub fn remove_at_exit(&self) {
        static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
        static REGISTER: Once = Once::new();
        extern "C" fn cleanup() {
            let dirs = DIRS.lock().unwrap_or_else(|p| p.into_inner());
            for dir in dirs.iter() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        DIRS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.dir().to_path_buf());
        REGISTER.call_once(|| {
            // SAFETY: `cleanup` is a plain extern "C" fn that only touches a static Mutex
            // and the file system.
            unsafe { libc::atexit(cleanup) };
        });
    }
}
