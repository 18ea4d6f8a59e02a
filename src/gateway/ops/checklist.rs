//! The destruction checklist: what keygate checks before it schedules a key's destruction,
//! written into the destruction record so the record shows what was known when it was
//! decided. A key whose data may still need it (a version read within the quiet period) is
//! refused; the other items are facts for the people approving and for auditors.

use super::usage::version_usage;
use crate::catalog::KeyRecord;
use crate::gateway::GatewayError;
use crate::gateway::runner::{Changes, Exec, NeededChange};
use crate::lifecycle::destruction::Check;
use crate::time::{format_duration, now_ms, rfc3339};
use keygate_provider::KeyPurpose;

pub const QUIET: &str = "no reads in the quiet period";
pub const COPIES: &str = "every copy identified";
pub const PUBLIC_KEYS: &str = "public keys kept where signatures must stay verifiable";
pub const AUTHORIZED: &str = "authorized by someone other than the requester";

/// Runs the checklist for `key`, refusing with [`GatewayError::KeyInUse`] when a version
/// was used to read data within `lifecycle.destruction_quiet_period`. `family`: a BYOK
/// original destroyed with its copies.
pub async fn run(
    cx: &Exec<'_, Changes>,
    key: &KeyRecord,
    family: bool,
) -> Result<Vec<Check>, GatewayError> {
    cx.refuse_if_needed(key, NeededChange::Destroy)?;
    let quiet = cx.settings().lifecycle.destruction_quiet_period;
    let mut checks = vec![quiet_period(cx, key, quiet).await?];
    let versions = key.versions.len();
    let mut copies = format!(
        "provider '{}' ({}), {versions} version{}",
        key.provider,
        key.provider_uri,
        if versions == 1 { "" } else { "s" }
    );
    // A BYOK original: its imported copies are keys of their own, each destroyed on its own
    // schedule unless the family goes as a whole; the record names them so none is forgotten.
    let fate = if family {
        "destroyed with it (the family is destroyed as a whole)"
    } else {
        "not destroyed by this destruction"
    };
    if let Some(family) = cx.key_family(&key.id).await? {
        for copy in &family.copies {
            copies.push_str(&match (&copy.copy_key_id, copy.imported) {
                (Some(id), true) => format!(
                    "; BYOK copy in provider '{}' ({}), keygate key {id}, {fate}",
                    copy.provider, copy.provider_uri
                ),
                _ => format!(
                    "; BYOK import into provider '{}' never completed ({})",
                    copy.provider, copy.error
                ),
            });
        }
    }
    checks.push(Check::new(COPIES, copies));
    checks.push(Check::new(
        PUBLIC_KEYS,
        if key.purpose == KeyPurpose::Sign {
            "not kept by keygate: a key pending destruction answers no GetPublicKey; where \
             signatures must stay verifiable, export each version's public key \
             (`keygate public-key`) before the destruction is scheduled"
        } else {
            "not applicable: the key does not sign"
        },
    ));
    let requester = cx.actor_name();
    checks.push(Check::new(
        AUTHORIZED,
        match cx.grant() {
            Some(grant) => format!(
                "requested by {}; approved by {} (request {})",
                grant.requester,
                grant.approvers.join(", "),
                grant.request_id
            ),
            None => format!(
                "requested by {requester}; no approvals: the destruction is carried out only \
                 if its requester is dev mode's root"
            ),
        },
    ));
    Ok(checks)
}

async fn quiet_period(
    cx: &Exec<'_, Changes>,
    key: &KeyRecord,
    quiet: std::time::Duration,
) -> Result<Check, GatewayError> {
    if quiet.is_zero() {
        return Ok(Check::new(
            QUIET,
            "not checked: lifecycle.destruction_quiet_period is 0s",
        ));
    }
    let since = now_ms().saturating_sub(i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX));
    let usage = version_usage(cx, key, since).await?;
    let latest = usage
        .iter()
        .filter_map(|(version, u)| u.last_used_ms.map(|at| (*version, at)))
        .max_by_key(|(_, at)| *at);
    if let Some((version, last_used_ms)) = latest {
        return Err(GatewayError::KeyInUse {
            key: key.name.clone(),
            version,
            uses: usage.values().map(|u| u.uses).sum(),
            last_used_ms,
            quiet_period: quiet,
        });
    }
    Ok(Check::new(
        QUIET,
        format!(
            "passed: no decrypt, verify or re-encryption with any version since {} ({})",
            rfc3339(since),
            format_duration(quiet)
        ),
    ))
}
