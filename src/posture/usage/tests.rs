//! The audit rules on made-up records.

use super::*;
use crate::posture::test_key;

fn keys() -> Vec<Arc<KeyRecord>> {
    vec![Arc::new(test_key("a")), Arc::new(test_key("b"))]
}

fn single(actor: &str) -> Option<String> {
    match actor {
        "svc-dev" => Some("dev".into()),
        "svc-prod" => Some("prod".into()),
        _ => None,
    }
}

fn bypass(key: &str, at: i64, id: &str) -> BypassRecord {
    BypassRecord {
        key_id: key.into(),
        time_ms: at,
        source: "vault".into(),
        action: "Encrypt".into(),
        actor: "token-x".into(),
        provider_request_id: id.into(),
        client_address: "203.0.113.7".into(),
    }
}

fn used(key: &str, actor: &str, from: &str) -> KeyUse {
    KeyUse {
        key_id: key.into(),
        time_ms: 1,
        actor: actor.into(),
        client_address: from.into(),
    }
}

fn run(uses: &[KeyUse], networks: &[Network]) -> Vec<(Rule, String, String)> {
    let keys = keys();
    let inputs = UsageInputs {
        keys: &keys,
        window: Duration::from_secs(3600),
        principal_environment: &single,
        networks,
        truncated: false,
    };
    environment_violations(uses, &inputs)
        .into_iter()
        .map(|v| (v.rule, v.key_id, v.evidence))
        .collect()
}

#[test]
fn bypass_records_make_one_finding_per_key_naming_the_records() {
    let keys = keys();
    let inputs = UsageInputs {
        keys: &keys,
        window: Duration::from_secs(3600),
        principal_environment: &single,
        networks: &[],
        truncated: false,
    };
    assert!(bypass_violations(&[], &inputs).is_empty());
    let records = [
        bypass("a", 1_000, "req-1"),
        bypass("a", 2_000, "req-2"),
        bypass("b", 1_000, "req-3"),
        // A key the catalog no longer has: nothing to report it against.
        bypass("gone", 1_000, "req-4"),
    ];
    let found = bypass_violations(&records, &inputs);
    assert_eq!(found.len(), 2, "{found:?}");
    let a = &found[0];
    assert_eq!(
        (a.rule, a.severity, a.key_id.as_str()),
        (Rule::BypassUse, Severity::High, "a")
    );
    assert!(
        a.evidence.starts_with("2 provider record(s)"),
        "{}",
        a.evidence
    );
    // Newest first, each with what finds it in the provider's log.
    let (first, second) = (
        a.evidence.find("req-2").unwrap(),
        a.evidence.find("req-1").unwrap(),
    );
    assert!(first < second, "{}", a.evidence);
    assert!(
        a.evidence
            .contains("vault Encrypt by 'token-x' from 203.0.113.7")
    );
    assert_eq!(found[1].key_id, "b");
}

#[test]
fn a_key_used_from_one_environment_breaks_nothing() {
    let nets = [Network::parse("dev", "10.0.0.0/8").unwrap()];
    let uses = [
        used("a", "svc-dev", "10.0.0.1:4000"),
        used("a", "svc-dev", "10.0.0.2:4000"),
        // Of several environments, from no listed network: placed nowhere.
        used("a", "root", "192.0.2.1:1"),
    ];
    assert!(run(&uses, &nets).is_empty());
}

#[test]
fn callers_of_two_environments_make_a_finding() {
    let found = run(
        &[
            used("a", "svc-dev", "x"),
            used("a", "svc-prod", "y"),
            used("b", "svc-dev", "z"),
        ],
        &[],
    );
    assert_eq!(found.len(), 1, "{found:?}");
    let (rule, key, evidence) = &found[0];
    assert_eq!((*rule, key.as_str()), (Rule::TwoEnvironments, "a"));
    assert!(evidence.contains("used from 2 environments"), "{evidence}");
    assert!(
        evidence.contains("dev (callers of that environment: svc-dev)"),
        "{evidence}"
    );
    assert!(
        evidence.contains("prod (callers of that environment: svc-prod)"),
        "{evidence}"
    );
}

#[test]
fn a_call_from_another_environments_network_counts_for_both() {
    let nets = [Network::parse("staging", "127.0.0.0/8").unwrap()];
    // A dev service calling from the staging network: one call, two environments.
    let found = run(&[used("a", "svc-dev", "127.0.0.1:5000")], &nets);
    assert_eq!(found.len(), 1, "{found:?}");
    let evidence = &found[0].2;
    assert!(
        evidence.contains("staging (from its network: 127.0.0.1)"),
        "{evidence}"
    );
    assert!(
        evidence.contains("dev (callers of that environment: svc-dev)"),
        "{evidence}"
    );
    // The same address reached from two ports is one place.
    let found = run(
        &[used("b", "root", "[::1]:1"), used("b", "root", "[::1]:2")],
        &[Network::parse("dev", "::1").unwrap()],
    );
    assert!(found.is_empty(), "{found:?}");
}
