//! The engine on its own: the built-in set, fail-closed evaluation, approvals, and a cache
//! that never answers differently from a fresh evaluation.

use super::*;
use crate::config::PrincipalKind;
use std::collections::BTreeMap;

fn principal(name: &str, roles: &[&str], environments: &[&str]) -> Principal {
    Principal {
        name: name.into(),
        kind: PrincipalKind::User,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        team: "payments".into(),
        environments: environments.iter().map(|e| e.to_string()).collect(),
        certificate: None,
    }
}

struct Key {
    id: String,
    owner: String,
    owner_kind: &'static str,
    purpose: &'static str,
    algorithm: &'static str,
    environment: &'static str,
    state: &'static str,
    period: i64,
    overdue: bool,
    labels: BTreeMap<String, String>,
}

impl Key {
    fn new(environment: &'static str) -> Self {
        Key {
            id: "k1".into(),
            owner: "svc-pay".into(),
            owner_kind: "service-account",
            purpose: "encrypt",
            algorithm: "aes-256-gcm",
            environment,
            state: "enabled",
            period: 90 * 86_400,
            overdue: false,
            labels: BTreeMap::new(),
        }
    }

    fn attributes(&self) -> KeyAttributes<'_> {
        KeyAttributes {
            id: &self.id,
            name: "payments/dek",
            owner: &self.owner,
            purpose: self.purpose,
            environment: self.environment,
            algorithm: self.algorithm,
            state: self.state,
            provider: "local",
            owner_kind: self.owner_kind,
            crypto_period_seconds: self.period,
            rotation_overdue: self.overdue,
            labels: &self.labels,
        }
    }
}

fn context(critical: bool, approvals: i64) -> PolicyContext {
    PolicyContext {
        critical,
        quorum: 2,
        approvals,
        ..Default::default()
    }
}

#[test]
fn every_policy_file_is_built_in() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cedar"))
        .collect();
    on_disk.sort();
    let mut built_in: Vec<String> = DEFAULT_POLICIES
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    built_in.sort();
    assert_eq!(on_disk, built_in);
    // The folder loads as the built-in set does.
    let from_dir = PolicyEngine::load_dir(&dir).unwrap();
    let defaults = PolicyEngine::defaults().unwrap();
    assert_eq!(from_dir.policy_count(), defaults.policy_count());
    assert!(defaults.caches_decisions());
}

#[test]
fn an_evaluation_error_denies_naming_the_failing_policy() {
    let overflow = (
        "overflow.cedar".to_string(),
        "@id(\"forbid-that-overflows\")\nforbid (principal, action, resource is Keygate::Key) when { resource.crypto_period_seconds * 9223372036854775807 > 0 };\n".to_string(),
    );
    let engine = PolicyEngine::defaults_with(&[overflow]).unwrap();
    let user = principal("svc-pay", &["key-user"], &["dev"]);
    let key = Key::new("dev");
    let decision = engine.authorize(
        &user,
        Action::Encrypt,
        &Resource::Key(key.attributes()),
        &context(false, 0),
    );
    assert_eq!(decision.verdict, Verdict::Deny);
    assert!(
        decision.reason.starts_with("denied by fail-closed"),
        "{}",
        decision.reason
    );
    assert_eq!(decision.policies, ["forbid-that-overflows"]);
    // Without the failing policy the same call is allowed.
    let defaults = PolicyEngine::defaults().unwrap();
    assert!(
        defaults
            .authorize(
                &user,
                Action::Encrypt,
                &Resource::Key(key.attributes()),
                &context(false, 0)
            )
            .allowed()
    );
}

#[test]
fn approvals_are_asked_for_only_where_the_quorum_would_allow() {
    let engine = PolicyEngine::defaults().unwrap();
    let key = Key::new("prod");
    let resource = Resource::Key(key.attributes());
    let admin = principal("alice", &["key-admin"], &["prod"]);
    let d = engine.authorize(
        &admin,
        Action::ScheduleKeyDestruction,
        &resource,
        &context(true, 0),
    );
    assert_eq!(d.verdict, Verdict::NeedsApproval, "{d:?}");
    assert_eq!(d.policies, ["quorum/critical-actions-need-approvals"]);
    let d = engine.authorize(
        &admin,
        Action::ScheduleKeyDestruction,
        &resource,
        &context(true, 2),
    );
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    // Nobody grants it to a principal without roles: a refusal, not a request.
    let nobody = principal("mallory", &[], &["prod"]);
    let d = engine.authorize(
        &nobody,
        Action::ScheduleKeyDestruction,
        &resource,
        &context(true, 0),
    );
    assert_eq!(d.verdict, Verdict::Deny, "{d:?}");
    // A key user is refused by separation of duties, whatever approvals it would get.
    let user = principal("svc-pay", &["key-user"], &["prod"]);
    let d = engine.authorize(
        &user,
        Action::ScheduleKeyDestruction,
        &resource,
        &context(true, 0),
    );
    assert_eq!(d.verdict, Verdict::Deny, "{d:?}");
    assert!(d.reason.contains("separation-of-duties"), "{}", d.reason);
    // An admin of another environment too.
    let dev_admin = principal("bob", &["key-admin"], &["dev"]);
    let d = engine.authorize(
        &dev_admin,
        Action::ScheduleKeyDestruction,
        &resource,
        &context(true, 0),
    );
    assert_eq!(d.verdict, Verdict::Deny, "{d:?}");
    assert!(d.reason.contains("environment-isolation"), "{}", d.reason);
}

#[test]
fn a_policy_reading_the_time_turns_the_cache_off() {
    let timed = (
        "timed.cedar".to_string(),
        "@id(\"office-hours\")\nforbid (principal, action, resource) when { context.time_ms < 0 };\n"
            .to_string(),
    );
    assert!(
        !PolicyEngine::defaults_with(&[timed])
            .unwrap()
            .caches_decisions()
    );
}

/// A small deterministic generator (xorshift), so the test needs no seed from outside.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn some(&mut self) -> bool {
        self.next().is_multiple_of(2)
    }
}

#[test]
fn a_cached_decision_never_differs_from_a_fresh_evaluation() {
    let engine = PolicyEngine::defaults().unwrap();
    assert!(engine.caches_decisions());
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    let roles = [
        "key-admin",
        "key-user",
        "auditor",
        "approver",
        "policy-admin",
        "dev-root",
    ];
    let environments = ["dev", "prod", "*"];
    let names = ["alice", "bob", "svc-pay"];
    let actions = [
        Action::Encrypt,
        Action::Decrypt,
        Action::Sign,
        Action::GenerateMac,
        Action::ReEncrypt,
        Action::GetKey,
        Action::CreateKey,
        Action::RotateKey,
        Action::DisableKey,
        Action::ScheduleKeyDestruction,
        Action::SetKeyOwner,
        Action::ApproveRequest,
        Action::DenyRequest,
        Action::CancelRequest,
    ];
    let algorithms = [
        ("encrypt", "aes-256-gcm"),
        ("encrypt", "rsa-1024-oaep"),
        ("sign", "ecdsa-p256"),
        ("sign", "rsa-2048-pkcs1-sha1"),
        ("mac", "hmac-sha256"),
        ("mac", "hmac-sha1"),
    ];
    let mut decisions = std::collections::HashSet::new();
    for _ in 0..4000 {
        // Few principals and key ids, many attribute values: the cache sees the same
        // principal and key again with something changed.
        let name = draw.pick(&names);
        let mut p = principal(name, &[], &[]);
        for role in roles {
            if draw.next().is_multiple_of(4) {
                p.roles.push(role.into());
            }
        }
        for env in environments {
            if draw.some() {
                p.environments.push(env.into());
            }
        }
        if draw.some() {
            p.kind = PrincipalKind::ServiceAccount;
        }
        let mut key = Key::new(draw.pick(&["dev", "prod"]));
        key.id = draw.pick(&["k1", "k2"]).into();
        key.owner = draw.pick(&["alice", "bob", "svc-pay", "payments"]).into();
        key.owner_kind = draw.pick(&["user", "service-account", "team", "unknown"]);
        (key.purpose, key.algorithm) = draw.pick(&algorithms);
        key.state = draw.pick(&["enabled", "disabled"]);
        key.period = draw.pick(&[30 * 86_400, 400 * 86_400, 800 * 86_400, 1200 * 86_400]);
        key.overdue = draw.some();
        if draw.some() {
            key.labels.insert("usage".into(), "tls".into());
        }
        let mut cx = context(draw.some(), draw.pick(&[0, 1, 2]));
        cx.requester = draw.pick(&["", "alice", "bob"]).into();
        cx.approvers = (0..cx.approvals)
            .map(|i| names[i as usize].to_string())
            .collect();
        if draw.some() {
            cx.facts.new_owner = Some(draw.pick(&names).into());
            cx.facts.new_owner_kind = Some(draw.pick(&["user", "team"]).into());
        }
        if draw.some() {
            cx.facts.destination = Some(draw.some());
        }
        cx.call.time_ms = draw.next() as i64 & 0xffff;
        let action = draw.pick(&actions);
        let resource = Resource::Key(key.attributes());
        let first = engine.authorize(&p, action, &resource, &cx);
        let again = engine.authorize(&p, action, &resource, &cx);
        let fresh = engine.evaluate(&p, action, &resource, &cx);
        assert_eq!(first, fresh, "{p:?} {action} {resource:?} {cx:?}");
        assert_eq!(again, fresh, "{p:?} {action} {resource:?} {cx:?}");
        decisions.insert(fresh.verdict);
    }
    // The draws reached every verdict, so the comparison covered each.
    assert_eq!(decisions.len(), 3, "{decisions:?}");
    assert!(engine.cache_len() > 100);
}

#[test]
fn per_resource_slices_decide_as_the_whole_set_does() {
    // Per-key policies of every kind a deployment writes: grants, forbids, conditions that
    // fail, and policies naming a key by `in` (not sliced).
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!(
            "@id(\"k{i}/grant\")\npermit (principal, action in Keygate::Action::\"KeyUse\", resource == Keygate::Key::\"k{i}\") when {{ principal.team == \"team-{t}\" }};\n\
             @id(\"k{i}/forbid\")\nforbid (principal, action == Keygate::Action::\"Sign\", resource == Keygate::Key::\"k{i}\") unless {{ principal.name == \"svc-{t}\" }};\n\
             @id(\"k{i}/overflow\")\nforbid (principal, action == Keygate::Action::\"Decrypt\", resource == Keygate::Key::\"k{i}\") when {{ resource.hasTag(\"fragile\") && resource.crypto_period_seconds * 9223372036854775807 > 0 }};\n\
             @id(\"k{i}/in\")\npermit (principal, action == Keygate::Action::\"GetKey\", resource in Keygate::Key::\"k{i}\");\n",
            t = i % 5
        ));
    }
    let engine = PolicyEngine::defaults_with(&[("per-key.cedar".into(), text)]).unwrap();
    let mut draw = Draw(0x2545_f491_4f6c_dd1d);
    let actions = [
        Action::Encrypt,
        Action::Decrypt,
        Action::Sign,
        Action::GetKey,
        Action::RotateKey,
    ];
    let mut allowed = 0;
    for _ in 0..3000 {
        let mut p = principal(
            &format!("svc-{}", draw.next() % 6),
            &[draw.pick(&["key-user", "key-admin", "auditor"])],
            &["prod"],
        );
        p.team = format!("team-{}", draw.next() % 6);
        let mut key = Key::new("prod");
        // Keys with their own policies, and keys without any.
        key.id = format!("k{}", draw.next() % 50);
        if draw.some() {
            key.labels.insert("fragile".into(), "1".into());
        }
        let action = draw.pick(&actions);
        let resource = Resource::Key(key.attributes());
        let cx = context(false, 0);
        let sliced = engine.evaluate(&p, action, &resource, &cx);
        let whole = engine.evaluate_whole(&p, action, &resource, &cx);
        assert_eq!(sliced, whole, "{p:?} {action} {resource:?}");
        allowed += usize::from(sliced.allowed());
    }
    assert!(allowed > 100 && allowed < 2900, "{allowed}");
}
