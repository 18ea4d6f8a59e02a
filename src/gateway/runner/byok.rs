//! What a BYOK import may do beyond creating its key: generate the key wrappable in its HSM
//! (the admitted new key's provider), wrap it there for a target, reach the targets it was
//! admitted with (only for import), and register each copy as a key of its own.
//!
//! The targets are part of the admitted request: the ByokImport decision covers the new key
//! and where its copies go, as CreateKey's covers the new key and its provider.

use super::exec::{Exec, Subject, not_admitted};
use super::operation::Changes;
use crate::catalog::{KeyFamily, KeyRecord, KeyState};
use crate::gateway::GatewayError;
use crate::lifecycle::destruction::{Check, Ending};
use keygate_provider::{
    ImportParams, KeyProvider, KeySpec, ProviderKey, VersionRef, WrappedForImport,
};
use std::sync::Arc;
use std::time::Duration;

impl Exec<'_, Changes> {
    /// The HSM: the new key's provider, or (retrying a family) the admitted original's.
    fn source(&self) -> Result<Arc<dyn KeyProvider>, GatewayError> {
        match &self.subject {
            Subject::NewKey { provider, .. } => Ok(provider.clone()),
            Subject::Key(key) => self.gateway.providers.get(&key.provider).ok_or_else(|| {
                GatewayError::ProviderMissing {
                    key: key.name.clone(),
                    provider: key.provider.clone(),
                }
            }),
            _ => Err(not_admitted("a new key")),
        }
    }

    /// Generates the admitted new key in its HSM, sensitive and extractable only under wrap.
    pub async fn create_wrappable_in_backend(
        &mut self,
        spec: &KeySpec,
    ) -> Result<ProviderKey, GatewayError> {
        let backend = match &self.subject {
            Subject::NewKey { provider, .. } => provider.clone(),
            _ => return Err(not_admitted("a new key")),
        };
        Ok(backend.create_wrappable_key(spec).await?.value)
    }

    /// Wraps the new key's version, inside its HSM, under a target's import parameters.
    pub async fn wrap_in_source(
        &self,
        at: &VersionRef,
        params: &ImportParams,
    ) -> Result<WrappedForImport, GatewayError> {
        Ok(self.source()?.wrap_for_import(at, params).await?.value)
    }

    /// An import target the call names.
    pub fn import_target(&self, name: &str) -> Result<Arc<dyn KeyProvider>, GatewayError> {
        self.gateway
            .providers
            .get(name)
            .ok_or_else(|| GatewayError::invalid("targets", format!("no provider named '{name}'")))
    }

    /// Registers an imported copy as a keygate key of its own.
    pub async fn insert_copy(&mut self, record: KeyRecord) -> Result<Arc<KeyRecord>, GatewayError> {
        let reservation = self.gateway.catalog.reserve_name(&record.name).await?;
        Ok(self.gateway.catalog.insert(&reservation, record).await?)
    }

    pub async fn save_family(&self, family: &KeyFamily) -> Result<(), GatewayError> {
        Ok(self.gateway.catalog.save_family(family).await?)
    }

    /// Schedules the destruction of a copy of the admitted BYOK original with it (a family
    /// destroyed as a whole), as ScheduleKeyDestruction would on the copy alone: its record
    /// (the caller's checklist for it, and this call's requester and approval, so the
    /// scheduler's DestroyKey finds it authorized), its backend's own schedule, and its
    /// state. The original's decision and approval cover its copies, as ByokImport's covered
    /// making them: a copy has the original's owner and environment. The copy is locked after
    /// the original (which the runner holds), always in that order; a copy whose state
    /// changed since `expected` was read is a conflict.
    pub async fn schedule_copy_destruction(
        &mut self,
        expected: &KeyRecord,
        window: Duration,
        destruction_at_ms: i64,
        checklist: Vec<Check>,
    ) -> Result<Arc<KeyRecord>, GatewayError> {
        let original = self.key()?.clone();
        let is_copy = expected
            .labels
            .get("byok-original")
            .is_some_and(|id| id == &original.id);
        if !is_copy {
            return Err(not_admitted(&format!("key '{}'", expected.name)));
        }
        let lock = self.gateway.catalog.lock(&expected.id).await;
        let copy = self.gateway.catalog.current(&lock)?;
        if copy.state != expected.state {
            return Err(GatewayError::invalid(
                "key",
                format!(
                    "copy '{}' became {} while its family's destruction was being scheduled; try again",
                    copy.name, copy.state
                ),
            ));
        }
        let backend = self.gateway.providers.get(&copy.provider).ok_or_else(|| {
            GatewayError::ProviderMissing {
                key: copy.name.clone(),
                provider: copy.provider.clone(),
            }
        })?;
        let mut record = self.destruction_record(&copy, window, destruction_at_ms, checklist);
        record.id = format!("{}/{}", record.id, copy.id);
        self.records()
            .scheduled(&record)
            .await
            .map_err(crate::catalog::CatalogError::from)?;
        let scheduled = async {
            backend.schedule_destroy(&copy.provider_uri, window).await?;
            Ok::<_, GatewayError>(
                self.gateway
                    .catalog
                    .set_state(
                        &lock,
                        expected.state,
                        KeyState::PendingDestruction,
                        Some(destruction_at_ms),
                    )
                    .await?,
            )
        }
        .await;
        if scheduled.is_err() {
            // A refusal closes the copy's record, as it closes a key's own.
            self.records()
                .ended(
                    &copy,
                    Ending::Cancelled {
                        by: &self.actor_name(),
                        at_ms: crate::time::now_ms(),
                    },
                )
                .await
                .map_err(crate::catalog::CatalogError::from)?;
        }
        scheduled
    }
}

impl<M: super::Mode> Exec<'_, M> {
    pub async fn key_family(&self, key_id: &str) -> Result<Option<KeyFamily>, GatewayError> {
        Ok(self.gateway.catalog.family(key_id).await?)
    }

    pub async fn key_families(&self) -> Result<Vec<KeyFamily>, GatewayError> {
        Ok(self.gateway.catalog.families().await?)
    }
}
