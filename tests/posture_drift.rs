//! Key posture when keys change in their backends behind keygate's back, end to end through
//! gRPC: a managed key deleted straight in OpenBao is missing-from-provider until it is back;
//! deletion protection turned off in OpenBao and KMS automatic rotation turned off in
//! LocalStack are provider-settings-contradict until they are put back.
//!
//! Needs OpenBao and LocalStack (`tests/run.sh posture_drift` installs them).

mod common;

use common::backends::bao;
use common::posture::{Setup, create, findings, open_finding, posture_as, scan};

#[tokio::test(flavor = "multi_thread")]
async fn keys_changed_in_their_backends_are_findings_until_put_back() {
    let openbao = common::backends::start_openbao().await;
    let localstack = common::backends::start_localstack().await;
    let kms = common::backends::kms_client(&localstack.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let (providers, env) = common::backends::providers(None, Some(&openbao), Some(&localstack));
    let server = common::posture::start(
        dir.path(),
        &Setup {
            providers,
            env,
            ..Default::default()
        },
    );
    let mut root = server.root().await;
    // Managed keys, one per provider (in the order the checks below name them).
    let mut managed = Vec::new();
    for provider in ["local", "vault", "aws"] {
        let key = root
            .create_key(create(&format!("pos/{provider}"), provider, "svc-app"))
            .await
            .unwrap_or_else(|e| panic!("create on {provider}: {e}"))
            .into_inner();
        managed.push(key);
    }
    let mut sol = posture_as(&server, "sol").await;
    scan(&mut sol).await;
    for key in &managed {
        for rule in ["missing-from-provider", "provider-settings-contradict"] {
            assert!(
                open_finding(&mut sol, rule, &key.id).await.is_none(),
                "{rule} for {}",
                key.name
            );
        }
    }

    // missing-from-provider: a managed key deleted straight in OpenBao; recreating it under
    // the same name brings it back and the finding closes.
    let vault_key = &managed[1];
    let vault_name = vault_key
        .provider_uri
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    bao(
        &openbao,
        "POST",
        &format!("/v1/transit/keys/{vault_name}/config"),
        Some(r#"{"deletion_allowed":true}"#),
    );
    bao(
        &openbao,
        "DELETE",
        &format!("/v1/transit/keys/{vault_name}"),
        None,
    );
    scan(&mut sol).await;
    let missing = open_finding(&mut sol, "missing-from-provider", &vault_key.id)
        .await
        .expect("missing-from-provider finding");
    assert_eq!(missing.key_name, "pos/vault");
    bao(
        &openbao,
        "POST",
        &format!("/v1/transit/keys/{vault_name}"),
        Some(r#"{"type":"aes256-gcm96"}"#),
    );
    scan(&mut sol).await;
    assert!(
        open_finding(&mut sol, "missing-from-provider", &vault_key.id)
            .await
            .is_none()
    );

    // provider-settings-contradict: deletion protection turned off straight in OpenBao, and
    // KMS automatic rotation turned off straight in LocalStack; turning them back closes both.
    let aws_key = &managed[2];
    let kms_key_id = aws_key.provider_uri.trim_start_matches("awskms:///");
    bao(
        &openbao,
        "POST",
        &format!("/v1/transit/keys/{vault_name}/config"),
        Some(r#"{"deletion_allowed":true}"#),
    );
    kms.disable_key_rotation()
        .key_id(kms_key_id)
        .send()
        .await
        .expect("turn KMS automatic rotation off");
    scan(&mut sol).await;
    let unprotected = open_finding(&mut sol, "provider-settings-contradict", &vault_key.id)
        .await
        .expect("a provider-settings-contradict finding for the OpenBao key");
    assert_eq!(unprotected.severity, "high");
    assert!(
        unprotected.evidence.contains("deletion_allowed is true"),
        "{}",
        unprotected.evidence
    );
    let unrotated = open_finding(&mut sol, "provider-settings-contradict", &aws_key.id)
        .await
        .expect("a provider-settings-contradict finding for the KMS key");
    assert!(
        unrotated.evidence.contains("KeyRotationEnabled is false"),
        "{}",
        unrotated.evidence
    );
    // A key whose settings are as keygate left them has none.
    assert!(
        open_finding(&mut sol, "provider-settings-contradict", &managed[0].id)
            .await
            .is_none()
    );
    bao(
        &openbao,
        "POST",
        &format!("/v1/transit/keys/{vault_name}/config"),
        Some(r#"{"deletion_allowed":false}"#),
    );
    kms.enable_key_rotation()
        .key_id(kms_key_id)
        .send()
        .await
        .expect("turn KMS automatic rotation on");
    scan(&mut sol).await;
    for key in [vault_key, aws_key] {
        assert!(
            open_finding(&mut sol, "provider-settings-contradict", &key.id)
                .await
                .is_none(),
            "{}",
            key.name
        );
    }

    let closed: Vec<String> = findings(&mut sol, "closed", "")
        .await
        .into_iter()
        .map(|f| f.rule)
        .collect();
    for rule in ["missing-from-provider", "provider-settings-contradict"] {
        assert!(
            closed.iter().any(|r| r == rule),
            "{rule} never closed: {closed:?}"
        );
    }
}
