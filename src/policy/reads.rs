//! Which context attributes a policy reads, from its JSON form (Cedar's EST), for the
//! decision cache: decisions are cached only while no policy reads a per-call fact.

use super::entities::CALL_FACTS;
use cedar_policy::Policy;
use serde_json::Value;

/// Whether `policy` reads none of [`CALL_FACTS`]. A use of `context` other than reading one
/// named attribute (`context.x`, `context has x`) counts as reading them all.
pub fn reads_no_call_facts(policy: &Policy) -> bool {
    match policy.to_json() {
        Ok(json) => safe(&json),
        // Cannot tell: assume it reads them (no cache; decisions stay exact).
        Err(_) => false,
    }
}

fn is_context(v: &Value) -> bool {
    v.get("Var").and_then(Value::as_str) == Some("context")
}

fn safe(v: &Value) -> bool {
    match v {
        Value::Object(map) => {
            if is_context(v) {
                return false;
            }
            map.iter().all(|(op, inner)| match op.as_str() {
                "." | "has" if inner.get("left").is_some_and(is_context) => inner
                    .get("attr")
                    .and_then(Value::as_str)
                    .is_some_and(|attr| !CALL_FACTS.contains(&attr)),
                _ => safe(inner),
            })
        }
        Value::Array(items) => items.iter().all(safe),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads_none(text: &str) -> bool {
        reads_no_call_facts(&Policy::parse(None, text).unwrap())
    }

    #[test]
    fn reading_the_time_or_address_is_seen_however_written() {
        assert!(reads_none(
            "permit (principal, action, resource) when { context.critical };"
        ));
        assert!(reads_none(
            "permit (principal, action, resource) when { context has new_owner && context.new_owner == \"x\" };"
        ));
        assert!(!reads_none(
            "permit (principal, action, resource) when { context.time_ms > 5 };"
        ));
        assert!(!reads_none(
            "permit (principal, action, resource) when { context[\"client_address\"] == \"x\" };"
        ));
        assert!(!reads_none(
            "permit (principal, action, resource) when { context has time_ms };"
        ));
        // A whole-context use could read anything.
        assert!(!reads_none(
            "permit (principal, action, resource) when { context == {} };"
        ));
        assert!(!reads_none(
            "permit (principal, action, resource) when { principal.name == \"a\" || (if true then context else {}).time_ms > 0 };"
        ));
    }
}
