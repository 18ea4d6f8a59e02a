//! What a BYOK import may do beyond creating its key: generate the key wrappable in its HSM
//! (the admitted new key's provider), wrap it there for a target, reach the targets it was
//! admitted with (only for import), and register each copy as a key of its own.
//!
//! The targets are part of the admitted request: the ByokImport decision covers the new key
//! and where its copies go, as CreateKey's covers the new key and its provider.

use super::exec::{Exec, Subject, not_admitted};
use super::operation::Changes;
use crate::catalog::{KeyFamily, KeyRecord};
use crate::gateway::GatewayError;
use keygate_provider::{
    ImportParams, KeyProvider, KeySpec, ProviderKey, VersionRef, WrappedForImport,
};
use std::sync::Arc;

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
        let reservation = self.gateway.catalog.reserve_name(&record.name)?;
        Ok(self.gateway.catalog.insert(&reservation, record).await?)
    }

    pub async fn save_family(&self, family: &KeyFamily) -> Result<(), GatewayError> {
        Ok(self.gateway.catalog.save_family(family).await?)
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
