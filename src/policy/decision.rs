//! What authorization decided, and why, in words a person can act on.

use serde::Serialize;

/// The verdict of one authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Allow,
    Deny,
    /// Allowed once enough approvers agree: the approval workflow takes the call from here.
    NeedsApproval,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::NeedsApproval => "needs-approval",
        }
    }
}

/// What one policy says of itself, from its annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// `@id`, or `FILE#N` for a policy without one.
    pub id: String,
    /// The file it came from.
    pub file: String,
    /// `@rule`: the rule it enforces (`separation-of-duties`), for the denial message.
    pub rule: Option<String>,
    /// `@reason`: why it refuses, for a person.
    pub reason: Option<String>,
    /// `@approval`: its refusal is lifted by approvals, so it asks for them instead.
    pub approval: bool,
}

/// The rule name of refusals for an evaluation error (rule 7).
pub const FAIL_CLOSED: &str = "fail-closed";

/// The outcome of one authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The policies that decided: the permits of an allow, the forbids of a refusal, the
    /// policies that failed to evaluate.
    pub policies: Vec<String>,
    /// Evaluation errors, each naming its policy. Any error denies: keygate fails closed.
    pub errors: Vec<String>,
    /// For a refusal: which rule refused and why, or that no policy permits it.
    pub reason: String,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// A refusal that no policy decided on: something failed before Cedar could be asked.
    pub fn failed(why: String) -> Self {
        Decision {
            verdict: Verdict::Deny,
            policies: Vec::new(),
            reason: format!(
                "denied by {FAIL_CLOSED}: the request could not be evaluated, so it is refused: {why}"
            ),
            errors: vec![why],
        }
    }

    /// `allow by ids` / `deny by ids` for the audit event.
    pub fn summary(&self) -> String {
        let verdict = self.verdict.as_str();
        match (self.policies.is_empty(), self.errors.is_empty()) {
            (true, true) => format!("{verdict} (no policy permits this)"),
            (true, false) => format!("{verdict} (evaluation error: fail closed)"),
            (false, true) => format!("{verdict} by {}", self.policies.join(", ")),
            (false, false) => format!(
                "{verdict} by {} (evaluation error: fail closed)",
                self.policies.join(", ")
            ),
        }
    }
}

/// The human reason of a refusal decided by `deciding` (forbid policies, those approvals
/// cannot lift first), or by no policy: every rule that refused, each once.
pub(super) fn refusal_reason(deciding: &[&PolicyInfo]) -> String {
    if deciding.is_empty() {
        return "no policy permits this (default deny)".to_string();
    }
    let mut said: Vec<String> = Vec::new();
    for policy in deciding {
        let rule = policy.rule.as_deref().unwrap_or(&policy.id);
        let line = match &policy.reason {
            Some(reason) => format!("denied by {rule}: {reason}"),
            None => format!("denied by {rule} (policy {})", policy.id),
        };
        if !said.contains(&line) {
            said.push(line);
        }
    }
    said.join("; ")
}

/// The human reason of a refusal for evaluation errors (`errors` name their policies).
pub(super) fn error_reason(errors: &[String]) -> String {
    format!(
        "denied by {FAIL_CLOSED}: a policy failed to evaluate, and keygate refuses what it cannot evaluate: {}",
        errors.join("; ")
    )
}
