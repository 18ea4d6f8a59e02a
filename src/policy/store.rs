//! The policy set in force, and its replacement while the server runs.
//!
//! A reload builds a whole new [`PolicyEngine`] from the source and swaps it in only if it
//! parses and validates, so a bad file keeps the last good set in force; the failure is
//! logged and kept for the reload RPC and `keygate status` to report. The folder is watched
//! by polling its files' names, sizes and modification times: no platform notification API,
//! and an editor's write-rename-replace shows as a change like any other.

use super::{PolicyEngine, PolicyError};
use arc_swap::{ArcSwap, Guard};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Where the policies come from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// The defaults compiled into the binary.
    Builtin,
    /// `policy.dir`: `*.cedar` files and an optional `keygate.cedarschema`.
    Dir(PathBuf),
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Policies in force after the reload (the old set's count when it failed).
    pub policy_count: usize,
    /// Why the new set was refused; `None` when it is in force.
    pub error: Option<String>,
}

pub struct PolicyStore {
    source: PolicySource,
    current: ArcSwap<PolicyEngine>,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyStore({:?})", self.source)
    }
}

impl PolicyStore {
    pub fn load(source: PolicySource) -> Result<Self, PolicyError> {
        let engine = Self::build(&source)?;
        Ok(Self {
            source,
            current: ArcSwap::from_pointee(engine),
            last_error: Mutex::new(None),
        })
    }

    /// A store over one engine (tests, benchmarks).
    pub fn fixed(engine: PolicyEngine) -> Self {
        Self {
            source: PolicySource::Builtin,
            current: ArcSwap::from_pointee(engine),
            last_error: Mutex::new(None),
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

    /// Why the last reload was refused, while the set it tried to replace stays in force.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Builds the source again and puts it in force if it is valid.
    pub fn reload(&self) -> ReloadOutcome {
        let outcome = match Self::build(&self.source) {
            Ok(engine) => {
                let count = engine.policy_count();
                self.current.store(Arc::new(engine));
                tracing::info!(policies = count, "policies reloaded");
                ReloadOutcome {
                    policy_count: count,
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "policy reload refused; the previous policies stay in force");
                ReloadOutcome {
                    policy_count: self.current().policy_count(),
                    error: Some(e.to_string()),
                }
            }
        };
        if let Ok(mut last) = self.last_error.lock() {
            last.clone_from(&outcome.error);
        }
        outcome
    }

    /// Reloads whenever the policy folder changes, until `stop`.
    pub fn watch(self: &Arc<Self>, every: Duration, stop: CancellationToken) {
        let PolicySource::Dir(dir) = &self.source else {
            return;
        };
        let dir = dir.clone();
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let mut seen = fingerprint(&dir);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let now = fingerprint(&dir);
                if now != seen {
                    seen = now;
                    store.reload();
                }
            }
        });
    }
}

/// The folder's policy files as (name, size, modified): what a change changes.
fn fingerprint(dir: &std::path::Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let wanted = name.ends_with(".cedar") || name.ends_with(".cedarschema");
            let meta = entry.metadata().ok()?;
            wanted.then(|| (name, meta.len(), meta.modified().ok()))
        })
        .collect();
    files.sort();
    files
}
