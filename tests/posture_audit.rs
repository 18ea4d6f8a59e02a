//! The posture rule read from provider audit records, end to end: OpenBao's audit device is
//! ingested; a call straight to OpenBao on a key keygate manages (no gateway call) is a
//! bypass, and the next scan opens a `bypass-use` finding naming the record; a call through
//! keygate is none; the finding closes once a whole audit window passes without another.
//!
//! Needs OpenBao (`tests/run.sh posture_audit` installs it).

mod common;

use common::posture::{Setup, open_finding, posture_as, scan, scan_until_closed, scan_until_open};
use keygate::pb;
use keygate_test_backends::openbao::OpenBao;
use serde_json::Value;

// Not `KEYGATE_*`: keygate reads those as configuration overrides.
const VAULT_TOKEN_VAR: &str = "E2E_POSTURE_AUDIT_VAULT_TOKEN";

/// A Transit encrypt made straight to OpenBao, around keygate; its request id.
fn encrypt_around_keygate(bao: &OpenBao, vault_key: &str) -> String {
    let (status, body) = bao
        .request(
            "POST",
            &format!("/v1/transit/encrypt/{vault_key}"),
            Some(r#"{"plaintext":"aGVsbG8="}"#),
        )
        .expect("OpenBao request");
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("OpenBao's answer");
    body["request_id"]
        .as_str()
        .expect("a request id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_around_keygate_is_a_bypass_use_finding_until_a_window_passes_without() {
    let bao = tokio::task::spawn_blocking(OpenBao::start)
        .await
        .expect("OpenBao start-up task")
        .expect("OpenBao could not be started");
    let dir = tempfile::tempdir().unwrap();
    let server = common::posture::start(
        dir.path(),
        &Setup {
            providers: format!(
                "[providers.vault]\nkind = \"vault\"\naddress = \"{}\"\nmount = \"transit\"\n\
                 auth = {{ method = \"token\", token = {{ env = \"{VAULT_TOKEN_VAR}\" }} }}\n",
                bao.addr()
            ),
            env: vec![(VAULT_TOKEN_VAR.into(), bao.token().into())],
            posture: "audit_window = \"10s\"".into(),
            extra: format!(
                "[audit]\nbypass_grace = \"2s\"\n\n[[audit.ingest]]\nname = \"openbao\"\n\
                 format = \"vault\"\nfile = \"{}\"\npoll = \"200ms\"\n",
                bao.audit_log_path().display()
            ),
            ..Default::default()
        },
    );
    let mut root = server.root().await;
    let key = root
        .create_key(common::posture::create("bypass/dek", "vault", "svc-app"))
        .await
        .expect("create a key in OpenBao")
        .into_inner();
    let vault_key = key
        .provider_uri
        .rsplit("/keys/")
        .next()
        .expect("a Transit key URI")
        .to_string();
    let mut sol = posture_as(&server, "sol").await;

    // Through keygate: OpenBao's record links to the call; no finding.
    root.encrypt(pb::EncryptRequest {
        key: key.id.clone(),
        plaintext: b"through keygate".to_vec(),
        associated_data: vec![],
    })
    .await
    .expect("encrypt through keygate");
    scan(&mut sol).await;
    assert!(
        open_finding(&mut sol, "bypass-use", &key.id)
            .await
            .is_none()
    );

    // Around keygate: once ingested (after the bypass grace), a finding naming the record.
    let direct = encrypt_around_keygate(&bao, &vault_key);
    let found = scan_until_open(&mut sol, "bypass-use", &key.id).await;
    assert_eq!(found.severity, "high");
    assert_eq!(found.key_name, "bypass/dek");
    for part in ["1 provider record(s)", "vault Encrypt", direct.as_str()] {
        assert!(found.evidence.contains(part), "{part}: {}", found.evidence);
    }

    // Nothing more around keygate: once the window has passed, a scan closes it.
    let closed = scan_until_closed(&mut sol, "bypass-use", &key.id).await;
    assert_eq!(closed.id, found.id);
    assert!(
        closed.closed_because.contains("no longer found"),
        "{closed:?}"
    );
}
