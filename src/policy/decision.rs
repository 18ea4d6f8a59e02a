//! What authorization decided, and why, in words a person can act on.

/// The verdict of one authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Allowed once enough approvers agree: the approval workflow takes the call from here.
    NeedsApproval,
}

/// What one policy says of itself, from its annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// `@id`, or Cedar's generated id.
    pub id: String,
    /// `@rule`: the rule it enforces (`separation-of-duties`), for the denial message.
    pub rule: Option<String>,
    /// `@reason`: why it refuses, for a person.
    pub reason: Option<String>,
    /// `@approval`: its refusal is lifted by approvals, so it asks for them instead.
    pub approval: bool,
}

/// The outcome of one authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The policies that decided: the permits of an allow, the forbids of a deny.
    pub policies: Vec<String>,
    /// Evaluation errors. Any error denies: keygate fails closed.
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
            reason: format!("the request could not be evaluated (fail closed): {why}"),
            errors: vec![why],
        }
    }

    /// `allow by ids` / `deny by ids` for the audit event.
    pub fn summary(&self) -> String {
        let verdict = match self.verdict {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::NeedsApproval => "needs approval",
        };
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

/// The human reason of a refusal decided by `deciding` (forbid policies), or by no policy.
pub(super) fn refusal_reason(deciding: &[&PolicyInfo], errors: &[String]) -> String {
    if let Some(first) = deciding.first() {
        let rule = first.rule.as_deref().unwrap_or(&first.id);
        return match &first.reason {
            Some(reason) => format!("denied by {rule}: {reason}"),
            None => format!("denied by {rule}"),
        };
    }
    if let Some(error) = errors.first() {
        return format!("a policy failed to evaluate, so the call is refused (fail closed): {error}");
    }
    "no policy permits this".to_string()
}
