//! Approval requests, in SQLite or PostgreSQL (one SQL text for both: see
//! [`crate::db::Db`]). Every decision on a request is one conditional UPDATE
//! (`WHERE state = 'pending' AND approvals = <what was read>`), retried on conflict, so two
//! approvals racing for the last place of a quorum cannot both release the change, and this
//! holds across gateway replicas sharing the database.

use super::request::{Approval, ApprovalRequest, Grant, RequestState};
use super::row::{ApprovalRow, decode, to_json};
use crate::db::Db;
use crate::on_db;
use crate::time::rfc3339;

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval request with id '{0}'")]
    NotFound(String),
    #[error("approval request {id} is {state}: only a pending request can be decided")]
    Closed { id: String, state: String },
    #[error("approval request {id} expired at {at}; the requester may ask again")]
    Expired { id: String, at: String },
    #[error(
        "{principal} already approved request {id}; approvals must come from distinct principals"
    )]
    AlreadyApproved { id: String, principal: String },
    #[error("{principal} asked for request {id} and cannot approve or deny it")]
    SelfApproval { id: String, principal: String },
    #[error("only its requester {requester} can cancel request {id}")]
    NotRequester { id: String, requester: String },
    #[error(
        "request {id} holds change {expected}, not the {given} you reviewed; read it again (`keygate approval show {id}`)"
    )]
    DigestMismatch {
        id: String,
        expected: String,
        given: String,
    },
    #[error(
        "request {id} no longer matches its digest: the stored change was altered; it cannot run"
    )]
    Tampered { id: String },
    #[error("approval store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("approval store: a stored request is unreadable: {0}")]
    Corrupt(String),
}

/// What [`ApprovalStore::approve`] did: the request as it is now, and the grant when this
/// approval completed the quorum (exactly one approval ever gets it).
#[derive(Debug, Clone)]
pub struct Approved {
    pub request: ApprovalRequest,
    pub grant: Option<Grant>,
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// A state, or `expired`; empty: all.
    pub state: String,
    /// A key id; empty: all keys.
    pub key_id: String,
    /// The name of a key not in the catalog: the adoptions asking for that name (their
    /// requests name the key as it will be); empty: not filtered by name.
    pub adopted_name: String,
    /// Requests older than this id (the previous page's last); empty: from the newest.
    pub before: String,
    pub limit: u32,
}

pub struct ApprovalStore {
    db: Db,
}

/// The columns [`decode`] reads, as a literal so queries stay static strings.
macro_rules! columns {
    () => {
        "id, key_id, key_name, environment, change, digest, requester, request_call_id, quorum,
         created_at_ms, expires_at_ms, state, approvals, closed_by, closed_at_ms, outcome,
         execution_call_id"
    };
}

/// Conflicting writers retry this often before giving up (each retry re-reads the request).
const RETRIES: usize = 16;

impl ApprovalStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Closes requests whose execution was under way when the gateway stopped: the audit
    /// events of their execution call say how far it got. Called once at start-up.
    pub async fn close_interrupted(&self, now_ms: i64) -> Result<u64, ApprovalError> {
        let done = on_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE approval_requests SET state = 'failed', closed_at_ms = $1,
                    outcome = 'interrupted: the gateway stopped while carrying it out; the audit events of its execution call say how far it got'
                 WHERE state = 'approved'",
            )
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done)
    }

    /// Closes requests approved before `approved_before_ms` and still not carried out: the
    /// replica carrying one out stopped (on PostgreSQL, where [`Self::close_interrupted`]
    /// cannot run at start-up: another replica may be carrying one out). Returns their ids.
    pub async fn close_stale(
        &self,
        approved_before_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<String>, ApprovalError> {
        let closed = on_db!(&self.db, |pool| {
            sqlx::query_scalar(
                "UPDATE approval_requests SET state = 'failed', closed_at_ms = $1,
                    outcome = 'interrupted: still not carried out long after its approval (the gateway carrying it out stopped); the audit events of its execution call say how far it got'
                 WHERE state = 'approved' AND closed_at_ms < $2
                 RETURNING id",
            )
            .bind(now_ms)
            .bind(approved_before_ms)
            .fetch_all(pool)
            .await?
        });
        Ok(closed)
    }

    /// Stores `request`, unless an open request for the same change (same digest) exists:
    /// then that one is returned, so a retried call does not open a second request.
    /// A change that reserves its key id (an adoption) matches on its action, change and
    /// requester instead, since each call reserves another id. Returns the request in force
    /// and whether it is new. Two replicas opening one change at once: the database's unique
    /// index on pending digests refuses the second insert, which then returns the first's.
    pub async fn open(
        &self,
        request: &ApprovalRequest,
        now_ms: i64,
    ) -> Result<(ApprovalRequest, bool), ApprovalError> {
        let change = to_json(&request.change)?;
        // Twice: a request that expired between the two steps below leaves the index on the
        // second round.
        for _ in 0..2 {
            self.retire_expired(&request.digest, now_ms).await?;
            if let Some(existing) = self.open_for(request, now_ms).await? {
                return Ok((existing, false));
            }
            match self.insert(request, &change).await {
                Ok(()) => return Ok((self.get(&request.id).await?, true)),
                // Another replica opened it between our look and our insert: theirs is the
                // request, as if we had found it (the next round finds it).
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.open_for(request, now_ms).await?.map_or_else(
            || {
                Err(ApprovalError::Store(sqlx::Error::Protocol(format!(
                    "no request for change {} could be opened or found",
                    request.digest
                ))))
            },
            |existing| Ok((existing, false)),
        )
    }

    /// A pending request for this change past its expiry leaves the unique index (it still
    /// reads as expired: a pending request past its expiry), so the change may be asked again.
    async fn retire_expired(&self, digest: &str, now_ms: i64) -> Result<(), ApprovalError> {
        on_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE approval_requests SET closed_at_ms = expires_at_ms
                 WHERE digest = $1 AND state = 'pending' AND closed_at_ms IS NULL
                   AND expires_at_ms <= $2",
            )
            .bind(digest)
            .bind(now_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The open request for the same change as `request`, if any (see [`Self::open`]).
    async fn open_for(
        &self,
        request: &ApprovalRequest,
        now_ms: i64,
    ) -> Result<Option<ApprovalRequest>, ApprovalError> {
        let change = to_json(&request.change)?;
        // 0/1 rather than a boolean: PostgreSQL and SQLite bind an integer alike.
        let reserves_key_id = i64::from(request.change.reserves_key_id());
        let existing: Option<ApprovalRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM approval_requests
                  WHERE state = 'pending' AND expires_at_ms > $1
                    AND (digest = $2
                         OR ($3 = 1 AND action = $4 AND change = $5 AND requester = $6))
                  ORDER BY id DESC LIMIT 1"
            ))
            .bind(now_ms)
            .bind(&request.digest)
            .bind(reserves_key_id)
            .bind(request.action().as_str())
            .bind(&change)
            .bind(&request.requester)
            .fetch_optional(pool)
            .await?
        });
        existing.map(decode).transpose()
    }

    async fn insert(&self, request: &ApprovalRequest, change: &str) -> Result<(), sqlx::Error> {
        on_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO approval_requests (id, action, key_id, key_name, environment,
                    change, digest, requester, request_call_id, quorum, created_at_ms,
                    expires_at_ms, state, approvals)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', '[]')",
            )
            .bind(&request.id)
            .bind(request.action().as_str())
            .bind(&request.key_id)
            .bind(&request.key_name)
            .bind(&request.environment)
            .bind(change)
            .bind(&request.digest)
            .bind(&request.requester)
            .bind(&request.request_call_id)
            .bind(i64::from(request.quorum))
            .bind(request.created_at_ms)
            .bind(request.expires_at_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<ApprovalRequest, ApprovalError> {
        let row: Option<ApprovalRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM approval_requests WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        let row =
            row.ok_or_else(|| ApprovalError::NotFound(crate::gateway::validate::truncate(id, 80)))?;
        decode(row)
    }

    /// Newest first.
    pub async fn list(
        &self,
        filter: &ListFilter,
        now_ms: i64,
    ) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        // `expired` is a pending request past its expiry; `pending` one before it.
        let (state, expiry): (&str, i64) = match filter.state.as_str() {
            "expired" => ("pending", 2),
            "pending" => ("pending", 1),
            other => (other, 0),
        };
        let rows: Vec<ApprovalRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM approval_requests
                  WHERE ($1 = '' OR state = $1)
                    AND ($2 = 0 OR ($2 = 1 AND expires_at_ms > $3)
                         OR ($2 = 2 AND expires_at_ms <= $3))
                    AND ($4 = '' OR key_id = $4)
                    AND ($5 = '' OR id < $5)
                    AND ($7 = '' OR (key_name = $7 AND action = 'AdoptKey'))
                  ORDER BY id DESC LIMIT $6"
            ))
            .bind(state)
            .bind(expiry)
            .bind(now_ms)
            .bind(&filter.key_id)
            .bind(&filter.before)
            .bind(i64::from(filter.limit))
            .bind(&filter.adopted_name)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(decode).collect()
    }

    /// The open request `id`, checked against its digest.
    async fn open_request(&self, id: &str, now_ms: i64) -> Result<ApprovalRequest, ApprovalError> {
        let request = self.get(id).await?;
        if request.state != RequestState::Pending {
            return Err(ApprovalError::Closed {
                id: request.id,
                state: request.state.as_str().into(),
            });
        }
        if now_ms >= request.expires_at_ms {
            return Err(ApprovalError::Expired {
                id: request.id,
                at: rfc3339(request.expires_at_ms),
            });
        }
        if request.change.digest(&request.key_id, &request.requester) != request.digest {
            return Err(ApprovalError::Tampered { id: request.id });
        }
        Ok(request)
    }

    /// Adds `principal`'s approval (of `seen_digest`, when the approver names the digest it
    /// reviewed) to the open request `id`. The approval that brings it to `quorum` moves it
    /// to `approved` and gets the [`Grant`] that carries it out (`quorum` is today's setting;
    /// the larger of it and the request's own applies).
    pub async fn approve(
        &self,
        id: &str,
        principal: &str,
        seen_digest: Option<&str>,
        quorum: u32,
        call_id: &str,
        now_ms: i64,
    ) -> Result<Approved, ApprovalError> {
        for _ in 0..RETRIES {
            let mut request = self.open_request(id, now_ms).await?;
            if request.requester == principal {
                return Err(ApprovalError::SelfApproval {
                    id: request.id,
                    principal: principal.into(),
                });
            }
            if let Some(seen) = seen_digest
                && seen != request.digest
            {
                return Err(ApprovalError::DigestMismatch {
                    id: request.id,
                    expected: request.digest,
                    given: crate::gateway::validate::truncate(seen, 80),
                });
            }
            if request.approvals.iter().any(|a| a.principal == principal) {
                return Err(ApprovalError::AlreadyApproved {
                    id: request.id,
                    principal: principal.into(),
                });
            }
            let before = to_json(&request.approvals)?;
            request.approvals.push(Approval {
                principal: principal.into(),
                at_ms: now_ms,
                digest: request.digest.clone(),
                call_id: call_id.into(),
            });
            // The quorum the request was opened under, or today's if it was raised since: a
            // lowered setting never releases a request with fewer approvals than it asked.
            let needed = quorum.max(request.quorum).max(1);
            let complete = request.approvals.len() >= needed as usize;
            let execution_call_id = complete.then(crate::gateway::new_request_id);
            let (state, closed_by, closed_at) = if complete {
                (RequestState::Approved, Some(principal), Some(now_ms))
            } else {
                (RequestState::Pending, None, None)
            };
            let after = to_json(&request.approvals)?;
            // On PostgreSQL a racing UPDATE waits for this row's lock and then finds
            // `approvals` changed, so it matches nothing, as on SQLite.
            let done = on_db!(&self.db, |pool| {
                sqlx::query(
                    "UPDATE approval_requests
                     SET approvals = $1, state = $2, closed_by = $3, closed_at_ms = $4,
                         execution_call_id = $5
                     WHERE id = $6 AND state = 'pending' AND approvals = $7
                       AND expires_at_ms > $8",
                )
                .bind(&after)
                .bind(state.as_str())
                .bind(closed_by)
                .bind(closed_at)
                .bind(&execution_call_id)
                .bind(&request.id)
                .bind(&before)
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected()
            });
            if done == 0 {
                // Another decision landed between the read and the write: read it again.
                continue;
            }
            request.state = state;
            request.closed_by = closed_by.map(str::to_string);
            request.closed_at_ms = closed_at;
            request.execution_call_id.clone_from(&execution_call_id);
            let grant = execution_call_id.map(|execution_call_id| Grant {
                request_id: request.id.clone(),
                key_id: request.key_id.clone(),
                change: request.change.clone(),
                digest: request.digest.clone(),
                requester: request.requester.clone(),
                approvers: request.approvers(),
                execution_call_id,
            });
            return Ok(Approved { request, grant });
        }
        Err(ApprovalError::Store(sqlx::Error::Protocol(format!(
            "request {id} kept changing under {RETRIES} attempts to record an approval"
        ))))
    }

    /// Closes the open request `id` as denied by `principal` (never its requester).
    pub async fn deny(
        &self,
        id: &str,
        principal: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let request = self.open_request(id, now_ms).await?;
        if request.requester == principal {
            return Err(ApprovalError::SelfApproval {
                id: request.id,
                principal: principal.into(),
            });
        }
        self.close(request, RequestState::Denied, principal, reason, now_ms)
            .await
    }

    /// Closes the open request `id` as cancelled by its requester.
    pub async fn cancel(
        &self,
        id: &str,
        principal: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let request = self.open_request(id, now_ms).await?;
        if request.requester != principal {
            return Err(ApprovalError::NotRequester {
                id: request.id,
                requester: request.requester,
            });
        }
        self.close(request, RequestState::Cancelled, principal, reason, now_ms)
            .await
    }

    async fn close(
        &self,
        request: ApprovalRequest,
        state: RequestState,
        principal: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let done = on_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE approval_requests
                 SET state = $1, closed_by = $2, closed_at_ms = $3, outcome = $4
                 WHERE id = $5 AND state = 'pending' AND expires_at_ms > $3",
            )
            .bind(state.as_str())
            .bind(principal)
            .bind(now_ms)
            .bind(reason)
            .bind(&request.id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if done == 0 {
            // Decided (or expired) meanwhile: say what it is now.
            let now = self.get(&request.id).await?;
            return Err(ApprovalError::Closed {
                id: now.id.clone(),
                state: now.state_at(now_ms).into(),
            });
        }
        self.get(&request.id).await
    }

    /// Records how the approved request `id` ended: carried out, or failed and why.
    pub async fn finish(
        &self,
        id: &str,
        executed: bool,
        outcome: &str,
    ) -> Result<(), ApprovalError> {
        let state = if executed {
            RequestState::Executed
        } else {
            RequestState::Failed
        };
        on_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE approval_requests SET state = $1, outcome = $2
                 WHERE id = $3 AND state = 'approved'",
            )
            .bind(state.as_str())
            .bind(outcome)
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
