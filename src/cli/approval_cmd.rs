//! `keygate approval …`: the requests critical actions wait on.

use super::CliResult;
use super::client::{Connection, describe};
use super::output;
use crate::cli::output::Format;
use crate::pb;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ApprovalCommand {
    /// Approval requests, newest first.
    List {
        /// pending | expired | approved | executed | failed | denied | cancelled (default: all).
        #[arg(long)]
        state: Option<String>,
        /// Only requests for this key (name or id; a name no key has yet: the adoptions
        /// asking for it).
        #[arg(long)]
        key: Option<String>,
        /// At most this many requests.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One request: the change, its digest, who asked and who approved.
    Show { id: String },
    /// Approve a request. The approval that completes the quorum carries the change out and
    /// prints how it ended.
    Approve {
        id: String,
        /// The digest you reviewed (from `approval show`); refused if the request holds
        /// another change. Without it, the request is shown and its digest sent.
        #[arg(long)]
        digest: Option<String>,
        /// Words kept in the audit event.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Deny a request: it closes, and the change never runs.
    Deny {
        id: String,
        /// Why; kept with the request.
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your own pending request.
    Cancel {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

pub async fn run(conn: &Connection, fmt: Format, cmd: ApprovalCommand) -> CliResult {
    let mut approvals = conn.approvals().await?;
    let request = match cmd {
        ApprovalCommand::List { state, key, limit } => {
            let mut all = Vec::new();
            let mut page_token = String::new();
            while all.len() < limit {
                let page = approvals
                    .list_approvals(pb::ListApprovalsRequest {
                        state: state.clone().unwrap_or_default(),
                        key: key.clone().unwrap_or_default(),
                        page_size: (limit - all.len()).min(1000) as u32,
                        page_token,
                    })
                    .await
                    .map_err(describe)?
                    .into_inner();
                all.extend(page.approvals);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if let Some(data) = fmt.data() {
                let rows: Vec<_> = all.iter().map(output::approval_json).collect();
                data.print(&serde_json::Value::Array(rows));
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.clone(),
                            a.state.clone(),
                            a.key_name.clone(),
                            a.action.clone(),
                            a.requester.clone(),
                            format!("{}/{}", a.approvals.len(), a.quorum),
                            a.expires_at.clone(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    output::table(
                        &[
                            "ID",
                            "STATE",
                            "KEY",
                            "ACTION",
                            "REQUESTER",
                            "APPROVALS",
                            "EXPIRES"
                        ],
                        &rows
                    )
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalCommand::Show { id } => approvals.get_approval(pb::GetApprovalRequest { id }).await,
        ApprovalCommand::Approve {
            id,
            digest,
            comment,
        } => {
            // Without --digest, the approval is bound to the change shown here: the request is
            // read first, what it holds printed, and its digest sent with the approval, so a
            // request altered in between is refused rather than approved blind.
            let digest = match digest {
                Some(digest) => digest,
                None => {
                    let shown = approvals
                        .get_approval(pb::GetApprovalRequest { id: id.clone() })
                        .await
                        .map_err(describe)?
                        .into_inner();
                    eprintln!(
                        "approving {} on key '{}' requested by {}: {} (digest {})",
                        shown.action, shown.key_name, shown.requester, shown.change, shown.digest
                    );
                    shown.digest
                }
            };
            approvals
                .approve(pb::ApproveRequest {
                    id,
                    digest,
                    comment: comment.unwrap_or_default(),
                })
                .await
        }
        ApprovalCommand::Deny { id, reason } => {
            approvals.deny(pb::DenyRequest { id, reason }).await
        }
        ApprovalCommand::Cancel { id, reason } => {
            approvals
                .cancel(pb::CancelApprovalRequest {
                    id,
                    reason: reason.unwrap_or_default(),
                })
                .await
        }
    };
    let request = request.map_err(describe)?.into_inner();
    if let Some(data) = fmt.data() {
        data.print(&output::approval_json(&request));
    } else {
        print!("{}", output::approval_details(&request));
    }
    // An approved change that failed is the one outcome a script must not take for success.
    Ok(if request.state == "failed" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
