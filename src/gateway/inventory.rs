//! The inventory: what a backend holds, managed or not.

use super::{CallMeta, Gateway, GatewayError};
use crate::catalog::KeyState;
use crate::pb;
use crate::policy::{Action, Resource};
use keygate_provider::{PageRequest, ProviderKeyState};
use std::collections::HashMap;

fn state_name(state: ProviderKeyState) -> &'static str {
    match state {
        ProviderKeyState::Enabled => KeyState::Enabled.as_str(),
        ProviderKeyState::Disabled => KeyState::Disabled.as_str(),
        ProviderKeyState::PendingDestruction => KeyState::PendingDestruction.as_str(),
        ProviderKeyState::Destroyed => KeyState::Destroyed.as_str(),
    }
}

impl Gateway {
    pub async fn list_inventory(
        &self,
        meta: &CallMeta,
        req: pb::ListInventoryRequest,
    ) -> Result<pb::ListInventoryResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::ListInventory);
        let result = async {
            scope.authenticate()?;
            let name = if req.provider.is_empty() {
                self.providers.default_name().to_string()
            } else {
                req.provider.clone()
            };
            scope.authorize(Action::ListInventory, &Resource::Provider(&name), 0)?;
            scope.detail("provider", name.clone());
            let provider = self.providers.get(&name).ok_or_else(|| {
                GatewayError::NotFound(format!(
                    "provider '{}' is not configured; configured: {}",
                    super::validate::truncate(&name, 64),
                    self.providers.names().join(", ")
                ))
            })?;
            let page = PageRequest {
                page_size: match req.page_size {
                    0 => 100,
                    n => n.min(1000),
                },
                page_token: req.page_token.clone(),
            };
            let listing = self.provider_call(&name, provider.list(&page)).await?;
            scope.note_provider_request(listing.request_id);
            // Managed: the catalog holds a key with this provider URI or this keygate id.
            let by_uri: HashMap<String, _> = self
                .catalog
                .all()
                .into_iter()
                .filter(|k| k.provider == name)
                .map(|k| (k.provider_uri.to_string(), k))
                .collect();
            let keys: Vec<pb::InventoryKey> = listing
                .value
                .keys
                .into_iter()
                .map(|k| {
                    let known = by_uri.get(k.uri.as_str()).cloned().or_else(|| {
                        k.keygate_id
                            .as_deref()
                            .and_then(|id| self.catalog.get_by_id(id))
                            .filter(|r| r.provider == name)
                    });
                    pb::InventoryKey {
                        provider: name.clone(),
                        provider_uri: k.uri.to_string(),
                        algorithm: k
                            .algorithm
                            .map(|a| a.as_str().to_string())
                            .unwrap_or_default(),
                        state: state_name(k.state).into(),
                        managed: known.is_some(),
                        key_id: known.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                        key_name: known.as_ref().map(|r| r.name.clone()).unwrap_or_default(),
                    }
                })
                .collect();
            scope.detail("returned", keys.len());
            scope.detail("unmanaged", keys.iter().filter(|k| !k.managed).count());
            Ok(pb::ListInventoryResponse {
                keys,
                next_page_token: listing.value.next_page_token,
            })
        }
        .await;
        scope.finish(result).await
    }
}
