//! The policy set in force, and its replacement while the server runs.
//!
//! A reload builds a whole new [`PolicyEngine`] from the source and swaps it in only if it
//! parses and validates, so a bad file keeps the last good set in force; the failure is
//! logged and kept for the status RPC. [`PolicyStore::fingerprint`] lets a watcher see that
//! the folder changed (file names and contents, so an editor's write-rename-replace and an
//! edit within the same second are both seen).

use super::{PolicyEngine, PolicyError};
use arc_swap::{ArcSwap, Guard};
use aws_lc_rs::digest;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where the policies come from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// The defaults compiled into the binary.
    Builtin,
    /// `policy.dir`: `*.cedar` files and an optional `keygate.cedarschema`.
    Dir(PathBuf),
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::Builtin => f.write_str("built-in defaults"),
            PolicySource::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Policies in force after the reload (the old set's count when it failed).
    pub policy_count: usize,
    /// Why the new set was refused; `None` when it is in force.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Status {
    loaded_at_ms: i64,
    last_error: Option<String>,
    last_error_at_ms: Option<i64>,
}

pub struct PolicyStore {
    source: PolicySource,
    current: ArcSwap<PolicyEngine>,
    status: Mutex<Status>,
    /// Held across build, store and status of one reload: two reloads at once (the folder
    /// watcher and an operator) must not put an older build in force after a newer one.
    reloading: Mutex<()>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyStore({})", self.source)
    }
}

impl PolicyStore {
    pub fn load(source: PolicySource) -> Result<Self, PolicyError> {
        let engine = Self::build(&source)?;
        Ok(Self::with(source, engine))
    }

    /// A store over one engine (tests, benchmarks).
    pub fn fixed(engine: PolicyEngine) -> Self {
        Self::with(PolicySource::Builtin, engine)
    }

    fn with(source: PolicySource, engine: PolicyEngine) -> Self {
        Self {
            source,
            current: ArcSwap::from_pointee(engine),
            status: Mutex::new(Status {
                loaded_at_ms: crate::time::now_ms(),
                ..Default::default()
            }),
            reloading: Mutex::new(()),
        }
    }

    fn build(source: &PolicySource) -> Result<PolicyEngine, PolicyError> {
        match source {
            PolicySource::Builtin => PolicyEngine::defaults(),
            PolicySource::Dir(dir) => PolicyEngine::load_dir(dir),
        }
    }

    /// The set in force (cheap: no lock, no reference count on the hot path).
    pub fn current(&self) -> Guard<Arc<PolicyEngine>> {
        self.current.load()
    }

    pub fn source(&self) -> &PolicySource {
        &self.source
    }

    /// Why the last reload was refused (and when), while the set it tried to replace stays
    /// in force; `None` once a reload succeeds.
    pub fn last_error(&self) -> Option<(String, i64)> {
        let status = self.status.lock().ok()?;
        Some((status.last_error.clone()?, status.last_error_at_ms?))
    }

    /// When the set in force was loaded.
    pub fn loaded_at_ms(&self) -> i64 {
        self.status
            .lock()
            .map(|s| s.loaded_at_ms)
            .unwrap_or_default()
    }

    /// Builds the source again and puts it in force if it is valid. Blocking (it reads and
    /// validates files): call it off the async runtime.
    pub fn reload(&self) -> ReloadOutcome {
        // A poisoned lock only means an earlier reload panicked; the next one starts afresh.
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = crate::time::now_ms();
        let outcome = match Self::build(&self.source) {
            Ok(engine) => {
                let count = engine.policy_count();
                self.current.store(Arc::new(engine));
                tracing::info!(policies = count, source = %self.source, "policies reloaded");
                ReloadOutcome {
                    policy_count: count,
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    source = %self.source,
                    "policy reload refused; the previous policies stay in force"
                );
                ReloadOutcome {
                    policy_count: self.current().policy_count(),
                    error: Some(e.to_string()),
                }
            }
        };
        if let Ok(mut status) = self.status.lock() {
            match &outcome.error {
                None => {
                    status.loaded_at_ms = now;
                    status.last_error = None;
                    status.last_error_at_ms = None;
                }
                Some(e) => {
                    status.last_error = Some(e.clone());
                    status.last_error_at_ms = Some(now);
                }
            }
        }
        outcome
    }

    /// A digest of the policy folder's files (names and contents); `None` for the built-in
    /// set, which never changes.
    pub fn fingerprint(&self) -> Option<Vec<u8>> {
        let PolicySource::Dir(dir) = &self.source else {
            return None;
        };
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("cedar" | "cedarschema")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let mut context = digest::Context::new(&digest::SHA256);
        for path in names {
            context.update(path.as_os_str().as_encoded_bytes());
            context.update(&[0]);
            // An unreadable file changes the digest too (its reload then reports why).
            match std::fs::read(&path) {
                Ok(bytes) => context.update(&bytes),
                Err(e) => context.update(e.to_string().as_bytes()),
            }
            context.update(&[0]);
        }
        Some(context.finish().as_ref().to_vec())
    }
}
