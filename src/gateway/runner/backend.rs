//! The backend calls an admitted operation may make, and only those: each names an
//! [`Admitted`] key (or the new key, or the provider instance the call was admitted for),
//! never a free URI, so an operation reaches no key that policy and lifecycle did not pass.
//! Key uses are open to every operation; changes to a key in its backend exist only on
//! `Exec<'_, Changes>`, whose key the runner has locked and whose intent is on record.
//!
//! Backend request ids need no handling here: the provider guard notes every one in the
//! call's scope (`keygate_provider::context`) and the runner puts them in the call's event.

use super::Admitted;
use super::exec::{Exec, Subject, not_admitted};
use super::operation::{Changes, Mode};
use crate::catalog::VersionRecord;
use crate::gateway::GatewayError;
use keygate_provider::{
    BatchItem, Capabilities, DataKey, DataKeySpec, KeyProvider, KeySpec, KeyVersionInfo, Listing,
    MasterKeyRotation, OwnRotation, PageRequest, ProviderKey, PublicKeyInfo, SecretBytes,
    SignInput,
};
use std::sync::Arc;
use std::time::Duration;

impl<M: Mode> Exec<'_, M> {
    /// The provider holding an admitted key.
    fn backend(&self, key: &Admitted) -> Result<Arc<dyn KeyProvider>, GatewayError> {
        self.gateway
            .providers
            .get(&key.provider)
            .ok_or_else(|| GatewayError::ProviderMissing {
                key: key.name.clone(),
                provider: key.provider.clone(),
            })
    }

    /// What the backend of an admitted key can do.
    pub fn capabilities(&self, key: &Admitted) -> Result<Capabilities, GatewayError> {
        Ok(self.backend(key)?.capabilities())
    }

    pub async fn encrypt(
        &self,
        key: &Admitted,
        version: &VersionRecord,
        plaintext: &SecretBytes,
        aad: &[u8],
    ) -> Result<Vec<u8>, GatewayError> {
        let backend = self.backend(key)?;
        let at = key.version_ref(version);
        Ok(backend.encrypt(&at, plaintext, aad).await?.value)
    }

    pub async fn decrypt(
        &self,
        key: &Admitted,
        version: &VersionRecord,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<SecretBytes, GatewayError> {
        let backend = self.backend(key)?;
        let at = key.version_ref(version);
        Ok(backend.decrypt(&at, blob, aad).await?.value)
    }

    /// How many items one batch request to the key's backend carries; 0: it has none.
    pub fn batch_limit(&self, key: &Admitted) -> Result<usize, GatewayError> {
        Ok(self.backend(key)?.batch_limit())
    }

    /// Encrypts the items in one backend request; `Err` when the request failed as a whole.
    pub async fn encrypt_batch(
        &self,
        key: &Admitted,
        version: &VersionRecord,
        items: &[BatchItem<'_>],
    ) -> Result<Vec<Result<Vec<u8>, GatewayError>>, GatewayError> {
        let backend = self.backend(key)?;
        let at = key.version_ref(version);
        let results = backend.encrypt_batch(&at, items).await?.value;
        Ok(results
            .into_iter()
            .map(|r| r.map_err(GatewayError::from))
            .collect())
    }

    /// Decrypts the items (blobs of `version`) in one backend request; `Err` when the request
    /// failed as a whole.
    pub async fn decrypt_batch(
        &self,
        key: &Admitted,
        version: &VersionRecord,
        items: &[BatchItem<'_>],
    ) -> Result<Vec<Result<SecretBytes, GatewayError>>, GatewayError> {
        let backend = self.backend(key)?;
        let at = key.version_ref(version);
        let results = backend.decrypt_batch(&at, items).await?.value;
        Ok(results
            .into_iter()
            .map(|r| r.map_err(GatewayError::from))
            .collect())
    }

    pub async fn generate_data_key(
        &self,
        key: &Admitted,
        version: &VersionRecord,
        spec: DataKeySpec,
        aad: &[u8],
    ) -> Result<DataKey, GatewayError> {
        let backend = self.backend(key)?;
        let at = key.version_ref(version);
        Ok(backend.generate_data_key(&at, spec, aad).await?.value)
    }

    pub async fn sign(
        &self,
        key: &Admitted,
        version: &VersionRecord,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>, GatewayError> {
        let backend = self.backend(key)?;
        let at = key.version_ref(version);
        Ok(backend.sign(&at, input).await?.value)
    }

    pub async fn verify(
        &self,
        key: &Admitted,
        version: &VersionRecord,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool, GatewayError> {
        let backend = self.backend(key)?;
        let at = key.version_ref(version);
        Ok(backend.verify(&at, input, signature).await?.value)
    }

    pub async fn public_key(
        &self,
        key: &Admitted,
        version: &VersionRecord,
    ) -> Result<PublicKeyInfo, GatewayError> {
        let backend = self.backend(key)?;
        let at = key.version_ref(version);
        Ok(backend.public_key(&at).await?.value)
    }

    pub async fn mac(
        &self,
        key: &Admitted,
        version: &VersionRecord,
        message: &[u8],
    ) -> Result<Vec<u8>, GatewayError> {
        let backend = self.backend(key)?;
        let at = key.version_ref(version);
        Ok(backend.mac(&at, message).await?.value)
    }

    pub async fn verify_mac(
        &self,
        key: &Admitted,
        version: &VersionRecord,
        message: &[u8],
        tag: &[u8],
    ) -> Result<bool, GatewayError> {
        let backend = self.backend(key)?;
        let at = key.version_ref(version);
        Ok(backend.verify_mac(&at, message, tag).await?.value)
    }

    /// The admitted key as its backend describes it.
    pub async fn describe(&self, key: &Admitted) -> Result<ProviderKey, GatewayError> {
        let backend = self.backend(key)?;
        Ok(backend.describe(&key.provider_uri).await?.value)
    }

    /// The provider instance the call was admitted for (inventory): its name and one page of
    /// what it holds.
    pub async fn list_backend(
        &self,
        page: &PageRequest,
    ) -> Result<(String, Listing), GatewayError> {
        let (name, backend) = match &self.subject {
            Subject::Provider { name, provider } => (name.clone(), provider.clone()),
            _ => return Err(not_admitted("a provider")),
        };
        Ok((name, backend.list(page).await?.value))
    }

    /// Replaces the master key of the provider instance the call was admitted for.
    pub async fn rotate_backend_master_key(
        &self,
    ) -> Result<(String, MasterKeyRotation), GatewayError> {
        let (name, backend) = match &self.subject {
            Subject::Provider { name, provider } => (name.clone(), provider.clone()),
            _ => return Err(not_admitted("a provider")),
        };
        Ok((name, backend.rotate_master_key().await?.value))
    }

    /// What the backend of the key being created can do.
    pub fn new_key_capabilities(&self) -> Result<(&str, Capabilities), GatewayError> {
        match &self.subject {
            Subject::NewKey { provider, .. } => Ok((provider.kind(), provider.capabilities())),
            _ => Err(not_admitted("a new key")),
        }
    }
}

/// Changes to the locked key in its backend.
impl Exec<'_, Changes> {
    /// The locked key and its backend.
    fn locked_backend(&self) -> Result<(Admitted, Arc<dyn KeyProvider>), GatewayError> {
        let key = self.key()?.clone();
        let backend = self.backend(&key)?;
        Ok((key, backend))
    }

    /// Creates the admitted new key in its backend.
    pub async fn create_in_backend(&mut self, spec: &KeySpec) -> Result<ProviderKey, GatewayError> {
        let backend = match &self.subject {
            Subject::NewKey { provider, .. } => provider.clone(),
            _ => return Err(not_admitted("a new key")),
        };
        Ok(backend.create_key(spec).await?.value)
    }

    /// Adds a version in the backend and makes it primary there.
    pub async fn rotate_in_backend(&mut self) -> Result<KeyVersionInfo, GatewayError> {
        let (key, backend) = self.locked_backend()?;
        Ok(backend.rotate(&key.provider_uri).await?.value)
    }

    /// Whether the backend rotates the locked key by itself, and the version it made since the
    /// catalog's newest.
    pub async fn own_rotation_in_backend(&mut self) -> Result<OwnRotation, GatewayError> {
        let (key, backend) = self.locked_backend()?;
        let newest = key.newest();
        let newest = KeyVersionInfo {
            number: newest.version,
            provider_version: newest.provider_version.clone(),
        };
        Ok(backend
            .own_rotation(&key.provider_uri, &newest)
            .await?
            .value)
    }

    /// Stops the versions below `below` working on the backend itself.
    pub async fn retire_versions_in_backend(&mut self, below: u32) -> Result<(), GatewayError> {
        let (key, backend) = self.locked_backend()?;
        backend.retire_versions(&key.provider_uri, below).await?;
        Ok(())
    }

    pub async fn set_enabled_in_backend(&mut self, enabled: bool) -> Result<(), GatewayError> {
        let (key, backend) = self.locked_backend()?;
        backend.set_enabled(&key.provider_uri, enabled).await?;
        // A backend without a key-level switch (Cloud KMS) enables each version, the retired
        // ones too: their floor is set again, so enabling never undoes a retirement.
        if enabled && key.retired_below > 1 {
            backend
                .retire_versions(&key.provider_uri, key.retired_below)
                .await?;
        }
        Ok(())
    }

    pub async fn schedule_destroy_in_backend(
        &mut self,
        window: Duration,
    ) -> Result<(), GatewayError> {
        let (key, backend) = self.locked_backend()?;
        backend.schedule_destroy(&key.provider_uri, window).await?;
        Ok(())
    }

    pub async fn cancel_destroy_in_backend(&mut self) -> Result<(), GatewayError> {
        let (key, backend) = self.locked_backend()?;
        backend.cancel_destroy(&key.provider_uri).await?;
        Ok(())
    }

    /// Destroys the key in its backend; returns what the backend says destruction does to
    /// the material (a cryptographic erasure, …), for the destruction record.
    pub async fn destroy_in_backend(&mut self) -> Result<Option<&'static str>, GatewayError> {
        let (key, backend) = self.locked_backend()?;
        backend.destroy(&key.provider_uri).await?;
        Ok(backend.destruction_method())
    }
}
