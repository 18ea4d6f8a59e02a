//! The policy engine: Cedar policies and schema, validated at load, evaluated on every call.
//!
//! The built-in defaults are the repository's `policies/` folder, compiled into the binary;
//! `policy.dir` in the configuration replaces them. Cedar denies what no policy permits.

mod decision;
mod entities;
mod store;

pub use decision::{Decision, PolicyInfo, Verdict};
pub use entities::{Action, KeyAttributes, PolicyContext, Resource};
pub use store::{PolicySource, PolicyStore, ReloadOutcome};

use crate::auth::Principal;
use cedar_policy::{
    Authorizer, Decision as CedarDecision, Entities, Entity, PolicyId, PolicySet, Request, Schema,
    ValidationMode, Validator,
};
use std::collections::HashMap;
use std::path::Path;

const DEFAULT_SCHEMA: &str = include_str!("../../policies/keygate.cedarschema");
/// The repository's `policies/`, one file per rule.
const DEFAULT_POLICIES: &[(&str, &str)] = &[
    ("00-grants.cedar", include_str!("../../policies/00-grants.cedar")),
    ("rule-1-owner.cedar", include_str!("../../policies/rule-1-owner.cedar")),
    (
        "rule-2-crypto-period.cedar",
        include_str!("../../policies/rule-2-crypto-period.cedar"),
    ),
    (
        "rule-3-rotation-due.cedar",
        include_str!("../../policies/rule-3-rotation-due.cedar"),
    ),
    (
        "rule-4-separation-of-duties.cedar",
        include_str!("../../policies/rule-4-separation-of-duties.cedar"),
    ),
    (
        "rule-5-environment-isolation.cedar",
        include_str!("../../policies/rule-5-environment-isolation.cedar"),
    ),
    (
        "rule-6-algorithms.cedar",
        include_str!("../../policies/rule-6-algorithms.cedar"),
    ),
    ("rule-7-quorum.cedar", include_str!("../../policies/rule-7-quorum.cedar")),
];

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy folder {dir}: {reason}")]
    Folder { dir: String, reason: String },
    #[error("policy schema: {0}")]
    Schema(String),
    #[error("policy file {file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("policies do not validate against the schema: {0}")]
    Validation(String),
}

pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    /// PolicyId → what the policy's annotations say of it.
    infos: HashMap<PolicyId, PolicyInfo>,
    /// Each action's entity with its group parents, from the schema: `action in
    /// Keygate::Action::"KeyUse"` needs them in every request's entity set.
    actions: HashMap<String, Entity>,
    authorizer: Authorizer,
    /// Decisions by (principal, action, resource attributes, the cacheable context), kept
    /// only when no policy reads another context attribute (the time, the client address):
    /// then a decision depends on nothing else, so a cached one is exact. Saves building
    /// Cedar entities on every call of the hot path.
    cache: Option<std::sync::RwLock<HashMap<String, Decision>>>,
}

/// Bounds the decision cache; it is cleared when full (keys and principals are few).
const CACHE_LIMIT: usize = 100_000;

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyEngine({} policies)", self.infos.len())
    }
}

impl PolicyEngine {
    /// The built-in default policies.
    pub fn defaults() -> Result<Self, PolicyError> {
        let files: Vec<(String, String)> = DEFAULT_POLICIES
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        Self::build(DEFAULT_SCHEMA, &files)
    }

    /// `DIR/keygate.cedarschema` (or the built-in schema if absent) and every `DIR/*.cedar`.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        let folder = |reason: String| PolicyError::Folder {
            dir: dir.display().to_string(),
            reason,
        };
        let schema_path = dir.join("keygate.cedarschema");
        let schema = match std::fs::read_to_string(&schema_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_SCHEMA.to_string(),
            Err(e) => return Err(folder(format!("{}: {e}", schema_path.display()))),
        };
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| folder(e.to_string()))?;
        for entry in entries {
            let path = entry.map_err(|e| folder(e.to_string()))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("cedar") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| folder(format!("{}: {e}", path.display())))?;
                files.push((path.display().to_string(), text));
            }
        }
        if files.is_empty() {
            return Err(folder("holds no *.cedar policy files".into()));
        }
        files.sort();
        Self::build(&schema, &files)
    }

    fn build(schema_text: &str, files: &[(String, String)]) -> Result<Self, PolicyError> {
        let (schema, _warnings) = Schema::from_cedarschema_str(schema_text)
            .map_err(|e| PolicyError::Schema(format!("{e:?}")))?;
        let mut all = String::new();
        for (file, text) in files {
            // Parse each file alone first so an error names its file.
            text.parse::<PolicySet>().map_err(|e| PolicyError::Parse {
                file: file.clone(),
                reason: format!("{e}"),
            })?;
            all.push_str(text);
            all.push('\n');
        }
        let policies: PolicySet = all.parse().map_err(|e| PolicyError::Parse {
            file: "(all files)".into(),
            reason: format!("{e}"),
        })?;
        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            let errors: Vec<String> = validation
                .validation_errors()
                .map(|e| e.to_string())
                .collect();
            return Err(PolicyError::Validation(errors.join("; ")));
        }
        let infos = policies
            .policies()
            .map(|p| {
                let info = PolicyInfo {
                    id: p
                        .annotation("id")
                        .map(str::to_string)
                        .unwrap_or_else(|| p.id().to_string()),
                    rule: p.annotation("rule").map(str::to_string),
                    reason: p.annotation("reason").map(str::to_string),
                    approval: p.annotation("approval").is_some(),
                };
                (p.id().clone(), info)
            })
            .collect();
        let actions = schema
            .action_entities()
            .map_err(|e| PolicyError::Schema(e.to_string()))?
            .iter()
            .map(|e| (e.uid().id().unescaped().to_string(), e.clone()))
            .collect();
        let cacheable = policies
            .policies()
            .all(|p| reads_only_cacheable_context(&p.to_string()));
        Ok(Self {
            schema,
            policies,
            infos,
            actions,
            authorizer: Authorizer::new(),
            cache: cacheable.then(|| std::sync::RwLock::new(HashMap::new())),
        })
    }

    pub fn policy_count(&self) -> usize {
        self.infos.len()
    }

    /// Whether decisions are cached (no policy reads the time or the client address).
    pub fn caches_decisions(&self) -> bool {
        self.cache.is_some()
    }

    /// May `principal` do `action` on `resource`? Errors building the request deny.
    pub fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &PolicyContext,
    ) -> Decision {
        let Some(cache) = &self.cache else {
            return self.evaluate(principal, action, resource, context);
        };
        let key = entities::cache_key(principal, action, resource, context);
        if let Some(hit) = cache.read().ok().and_then(|c| c.get(&key).cloned()) {
            return hit;
        }
        let decision = self.evaluate(principal, action, resource, context);
        if decision.errors.is_empty()
            && let Ok(mut c) = cache.write()
        {
            if c.len() >= CACHE_LIMIT {
                c.clear();
            }
            c.insert(key, decision.clone());
        }
        decision
    }

    fn evaluate(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &PolicyContext,
    ) -> Decision {
        let built = entities::build(principal, action, resource, context);
        let (principal_uid, action_uid, resource_uid, context, mut entity_list) = match built {
            Ok(parts) => parts,
            Err(e) => return Decision::failed(e),
        };
        match self.actions.get(action.as_str()) {
            Some(entity) => entity_list.push(entity.clone()),
            None => {
                return Decision::failed(format!("the schema has no action {}", action.as_str()));
            }
        }
        // Entities and request are built by keygate itself to the schema, and the policy
        // set was validated against it at load, so per-call schema checks are skipped.
        let entities = match Entities::from_entities(entity_list, None) {
            Ok(e) => e,
            Err(e) => return Decision::failed(e.to_string()),
        };
        let request = match Request::new(principal_uid, action_uid, resource_uid, context, None) {
            Ok(r) => r,
            Err(e) => return Decision::failed(e.to_string()),
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let diagnostics = response.diagnostics();
        let deciding: Vec<&PolicyInfo> = diagnostics
            .reason()
            .filter_map(|id| self.infos.get(id))
            .collect();
        let errors: Vec<String> = diagnostics.errors().map(|e| e.to_string()).collect();
        let cedar_allows = response.decision() == CedarDecision::Allow;
        let verdict = if !errors.is_empty() {
            // Cedar skips a policy that fails to evaluate; a skipped forbid would let the call
            // through, so any error refuses it (fail closed).
            Verdict::Deny
        } else if cedar_allows {
            Verdict::Allow
        } else if !deciding.is_empty() && deciding.iter().all(|p| p.approval) {
            // Refused only by policies that approvals lift: the call asks for them.
            Verdict::NeedsApproval
        } else {
            Verdict::Deny
        };
        let reason = match verdict {
            Verdict::Allow => String::new(),
            // An allow refused for an error: its permits do not explain the refusal.
            _ if cedar_allows => decision::refusal_reason(&[], &errors),
            _ => decision::refusal_reason(&deciding, &errors),
        };
        Decision {
            verdict,
            policies: deciding.iter().map(|p| p.id.clone()).collect(),
            errors,
            reason,
        }
    }

    /// The schema, for tools that validate policies offline.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

/// Whether `policy` (its text) reads only context attributes that are part of the decision
/// cache's key.
fn reads_only_cacheable_context(policy: &str) -> bool {
    let mut rest = policy;
    while let Some(at) = rest.find("context") {
        let after = &rest[at + "context".len()..];
        let Some(field) = after.strip_prefix('.') else {
            // `context has ...`, `context["..."]`: be conservative.
            return false;
        };
        let name: String = field
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !entities::CACHEABLE_CONTEXT.contains(&name.as_str()) {
            return false;
        }
        rest = after;
    }
    true
}
