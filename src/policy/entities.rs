//! keygate's facts as Cedar entities, actions and context.
//!
//! Everything a decision depends on is in the four values [`build`] takes: the principal, the
//! action, the resource and the context. The decision cache keys on the same values (their
//! serialisation, minus the per-call facts in [`CallFacts`]), so a field added to any of them
//! is part of the key without anyone remembering to add it.

use crate::auth::Principal;
use crate::config::PrincipalKind;
use cedar_policy::{Context, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

/// Declares [`Action`] with its names (Cedar action ids, audit event actions and, for calls,
/// RPC names) and the list of all of them, from one list.
macro_rules! actions {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {
        /// Every action keygate audits.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum Action {
            $($(#[$doc])* $name,)+
        }

        impl Action {
            /// Every action, for lookups by name.
            pub const ALL: &'static [Action] = &[$(Action::$name,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$name => stringify!($name),)+
                }
            }
        }
    };
}

actions! {
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
    /// Stops a key's older versions decrypting and verifying.
    RetireKeyVersions,
    /// Generates a key in an HSM and imports wrapped copies into other backends (BYOK).
    ByokImport,
    /// Reads the records of a key's destructions.
    ListDestructionRecords,
    ApproveRequest,
    DenyRequest,
    CancelRequest,
    ListApprovals,
    GetApproval,
    ReloadPolicies,
    ExplainPolicy,
    GetPolicyStatus,
    /// The gateway's state for operators (`keygate status`).
    GetGatewayStatus,
    AuditQuery,
    AuditTail,
    AuditVerify,
    ListInventory,
    /// The audit store is writable again after an outage (the audit writer's).
    AuditStoreRecovered,
    /// The HMAC of a value, to find provider records that carry it (`keygate audit hash`).
    AuditHash,
    /// A checkpoint of the audit chain signed with the audit signing key (keygate's own).
    SignAuditCheckpoint,
    /// Lists every provider instance and records the inventory and its findings.
    ScanPosture,
    /// The newest scan's inventory, with what appeared and vanished.
    GetPostureInventory,
    ListFindings,
    /// Acknowledges a finding, with a reason.
    AcknowledgeFinding,
    /// The compliance report: each requirement with the evidence keygate holds for it.
    ComplianceReport,
    /// Signs in to the web console with a token (the console's pages then run as its
    /// principal, each read authorized and audited like the RPC it stands for).
    ConsoleSignIn,
    /// Brings a key a provider holds, unmanaged, into the catalog.
    AdoptKey,
    /// Replaces a provider instance's master key and rewraps its keys under the new one.
    RotateMasterKey,
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown action '{}'",
                    crate::gateway::validate::truncate(s, 64)
                )
            })
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's attributes as policies see them.
#[derive(Debug, Clone, Serialize)]
pub struct KeyAttributes<'a> {
    /// The key id, or the new id of a key not yet created.
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

#[derive(Debug, Clone, Serialize)]
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
    /// Key posture: inventory scans and findings.
    Posture,
}

/// Facts of the call itself, new with every call. Not part of the decision cache's key: the
/// engine caches only while no policy reads them.
#[derive(Debug, Clone, Default)]
pub struct CallFacts {
    pub client_address: String,
    pub time_ms: i64,
}

/// The context attributes [`CallFacts`] become.
pub const CALL_FACTS: &[&str] = &["client_address", "time_ms"];

/// What an operation adds about what it asks for (`Operation::policy_context`). Absent
/// facts are absent attributes: policies test them with `context has …`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OperationFacts {
    /// SetKeyOwner: the new owner.
    pub new_owner: Option<String>,
    /// What the new owner names (filled in by the gateway, like `owner_kind`).
    pub new_owner_kind: Option<String>,
    /// ScheduleKeyDestruction: the pending window asked for.
    pub pending_window_seconds: Option<i64>,
    /// ReEncrypt: set on the destination key's decision.
    pub destination: Option<bool>,
    /// RetireKeyVersions: retire although a version was used within the quiet period.
    pub forced: Option<bool>,
    /// CreateKey: a short-lived key's time to live.
    pub ttl_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyContext {
    #[serde(skip)]
    pub call: CallFacts,
    /// The configuration marks the action on this key critical.
    pub critical: bool,
    pub quorum: i64,
    pub approvals: i64,
    pub approvers: Vec<String>,
    pub requester: String,
    pub facts: OperationFacts,
}

/// The decision cache's key: everything a decision depends on but the per-call facts.
pub fn cache_key(
    principal: &Principal,
    action: Action,
    resource: &Resource<'_>,
    context: &PolicyContext,
) -> Option<String> {
    serde_json::to_string(&(principal, action, resource, context)).ok()
}

fn uid(type_name: &str, id: &str) -> Result<EntityUid, String> {
    let t = EntityTypeName::from_str(type_name).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_string())
}

pub type Built = (EntityUid, EntityUid, EntityUid, Context, Vec<Entity>);

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

    let singleton = |type_name: &str, id: &str, entities: &mut Vec<Entity>| {
        let entity_uid = uid(type_name, id)?;
        entities.push(Entity::new_no_attrs(entity_uid.clone(), HashSet::new()));
        Ok::<_, String>(entity_uid)
    };
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
            let tags = k
                .labels
                .iter()
                .map(|(name, value)| (name.clone(), string(value)));
            entities.push(
                Entity::new_with_tags(key_uid.clone(), attrs, HashSet::new(), tags)
                    .map_err(|e| e.to_string())?,
            );
            key_uid
        }
        Resource::Catalog => singleton("Keygate::Catalog", "gateway", &mut entities)?,
        Resource::AuditLog => singleton("Keygate::AuditLog", "gateway", &mut entities)?,
        Resource::Provider(name) => singleton("Keygate::Provider", name, &mut entities)?,
        Resource::Approvals => singleton("Keygate::Approvals", "gateway", &mut entities)?,
        Resource::PolicyStore => singleton("Keygate::PolicyStore", "gateway", &mut entities)?,
        Resource::Posture => singleton("Keygate::Posture", "gateway", &mut entities)?,
    };
    let action_uid = uid("Keygate::Action", action.as_str())?;
    let mut pairs = vec![
        (
            "client_address".to_string(),
            string(&context.call.client_address),
        ),
        (
            "time_ms".to_string(),
            RestrictedExpression::new_long(context.call.time_ms),
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
    ];
    // Every fact, by name: a fact added to `OperationFacts` does not compile until it is put
    // into the context here (a fact policies cannot see is a rule that never fires).
    let OperationFacts {
        new_owner,
        new_owner_kind,
        pending_window_seconds,
        destination,
        forced,
        ttl_seconds,
    } = &context.facts;
    if let Some(owner) = new_owner {
        pairs.push(("new_owner".to_string(), string(owner)));
    }
    if let Some(kind) = new_owner_kind {
        pairs.push(("new_owner_kind".to_string(), string(kind)));
    }
    if let Some(window) = pending_window_seconds {
        pairs.push((
            "pending_window_seconds".to_string(),
            RestrictedExpression::new_long(*window),
        ));
    }
    if let Some(destination) = destination {
        pairs.push((
            "destination".to_string(),
            RestrictedExpression::new_bool(*destination),
        ));
    }
    if let Some(forced) = forced {
        pairs.push((
            "forced".to_string(),
            RestrictedExpression::new_bool(*forced),
        ));
    }
    if let Some(ttl) = ttl_seconds {
        pairs.push((
            "ttl_seconds".to_string(),
            RestrictedExpression::new_long(*ttl),
        ));
    }
    let context = Context::from_pairs(pairs).map_err(|e| e.to_string())?;
    Ok((principal_uid, action_uid, resource_uid, context, entities))
}
