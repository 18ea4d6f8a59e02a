//! The inventory: what a backend holds, managed or not.

use crate::catalog::KeyRecord;
use crate::catalog::KeyState;
use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Operation, Reads, Target};
use crate::policy::Action;
use keygate_provider::{ListedKey, PageRequest, ProviderKeyState};
use std::collections::HashMap;
use std::sync::Arc;

pub struct ListInventory {
    /// Empty: the default provider.
    pub provider: String,
    pub page_size: u32,
    pub page_token: String,
}

/// One key a backend holds.
pub struct InventoryEntry {
    pub provider: String,
    pub provider_uri: String,
    /// Empty when the backend's algorithm has no keygate name.
    pub algorithm: String,
    pub state: KeyState,
    /// The catalog's key id and name when keygate manages it.
    pub managed: Option<(String, String)>,
}

pub struct InventoryPage {
    pub keys: Vec<InventoryEntry>,
    pub next_page_token: String,
}

pub(super) fn state_of(state: ProviderKeyState) -> KeyState {
    match state {
        ProviderKeyState::Enabled => KeyState::Enabled,
        ProviderKeyState::Disabled => KeyState::Disabled,
        ProviderKeyState::PendingDestruction => KeyState::PendingDestruction,
        ProviderKeyState::Destroyed => KeyState::Destroyed,
    }
}

impl Operation for ListInventory {
    type Output = InventoryPage;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ListInventory
    }

    fn target(&self) -> Target<'_> {
        Target::Provider(&self.provider)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<InventoryPage, GatewayError> {
        let page = PageRequest {
            page_size: super::page_size(self.page_size),
            page_token: self.page_token,
        };
        let (name, listing) = cx.list_backend(&page).await?;
        let managed = Managed::new(cx.all_keys());
        let keys: Vec<InventoryEntry> = listing
            .keys
            .into_iter()
            .map(|k| {
                let known = managed.find(&name, &k);
                InventoryEntry {
                    provider: name.clone(),
                    provider_uri: k.uri.to_string(),
                    algorithm: k
                        .algorithm
                        .map(|a| a.as_str().to_string())
                        .unwrap_or_default(),
                    state: state_of(k.state),
                    managed: known.map(|r| (r.id.clone(), r.name.clone())),
                }
            })
            .collect();
        cx.detail("returned", keys.len());
        cx.detail(
            "unmanaged",
            keys.iter().filter(|k| k.managed.is_none()).count(),
        );
        Ok(InventoryPage {
            keys,
            next_page_token: listing.next_page_token,
        })
    }
}

/// Which catalog key a listed provider key is: the one with its provider URI on that
/// provider, or the one whose id the backend carries (a tag written at creation).
pub(super) struct Managed {
    by_uri: HashMap<(String, String), Arc<KeyRecord>>,
    by_id: HashMap<String, Arc<KeyRecord>>,
}

impl Managed {
    pub(super) fn new(keys: Vec<Arc<KeyRecord>>) -> Self {
        let by_uri = keys
            .iter()
            .map(|k| ((k.provider.clone(), k.provider_uri.to_string()), k.clone()))
            .collect();
        let by_id = keys.into_iter().map(|k| (k.id.clone(), k)).collect();
        Self { by_uri, by_id }
    }

    pub(super) fn find(&self, provider: &str, listed: &ListedKey) -> Option<Arc<KeyRecord>> {
        self.by_uri
            .get(&(provider.to_string(), listed.uri.to_string()))
            .or_else(|| {
                listed
                    .keygate_id
                    .as_deref()
                    .and_then(|id| self.by_id.get(id))
                    .filter(|r| r.provider == provider)
            })
            .cloned()
    }
}

/// Replaces a provider instance's master key (the local provider's KEK) and rewraps every key
/// under it. It changes no key in the catalog: each key keeps its material and versions.
pub struct RotateMasterKey {
    /// Empty: the default provider.
    pub provider: String,
}

impl Operation for RotateMasterKey {
    type Output = (String, keygate_provider::MasterKeyRotation);
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::RotateMasterKey
    }

    fn target(&self) -> Target<'_> {
        Target::Provider(&self.provider)
    }

    async fn execute(
        self,
        cx: &mut Exec<'_, Reads>,
    ) -> Result<(String, keygate_provider::MasterKeyRotation), GatewayError> {
        let (name, rotation) = cx.rotate_backend_master_key().await?;
        cx.detail("generation", rotation.generation);
        cx.detail("rewrapped", rotation.rewrapped);
        if let Some(sealed) = &rotation.sealed_by {
            cx.detail("root_key_sealed_by_provider", sealed.provider.clone());
            cx.detail("root_key_sealed_by_key", sealed.uri.as_str());
            if let Some(version) = sealed.version {
                cx.detail("root_key_sealed_by_version", version);
            }
        }
        Ok((name, rotation))
    }
}
