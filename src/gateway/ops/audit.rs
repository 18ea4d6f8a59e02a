//! The audit feed: Query, Tail, Export, Verify (incremental, and full as a background job),
//! Hash, checkpoints and ingesters. Reading the log is itself audited.

use crate::audit::store::Checkpoint;
use crate::audit::{AuditEvent, AuditFilter, ExportHandle, JobStatus, VerifyReport};
use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Mode, Operation, Reads, Settings, Target};
use crate::policy::Action;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Resolves the filter's key to its keygate id when the catalog knows it (by name, id or
/// provider URI), so the query reads one index range.
fn resolve_key<M: Mode>(cx: &Exec<'_, M>, filter: &mut AuditFilter) {
    let Some(key) = &filter.key else { return };
    let found = cx.lookup_key(key).or_else(|| {
        key.contains(':')
            .then(|| {
                cx.all_keys()
                    .into_iter()
                    .find(|k| k.provider_uri.as_str() == key.as_str())
            })
            .flatten()
    });
    filter.key_id = found.map(|k| k.id.clone());
}

fn check_filter(filter: &AuditFilter) -> Result<(), GatewayError> {
    if let (Some(start), Some(end)) = (filter.start_ms, filter.end_ms)
        && end <= start
    {
        return Err(GatewayError::invalid(
            "end_time",
            "end_time must be after start_time",
        ));
    }
    for (field, value) in [
        ("key", &filter.key),
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("outcome", &filter.outcome),
        ("request_id", &filter.request_id),
        ("source", &filter.source),
        ("contains", &filter.contains),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > 512) {
            return Err(GatewayError::invalid(
                field,
                format!("{field} is longer than 512 bytes"),
            ));
        }
    }
    Ok(())
}

pub struct AuditQuery {
    pub filter: AuditFilter,
    /// 0: 100; at most 1000.
    pub page_size: u32,
    pub page_token: String,
    /// Also return, for each gateway event, the provider records linked to it.
    pub with_linked: bool,
}

pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Provider records by the sequence of the gateway event they are linked to.
    pub linked: HashMap<u64, Vec<AuditEvent>>,
    pub next_page_token: String,
}

impl Operation for AuditQuery {
    type Output = AuditPage;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditQuery
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        check_filter(&self.filter)?;
        self.filter
            .parse_token(&self.page_token)
            .map(|_| ())
            .map_err(|why| GatewayError::invalid("page_token", why))
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(mut self, cx: &mut Exec<'_, Reads>) -> Result<AuditPage, GatewayError> {
        let after = self
            .filter
            .parse_token(&self.page_token)
            .map_err(|why| GatewayError::invalid("page_token", why))?;
        resolve_key(cx, &mut self.filter);
        let page_size = super::page_size(self.page_size);
        let events = cx.audit_log().query(&self.filter, after, page_size).await?;
        let next_page_token = match events.last() {
            Some(last) if events.len() == page_size as usize => self.filter.page_token(last),
            _ => String::new(),
        };
        let mut linked: HashMap<u64, Vec<AuditEvent>> = HashMap::new();
        if self.with_linked {
            // Each gateway event with the backend request ids of its call.
            let gateway: Vec<(u64, Vec<String>)> = events
                .iter()
                .filter(|e| e.record.source == "gateway")
                .map(|e| (e.sequence, backend_request_ids(e)))
                .collect();
            let sequences: Vec<u64> = gateway.iter().map(|(s, _)| *s).collect();
            let ids: Vec<String> = gateway.iter().flat_map(|(_, ids)| ids.clone()).collect();
            for e in cx.audit_log().linked_to(&sequences, &ids).await? {
                let stored = e.link.as_ref().and_then(|l| l.gateway_sequence);
                // The call the record was linked to, and every other call of the page that
                // went in the same backend request.
                let calls: Vec<u64> = gateway
                    .iter()
                    .filter(|(s, ids)| {
                        Some(*s) == stored
                            || (!e.record.provider_request_id.is_empty()
                                && ids.contains(&e.record.provider_request_id))
                    })
                    .map(|(s, _)| *s)
                    .collect();
                for s in calls {
                    linked.entry(s).or_default().push(e.clone());
                }
            }
        }
        cx.detail("returned", events.len());
        Ok(AuditPage {
            events,
            linked,
            next_page_token,
        })
    }
}

/// A live subscription: committed events, filtered.
pub struct Tail {
    pub filter: AuditFilter,
    pub events: broadcast::Receiver<Arc<AuditEvent>>,
    /// Held by the stream for as long as it is open.
    pub slot: crate::gateway::runner::TailSlot,
}

pub struct AuditTail {
    pub filter: AuditFilter,
}

impl Operation for AuditTail {
    type Output = Tail;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditTail
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        check_filter(&self.filter)
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(mut self, cx: &mut Exec<'_, Reads>) -> Result<Tail, GatewayError> {
        let slot = cx.tail_slot()?;
        resolve_key(cx, &mut self.filter);
        Ok(Tail {
            filter: self.filter,
            events: cx.audit_log().subscribe(),
            slot,
        })
    }
}

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// keygate's events, one JSON object per line.
    JsonLines,
    /// OCSF API Activity (class 6003) objects, one per line.
    Ocsf,
}

/// The whole matching log, streamed page by page after the export's own event.
pub struct AuditExport {
    pub filter: AuditFilter,
    pub format: ExportFormat,
}

pub struct Export {
    pub filter: AuditFilter,
    pub format: ExportFormat,
    pub log: ExportHandle,
}

impl Operation for AuditExport {
    type Output = Export;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditQuery
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        check_filter(&self.filter)
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(mut self, cx: &mut Exec<'_, Reads>) -> Result<Export, GatewayError> {
        resolve_key(cx, &mut self.filter);
        cx.detail(
            "export",
            match self.format {
                ExportFormat::JsonLines => "jsonl",
                ExportFormat::Ocsf => "ocsf",
            },
        );
        Ok(Export {
            filter: self.filter,
            format: self.format,
            log: cx.audit_log().export_handle(),
        })
    }
}

/// Incremental verification, inside the call.
pub struct AuditVerify;

impl Operation for AuditVerify {
    type Output = VerifyReport;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditVerify
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<VerifyReport, GatewayError> {
        let report = cx.audit_log().verify().await?;
        cx.detail("chain_ok", report.ok);
        cx.detail("events_checked", report.events_checked);
        if !report.ok {
            cx.detail("first_broken_sequence", report.first_broken_sequence);
        }
        Ok(report)
    }
}

/// Starts a full verification in the background.
pub struct StartVerification;

impl Operation for StartVerification {
    type Output = String;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditVerify
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<String, GatewayError> {
        let id = cx.audit_log().start_full_verification();
        cx.detail("job", id.clone());
        Ok(id)
    }
}

/// A background verification's progress or report.
pub struct GetVerification {
    pub job: String,
}

impl Operation for GetVerification {
    type Output = JobStatus;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditVerify
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        if self.job.is_empty() || self.job.len() > 64 {
            return Err(GatewayError::invalid(
                "job",
                "job is the id StartVerification returned",
            ));
        }
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<JobStatus, GatewayError> {
        cx.audit_log().verification(&self.job).ok_or_else(|| {
            GatewayError::invalid(
                "job",
                format!(
                    "no verification job {} (jobs are kept in memory: a restarted gateway forgets them; start another)",
                    crate::gateway::validate::truncate(&self.job, 64)
                ),
            )
        })
    }
}

/// The HMAC of a value under the server key. The value itself is never recorded.
pub struct AuditHash {
    pub value: String,
}

/// Longest value `keygate audit hash` takes.
const MAX_HASHED: usize = 64 * 1024;

impl Operation for AuditHash {
    type Output = String;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditHash
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        if self.value.is_empty() {
            return Err(GatewayError::invalid("value", "value is empty"));
        }
        crate::gateway::validate::size("value", "value", self.value.len(), MAX_HASHED)
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<String, GatewayError> {
        Ok(cx.audit_log().hash(&self.value))
    }
}

/// The signed checkpoints, newest last.
pub struct ListCheckpoints {
    /// At most this many of the newest (0: 100).
    pub limit: u32,
}

pub struct Checkpoints {
    pub checkpoints: Vec<Checkpoint>,
    /// Where they are copied outside the database.
    pub witnesses: Vec<String>,
}

impl Operation for ListCheckpoints {
    type Output = Checkpoints;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditVerify
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Checkpoints, GatewayError> {
        let mut all = cx.audit_log().checkpoints().await?;
        let keep = super::page_size(self.limit) as usize;
        let all = all.split_off(all.len().saturating_sub(keep));
        Ok(Checkpoints {
            checkpoints: all,
            witnesses: cx.audit_log().witnesses(),
        })
    }
}

/// Every ingester: where it is, what it counted, the last record it skipped.
pub struct ListIngesters;

impl Operation for ListIngesters {
    type Output = Vec<crate::audit::ingest::FeedStatus>;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditQuery
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(
        self,
        cx: &mut Exec<'_, Reads>,
    ) -> Result<Vec<crate::audit::ingest::FeedStatus>, GatewayError> {
        Ok(cx.audit_log().feeds().await?)
    }
}

/// The backend request ids a gateway event names: its provider request id, and the others
/// of a call that made several (kept in its details).
fn backend_request_ids(e: &AuditEvent) -> Vec<String> {
    let mut ids = Vec::new();
    if !e.record.provider_request_id.is_empty() {
        ids.push(e.record.provider_request_id.clone());
    }
    if let Ok(details) = serde_json::from_str::<serde_json::Value>(&e.record.details)
        && let Some(more) = details
            .get("provider_request_ids")
            .and_then(|v| v.as_array())
    {
        for id in more.iter().filter_map(|v| v.as_str()) {
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_string());
            }
        }
    }
    ids
}
