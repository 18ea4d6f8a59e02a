//! Policy decision latency: the default policies alone and with 500 generated per-key
//! policies, each evaluated fresh and through the decision cache, interleaved in one run.
//! Prints p50/p99 per decision for every round, then the medians over rounds.
//!
//!     cargo bench --bench policy_decisions                 # 5 rounds of 20,000 decisions each
//!     ROUNDS=7 DECISIONS=50000 cargo bench --bench policy_decisions

use hdrhistogram::Histogram;
use keygate::auth::Principal;
use keygate::config::PrincipalKind;
use keygate::policy::{Action, KeyAttributes, PolicyContext, PolicyEngine, Resource};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

const KEYS: usize = 500;

/// One per-key policy for each of 500 keys: a team's grant on its own key, or a forbid
/// keeping a key to one team's services, as a deployment writes them.
fn per_key_policies() -> Vec<(String, String)> {
    let mut text = String::new();
    for i in 0..KEYS {
        if i % 2 == 0 {
            text.push_str(&format!(
                "@id(\"key/k{i}/team-uses\")\npermit (principal, action in Keygate::Action::\"KeyUse\", resource == Keygate::Key::\"k{i}\")\nwhen {{ principal.team == \"team-{t}\" }};\n",
                t = i % 20
            ));
        } else {
            text.push_str(&format!(
                "@id(\"key/k{i}/team-only\")\n@rule(\"team-keys\")\n@reason(\"k{i} is team-{t}'s\")\nforbid (principal, action in Keygate::Action::\"KeyUse\", resource == Keygate::Key::\"k{i}\")\nunless {{ principal.team == \"team-{t}\" }};\n",
                t = i % 20
            ));
        }
    }
    vec![("per-key.cedar".into(), text)]
}

struct Workload {
    principals: Vec<Principal>,
    keys: Vec<(String, String, &'static str, &'static str)>,
    labels: BTreeMap<String, String>,
}

impl Workload {
    fn new() -> Self {
        let principals = (0..40)
            .map(|n| Principal {
                name: format!("svc-{n}"),
                kind: PrincipalKind::ServiceAccount,
                roles: vec![if n % 10 == 0 { "key-admin" } else { "key-user" }.into()],
                team: format!("team-{}", n % 20),
                environments: vec![if n % 4 == 0 { "dev" } else { "prod" }.into()],
                certificate: None,
            })
            .collect();
        let keys = (0..KEYS)
            .map(|i| {
                let (purpose, algorithm) = if i % 3 == 0 {
                    ("sign", "ecdsa-p256")
                } else {
                    ("encrypt", "aes-256-gcm")
                };
                (
                    format!("k{i}"),
                    format!("svc-{}", i % 40),
                    purpose,
                    algorithm,
                )
            })
            .collect();
        Workload {
            principals,
            keys,
            labels: BTreeMap::from([("team".to_string(), "payments".to_string())]),
        }
    }

    /// The `n`th request of the mix: a principal, a use of a key.
    fn request(&self, n: usize) -> (&Principal, Action, KeyAttributes<'_>) {
        let principal = &self.principals[(n * 7) % self.principals.len()];
        let (id, owner, purpose, algorithm) = &self.keys[(n * 13) % self.keys.len()];
        let action = match (*purpose, n % 3) {
            ("sign", 0) => Action::Verify,
            ("sign", _) => Action::Sign,
            (_, 0) => Action::Decrypt,
            _ => Action::Encrypt,
        };
        let key = KeyAttributes {
            id,
            name: id,
            owner,
            purpose,
            environment: "prod",
            algorithm,
            state: "enabled",
            provider: "local",
            owner_kind: "service-account",
            crypto_period_seconds: 365 * 86_400,
            rotation_overdue: false,
            labels: &self.labels,
        };
        (principal, action, key)
    }
}

#[derive(Clone, Copy)]
enum How {
    /// Against the request's slice of the policies, never from the cache.
    Fresh,
    /// Against every policy (what slicing saves).
    Whole,
    /// Through the decision cache, filled first.
    Cached,
}

fn measure(engine: &PolicyEngine, work: &Workload, decisions: usize, how: How) -> (u64, u64) {
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    let context = PolicyContext {
        quorum: 2,
        ..Default::default()
    };
    if matches!(how, How::Cached) {
        // Fill the cache with every request of the mix first.
        for n in 0..decisions {
            let (p, a, k) = work.request(n);
            black_box(engine.authorize(p, a, &Resource::Key(k), &context));
        }
    }
    for n in 0..decisions {
        let (p, a, k) = work.request(n);
        let resource = Resource::Key(k);
        let start = Instant::now();
        let decision = match how {
            How::Cached => engine.authorize(p, a, &resource, &context),
            How::Fresh => engine.evaluate(p, a, &resource, &context),
            How::Whole => engine.evaluate_whole(p, a, &resource, &context),
        };
        let ns = start.elapsed().as_nanos() as u64;
        black_box(decision);
        let _ = histogram.record(ns.max(1));
    }
    (
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
    )
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rounds = env("ROUNDS", 5);
    let decisions = env("DECISIONS", 20_000);
    let work = Workload::new();
    let defaults = PolicyEngine::defaults().expect("default policies");
    let extended = PolicyEngine::defaults_with(&per_key_policies()).expect("per-key policies");
    println!(
        "policy decisions: {} default policies, {} with the per-key ones; {rounds} rounds of {decisions} decisions",
        defaults.policy_count(),
        extended.policy_count()
    );
    let cases: [(&str, &PolicyEngine, How); 5] = [
        ("defaults, fresh", &defaults, How::Fresh),
        ("defaults + 500, fresh", &extended, How::Fresh),
        ("defaults + 500, whole set", &extended, How::Whole),
        ("defaults, cached", &defaults, How::Cached),
        ("defaults + 500, cached", &extended, How::Cached),
    ];
    let mut results: Vec<(Vec<u64>, Vec<u64>)> = vec![(Vec::new(), Vec::new()); cases.len()];
    for round in 1..=rounds {
        // Interleaved: every case once per round, so machine noise falls on all of them.
        for (i, (name, engine, how)) in cases.iter().enumerate() {
            let (p50, p99) = measure(engine, &work, decisions, *how);
            println!(
                "round {round}  {name:<26} p50 {:>7.1} µs  p99 {:>7.1} µs",
                p50 as f64 / 1000.0,
                p99 as f64 / 1000.0
            );
            results[i].0.push(p50);
            results[i].1.push(p99);
        }
    }
    println!("medians over {rounds} rounds:");
    for ((name, ..), (p50s, p99s)) in cases.iter().zip(results) {
        println!(
            "  {name:<26} p50 {:>7.1} µs  p99 {:>7.1} µs",
            median(p50s) as f64 / 1000.0,
            median(p99s) as f64 / 1000.0
        );
    }
}
