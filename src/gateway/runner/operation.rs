//! What an operation is to the runner: an audited action, input checks that need no key, the
//! thing it acts on, and its work once admitted.

use super::exec::Exec;
use crate::gateway::{GatewayError, Limits};
use crate::lifecycle::LifecycleSettings;
use crate::policy::Action;
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
    pub algorithm: Algorithm,
    pub provider: String,
    pub crypto_period: Duration,
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
}

/// One RPC as a value over domain types. Only [`crate::gateway::Gateway::run`] runs it, so no
/// operation can skip or reorder authenticate → check → resolve → authorize → lifecycle →
/// execute → audit.
pub trait Operation: Send + Sync + Sized + 'static {
    type Output: Send + 'static;

    fn action(&self) -> Action;

    /// Input checks that need no key (sizes, names, formats); they run before resolution and
    /// may normalise the input.
    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        let _ = settings;
        Ok(())
    }

    fn target(&self) -> Target<'_>;

    /// A second key the call also uses (ReEncrypt's destination), admitted for the same
    /// action.
    fn second_key(&self) -> Option<&str> {
        None
    }

    /// The work, once admitted: provider calls and catalog changes go through `cx`.
    fn execute(
        self,
        cx: &mut Exec<'_>,
    ) -> impl Future<Output = Result<Self::Output, GatewayError>> + Send;
}
