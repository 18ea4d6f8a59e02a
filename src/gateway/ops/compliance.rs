//! ComplianceReport: every piece of evidence keygate holds (the catalog with its versions, the
//! newest inventory scan, open findings, approval requests and their configuration,
//! destruction records, the audit chain's verification and its signed checkpoints, the
//! separation-of-duties policies and who holds which role), gathered in one call and judged
//! per requirement by [`crate::posture::report::assess`].

use crate::approvals::ListFilter as ApprovalFilter;
use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Operation, Reads, Target};
use crate::policy::Action;
use crate::posture::report::{Evidence, Report, Status, assess};
use crate::posture::store::{FindingFilter, InventoryFilter};
use crate::time::now_ms;
use std::collections::BTreeSet;

/// Approval requests and destruction records read for one report, newest first; older ones
/// stay readable through their own APIs.
const MAX_RECORDS: u32 = 5000;
/// Signed checkpoints shown (the newest); `ListCheckpoints` has every one.
const CHECKPOINTS_SHOWN: usize = 50;
/// Rows read per page from the posture store.
const PAGE: u32 = 1000;

pub struct ComplianceReport;

impl Operation for ComplianceReport {
    type Output = Report;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ComplianceReport
    }

    fn target(&self) -> Target<'_> {
        Target::Posture
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Report, GatewayError> {
        let now = now_ms();
        let keys = cx.all_keys();
        // As the owner-unknown rule sees it: keygate's own keys (the audit signing key),
        // still owned by keygate, are owned by keygate and by no configured principal.
        let system_keys = &cx.posture().system_keys;
        let unknown_owners: BTreeSet<String> = keys
            .iter()
            .filter(|k| {
                let keygates_own =
                    k.owner == crate::config::SYSTEM_OWNER && system_keys.contains(&k.name);
                !keygates_own && !cx.owner_known(&k.owner)
            })
            .map(|k| k.id.clone())
            .collect();
        let store = &cx.posture().store;
        let latest_scan = store.latest_scan().await?;
        let mut unmanaged = Vec::new();
        if let Some((scan_id, _)) = latest_scan {
            let filter = InventoryFilter {
                unmanaged_only: true,
                ..Default::default()
            };
            let mut after = None;
            loop {
                let page = store.inventory(scan_id, &filter, after, PAGE).await?;
                let full = page.len() == PAGE as usize;
                after = page
                    .last()
                    .map(|k| (k.provider.clone(), k.provider_uri.clone()));
                unmanaged.extend(page);
                if !full {
                    break;
                }
            }
        }
        let mut open_findings = Vec::new();
        let filter = FindingFilter {
            state: "open".into(),
            ..Default::default()
        };
        let mut after = 0;
        loop {
            let page = store.findings(&filter, after, PAGE).await?;
            let full = page.len() == PAGE as usize;
            after = page.last().map(|f| f.id).unwrap_or(after);
            open_findings.extend(page);
            if !full {
                break;
            }
        }
        let approvals = cx
            .approvals()
            .list(
                &ApprovalFilter {
                    limit: MAX_RECORDS,
                    ..Default::default()
                },
                now,
            )
            .await?;
        let destructions = cx.destruction_records_newest(MAX_RECORDS).await?;
        // The same verification `keygate audit verify` runs: from the newest checkpoint on.
        let verification = cx.audit_log().verify().await?;
        let mut checkpoints = cx.audit_log().checkpoints().await?;
        let checkpoints =
            checkpoints.split_off(checkpoints.len().saturating_sub(CHECKPOINTS_SHOWN));
        let duty_policies = cx
            .policies()
            .current()
            .policies()
            .into_iter()
            .filter(|p| p.rule.as_deref() == Some(crate::posture::report::controls::DUTIES_RULE))
            .cloned()
            .collect();
        let evidence = Evidence {
            now_ms: now,
            generated_by: cx.actor_name(),
            keys,
            provider_kinds: cx.provider_kinds(),
            unknown_owners,
            latest_scan,
            unmanaged,
            open_findings,
            approval_settings: cx.approval_settings().clone(),
            approvals,
            destructions,
            verification,
            checkpoints,
            witnesses: cx.audit_log().witnesses(),
            duty_policies,
            principals: cx.principals(),
        };
        let report = assess(&evidence);
        for status in Status::ALL {
            cx.detail(status.as_str(), report.count(status));
        }
        Ok(report)
    }
}
