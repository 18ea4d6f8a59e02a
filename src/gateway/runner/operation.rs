//! What an operation is to the runner: an audited action, input checks that need no key, the
//! thing it acts on, and its work once admitted.

use super::exec::Exec;
use crate::approvals::PendingChange;
use crate::gateway::{GatewayError, Limits};
use crate::lifecycle::LifecycleSettings;
use crate::policy::{Action, OperationFacts};
use keygate_provider::{Algorithm, KeyPurpose};
use std::future::Future;
use std::time::Duration;

/// What [`Operation::check`] may consult.
pub struct Settings<'a> {
    pub limits: &'a Limits,
    pub lifecycle: &'a LifecycleSettings,
    /// The provider instance CreateKey uses when the request names none.
    pub default_provider: &'a str,
}

/// A key about to be created, as authorization sees it.
#[derive(Debug, Clone)]
pub struct KeyDraft {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub purpose: KeyPurpose,
    pub environment: String,
    pub algorithm: RequestedAlgorithm,
    pub provider: String,
    pub crypto_period: Duration,
    pub labels: std::collections::BTreeMap<String, String>,
    /// A short-lived key's time to live.
    pub ttl: Option<Duration>,
}

/// The algorithm a new key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedAlgorithm {
    Known(Algorithm),
    /// A retired algorithm keygate names but no provider creates (RSA below 2048 bits, SHA-1
    /// signatures, HMAC-SHA1), so that policy (rule 6) refuses it by name.
    Retired {
        name: &'static str,
        purpose: KeyPurpose,
    },
}

/// The retired algorithms keygate recognises, and what each was for.
const RETIRED: &[(&str, KeyPurpose)] = &[
    ("rsa-1024-oaep", KeyPurpose::Encrypt),
    ("rsa-1024-pss", KeyPurpose::Sign),
    ("rsa-1024-pkcs1", KeyPurpose::Sign),
    ("rsa-2048-pkcs1-sha1", KeyPurpose::Sign),
    ("ecdsa-p256-sha1", KeyPurpose::Sign),
    ("hmac-sha1", KeyPurpose::Mac),
];

impl RequestedAlgorithm {
    pub fn parse(name: &str) -> Result<Self, keygate_provider::UnknownAlgorithm> {
        match name.parse::<Algorithm>() {
            Ok(known) => Ok(RequestedAlgorithm::Known(known)),
            Err(unknown) => RETIRED
                .iter()
                .find(|(retired, _)| *retired == name)
                .map(|&(name, purpose)| RequestedAlgorithm::Retired { name, purpose })
                .ok_or(unknown),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            RequestedAlgorithm::Known(a) => a.as_str(),
            RequestedAlgorithm::Retired { name, .. } => name,
        }
    }

    pub fn purpose(&self) -> KeyPurpose {
        match self {
            RequestedAlgorithm::Known(a) => a.purpose(),
            RequestedAlgorithm::Retired { purpose, .. } => *purpose,
        }
    }
}

impl std::fmt::Display for RequestedAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an operation acts on. The runner resolves it, authorizes the action on it and checks
/// the key's lifecycle state before [`Operation::execute`] runs.
pub enum Target<'a> {
    /// A key named by the caller (name or id); `field` is the request field.
    Key {
        field: &'static str,
        key: &'a str,
    },
    /// The key (and version) a keygate ciphertext names.
    Ciphertext(&'a [u8]),
    /// A key to be created.
    NewKey(&'a KeyDraft),
    Catalog,
    AuditLog,
    /// A provider instance by name (empty: the default one).
    Provider(&'a str),
    /// The approval requests as a whole (listing, reading one).
    Approvals,
    /// One approval request, by id, to decide on: admitted on the request's key, with its
    /// requester in the policy context.
    ApprovalRequest(&'a str),
    /// The policy set (reloading, explaining).
    Policies,
    /// Key posture as a whole: inventory scans across every provider, and their findings.
    Posture,
}

/// Whether an operation changes keys, as a type: only [`Changes`] operations get the catalog's
/// write methods on their [`Exec`], and for exactly those the runner takes the key's lock and
/// writes an intent event before they run. An operation cannot change a key without both.
pub trait Mode: Send + Sync + 'static {
    const CHANGES: bool;
}

/// Reads keys or uses them; changes nothing in the catalog.
pub enum Reads {}

/// Creates keys or changes their versions or state.
pub enum Changes {}

impl Mode for Reads {
    const CHANGES: bool = false;
}

impl Mode for Changes {
    const CHANGES: bool = true;
}

/// One RPC as a value over domain types. Only [`crate::gateway::Gateway::run`] runs it, so no
/// operation can skip or reorder authenticate → check → resolve → authorize → lifecycle →
/// ready → (intent) → execute → audit.
pub trait Operation: Send + Sync + Sized + 'static {
    type Output: Send + 'static;
    type Mode: Mode;

    fn action(&self) -> Action;

    /// Input checks that need no key (sizes, names, formats); they run before resolution and
    /// may normalise the input.
    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        let _ = settings;
        Ok(())
    }

    fn target(&self) -> Target<'_>;

    /// Facts about what the call asks for, for policies (`context.new_owner`,
    /// `context.pending_window_seconds`, …). Runs after [`Operation::check`].
    fn policy_context(&self, facts: &mut OperationFacts) {
        let _ = facts;
    }

    /// The change a critical call stores to run once approved, with every parameter it runs
    /// with; `None`: it cannot wait for approvals (the runner then refuses it when policy asks
    /// for them). Runs after [`Operation::check`].
    fn pending_change(&self) -> Option<PendingChange> {
        None
    }

    /// What a change that names no key is about (the finding an acknowledgement is for, its
    /// reason), recorded in its intent event and so in its outcome event too: an intent
    /// must say what is about to change. Runs after [`Operation::check`].
    fn intent_details(&self) -> Vec<(&'static str, serde_json::Value)> {
        Vec::new()
    }

    /// A second key the call also uses (ReEncrypt's destination), admitted for the same
    /// action.
    fn second_key(&self) -> Option<&str> {
        None
    }

    /// Checks on the admitted key (for changes, as it is under its lock) that decide whether
    /// the call goes ahead at all, before any intent is recorded or backend called.
    fn ready(&self, cx: &Exec<'_, Self::Mode>) -> Result<(), GatewayError> {
        let _ = cx;
        Ok(())
    }

    /// The work, once admitted: provider calls and catalog changes go through `cx`.
    fn execute(
        self,
        cx: &mut Exec<'_, Self::Mode>,
    ) -> impl Future<Output = Result<Self::Output, GatewayError>> + Send;
}
