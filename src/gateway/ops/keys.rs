//! CreateKey, GetKey, ListKeys.

use crate::catalog::{KeyRecord, KeyState, ListFilter, VersionRecord};
use crate::gateway::runner::{
    Changes, Exec, KeyDraft, Operation, Reads, RequestedAlgorithm, Settings, Target,
};
use crate::gateway::{GatewayError, validate};
use crate::policy::{Action, OperationFacts};
use crate::time::{format_duration, now_ms};
use keygate_provider::{Algorithm, KeyPurpose, KeySpec};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A duration as the caller sent it (it may be negative or absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationInput {
    pub seconds: i64,
    pub nanos: i32,
}

impl DurationInput {
    pub fn to_duration(self) -> Option<Duration> {
        (self.seconds >= 0 && self.nanos >= 0)
            .then(|| Duration::new(self.seconds as u64, self.nanos as u32))
    }
}

pub struct CreateKey {
    pub name: String,
    /// Empty: the algorithm's purpose.
    pub purpose: String,
    pub algorithm: String,
    pub owner: String,
    /// Empty: `dev`.
    pub environment: String,
    pub crypto_period: Option<DurationInput>,
    /// Empty: the default provider.
    pub provider: String,
    pub labels: BTreeMap<String, String>,
    /// A short-lived key's time to live: the scheduler destroys it when this ends.
    pub ttl: Option<DurationInput>,
    /// Filled in by `check`.
    pub draft: Option<KeyDraft>,
}

impl CreateKey {
    pub(super) fn draft(&self, settings: &Settings<'_>) -> Result<KeyDraft, GatewayError> {
        validate::key_name("name", &self.name)?;
        validate::owner(&self.owner)?;
        let algorithm = RequestedAlgorithm::parse(&self.algorithm)
            .map_err(|e| GatewayError::invalid("algorithm", e.0))?;
        let purpose = if self.purpose.is_empty() {
            algorithm.purpose()
        } else {
            self.purpose
                .parse::<KeyPurpose>()
                .map_err(|e| GatewayError::invalid("purpose", e.0))?
        };
        if purpose != algorithm.purpose() {
            return Err(GatewayError::invalid(
                "purpose",
                format!(
                    "purpose '{purpose}' does not fit algorithm {algorithm}, which is for {}",
                    algorithm.purpose()
                ),
            ));
        }
        let environment = if self.environment.is_empty() {
            "dev".to_string()
        } else {
            self.environment.clone()
        };
        validate::environment(&environment)?;
        let period = self
            .crypto_period
            .and_then(DurationInput::to_duration)
            .ok_or_else(|| {
                GatewayError::invalid(
                    "crypto_period",
                    "every key needs a crypto-period: set `crypto_period` (e.g. 365 days)",
                )
            })?;
        let lifecycle = settings.lifecycle;
        if period < lifecycle.min_crypto_period || period > lifecycle.max_crypto_period {
            return Err(GatewayError::invalid(
                "crypto_period",
                format!(
                    "crypto-period {} is outside the allowed range {} to {}",
                    format_duration(period),
                    format_duration(lifecycle.min_crypto_period),
                    format_duration(lifecycle.max_crypto_period),
                ),
            ));
        }
        validate::labels(&self.labels)?;
        let ttl = match self.ttl {
            None => None,
            Some(ttl) => {
                let ttl = ttl
                    .to_duration()
                    .ok_or_else(|| GatewayError::invalid("ttl", "ttl is negative"))?;
                if ttl < lifecycle.min_ttl || ttl > period {
                    return Err(GatewayError::invalid(
                        "ttl",
                        format!(
                            "ttl {} is outside the allowed range {} to the crypto-period ({})",
                            format_duration(ttl),
                            format_duration(lifecycle.min_ttl),
                            format_duration(period),
                        ),
                    ));
                }
                Some(ttl)
            }
        };
        Ok(KeyDraft {
            id: uuid::Uuid::new_v4().to_string(),
            ttl,
            name: self.name.clone(),
            owner: self.owner.clone(),
            purpose,
            environment,
            algorithm,
            provider: if self.provider.is_empty() {
                settings.default_provider.to_string()
            } else {
                self.provider.clone()
            },
            crypto_period: period,
            labels: self.labels.clone(),
        })
    }
}

impl Operation for CreateKey {
    type Output = Arc<KeyRecord>;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::CreateKey
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        self.draft = Some(self.draft(settings)?);
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        match &self.draft {
            Some(draft) => Target::NewKey(draft),
            // Unreachable: the runner checks before it resolves. A name alone is refused as
            // a missing key rather than acting on an unchecked request.
            None => Target::Key {
                field: "name",
                key: "",
            },
        }
    }

    fn policy_context(&self, facts: &mut OperationFacts) {
        facts.ttl_seconds = self
            .draft
            .as_ref()
            .and_then(|d| d.ttl)
            .map(|ttl| i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    }

    fn ready(&self, cx: &Exec<'_, Changes>) -> Result<(), GatewayError> {
        let draft = cx.draft()?;
        supported(cx, draft).map(|_| ())
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<Arc<KeyRecord>, GatewayError> {
        let draft = cx.draft()?.clone();
        let algorithm = supported(cx, &draft)?;
        let spec = KeySpec {
            name: draft.name.clone(),
            key_id: draft.id.clone(),
            algorithm,
            owner: draft.owner.clone(),
            environment: draft.environment.clone(),
            crypto_period: draft.crypto_period,
            labels: draft.labels.clone(),
        };
        let created = cx.create_in_backend(&spec).await?;
        // On record before anything else can fail, so a backend key whose catalog entry was
        // never written can be found (and reconciled by its keygate id tag).
        cx.detail("provider_uri", created.uri.to_string());
        let now = now_ms();
        let versions: Vec<VersionRecord> = created
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| VersionRecord {
                version: i as u32 + 1,
                provider_version: v.provider_version.clone(),
                created_at_ms: now,
            })
            .collect();
        if versions.is_empty() {
            return Err(GatewayError::Internal(format!(
                "provider '{}' created a key with no versions",
                draft.provider
            )));
        }
        let record = KeyRecord {
            id: draft.id,
            name: draft.name,
            owner: draft.owner,
            purpose: draft.purpose,
            environment: draft.environment,
            algorithm,
            provider: draft.provider,
            provider_uri: created.uri,
            state: KeyState::Enabled,
            crypto_period: draft.crypto_period,
            created_at_ms: now,
            rotation_due_at_ms: crate::time::after(now, draft.crypto_period),
            destruction_at_ms: None,
            labels: spec.labels,
            versions,
            retired_below: 0,
            expires_at_ms: draft.ttl.map(|ttl| crate::time::after(now, ttl)),
            primary_version: None,
        };
        if let Some(at) = record.expires_at_ms {
            cx.detail("expires_at", crate::time::rfc3339(at));
        }
        let record = cx.insert_key(record).await?;
        cx.note_version(1);
        cx.detail("algorithm", record.algorithm.as_str());
        cx.detail("owner", record.owner.clone());
        cx.detail("crypto_period_seconds", record.crypto_period.as_secs());
        Ok(record)
    }
}

/// The draft's algorithm, if its provider creates it (a retired one no provider creates:
/// policy refuses those first, unless a deployment's own policies allow them).
pub(super) fn supported(
    cx: &Exec<'_, Changes>,
    draft: &KeyDraft,
) -> Result<Algorithm, GatewayError> {
    let (kind, capabilities) = cx.new_key_capabilities()?;
    match draft.algorithm {
        RequestedAlgorithm::Known(algorithm) if capabilities.supports(algorithm) => Ok(algorithm),
        other => Err(GatewayError::AlgorithmUnsupported {
            provider: draft.provider.clone(),
            kind: kind.into(),
            algorithm: other.to_string(),
        }),
    }
}

pub struct GetKey {
    pub key: String,
    /// Also count each version's uses in the usage window.
    pub usage: bool,
}

/// Version usage over a window, from the audit log.
pub struct Usage {
    pub window: Duration,
    pub versions: BTreeMap<u32, super::usage::VersionUsage>,
    /// The same uses per UTC day.
    pub daily: super::usage::DailyUsage,
}

pub struct KeyView {
    pub record: Arc<KeyRecord>,
    pub usage: Option<Usage>,
}

impl std::ops::Deref for KeyView {
    type Target = KeyRecord;
    fn deref(&self) -> &KeyRecord {
        &self.record
    }
}

impl Operation for GetKey {
    type Output = KeyView;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GetKey
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<KeyView, GatewayError> {
        let record = cx.key()?.record().clone();
        let usage = if self.usage {
            let window = cx.settings().lifecycle.usage_window;
            let since = now_ms() - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
            let (versions, daily) = super::usage::usage_by_day(cx, &record, since).await?;
            cx.detail("usage_window_seconds", window.as_secs());
            Some(Usage {
                window,
                versions,
                daily,
            })
        } else {
            None
        };
        Ok(KeyView { record, usage })
    }
}

/// Lists the keys the caller may read (GetKey), by name.
pub struct ListKeys {
    pub owner: String,
    pub environment: String,
    /// 0: 100; at most 1000.
    pub page_size: u32,
    /// Empty for the first page; otherwise a `next_page_token` this gateway issued.
    pub page_token: String,
    /// Only short-lived keys whose TTL ends within this.
    pub expiring_within: Option<DurationInput>,
    /// Only enabled keys past their rotation date.
    pub rotation_overdue: bool,
}

pub struct KeyPage {
    pub keys: Vec<Arc<KeyRecord>>,
    pub next_page_token: String,
}

impl ListKeys {
    /// The filters a page token is bound to.
    fn scope(&self) -> String {
        format!(
            "keys|{:?}|{:?}|{:?}|{}",
            self.owner,
            self.environment,
            self.expiring_within.as_ref().map(|d| (d.seconds, d.nanos)),
            self.rotation_overdue
        )
    }

    /// The last key name of the page before, from the page token.
    fn after(&self) -> Result<Option<String>, GatewayError> {
        crate::page_token::open(&self.scope(), &self.page_token)
            .map_err(|why| GatewayError::invalid("page_token", why))
    }
}

impl Operation for ListKeys {
    type Output = KeyPage;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ListKeys
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        // Refused before anything is read; `execute` opens it again.
        self.after()?;
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        Target::Catalog
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<KeyPage, GatewayError> {
        let page_size = super::page_size(self.page_size) as usize;
        let filter = ListFilter {
            owner: (!self.owner.is_empty()).then(|| self.owner.clone()),
            environment: (!self.environment.is_empty()).then(|| self.environment.clone()),
        };
        let expiring_by = match self.expiring_within {
            None => None,
            Some(d) => {
                let d = d.to_duration().ok_or_else(|| {
                    GatewayError::invalid("expiring_within", "expiring_within is negative")
                })?;
                Some(crate::time::after(now_ms(), d))
            }
        };
        let now = now_ms();
        let wanted = |key: &KeyRecord| {
            expiring_by.is_none_or(|by| key.expires_at_ms.is_some_and(|at| at <= by))
                && (!self.rotation_overdue
                    || (key.state == KeyState::Enabled && key.rotation_due_at_ms <= now))
        };
        let mut keys = Vec::new();
        let mut after = self.after()?.unwrap_or_default();
        let scope = self.scope();
        // Filter by permission page by page until the page is full or the catalog ends.
        loop {
            let batch = cx.list_keys(&filter, &after, page_size);
            let exhausted = batch.len() < page_size;
            for key in batch {
                after = key.name.clone();
                if wanted(&key) && cx.may_read(&key) {
                    keys.push(key);
                    if keys.len() == page_size {
                        break;
                    }
                }
            }
            if exhausted || keys.len() == page_size {
                let more = keys.len() == page_size && !cx.list_keys(&filter, &after, 1).is_empty();
                cx.detail("returned", keys.len());
                return Ok(KeyPage {
                    keys,
                    next_page_token: if more {
                        crate::page_token::issue(&scope, &after)
                    } else {
                        String::new()
                    },
                });
            }
        }
    }
}
