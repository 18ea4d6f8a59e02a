//! The approval workflow's calls: ListApprovals, GetApproval, ApproveRequest, DenyRequest,
//! CancelRequest. Each is audited like any call and names its request; the approval that
//! completes a quorum releases the change ([`Decided::grant`]), which `Gateway::decide_on_request`
//! then runs as a call of its own (src/gateway/approved.rs).

use crate::approvals::{ApprovalRequest, Grant, ListFilter, RequestState};
use crate::gateway::runner::{Exec, Operation, Reads, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::Action;
use crate::time::now_ms;

fn request_id(field: &'static str, id: &str) -> Result<(), GatewayError> {
    if id.is_empty() {
        return Err(GatewayError::invalid(
            field,
            "name the approval request: set `id` (`keygate approval list` shows them)",
        ));
    }
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(GatewayError::invalid(
            field,
            format!(
                "'{}' is not an approval request id (a UUID)",
                validate::truncate(id, 70)
            ),
        ));
    }
    Ok(())
}

pub(super) fn words(field: &'static str, text: &str) -> Result<(), GatewayError> {
    if text.len() > 1024 {
        return Err(GatewayError::TooLarge {
            field,
            what: field.into(),
            len: text.len(),
            max: 1024,
        });
    }
    Ok(())
}

pub struct ListApprovals {
    /// pending | expired | approved | executed | failed | denied | cancelled; empty: all.
    pub state: String,
    /// A key name or id; empty: every key.
    pub key: String,
    pub page_size: u32,
    pub page_token: String,
}

pub struct ApprovalPage {
    pub requests: Vec<ApprovalRequest>,
    pub next_page_token: String,
}

impl ListApprovals {
    /// The filters a page token is bound to.
    fn scope(&self) -> String {
        format!("approvals|{:?}|{:?}", self.state, self.key)
    }

    /// The last request id of the page before, from the page token.
    fn before(&self) -> Result<Option<String>, GatewayError> {
        crate::page_token::open(&self.scope(), &self.page_token)
            .map_err(|why| GatewayError::invalid("page_token", why))
    }
}

impl Operation for ListApprovals {
    type Output = ApprovalPage;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ListApprovals
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        if !self.state.is_empty()
            && self.state != "expired"
            && RequestState::parse(&self.state).is_none()
        {
            return Err(GatewayError::invalid(
                "state",
                format!(
                    "unknown state '{}': pending, expired, approved, executed, failed, denied or cancelled",
                    validate::truncate(&self.state, 40)
                ),
            ));
        }
        // Refused before anything is read; `execute` opens it again.
        if let Some(before) = self.before()? {
            request_id("page_token", &before)?;
        }
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        Target::Approvals
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<ApprovalPage, GatewayError> {
        // A name not in the catalog may be one a pending adoption asks for: its requests
        // are listed by that name (none: an empty page, as for a key without requests).
        let (key_id, adopted_name) = if self.key.is_empty() {
            (String::new(), String::new())
        } else {
            match cx.lookup_key(&self.key) {
                Some(key) => (key.id.clone(), String::new()),
                None if validate::key_name("key", &self.key).is_ok() => {
                    (String::new(), self.key.clone())
                }
                None => {
                    return Err(GatewayError::KeyNotFound(validate::truncate(
                        &self.key, 200,
                    )));
                }
            }
        };
        let limit = super::page_size(self.page_size);
        let before = self.before()?.unwrap_or_default();
        let scope = self.scope();
        let requests = cx
            .approvals()
            .list(
                &ListFilter {
                    state: self.state,
                    key_id,
                    adopted_name,
                    before,
                    limit,
                },
                now_ms(),
            )
            .await?;
        let next_page_token = if requests.len() == limit as usize {
            requests
                .last()
                .map(|r| crate::page_token::issue(&scope, &r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ApprovalPage {
            requests,
            next_page_token,
        })
    }
}

pub struct GetApproval {
    pub id: String,
}

impl Operation for GetApproval {
    type Output = ApprovalRequest;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GetApproval
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        request_id("id", &self.id)
    }

    fn target(&self) -> Target<'_> {
        Target::Approvals
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<ApprovalRequest, GatewayError> {
        cx.detail("approval_id", self.id.clone());
        Ok(cx.approvals().get(&self.id).await?)
    }
}

/// An approver's decision on a pending request.
pub struct DecideOnRequest {
    pub id: String,
    pub approve: bool,
    /// The decider's words (a denial's reason), kept with the request.
    pub reason: String,
    /// The digest of the change the approver reviewed; empty: not checked.
    pub digest: String,
}

/// A decision's result: the request as it is now, and the grant when this approval
/// completed the quorum.
pub struct Decided {
    pub request: ApprovalRequest,
    pub grant: Option<Grant>,
}

impl Operation for DecideOnRequest {
    type Output = Decided;
    type Mode = Reads;

    fn action(&self) -> Action {
        if self.approve {
            Action::ApproveRequest
        } else {
            Action::DenyRequest
        }
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        request_id("id", &self.id)?;
        words("reason", &self.reason)?;
        if !self.digest.is_empty()
            && (self.digest.len() != 64 || !self.digest.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(GatewayError::invalid(
                "digest",
                "digest is the request's SHA-256 in hex (64 characters), as `keygate approval show` prints it",
            ));
        }
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        Target::ApprovalRequest(&self.id)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Decided, GatewayError> {
        let principal = cx.actor_name();
        let now = now_ms();
        let decided = if self.approve {
            let seen = (!self.digest.is_empty()).then_some(self.digest.as_str());
            let quorum = cx.approval_settings().quorum;
            let call_id = cx.request_id().to_string();
            let approved = cx
                .approvals()
                .approve(&self.id, &principal, seen, quorum, &call_id, now)
                .await?;
            Decided {
                request: approved.request,
                grant: approved.grant,
            }
        } else {
            let request = cx
                .approvals()
                .deny(&self.id, &principal, &self.reason, now)
                .await?;
            Decided {
                request,
                grant: None,
            }
        };
        let request = &decided.request;
        cx.detail("approval_digest", request.digest.clone());
        cx.detail("change", request.change.describe());
        cx.detail("requester", request.requester.clone());
        cx.detail("approvals", request.approvals.len());
        cx.detail("quorum", cx.approval_settings().quorum.max(request.quorum));
        cx.detail("request_state", request.state.as_str());
        if !self.reason.is_empty() {
            cx.detail("comment", self.reason.clone());
        }
        if let Some(grant) = &decided.grant {
            cx.detail("execution_request_id", grant.execution_call_id.clone());
        }
        Ok(decided)
    }
}

/// The requester withdraws its own pending request.
pub struct CancelRequest {
    pub id: String,
    pub reason: String,
}

impl Operation for CancelRequest {
    type Output = ApprovalRequest;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::CancelRequest
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        request_id("id", &self.id)?;
        words("reason", &self.reason)
    }

    fn target(&self) -> Target<'_> {
        Target::ApprovalRequest(&self.id)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<ApprovalRequest, GatewayError> {
        let principal = cx.actor_name();
        let request = cx
            .approvals()
            .cancel(&self.id, &principal, &self.reason, now_ms())
            .await?;
        cx.detail("change", request.change.describe());
        cx.detail("request_state", request.state.as_str());
        Ok(request)
    }
}
