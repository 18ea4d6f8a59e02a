//! keygate's facts as Cedar entities, actions and context.

use crate::auth::Principal;
use crate::config::PrincipalKind;
use cedar_policy::{Context, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

/// Every action keygate audits; the names are the Cedar action ids, the audit events' action
/// and (for calls) the RPC names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CreateKey,
    GetKey,
    ListKeys,
    Encrypt,
    Decrypt,
    GenerateDataKey,
    ReEncrypt,
    Sign,
    Verify,
    GetPublicKey,
    GenerateMac,
    VerifyMac,
    RotateKey,
    EnableKey,
    DisableKey,
    ScheduleKeyDestruction,
    CancelKeyDestruction,
    /// The end of a pending window: the key material is destroyed (the scheduler's).
    DestroyKey,
    /// Hands a key to another owner (an approved admin operation).
    SetKeyOwner,
    ApproveRequest,
    DenyRequest,
    CancelRequest,
    ListApprovals,
    GetApproval,
    ReloadPolicies,
    ExplainPolicy,
    AuditQuery,
    AuditTail,
    AuditVerify,
    ListInventory,
    /// The audit store is writable again after an outage (the audit writer's).
    AuditStoreRecovered,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::CreateKey => "CreateKey",
            Action::GetKey => "GetKey",
            Action::ListKeys => "ListKeys",
            Action::Encrypt => "Encrypt",
            Action::Decrypt => "Decrypt",
            Action::GenerateDataKey => "GenerateDataKey",
            Action::ReEncrypt => "ReEncrypt",
            Action::Sign => "Sign",
            Action::Verify => "Verify",
            Action::GetPublicKey => "GetPublicKey",
            Action::GenerateMac => "GenerateMac",
            Action::VerifyMac => "VerifyMac",
            Action::RotateKey => "RotateKey",
            Action::EnableKey => "EnableKey",
            Action::DisableKey => "DisableKey",
            Action::ScheduleKeyDestruction => "ScheduleKeyDestruction",
            Action::CancelKeyDestruction => "CancelKeyDestruction",
            Action::DestroyKey => "DestroyKey",
            Action::SetKeyOwner => "SetKeyOwner",
            Action::ApproveRequest => "ApproveRequest",
            Action::DenyRequest => "DenyRequest",
            Action::CancelRequest => "CancelRequest",
            Action::ListApprovals => "ListApprovals",
            Action::GetApproval => "GetApproval",
            Action::ReloadPolicies => "ReloadPolicies",
            Action::ExplainPolicy => "ExplainPolicy",
            Action::AuditQuery => "AuditQuery",
            Action::AuditTail => "AuditTail",
            Action::AuditVerify => "AuditVerify",
            Action::ListInventory => "ListInventory",
            Action::AuditStoreRecovered => "AuditStoreRecovered",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action '{s}'"))
    }
}

impl Action {
    /// Every action, for lookups by name.
    pub const ALL: &'static [Action] = &[
        Action::CreateKey,
        Action::GetKey,
        Action::ListKeys,
        Action::Encrypt,
        Action::Decrypt,
        Action::GenerateDataKey,
        Action::ReEncrypt,
        Action::Sign,
        Action::Verify,
        Action::GetPublicKey,
        Action::GenerateMac,
        Action::VerifyMac,
        Action::RotateKey,
        Action::EnableKey,
        Action::DisableKey,
        Action::ScheduleKeyDestruction,
        Action::CancelKeyDestruction,
        Action::DestroyKey,
        Action::SetKeyOwner,
        Action::ApproveRequest,
        Action::DenyRequest,
        Action::CancelRequest,
        Action::ListApprovals,
        Action::GetApproval,
        Action::ReloadPolicies,
        Action::ExplainPolicy,
        Action::AuditQuery,
        Action::AuditTail,
        Action::AuditVerify,
        Action::ListInventory,
        Action::AuditStoreRecovered,
    ];
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's attributes as policies see them.
#[derive(Debug, Clone)]
pub struct KeyAttributes<'a> {
    /// The key id, or the requested name for a key not yet created.
    pub id: &'a str,
    pub name: &'a str,
    pub owner: &'a str,
    pub purpose: &'a str,
    pub environment: &'a str,
    pub algorithm: &'a str,
    pub state: &'a str,
    pub provider: &'a str,
    /// What `owner` names: "user", "service-account", "team" or "unknown".
    pub owner_kind: &'a str,
    pub crypto_period_seconds: i64,
    /// The newest version has outlived the crypto-period.
    pub rotation_overdue: bool,
    pub labels: &'a BTreeMap<String, String>,
}

pub enum Resource<'a> {
    Key(KeyAttributes<'a>),
    /// The catalog as a whole (listing keys; each listed key is then authorized as GetKey).
    Catalog,
    AuditLog,
    /// A provider instance, by name.
    Provider(&'a str),
    /// The approval requests as a whole.
    Approvals,
    /// The policy set.
    PolicyStore,
}

#[derive(Debug, Clone, Default)]
pub struct PolicyContext {
    pub client_address: String,
    pub time_ms: i64,
    pub crypto_period_seconds: i64,
    /// The configuration marks the action on this key critical.
    pub critical: bool,
    pub quorum: i64,
    pub approvals: i64,
    pub approvers: Vec<String>,
    pub requester: String,
}

/// The context attributes a cached decision may depend on: they are part of the cache key.
/// A policy reading any other (`time_ms`, `client_address`) turns the cache off.
pub const CACHEABLE_CONTEXT: &[&str] = &[
    "crypto_period_seconds",
    "critical",
    "quorum",
    "approvals",
    "approvers",
    "requester",
];

fn uid(type_name: &str, id: &str) -> Result<EntityUid, String> {
    let t = EntityTypeName::from_str(type_name).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_string())
}

type Built = (EntityUid, EntityUid, EntityUid, Context, Vec<Entity>);

pub fn build(
    principal: &Principal,
    action: Action,
    resource: &Resource<'_>,
    context: &PolicyContext,
) -> Result<Built, String> {
    let principal_type = match principal.kind {
        PrincipalKind::User => "Keygate::User",
        PrincipalKind::ServiceAccount => "Keygate::ServiceAccount",
    };
    let principal_uid = uid(principal_type, &principal.name)?;
    let mut entities = Vec::with_capacity(2 + principal.roles.len());
    let mut parents = HashSet::with_capacity(principal.roles.len());
    for role in &principal.roles {
        let role_uid = uid("Keygate::Role", role)?;
        entities.push(Entity::new_no_attrs(role_uid.clone(), HashSet::new()));
        parents.insert(role_uid);
    }
    let attrs = HashMap::from([
        ("name".to_string(), string(&principal.name)),
        ("team".to_string(), string(&principal.team)),
        (
            "environments".to_string(),
            RestrictedExpression::new_set(principal.environments.iter().map(|e| string(e))),
        ),
    ]);
    entities.push(Entity::new(principal_uid.clone(), attrs, parents).map_err(|e| e.to_string())?);

    let resource_uid = match resource {
        Resource::Key(k) => {
            let key_uid = uid("Keygate::Key", k.id)?;
            let attrs = HashMap::from([
                ("name".to_string(), string(k.name)),
                ("owner".to_string(), string(k.owner)),
                ("purpose".to_string(), string(k.purpose)),
                ("environment".to_string(), string(k.environment)),
                ("algorithm".to_string(), string(k.algorithm)),
                ("state".to_string(), string(k.state)),
                ("provider".to_string(), string(k.provider)),
                ("owner_kind".to_string(), string(k.owner_kind)),
                (
                    "crypto_period_seconds".to_string(),
                    RestrictedExpression::new_long(k.crypto_period_seconds),
                ),
                (
                    "rotation_overdue".to_string(),
                    RestrictedExpression::new_bool(k.rotation_overdue),
                ),
            ]);
            let tags = k.labels.iter().map(|(name, value)| (name.clone(), string(value)));
            entities.push(
                Entity::new_with_tags(key_uid.clone(), attrs, HashSet::new(), tags)
                    .map_err(|e| e.to_string())?,
            );
            key_uid
        }
        Resource::Catalog => {
            let catalog_uid = uid("Keygate::Catalog", "gateway")?;
            entities.push(Entity::new_no_attrs(catalog_uid.clone(), HashSet::new()));
            catalog_uid
        }
        Resource::AuditLog => {
            let log_uid = uid("Keygate::AuditLog", "gateway")?;
            entities.push(Entity::new_no_attrs(log_uid.clone(), HashSet::new()));
            log_uid
        }
        Resource::Provider(name) => {
            let provider_uid = uid("Keygate::Provider", name)?;
            entities.push(Entity::new_no_attrs(provider_uid.clone(), HashSet::new()));
            provider_uid
        }
        Resource::Approvals => {
            let approvals_uid = uid("Keygate::Approvals", "gateway")?;
            entities.push(Entity::new_no_attrs(approvals_uid.clone(), HashSet::new()));
            approvals_uid
        }
        Resource::PolicyStore => {
            let store_uid = uid("Keygate::PolicyStore", "gateway")?;
            entities.push(Entity::new_no_attrs(store_uid.clone(), HashSet::new()));
            store_uid
        }
    };
    let action_uid = uid("Keygate::Action", action.as_str())?;
    let context = Context::from_pairs([
        (
            "client_address".to_string(),
            string(&context.client_address),
        ),
        (
            "time_ms".to_string(),
            RestrictedExpression::new_long(context.time_ms),
        ),
        (
            "crypto_period_seconds".to_string(),
            RestrictedExpression::new_long(context.crypto_period_seconds),
        ),
        (
            "critical".to_string(),
            RestrictedExpression::new_bool(context.critical),
        ),
        (
            "quorum".to_string(),
            RestrictedExpression::new_long(context.quorum),
        ),
        (
            "approvals".to_string(),
            RestrictedExpression::new_long(context.approvals),
        ),
        (
            "approvers".to_string(),
            RestrictedExpression::new_set(context.approvers.iter().map(|a| string(a))),
        ),
        ("requester".to_string(), string(&context.requester)),
    ])
    .map_err(|e| e.to_string())?;
    Ok((principal_uid, action_uid, resource_uid, context, entities))
}

/// Everything a decision depends on when policies do not read the context, as one string
/// (fields separated by a byte that cannot occur in names).
pub fn cache_key(
    principal: &Principal,
    action: Action,
    resource: &Resource<'_>,
    context: &PolicyContext,
) -> String {
    let mut key = String::with_capacity(160);
    let sep = '\u{1f}';
    key.push_str(match principal.kind {
        PrincipalKind::User => "u",
        PrincipalKind::ServiceAccount => "s",
    });
    key.push(sep);
    key.push_str(&principal.name);
    // Each list is prefixed by its length, so no two lists can spell the same key.
    key.push_str(&format!("{sep}{}", principal.roles.len()));
    for role in &principal.roles {
        key.push(sep);
        key.push_str(role);
    }
    key.push(sep);
    key.push_str(&principal.team);
    key.push_str(&format!("{sep}{}", principal.environments.len()));
    for environment in &principal.environments {
        key.push(sep);
        key.push_str(environment);
    }
    key.push(sep);
    key.push_str(action.as_str());
    key.push(sep);
    match resource {
        Resource::Key(k) => {
            for field in [
                k.id,
                k.name,
                k.owner,
                k.purpose,
                k.environment,
                k.algorithm,
                k.state,
                k.provider,
                k.owner_kind,
            ] {
                key.push_str(field);
                key.push(sep);
            }
            key.push_str(&k.crypto_period_seconds.to_string());
            key.push(if k.rotation_overdue { '1' } else { '0' });
            key.push_str(&format!("{sep}{}", k.labels.len()));
            for (name, value) in k.labels {
                key.push(sep);
                key.push_str(name);
                key.push('=');
                key.push_str(value);
            }
            key.push(sep);
        }
        Resource::Catalog => key.push_str("catalog"),
        Resource::AuditLog => key.push_str("audit-log"),
        Resource::Provider(name) => {
            key.push_str("provider");
            key.push(sep);
            key.push_str(name);
        }
        Resource::Approvals => key.push_str("approvals"),
        Resource::PolicyStore => key.push_str("policy-store"),
    }
    // Every context attribute in CACHEABLE_CONTEXT.
    key.push(sep);
    key.push_str(&context.crypto_period_seconds.to_string());
    key.push(sep);
    key.push(if context.critical { '1' } else { '0' });
    key.push_str(&format!(
        "{sep}{}{sep}{}{sep}{}",
        context.quorum,
        context.approvals,
        context.approvers.len()
    ));
    for approver in &context.approvers {
        key.push(sep);
        key.push_str(approver);
    }
    key.push(sep);
    key.push_str(&context.requester);
    key
}
