//! Key posture: ScanPosture (every provider's listing joined with the catalog, recorded as a
//! snapshot, findings brought up to date), GetPostureInventory, ListFindings,
//! AcknowledgeFinding.

use super::inventory::{Managed, state_of};
use super::{posture_audit, posture_settings};
use crate::catalog::KeyRecord;
use crate::gateway::GatewayError;
use crate::gateway::runner::{Changes, Exec, Operation, Reads, Target};
use crate::page_token;
use crate::policy::Action;
use crate::posture::rules::{self, Inputs};
use crate::posture::store::{FindingFilter, InventoryFilter, ScanRecord};
use crate::posture::usage::{self, UsageInputs};
use crate::posture::{
    Acknowledgement, Finding, ProviderListing, Rule, ScanSummary, ScannedKey, Severity,
};
use crate::posture::{Violation, families};
use crate::time::now_ms;
use std::collections::HashSet;
use std::sync::Arc;

/// Runs one inventory scan now.
pub struct ScanPosture;

impl Operation for ScanPosture {
    type Output = ScanSummary;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ScanPosture
    }

    fn target(&self) -> Target<'_> {
        Target::Posture
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<ScanSummary, GatewayError> {
        let started_at_ms = now_ms();
        let provider_scans = cx.list_every_provider().await?;
        // One catalog snapshot, taken once every listing is in, for both the join and the
        // rules: a key adopted while the providers were being listed is then managed in this
        // scan too (a snapshot from before the listing would reopen the unmanaged-key finding
        // its adoption just closed). A key created after its provider was listed is not in
        // that listing; the rules leave it out of missing-from-provider.
        let keys = cx.all_keys();
        let managed = Managed::new(keys.clone());
        let mut listings = Vec::new();
        let mut scanned = Vec::new();
        let mut listed = HashSet::new();
        for scan in provider_scans {
            let elapsed_ms = u64::try_from(scan.elapsed.as_millis()).unwrap_or(u64::MAX);
            match scan.keys {
                Ok(keys) => {
                    listings.push(ProviderListing {
                        provider: scan.provider.clone(),
                        keys: keys.len() as u64,
                        elapsed_ms,
                        error: String::new(),
                    });
                    for key in keys {
                        scanned.push(ScannedKey {
                            key_id: managed
                                .find(&scan.provider, &key)
                                .map(|r| r.id.clone())
                                .unwrap_or_default(),
                            provider: scan.provider.clone(),
                            provider_uri: key.uri.to_string(),
                            algorithm: key
                                .algorithm
                                .map(|a| a.as_str().to_string())
                                .unwrap_or_default(),
                            state: state_of(key.state).as_str().to_string(),
                            change: String::new(),
                        });
                    }
                    listed.insert(scan.provider);
                }
                Err(e) => listings.push(ProviderListing {
                    provider: scan.provider,
                    keys: 0,
                    elapsed_ms,
                    error: e.to_string(),
                }),
            }
        }
        // A clone (one pool handle) so the rules below may record details on `cx`.
        let store = cx.posture().store.clone();
        let scanned = store.mark_changes(scanned, &listed).await?;
        let finished_at_ms = now_ms();
        let owner_known = |owner: &str| cx.owner_known(owner);
        let mut violations = rules::evaluate(
            &scanned,
            &Inputs {
                keys: &keys,
                listed_providers: &listed,
                owner_known: &owner_known,
                system_keys: &cx.posture().system_keys,
                listed_from_ms: started_at_ms,
                now_ms: finished_at_ms,
                destruction_grace: cx.posture().settings.destruction_grace,
            },
        );
        violations.extend(audit_and_family_violations(cx, &keys, finished_at_ms).await?);
        let (conflicts, undecided) = posture_settings::read(cx, &keys, &scanned).await?;
        violations.extend(conflicts);
        let started_by = cx.actor_name();
        let summary = store
            .record_scan(ScanRecord {
                started_at_ms,
                finished_at_ms,
                started_by: &started_by,
                listings: &listings,
                keys: &scanned,
                violations: &violations,
                undecided: &undecided,
            })
            .await?;
        cx.detail("scan_id", summary.scan_id);
        cx.detail("keys", summary.keys);
        cx.detail("unmanaged", summary.unmanaged);
        cx.detail("appeared", summary.appeared);
        cx.detail("vanished", summary.vanished);
        cx.detail("findings_opened", summary.opened);
        cx.detail("findings_closed", summary.closed);
        let failed: Vec<&str> = summary
            .listings
            .iter()
            .filter(|l| !l.error.is_empty())
            .map(|l| l.provider.as_str())
            .collect();
        if !failed.is_empty() {
            cx.detail("providers_failed", failed.join(","));
        }
        Ok(summary)
    }
}

/// The rules that read the audit window and the BYOK families besides the scan.
async fn audit_and_family_violations(
    cx: &mut Exec<'_, Reads>,
    keys: &[Arc<KeyRecord>],
    now_ms: i64,
) -> Result<Vec<Violation>, GatewayError> {
    let settings = cx.posture().settings.clone();
    let since =
        now_ms.saturating_sub(i64::try_from(settings.audit_window.as_millis()).unwrap_or(i64::MAX));
    let window = posture_audit::read(cx, since).await?;
    let families = cx.key_families().await?;
    let principal_environment = |name: &str| {
        let p = cx.principal(name)?;
        match p.environments.as_slice() {
            [one] if one != "*" => Some(one.clone()),
            _ => None,
        }
    };
    let inputs = UsageInputs {
        keys,
        window: settings.audit_window,
        principal_environment: &principal_environment,
        networks: &settings.networks,
        truncated: window.truncated,
    };
    let mut out = usage::bypass_violations(&window.bypasses, &inputs);
    out.extend(usage::environment_violations(&window.uses, &inputs));
    out.extend(families::family_violations(&families, keys, now_ms));
    cx.detail("bypass_records", window.bypasses.len());
    cx.detail("key_uses_read", window.uses.len());
    cx.detail("byok_families", families.len());
    if window.truncated {
        cx.detail("audit_window_truncated", true);
    }
    Ok(out)
}

/// The newest scan's inventory, paged by provider and URI.
pub struct GetPostureInventory {
    pub filter: InventoryFilter,
    pub page_size: u32,
    pub page_token: String,
}

pub struct PostureInventory {
    /// 0 when no scan has run yet.
    pub scan_id: i64,
    pub scanned_at_ms: i64,
    pub keys: Vec<ScannedKey>,
    pub next_page_token: String,
}

impl Operation for GetPostureInventory {
    type Output = PostureInventory;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GetPostureInventory
    }

    fn check(&mut self, _: &crate::gateway::runner::Settings<'_>) -> Result<(), GatewayError> {
        // A provider instance name, as configured; only the filter's size needs bounding (an
        // unknown name matches nothing).
        crate::gateway::validate::size("provider", "provider name", self.filter.provider.len(), 128)
    }

    fn target(&self) -> Target<'_> {
        Target::Posture
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<PostureInventory, GatewayError> {
        let store = &cx.posture().store;
        let Some((scan_id, scanned_at_ms)) = store.latest_scan().await? else {
            return Ok(PostureInventory {
                scan_id: 0,
                scanned_at_ms: 0,
                keys: Vec::new(),
                next_page_token: String::new(),
            });
        };
        // The token names its scan too: a page of one scan never continues into another.
        let filters = format!("{scan_id}\0{}", self.filter.digest_input());
        let after = page_token::open(&filters, &self.page_token)
            .map_err(|e| GatewayError::invalid("page_token", e))?
            .map(|p| match p.split_once('\0') {
                Some((provider, uri)) => (provider.to_string(), uri.to_string()),
                None => (p, String::new()),
            });
        let limit = super::page_size(self.page_size);
        let keys = store.inventory(scan_id, &self.filter, after, limit).await?;
        let next_page_token = match keys.last() {
            Some(last) if keys.len() == limit as usize => page_token::issue(
                &filters,
                &format!("{}\0{}", last.provider, last.provider_uri),
            ),
            _ => String::new(),
        };
        cx.detail("scan_id", scan_id);
        cx.detail("returned", keys.len());
        Ok(PostureInventory {
            scan_id,
            scanned_at_ms,
            keys,
            next_page_token,
        })
    }
}

pub struct ListFindings {
    pub filter: FindingFilter,
    pub page_size: u32,
    pub page_token: String,
}

pub struct FindingPage {
    pub findings: Vec<Finding>,
    pub next_page_token: String,
}

impl Operation for ListFindings {
    type Output = FindingPage;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ListFindings
    }

    fn check(&mut self, _: &crate::gateway::runner::Settings<'_>) -> Result<(), GatewayError> {
        let f = &self.filter;
        if !matches!(f.state.as_str(), "" | "open" | "closed" | "all") {
            return Err(GatewayError::invalid(
                "state",
                "state is one of open (the default), closed or all",
            ));
        }
        if !f.rule.is_empty() && Rule::parse(&f.rule).is_none() {
            let names: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
            return Err(GatewayError::invalid(
                "rule",
                format!("unknown rule; the rules are {}", names.join(", ")),
            ));
        }
        if !f.severity.is_empty() && Severity::parse(&f.severity).is_none() {
            return Err(GatewayError::invalid(
                "severity",
                "severity is one of low, medium, high",
            ));
        }
        super::approvals::words("key", &f.key)
    }

    fn target(&self) -> Target<'_> {
        Target::Posture
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<FindingPage, GatewayError> {
        let filters = self.filter.digest_input();
        let after = page_token::open(&filters, &self.page_token)
            .map_err(|e| GatewayError::invalid("page_token", e))?
            .map(|p| {
                p.parse::<i64>()
                    .map_err(|_| GatewayError::invalid("page_token", page_token::NOT_ISSUED))
            })
            .transpose()?
            .unwrap_or(0);
        let limit = super::page_size(self.page_size);
        let findings = cx
            .posture()
            .store
            .findings(&self.filter, after, limit)
            .await?;
        let next_page_token = match findings.last() {
            Some(last) if findings.len() == limit as usize => {
                page_token::issue(&filters, &last.id.to_string())
            }
            _ => String::new(),
        };
        cx.detail("returned", findings.len());
        Ok(FindingPage {
            findings,
            next_page_token,
        })
    }
}

pub struct AcknowledgeFinding {
    pub id: i64,
    pub reason: String,
}

impl Operation for AcknowledgeFinding {
    type Output = Finding;
    // A change to the posture store, not to a key: Changes, so the runner records its intent
    // (which finding, why) before the store is touched, as for every other change.
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::AcknowledgeFinding
    }

    fn check(&mut self, _: &crate::gateway::runner::Settings<'_>) -> Result<(), GatewayError> {
        if self.id <= 0 {
            return Err(GatewayError::invalid("id", "set `id` to a finding's id"));
        }
        if self.reason.trim().is_empty() {
            return Err(GatewayError::invalid(
                "reason",
                "an acknowledgement needs a reason: say why the finding is accepted",
            ));
        }
        super::approvals::words("reason", &self.reason)
    }

    fn target(&self) -> Target<'_> {
        Target::Posture
    }

    fn intent_details(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("finding_id", self.id.into()),
            ("reason", self.reason.clone().into()),
        ]
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<Finding, GatewayError> {
        let ack = Acknowledgement {
            by: cx.actor_name(),
            at_ms: now_ms(),
            reason: self.reason,
        };
        let finding = cx.posture().store.acknowledge(self.id, &ack).await?;
        cx.detail("rule", finding.rule.clone());
        if !finding.key_id.is_empty() {
            cx.detail("finding_key_id", finding.key_id.clone());
        }
        cx.detail("provider_uri", finding.provider_uri.clone());
        Ok(finding)
    }
}
