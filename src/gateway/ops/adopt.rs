//! AdoptKey: brings a key a provider holds, which keygate does not manage, into the catalog
//! with an owner and a crypto-period (rules 1 and 2 hold from the start), authorized as the
//! creation of that key would be; its unmanaged-key finding closes.
//!
//! Where AdoptKey is critical (`[approvals] critical`, or a policy asking for approvals), the
//! call stores a [`PendingChange::Adopt`] under a key id it reserves and answers
//! APPROVAL_PENDING; nothing enters the catalog and the finding stays open until the quorum
//! approves, when the adoption runs with that id (src/gateway/approved.rs).

use super::keys::{CreateKey, supported};
use crate::approvals::PendingChange;
use crate::catalog::{KeyRecord, KeyState, VersionRecord};
use crate::gateway::runner::{Changes, Exec, KeyDraft, Operation, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::Action;
use crate::time::now_ms;
use keygate_provider::{KeyUri, ProviderKeyState};
use std::sync::Arc;

pub struct AdoptKey {
    /// The provider's URI for the key (as `keygate inventory` lists it).
    pub provider_uri: String,
    /// The name, owner, crypto-period, environment, labels, provider and algorithm the key
    /// gets (the CLI fills the last two in from the newest scan); `ttl` is not used.
    pub key: CreateKey,
    /// The key id an approved adoption gives the key: the one its request reserved, which
    /// the approvals are bound to. `None` (every call from a client): a new id.
    pub key_id: Option<String>,
}

impl AdoptKey {
    /// The longest provider URI an adoption accepts (bytes).
    pub const MAX_URI_LEN: usize = 2048;
}

impl Operation for AdoptKey {
    type Output = Arc<KeyRecord>;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::AdoptKey
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        if self.provider_uri.is_empty() {
            return Err(GatewayError::invalid(
                "provider_uri",
                "set `provider_uri` to the key's URI as `keygate inventory` lists it",
            ));
        }
        validate::size(
            "provider_uri",
            "provider URI",
            self.provider_uri.len(),
            Self::MAX_URI_LEN,
        )?;
        if self.key.algorithm.is_empty() {
            return Err(GatewayError::invalid(
                "algorithm",
                "set `algorithm` to keygate's name for the key's algorithm (`keygate key adopt` takes it from the newest scan: run `keygate inventory --scan` first, or give --algorithm)",
            ));
        }
        self.key.ttl = None;
        let mut draft = self.key.draft(settings)?;
        if let Some(id) = &self.key_id {
            draft.id.clone_from(id);
        }
        self.key.draft = Some(draft);
        Ok(())
    }

    fn pending_change(&self) -> Option<PendingChange> {
        let draft = self.key.draft.as_ref()?;
        Some(PendingChange::Adopt {
            provider: draft.provider.clone(),
            provider_uri: self.provider_uri.clone(),
            name: draft.name.clone(),
            owner: draft.owner.clone(),
            purpose: draft.purpose.as_str().to_string(),
            algorithm: draft.algorithm.as_str().to_string(),
            environment: draft.environment.clone(),
            crypto_period_seconds: draft.crypto_period.as_secs(),
            labels: draft.labels.clone(),
        })
    }

    fn target(&self) -> Target<'_> {
        match &self.key.draft {
            Some(draft) => Target::NewKey(draft),
            None => Target::Key {
                field: "name",
                key: "",
            },
        }
    }

    fn ready(&self, cx: &Exec<'_, Changes>) -> Result<(), GatewayError> {
        let draft = cx.draft()?;
        supported(cx, draft)?;
        let managed = cx
            .all_keys()
            .into_iter()
            .find(|k| k.provider == draft.provider && k.provider_uri.as_str() == self.provider_uri);
        match managed {
            Some(key) => Err(GatewayError::AlreadyManaged {
                uri: self.provider_uri.clone(),
                key: key.name.clone(),
            }),
            None => Ok(()),
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<Arc<KeyRecord>, GatewayError> {
        let draft: KeyDraft = cx.draft()?.clone();
        let algorithm = supported(cx, &draft)?;
        cx.detail("provider_uri", self.provider_uri.clone());
        // `ready` refused a key already in the catalog; this also refuses one a concurrent
        // adoption (under another name, so another name reservation) is bringing in, and is
        // held until the insert below is done.
        let _reservation = cx.reserve_provider_key(&self.provider_uri)?;
        let uri = KeyUri::new(self.provider_uri.clone());
        let held = cx.describe_for_adoption(&uri).await?;
        // The backend may name the key in another form than the request did (AWS answers
        // with the ARN for an alias or a key id): that form is the one its listings show and
        // the catalog stores for keys keygate created, so it is held too (a managed key is
        // not adopted again under another spelling) and it is what the record keeps.
        let _canonical = if held.uri.as_str() != self.provider_uri {
            Some(cx.reserve_provider_key(held.uri.as_str())?)
        } else {
            None
        };
        if held.algorithm != algorithm {
            return Err(GatewayError::invalid(
                "algorithm",
                format!(
                    "provider '{}' says {} is {}, not {algorithm}",
                    draft.provider,
                    self.provider_uri,
                    held.algorithm.as_str()
                ),
            ));
        }
        let state = match held.state {
            ProviderKeyState::Enabled => KeyState::Enabled,
            ProviderKeyState::Disabled => KeyState::Disabled,
            other => {
                return Err(GatewayError::invalid(
                    "provider_uri",
                    format!(
                        "{} is {other:?} in provider '{}': only a usable key is adopted",
                        self.provider_uri, draft.provider
                    ),
                ));
            }
        };
        if held.versions.is_empty() {
            return Err(GatewayError::invalid(
                "provider_uri",
                format!(
                    "provider '{}' lists no version of {}",
                    draft.provider, self.provider_uri
                ),
            ));
        }
        let now = now_ms();
        // The backend's version dates are not read: the crypto-period runs from adoption,
        // the first moment keygate answers for the key.
        let versions = held
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| VersionRecord {
                version: i as u32 + 1,
                provider_version: v.provider_version.clone(),
                created_at_ms: now,
            })
            .collect();
        let record = KeyRecord {
            id: draft.id,
            name: draft.name,
            owner: draft.owner,
            purpose: draft.purpose,
            environment: draft.environment,
            algorithm,
            provider: draft.provider,
            provider_uri: held.uri.clone(),
            state,
            crypto_period: draft.crypto_period,
            created_at_ms: now,
            rotation_due_at_ms: crate::time::after(now, draft.crypto_period),
            destruction_at_ms: None,
            labels: draft.labels,
            versions,
            retired_below: 0,
            expires_at_ms: None,
            primary_version: None,
        };
        let record = cx.insert_key(record).await?;
        cx.note_version(record.newest().version);
        cx.detail("algorithm", record.algorithm.as_str());
        cx.detail("owner", record.owner.clone());
        cx.detail("crypto_period_seconds", record.crypto_period.as_secs());
        cx.detail("versions", record.versions.len());
        // The key is in the catalog whatever happens here; the next scan closes the finding
        // if this cannot.
        match cx
            .posture()
            .store
            .close_adopted(
                &record.provider,
                record.provider_uri.as_str(),
                &record.name,
                now,
            )
            .await
        {
            Ok(closed) => cx.detail("findings_closed", closed),
            Err(e) => {
                tracing::warn!(key = %record.name, error = %e, "adopted key's finding stays open until the next scan")
            }
        }
        Ok(record)
    }
}
