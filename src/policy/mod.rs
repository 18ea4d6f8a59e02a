//! The policy engine: Cedar policies and schema, validated at load, evaluated on every call.
//!
//! The built-in defaults are the repository's `policies/` folder, compiled into the binary;
//! `policy.dir` in the configuration replaces them. Cedar denies what no policy permits.

mod entities;

pub use entities::{Action, KeyAttributes, PolicyContext, Resource};

use crate::auth::Principal;
use cedar_policy::{
    Authorizer, Decision as CedarDecision, Entities, Entity, PolicyId, PolicySet, Request, Schema,
    ValidationMode, Validator,
};
use std::collections::HashMap;
use std::path::Path;

const DEFAULT_SCHEMA: &str = include_str!("../../policies/keygate.cedarschema");
const DEFAULT_POLICIES: &[(&str, &str)] = &[(
    "default.cedar",
    include_str!("../../policies/default.cedar"),
)];

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

/// What authorization decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Allowed once enough approvers agree: the approval workflow takes the call from here.
    /// (The default policies never ask for it.)
    NeedsApproval,
}

/// The outcome of one authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// `@id` annotations (or generated ids) of the policies that decided.
    pub policies: Vec<String>,
    /// Evaluation errors (a policy that failed to evaluate is skipped by Cedar).
    pub errors: Vec<String>,
}

impl Decision {
    /// `allow [ids]` / `deny [ids]` for the audit event.
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    pub fn summary(&self) -> String {
        let verdict = match self.verdict {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::NeedsApproval => "needs approval",
        };
        if self.policies.is_empty() {
            format!("{verdict} (no policy permits this)")
        } else {
            format!("{verdict} by {}", self.policies.join(", "))
        }
    }
}

pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    /// PolicyId → the policy's `@id` annotation, for explanations.
    names: HashMap<PolicyId, String>,
    /// Each action's entity with its group parents, from the schema: `action in
    /// Keygate::Action::"KeyUse"` needs them in every request's entity set.
    actions: HashMap<String, Entity>,
    authorizer: Authorizer,
    /// Decisions by (principal, action, resource attributes), kept only when no policy reads
    /// `context`: then a decision depends on nothing else, so a cached one is exact. Saves
    /// building Cedar entities on every call of the hot path.
    cache: Option<std::sync::RwLock<HashMap<String, Decision>>>,
}

/// Bounds the decision cache; it is cleared when full (keys and principals are few).
const CACHE_LIMIT: usize = 100_000;

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyEngine({} policies)", self.names.len())
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
        let names = policies
            .policies()
            .map(|p| {
                let name = p
                    .annotation("id")
                    .map(str::to_string)
                    .unwrap_or_else(|| p.id().to_string());
                (p.id().clone(), name)
            })
            .collect();
        let actions = schema
            .action_entities()
            .map_err(|e| PolicyError::Schema(e.to_string()))?
            .iter()
            .map(|e| (e.uid().id().unescaped().to_string(), e.clone()))
            .collect();
        let reads_context = policies
            .policies()
            .any(|p| p.to_string().contains("context"));
        Ok(Self {
            schema,
            policies,
            names,
            actions,
            authorizer: Authorizer::new(),
            cache: (!reads_context).then(|| std::sync::RwLock::new(HashMap::new())),
        })
    }

    pub fn policy_count(&self) -> usize {
        self.names.len()
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
        let key = entities::cache_key(principal, action, resource);
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
        let deny = |why: String| Decision {
            verdict: Verdict::Deny,
            policies: Vec::new(),
            errors: vec![why],
        };
        let built = entities::build(principal, action, resource, context);
        let (principal_uid, action_uid, resource_uid, context, mut entity_list) = match built {
            Ok(parts) => parts,
            Err(e) => return deny(e),
        };
        match self.actions.get(action.as_str()) {
            Some(entity) => entity_list.push(entity.clone()),
            None => return deny(format!("the schema has no action {}", action.as_str())),
        }
        // Entities and request are built by keygate itself to the schema, and the policy
        // set was validated against it at load, so per-call schema checks are skipped.
        let entities = match Entities::from_entities(entity_list, None) {
            Ok(e) => e,
            Err(e) => return deny(e.to_string()),
        };
        let request = match Request::new(principal_uid, action_uid, resource_uid, context, None) {
            Ok(r) => r,
            Err(e) => return deny(e.to_string()),
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let diagnostics = response.diagnostics();
        Decision {
            verdict: match response.decision() {
                CedarDecision::Allow => Verdict::Allow,
                CedarDecision::Deny => Verdict::Deny,
            },
            policies: diagnostics
                .reason()
                .map(|id| {
                    self.names
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| id.to_string())
                })
                .collect(),
            errors: diagnostics.errors().map(|e| e.to_string()).collect(),
        }
    }

    /// The schema, for tools that validate policies offline.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}
