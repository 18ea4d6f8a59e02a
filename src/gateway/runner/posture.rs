//! What posture operations may reach: every provider's listing (only for an operation
//! admitted on the posture), the posture store, and whether an owner is known.

use super::exec::{Exec, Subject, not_admitted};
use super::operation::{Changes, Mode};
use crate::catalog::KeyRecord;
use crate::catalog::{CatalogError, ProviderKeyReservation};
use crate::gateway::GatewayError;
use crate::posture::Posture;
use keygate_provider::{KeyUri, ListedKey, PageRequest, ProviderKey, SettingConflict};
use std::time::{Duration, Instant};

/// Pages one listing may take before it is cut off as runaway (a backend handing back the
/// same token forever).
const MAX_PAGES: usize = 10_000;

/// One provider instance's whole listing, or why it failed, and how long it took.
pub struct ProviderScan {
    pub provider: String,
    pub keys: Result<Vec<ListedKey>, GatewayError>,
    pub elapsed: Duration,
}

impl<M: Mode> Exec<'_, M> {
    pub fn posture(&self) -> &Posture {
        &self.gateway.posture
    }

    /// Each configured provider instance's kind (`pkcs11`, `aws-kms`, …), by instance name.
    pub fn provider_kinds(&self) -> std::collections::BTreeMap<String, &'static str> {
        let registry = &self.gateway.providers;
        registry
            .names()
            .into_iter()
            .filter_map(|name| registry.get(&name).map(|p| (name, p.kind())))
            .collect()
    }

    /// Every configured principal (for the separation of duties in the compliance report).
    pub fn principals(&self) -> Vec<std::sync::Arc<crate::auth::Principal>> {
        self.gateway.tokens.principals()
    }

    /// The newest `limit` destruction records of every key, newest first (only for an
    /// operation admitted on the posture: it reads every key's records at once).
    pub async fn destruction_records_newest(
        &self,
        limit: u32,
    ) -> Result<Vec<crate::lifecycle::destruction::DestructionRecord>, GatewayError> {
        if !matches!(self.subject, Subject::Posture) {
            return Err(not_admitted("the key posture"));
        }
        Ok(self
            .gateway
            .destructions
            .newest(limit)
            .await
            .map_err(CatalogError::from)?)
    }

    /// Whether `owner` names a configured principal or team.
    pub fn owner_known(&self, owner: &str) -> bool {
        self.gateway.tokens.owner_kind(owner) != crate::auth::OwnerKind::Unknown
    }

    /// The backend settings of `key` that contradict keygate's, as its provider reads them
    /// (through its guard); `None` where the provider reads none.
    pub async fn setting_conflicts(
        &self,
        key: &KeyRecord,
    ) -> Option<Result<Vec<SettingConflict>, GatewayError>> {
        if !matches!(self.subject, Subject::Posture) {
            return Some(Err(not_admitted("the key posture")));
        }
        let provider = self.gateway.providers.get(&key.provider)?;
        if !provider.capabilities().settings {
            return None;
        }
        Some(
            provider
                .setting_conflicts(&key.provider_uri)
                .await
                .map(|r| r.value)
                .map_err(GatewayError::from),
        )
    }

    /// Every configured provider instance's full listing, one instance after another (each
    /// through its provider kit, so its rate limit and circuit breaker hold).
    pub async fn list_every_provider(&self) -> Result<Vec<ProviderScan>, GatewayError> {
        if !matches!(self.subject, Subject::Posture) {
            return Err(not_admitted("the key posture"));
        }
        let mut scans = Vec::new();
        for name in self.gateway.providers.names() {
            let Some(provider) = self.gateway.providers.get(&name) else {
                continue;
            };
            let began = Instant::now();
            let mut keys = Vec::new();
            let mut page = PageRequest {
                page_size: 1000,
                page_token: String::new(),
            };
            // A listing counts only once its last page is in: a cut-off one is a failed
            // listing, or the keys past the cut would be taken as vanished and their findings
            // closed on no evidence.
            let mut outcome = Err(GatewayError::Internal(format!(
                "provider '{name}' was still handing out pages after {MAX_PAGES}; the listing is incomplete"
            )));
            for _ in 0..MAX_PAGES {
                match provider.list(&page).await {
                    Ok(listing) => {
                        keys.extend(listing.value.keys);
                        if listing.value.next_page_token.is_empty() {
                            outcome = Ok(());
                            break;
                        }
                        page.page_token = listing.value.next_page_token;
                    }
                    Err(e) => {
                        outcome = Err(GatewayError::from(e));
                        break;
                    }
                }
            }
            scans.push(ProviderScan {
                provider: name,
                keys: outcome.map(|()| keys),
                elapsed: began.elapsed(),
            });
        }
        Ok(scans)
    }
}

impl<'a> Exec<'a, Changes> {
    /// Holds the provider key an adoption names (in the new key's provider) until the call
    /// ends: refused as already managed when a catalog key has it or another adoption holds
    /// it, so one provider key never gets two catalog entries.
    pub fn reserve_provider_key(
        &self,
        uri: &str,
    ) -> Result<ProviderKeyReservation<'a>, GatewayError> {
        let Subject::NewKey { draft, .. } = &self.subject else {
            return Err(not_admitted("a new key"));
        };
        let catalog: &'a crate::catalog::Catalog = &self.gateway.catalog;
        catalog
            .reserve_provider_key(&draft.provider, uri)
            .map_err(|e| match e {
                CatalogError::ProviderKeyTaken { uri, key } => {
                    GatewayError::AlreadyManaged { uri, key }
                }
                other => other.into(),
            })
    }

    /// The provider key an adoption names, as its backend (the new key's provider)
    /// describes it.
    pub async fn describe_for_adoption(&self, uri: &KeyUri) -> Result<ProviderKey, GatewayError> {
        match &self.subject {
            Subject::NewKey { provider, .. } => Ok(provider.describe(uri).await?.value),
            _ => Err(not_admitted("a new key")),
        }
    }
}
