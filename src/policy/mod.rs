//! The policy engine: Cedar policies and schema, validated at load, evaluated on every call.
//!
//! The built-in defaults are the repository's `policies/` folder, compiled into the binary;
//! `policy.dir` in the configuration replaces them. Cedar denies what no policy permits; any
//! evaluation error denies too (fail closed); a refusal made only by policies annotated
//! `@approval` asks for approvals instead ([`Verdict::NeedsApproval`]).

mod decision;
mod entities;
mod reads;
mod store;

pub use decision::{Decision, FAIL_CLOSED, PolicyInfo, Verdict};
pub use entities::{Action, CallFacts, KeyAttributes, OperationFacts, PolicyContext, Resource};
pub use store::{PolicySource, PolicyStore, ReloadOutcome};

use crate::auth::Principal;
use cedar_policy::{
    Authorizer, Decision as CedarDecision, Entities, Entity, EntityUid, PolicyId, PolicySet,
    Request, ResourceConstraint, Schema, ValidationMode, Validator,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

pub const DEFAULT_SCHEMA: &str = include_str!("../../policies/keygate.cedarschema");

/// The repository's `policies/`, one file per rule (a unit test checks none is missing).
pub const DEFAULT_POLICIES: &[(&str, &str)] = &[
    (
        "00-grants.cedar",
        include_str!("../../policies/00-grants.cedar"),
    ),
    ("quorum.cedar", include_str!("../../policies/quorum.cedar")),
    (
        "rule-1-owner.cedar",
        include_str!("../../policies/rule-1-owner.cedar"),
    ),
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
    (
        "rule-7-fail-closed.cedar",
        include_str!("../../policies/rule-7-fail-closed.cedar"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy folder {dir}: {reason}")]
    Folder { dir: String, reason: String },
    #[error("policy schema {file}: {reason}")]
    Schema { file: String, reason: String },
    #[error("policy file {file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("policy '{id}' is defined twice, in {first} and in {second}")]
    DuplicateId {
        id: String,
        first: String,
        second: String,
    },
    #[error("policies do not validate against the schema: {0}")]
    Validation(String),
}

/// A compiled, validated policy set and its decision cache. Immutable: a reload builds a new
/// one (and so starts with an empty cache).
pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    slices: Slices,
    /// PolicyId (the `@id`) → what the policy's annotations say of it.
    infos: HashMap<PolicyId, PolicyInfo>,
    /// Each action's entity with its group parents, from the schema: `action in
    /// Keygate::Action::"KeyUse"` needs them in every request's entity set.
    actions: HashMap<&'static str, Entity>,
    authorizer: Authorizer,
    /// Decisions by everything they depend on ([`entities::cache_key`]); kept only while no
    /// policy reads a per-call fact (the time, the client address), so a cached decision is
    /// the one a fresh evaluation would give.
    cache: Option<RwLock<HashMap<String, Decision>>>,
}

/// The policies a request can be decided by, by its resource. A policy whose scope names one
/// resource (`resource == Keygate::Key::"…"`) cannot apply to another (its scope is false, so
/// its conditions are not even evaluated), so a request is evaluated against the other
/// policies plus its resource's own: the decision of the whole set, without walking hundreds
/// of per-key policies that cannot apply.
struct Slices {
    /// Policies whose scope does not name one resource.
    everyone: PolicySet,
    /// `everyone` plus the policies naming this resource.
    by_resource: HashMap<EntityUid, PolicySet>,
}

impl Slices {
    /// Fails only if the set held two policies with one id, which it cannot (they come from
    /// one validated set); the message says so anyway.
    fn of(policies: &PolicySet) -> Result<Self, String> {
        let mut everyone = PolicySet::new();
        let mut named: HashMap<EntityUid, Vec<cedar_policy::Policy>> = HashMap::new();
        for policy in policies.policies() {
            match policy.resource_constraint() {
                ResourceConstraint::Eq(uid) => named.entry(uid).or_default().push(policy.clone()),
                _ => everyone.add(policy.clone()).map_err(|e| e.to_string())?,
            }
        }
        let mut by_resource = HashMap::with_capacity(named.len());
        for (uid, own) in named {
            let mut set = everyone.clone();
            for policy in own {
                set.add(policy).map_err(|e| e.to_string())?;
            }
            by_resource.insert(uid, set);
        }
        Ok(Slices {
            everyone,
            by_resource,
        })
    }

    fn for_resource(&self, uid: &EntityUid) -> &PolicySet {
        self.by_resource.get(uid).unwrap_or(&self.everyone)
    }
}

/// Bounds the decision cache; it is cleared when full (keys × principals × actions in use).
const CACHE_LIMIT: usize = 65_536;

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyEngine({} policies)", self.infos.len())
    }
}

/// One policy file: its name (for messages) and text.
pub type PolicyFile = (String, String);

impl PolicyEngine {
    /// The built-in default policies.
    pub fn defaults() -> Result<Self, PolicyError> {
        Self::build(
            DEFAULT_SCHEMA,
            "keygate.cedarschema (built in)",
            &Self::default_files(),
        )
    }

    /// The built-in policy files.
    pub fn default_files() -> Vec<PolicyFile> {
        DEFAULT_POLICIES
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    /// The defaults plus `extra` files (benchmarks, tests).
    pub fn defaults_with(extra: &[PolicyFile]) -> Result<Self, PolicyError> {
        let mut files = Self::default_files();
        files.extend_from_slice(extra);
        Self::build(DEFAULT_SCHEMA, "keygate.cedarschema (built in)", &files)
    }

    /// `DIR/keygate.cedarschema` (or the built-in schema if absent) and every `DIR/*.cedar`.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        let folder = |reason: String| PolicyError::Folder {
            dir: dir.display().to_string(),
            reason,
        };
        let schema_path = dir.join("keygate.cedarschema");
        let (schema, schema_name) = match std::fs::read_to_string(&schema_path) {
            Ok(text) => (text, schema_path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                DEFAULT_SCHEMA.to_string(),
                "keygate.cedarschema (built in)".to_string(),
            ),
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
        Self::build(&schema, &schema_name, &files)
    }

    fn build(
        schema_text: &str,
        schema_name: &str,
        files: &[PolicyFile],
    ) -> Result<Self, PolicyError> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(schema_text).map_err(|e| PolicyError::Schema {
                file: schema_name.to_string(),
                reason: format!("{e}"),
            })?;
        let mut policies = PolicySet::new();
        let mut infos = HashMap::new();
        for (file, text) in files {
            let parsed: PolicySet = text.parse().map_err(|e| PolicyError::Parse {
                file: file.clone(),
                reason: format!("{e}"),
            })?;
            if parsed.templates().next().is_some() {
                return Err(PolicyError::Parse {
                    file: file.clone(),
                    reason: "templates are not supported; write static policies".into(),
                });
            }
            for (n, policy) in parsed.policies().enumerate() {
                // Policies are known by their @id: in decisions, audit events and errors.
                let id = policy
                    .annotation("id")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}#{n}", file_stem(file)));
                let policy_id = PolicyId::new(&id);
                if let Some(first) = infos.get(&policy_id) {
                    let first: &PolicyInfo = first;
                    return Err(PolicyError::DuplicateId {
                        id,
                        first: first.file.clone(),
                        second: file.clone(),
                    });
                }
                let info = PolicyInfo {
                    id: id.clone(),
                    file: file.clone(),
                    rule: policy.annotation("rule").map(str::to_string),
                    reason: policy.annotation("reason").map(str::to_string),
                    approval: policy.annotation("approval").is_some(),
                };
                policies
                    .add(policy.new_id(policy_id.clone()))
                    .map_err(|e| PolicyError::Parse {
                        file: file.clone(),
                        reason: e.to_string(),
                    })?;
                infos.insert(policy_id, info);
            }
        }
        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            let errors: Vec<String> = validation
                .validation_errors()
                .map(|e| {
                    let file = infos
                        .get(e.policy_id())
                        .map(|i| i.file.as_str())
                        .unwrap_or("?");
                    format!("{file}: policy '{}': {e}", e.policy_id())
                })
                .collect();
            return Err(PolicyError::Validation(errors.join("; ")));
        }
        let mut actions = HashMap::new();
        let schema_actions = schema.action_entities().map_err(|e| PolicyError::Schema {
            file: schema_name.to_string(),
            reason: e.to_string(),
        })?;
        for action in Action::ALL {
            let entity = schema_actions
                .iter()
                .find(|e| e.uid().id().unescaped() == action.as_str())
                .ok_or_else(|| PolicyError::Schema {
                    file: schema_name.to_string(),
                    reason: format!("it declares no action {action}, which keygate decides"),
                })?;
            actions.insert(action.as_str(), entity.clone());
        }
        let cacheable = policies.policies().all(reads::reads_no_call_facts);
        let slices = Slices::of(&policies).map_err(|reason| PolicyError::Parse {
            file: "(all files)".into(),
            reason,
        })?;
        Ok(Self {
            schema,
            policies,
            slices,
            infos,
            actions,
            authorizer: Authorizer::new(),
            cache: cacheable.then(|| RwLock::new(HashMap::new())),
        })
    }

    pub fn policy_count(&self) -> usize {
        self.infos.len()
    }

    /// Every policy in force, by id.
    pub fn policies(&self) -> Vec<&PolicyInfo> {
        let mut all: Vec<&PolicyInfo> = self.infos.values().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Whether decisions are cached (no policy reads the time or the client address).
    pub fn caches_decisions(&self) -> bool {
        self.cache.is_some()
    }

    /// May `principal` do `action` on `resource`? From the cache when it can be.
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
        let Some(key) = entities::cache_key(principal, action, resource, context) else {
            return self.evaluate(principal, action, resource, context);
        };
        if let Some(hit) = cache.read().ok().and_then(|c| c.get(&key).cloned()) {
            return hit;
        }
        let decision = self.evaluate(principal, action, resource, context);
        if let Ok(mut c) = cache.write() {
            if c.len() >= CACHE_LIMIT {
                c.clear();
            }
            c.insert(key, decision.clone());
        }
        decision
    }

    /// A fresh evaluation, never from the cache.
    pub fn evaluate(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &PolicyContext,
    ) -> Decision {
        let decision = self.evaluate_once(principal, action, resource, context);
        if decision.verdict != Verdict::NeedsApproval {
            return decision;
        }
        // Refused only by policies that approvals lift: ask for approvals only if, with the
        // quorum reached, the call would be allowed (a caller no policy permits gets a plain
        // refusal, not a request nobody can ever carry out).
        let mut approved = context.clone();
        approved.approvals = approved.approvals.max(approved.quorum);
        let then = self.evaluate_once(principal, action, resource, &approved);
        match then.verdict {
            Verdict::Allow => decision,
            _ => Decision {
                verdict: Verdict::Deny,
                ..then
            },
        }
    }

    fn evaluate_once(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &PolicyContext,
    ) -> Decision {
        self.evaluate_in(principal, action, resource, context, false)
    }

    /// `whole`: against every policy rather than the request's slice (tests compare both).
    fn evaluate_in(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &PolicyContext,
        whole: bool,
    ) -> Decision {
        let built = entities::build(principal, action, resource, context);
        let (principal_uid, action_uid, resource_uid, context, mut entity_list) = match built {
            Ok(parts) => parts,
            Err(e) => return Decision::failed(e),
        };
        match self.actions.get(action.as_str()) {
            Some(entity) => entity_list.push(entity.clone()),
            None => {
                return Decision::failed(format!("the schema has no action {action}"));
            }
        }
        // Entities and request are built by keygate itself to the schema, and the policy
        // set was validated against it at load, so per-call schema checks are skipped.
        let entities = match Entities::from_entities(entity_list, None) {
            Ok(e) => e,
            Err(e) => return Decision::failed(e.to_string()),
        };
        let request = match Request::new(
            principal_uid,
            action_uid,
            resource_uid.clone(),
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return Decision::failed(e.to_string()),
        };
        let policies = if whole {
            &self.policies
        } else {
            self.slices.for_resource(&resource_uid)
        };
        let response = self.authorizer.is_authorized(&request, policies, &entities);
        let diagnostics = response.diagnostics();
        let mut errors: Vec<String> = diagnostics.errors().map(|e| e.to_string()).collect();
        errors.sort();
        if !errors.is_empty() {
            // Cedar skips a policy that fails to evaluate; a skipped forbid would let the call
            // through, so any error refuses it (rule 7, fail closed).
            let mut failing: Vec<String> = diagnostics
                .errors()
                .map(|e| match e {
                    cedar_policy::AuthorizationError::PolicyEvaluationError(e) => {
                        e.policy_id().to_string()
                    }
                })
                .collect();
            failing.sort();
            failing.dedup();
            return Decision {
                verdict: Verdict::Deny,
                policies: failing,
                reason: decision::error_reason(&errors),
                errors,
            };
        }
        // Cedar reports the deciding policies in no particular order; sort them so a
        // decision (and its reason) is the same every time.
        let mut deciding: Vec<&PolicyInfo> = diagnostics
            .reason()
            .filter_map(|id| self.infos.get(id))
            .collect();
        deciding.sort_by(|a, b| a.id.cmp(&b.id));
        let policies = deciding.iter().map(|p| p.id.clone()).collect();
        if response.decision() == CedarDecision::Allow {
            return Decision {
                verdict: Verdict::Allow,
                policies,
                errors,
                reason: String::new(),
            };
        }
        let verdict = if !deciding.is_empty() && deciding.iter().all(|p| p.approval) {
            Verdict::NeedsApproval
        } else {
            Verdict::Deny
        };
        // Name a rule that refuses outright before one that approvals would lift.
        let mut ordered = deciding.clone();
        ordered.sort_by_key(|p| p.approval);
        Decision {
            verdict,
            policies,
            errors,
            reason: decision::refusal_reason(&ordered),
        }
    }

    /// One evaluation against the whole set, not the request's slice, without the cache
    /// (tests compare the two; the benchmark measures what slicing saves).
    pub fn evaluate_whole(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &PolicyContext,
    ) -> Decision {
        self.evaluate_in(principal, action, resource, context, true)
    }

    #[cfg(test)]
    fn cache_len(&self) -> usize {
        self.cache
            .as_ref()
            .and_then(|c| c.read().ok().map(|c| c.len()))
            .unwrap_or_default()
    }

    /// The schema, for tools that validate policies offline.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

fn file_stem(file: &str) -> &str {
    Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(file)
}

#[cfg(test)]
mod tests;
