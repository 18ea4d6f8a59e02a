//! keygate's own work with the audit signing key: signing a checkpoint of the audit chain, and
//! reading the key's public keys so that verification trusts what the provider says, not what
//! the database holds. Only the system's `AuditCheckpoint` task may run these.

use crate::audit::anchor::statement::{self, SIGNING_ALGORITHMS};
use crate::audit::store::Checkpoint;
use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Operation, Reads, Target};
use crate::policy::Action;
use keygate_provider::SignInput;

fn check_algorithm(name: &str, algorithm: &str) -> Result<(), GatewayError> {
    if SIGNING_ALGORITHMS.contains(&algorithm) {
        Ok(())
    } else {
        Err(GatewayError::invalid(
            "signing_key",
            format!(
                "the audit signing key '{name}' is {algorithm}; checkpoints are signed with one of {}",
                SIGNING_ALGORITHMS.join(", ")
            ),
        ))
    }
}

/// Signs `draft` (sequence, head, time, previous) with the primary version of `key`.
pub struct SignAuditCheckpoint {
    pub key: String,
    pub draft: Checkpoint,
}

impl Operation for SignAuditCheckpoint {
    type Output = Checkpoint;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::SignAuditCheckpoint
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "signing_key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Checkpoint, GatewayError> {
        let key = cx.key()?.clone();
        check_algorithm(&key.name, key.algorithm.as_str())?;
        let version = key.primary().clone();
        cx.note_version(version.version);
        cx.detail("checkpoint_sequence", self.draft.sequence);
        cx.detail("head_hash", self.draft.head_hash.clone());
        let public = cx.public_key(&key, &version).await?;
        let mut cp = self.draft;
        cp.key_id = key.id.clone();
        cp.key_name = key.name.clone();
        cp.key_version = version.version;
        cp.algorithm = key.algorithm.as_str().to_string();
        cp.public_key = public.spki_der;
        let text = statement::statement(&cp);
        cp.signature = cx.sign(&key, &version, SignInput::Message(&text)).await?;
        Ok(cp)
    }
}

/// The public keys of every version of `key` that still has one.
pub struct AuditSigningKeys {
    pub key: String,
}

impl Operation for AuditSigningKeys {
    type Output = Vec<Vec<u8>>;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GetPublicKey
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "signing_key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Vec<Vec<u8>>, GatewayError> {
        let key = cx.key()?.clone();
        check_algorithm(&key.name, key.algorithm.as_str())?;
        let mut keys = Vec::new();
        for version in &key.versions {
            keys.push(cx.public_key(&key, version).await?.spki_der);
        }
        cx.detail("versions", keys.len());
        Ok(keys)
    }
}
