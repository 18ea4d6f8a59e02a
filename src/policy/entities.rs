//! keygate's facts as Cedar entities, actions and context.

use crate::auth::Principal;
use crate::config::PrincipalKind;
use cedar_policy::{Context, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use std::collections::{HashMap, HashSet};
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
            Action::AuditQuery => "AuditQuery",
            Action::AuditTail => "AuditTail",
            Action::AuditVerify => "AuditVerify",
            Action::ListInventory => "ListInventory",
            Action::AuditStoreRecovered => "AuditStoreRecovered",
            Action::AuditHash => "AuditHash",
            Action::SignAuditCheckpoint => "SignAuditCheckpoint",
        }
    }
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
}

pub enum Resource<'a> {
    Key(KeyAttributes<'a>),
    /// The catalog as a whole (listing keys; each listed key is then authorized as GetKey).
    Catalog,
    AuditLog,
    /// A provider instance, by name.
    Provider(&'a str),
}

#[derive(Debug, Clone, Default)]
pub struct PolicyContext {
    pub client_address: String,
    pub time_ms: i64,
    pub crypto_period_seconds: i64,
}

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
    let attrs = HashMap::from([("name".to_string(), string(&principal.name))]);
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
            ]);
            entities.push(
                Entity::new(key_uid.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?,
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
    ])
    .map_err(|e| e.to_string())?;
    Ok((principal_uid, action_uid, resource_uid, context, entities))
}

/// Everything a decision depends on when policies do not read the context, as one string
/// (fields separated by a byte that cannot occur in names).
pub fn cache_key(principal: &Principal, action: Action, resource: &Resource<'_>) -> String {
    let mut key = String::with_capacity(160);
    let sep = '\u{1f}';
    key.push_str(match principal.kind {
        PrincipalKind::User => "u",
        PrincipalKind::ServiceAccount => "s",
    });
    key.push(sep);
    key.push_str(&principal.name);
    for role in &principal.roles {
        key.push(sep);
        key.push_str(role);
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
            ] {
                key.push_str(field);
                key.push(sep);
            }
        }
        Resource::Catalog => key.push_str("catalog"),
        Resource::AuditLog => key.push_str("audit-log"),
        Resource::Provider(name) => {
            key.push_str("provider");
            key.push(sep);
            key.push_str(name);
        }
    }
    key
}
