//! BYOK into Google Cloud KMS and Azure Key Vault (Managed HSM) end to end through gRPC,
//! beside OpenBao (Transit) and LocalStack (AWS KMS), and a family destroyed as a whole.
//!
//! Keys are generated in SoftHSM2 and imported: an EC P-256 key into all four (each copy has
//! the HSM key's SubjectPublicKeyInfo, and its signatures verify under the HSM's public key),
//! an HMAC-SHA256 key into AWS, GCP and Vault (the same MAC everywhere), an AES-256 key into
//! GCP and the Managed HSM (each copy encrypts and decrypts). Azure has no HMAC keys: asking
//! is refused before anything is made. Then `ScheduleKeyDestruction` with `family` takes
//! the original and its copies through one pending window: each backend's own API shows its
//! copy destroyed or pending deletion, and the original's destruction record lists each copy.
//!
//! Needs SoftHSM2, OpenBao and LocalStack (`tests/run.sh byok` installs them); the Cloud KMS
//! and Key Vault emulators run in this process.

#[path = "common/clouds.rs"]
mod clouds;
mod common;

use aws_sdk_kms::types::KeyState as AwsKeyState;
use clouds::{Clouds, azure_key_name};
use common::backends::Backends;
use common::byok::{byok_import, copy, mac, public_key, signature_of};
use common::{Server, ServerOptions, destruction_records};
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState as VState;
use keygate::pb;
use std::path::Path;
use std::time::{Duration, Instant};

fn start_gateway(dir: &Path, b: &Backends, clouds: &Clouds) -> Server {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[lifecycle]\nmin_destruction_window = \"1s\"\nscan_interval = \"200ms\"\n\
             destruction_quiet_period = \"0s\"\n\n\
             [limits]\nrequest_timeout = \"90s\"\nprovider_timeout = \"60s\"\n\n{}\n{}",
            b.providers_config(),
            clouds.providers_config(dir)
        ),
    )
    .expect("write config");
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env: b.env(),
            ..Default::default()
        },
    )
}

/// Imports `name` into `targets`; every copy imported, and each cloud's wholly in the HSM
/// (Cloud KMS and Key Vault take SHA-1 OAEP).
async fn import(
    keys: &mut common::Keys,
    server: &Server,
    name: &str,
    algorithm: &str,
    targets: &[&str],
) -> pb::KeyFamily {
    let family = keys
        .byok_import(byok_import(name, algorithm, targets))
        .await
        .unwrap_or_else(|e| panic!("ByokImport {name}: {e}\n{}", server.output()))
        .into_inner();
    assert_eq!(family.state, "complete", "{name}: {family:?}");
    for target in ["gcp", "azure"] {
        if !targets.contains(&target) {
            continue;
        }
        let c = copy(&family, target);
        assert_eq!(c.status, "imported", "{c:?}");
        assert_eq!(c.import_method, "rsa-aes-key-wrap-sha1", "{target}: {c:?}");
        assert!(
            !c.ephemeral_left_hsm,
            "{target} takes SHA-1 OAEP: wrapped wholly in the HSM"
        );
        assert_eq!(c.key_name, format!("{name}.{target}"));
    }
    if targets.contains(&"gcp") {
        assert!(
            copy(&family, "gcp")
                .provider_uri
                .starts_with("gcpkms://projects/")
        );
        assert_eq!(copy(&family, "gcp").provider_kind, "gcp-kms");
    }
    if targets.contains(&"azure") {
        assert!(
            copy(&family, "azure")
                .provider_uri
                .starts_with("azurekms://")
        );
        assert_eq!(copy(&family, "azure").provider_kind, "azure-keyvault");
    }
    family
}

async fn state(keys: &mut common::Keys, key: &str) -> String {
    keys.get_key(pb::GetKeyRequest {
        key: key.into(),
        usage: false,
    })
    .await
    .unwrap_or_else(|e| panic!("GetKey {key}: {e}"))
    .into_inner()
    .state
}

#[tokio::test(flavor = "multi_thread")]
async fn byok_into_gcp_and_azure_and_a_family_destroyed_as_a_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Backends::start("e2e-byok-clouds").await;
    let clouds = Clouds::start().await;
    let server = start_gateway(dir.path(), &b, &clouds);
    let mut keys = server.root().await;

    azure_is_refused_hmac_before_anything_is_made(&mut keys, &clouds).await;
    let ec = ec_copies_share_the_hsm_key(&mut keys, &server).await;
    hmac_copies_compute_the_same_mac(&mut keys, &server).await;
    let aes = aes_copies_encrypt_and_decrypt(&mut keys, &server).await;
    family_destroyed_after_a_short_window(&mut keys, &server, &clouds, &aes).await;
    family_pending_destruction_everywhere(&mut keys, &server, &b, &clouds, &ec).await;
}

/// Key Vault has no HMAC keys: refused up front, naming the target and the algorithm, and
/// nothing is made in keygate, the HSM or the Managed HSM.
async fn azure_is_refused_hmac_before_anything_is_made(keys: &mut common::Keys, clouds: &Clouds) {
    let before = clouds.azure_key_names().await;
    let status = keys
        .byok_import(byok_import("byok/mac-az", "hmac-sha256", &["azure"]))
        .await
        .expect_err("HMAC into Key Vault is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("azure") && status.message().contains("hmac-sha256"),
        "names the target and the algorithm: {status:?}"
    );
    let missing = keys
        .get_key(pb::GetKeyRequest {
            key: "byok/mac-az".into(),
            usage: false,
        })
        .await
        .expect_err("no original was made");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(
        clouds.azure_key_names().await,
        before,
        "nothing was made in the Managed HSM (no key, no key exchange key)"
    );
    println!("ok: HMAC into Azure is refused before anything is made");
}

/// One EC P-256 key into all four: each copy has the HSM key's SPKI, and its signatures
/// verify under the HSM's public key (through keygate, and outside it).
async fn ec_copies_share_the_hsm_key(keys: &mut common::Keys, server: &Server) -> pb::KeyFamily {
    let family = import(
        keys,
        server,
        "byok/ec",
        "ecdsa-p256",
        &["vault", "aws", "gcp", "azure"],
    )
    .await;
    assert!(
        copy(&family, "aws").ephemeral_left_hsm,
        "AWS takes the two-step wrap with SHA-256 OAEP only"
    );
    assert!(!copy(&family, "vault").ephemeral_left_hsm);
    let hsm_spki = public_key(keys, "byok/ec").await;
    let point = keygate_provider::spki_public_key_bits(&hsm_spki).expect("an EC SPKI");
    let message = b"bring your own signing key, four times";
    for target in ["vault", "aws", "gcp", "azure"] {
        let name = format!("byok/ec.{target}");
        assert_eq!(
            public_key(keys, &name).await,
            hsm_spki,
            "{name}: the HSM's SPKI"
        );
        let signature = signature_of(keys, &name, message).await;
        let valid = keys
            .verify(pb::VerifyRequest {
                key: "byok/ec".into(),
                input: Some(pb::verify_request::Input::Message(message.to_vec())),
                signature: signature.clone(),
                key_version: 0,
            })
            .await
            .expect("Verify with the HSM key")
            .into_inner()
            .valid;
        assert!(valid, "{name}'s signature verifies through the HSM key");
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            &point,
        )
        .verify(message, &signature)
        .unwrap_or_else(|_| panic!("{name}'s signature verifies under the HSM's public key"));
    }
    println!("ok: an EC P-256 key in Vault, AWS, GCP and Azure signs as the HSM key");
    family
}

/// One HMAC-SHA256 key into AWS, GCP and Vault: the same MAC everywhere.
async fn hmac_copies_compute_the_same_mac(keys: &mut common::Keys, server: &Server) {
    import(
        keys,
        server,
        "byok/mac",
        "hmac-sha256",
        &["aws", "gcp", "vault"],
    )
    .await;
    let message = b"bring your own mac key";
    let from_hsm = mac(keys, "byok/mac", message).await;
    assert_eq!(from_hsm.len(), 32);
    for target in ["aws", "gcp", "vault"] {
        let name = format!("byok/mac.{target}");
        assert_eq!(mac(keys, &name, message).await, from_hsm, "{name}");
    }
    println!("ok: an HMAC key in AWS, GCP and Vault computes the HSM key's MAC");
}

/// One AES-256 key into GCP and the Managed HSM (oct-HSM): each copy encrypts and decrypts.
async fn aes_copies_encrypt_and_decrypt(keys: &mut common::Keys, server: &Server) -> pb::KeyFamily {
    let family = import(keys, server, "byok/aes", "aes-256-gcm", &["gcp", "azure"]).await;
    for target in ["gcp", "azure"] {
        let name = format!("byok/aes.{target}");
        let sealed = common::seal(keys, &name, b"bring your own aes key").await;
        let opened = common::open(keys, &sealed)
            .await
            .unwrap_or_else(|e| panic!("Decrypt with {name}: {e}"));
        assert_eq!(opened.plaintext, b"bring your own aes key", "{name}");
    }
    println!("ok: an AES-256 key in GCP and the Managed HSM encrypts and decrypts");
    family
}

async fn wait_for_state(keys: &mut common::Keys, key: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = state(keys, key).await;
        if now == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "{key} is {now}, never {wanted}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The AES family with a 1 s window: after it, keygate has destroyed the original and both
/// copies, Cloud KMS has the copy's version scheduled for destruction (or destroyed) and the
/// Managed HSM has purged its copy; the original's record lists both copies.
async fn family_destroyed_after_a_short_window(
    keys: &mut common::Keys,
    server: &Server,
    clouds: &Clouds,
    family: &pb::KeyFamily,
) {
    keys.schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
        key: "byok/aes".into(),
        pending_window: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
        family: true,
    })
    .await
    .unwrap_or_else(|e| panic!("family destruction: {e}\n{}", server.output()));
    for key in ["byok/aes", "byok/aes.gcp", "byok/aes.azure"] {
        wait_for_state(keys, key, "destroyed").await;
    }
    let gcp = copy(family, "gcp");
    let states = clouds.gcp_version_states(&gcp.provider_uri).await;
    assert!(
        !states.is_empty()
            && states
                .iter()
                .all(|s| matches!(s, VState::DestroyScheduled | VState::Destroyed)),
        "Cloud KMS: {states:?}"
    );
    let azure = copy(family, "azure");
    let kv = clouds.azure_sdk();
    let name = azure_key_name(&azure.provider_uri);
    for (what, status) in [
        ("key", kv.get_key(name, None).await.err()),
        ("deleted key", kv.get_deleted_key(name, None).await.err()),
    ] {
        assert_eq!(
            status.and_then(|e| e.http_status()).map(u16::from),
            Some(404),
            "Key Vault: the copy is purged (no {what})"
        );
    }
    assert_record_lists_copies(server, "byok/aes", family).await;
    println!("ok: the AES family is destroyed as a whole after its window");
}

/// The original's newest record lists every copy; each copy has its own record.
async fn assert_record_lists_copies(server: &Server, key: &str, family: &pb::KeyFamily) {
    let records = destruction_records(server, key).await;
    let record = records.first().expect("a destruction record");
    assert_eq!(record.copies.len(), family.copies.len(), "{record:?}");
    for c in &family.copies {
        let listed = record
            .copies
            .iter()
            .find(|l| l.provider == c.provider)
            .unwrap_or_else(|| panic!("{} not listed in {record:?}", c.provider));
        assert_eq!(listed.provider_uri, c.provider_uri);
        assert_eq!(listed.key_name, c.key_name);
        assert_eq!(listed.provider_kind, c.provider_kind);
        assert_eq!(listed.import_method, c.import_method);
        assert!(listed.method.contains(&c.provider), "{listed:?}");
        let own = destruction_records(server, &c.key_name).await;
        let own = own.first().expect("the copy's own record");
        assert_eq!(
            (own.requested_by.as_str(), own.destruction_at.as_str()),
            (record.requested_by.as_str(), record.destruction_at.as_str()),
            "the copy's record shares the original's request and window"
        );
    }
}

/// The EC family (Vault, AWS, GCP, Azure) through the CLI with a 7-day window (AWS KMS's
/// shortest): every key is pending destruction in keygate, and each backend has its copy
/// pending deletion.
async fn family_pending_destruction_everywhere(
    keys: &mut common::Keys,
    server: &Server,
    b: &Backends,
    clouds: &Clouds,
    family: &pb::KeyFamily,
) {
    let out = server
        .cli()
        .args(["byok", "destroy", "byok/ec", "--window", "7d"])
        .output()
        .expect("run keygate byok destroy");
    assert!(
        out.status.success(),
        "keygate byok destroy: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.output()
    );
    for key in [
        "byok/ec",
        "byok/ec.vault",
        "byok/ec.aws",
        "byok/ec.gcp",
        "byok/ec.azure",
    ] {
        assert_eq!(state(keys, key).await, "pending-destruction", "{key}");
    }
    // AWS KMS: PendingDeletion.
    let arn = copy(family, "aws")
        .provider_uri
        .trim_start_matches("awskms:///")
        .to_string();
    let described = b
        .kms()
        .describe_key()
        .key_id(&arn)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        described.key_metadata().map(|m| m.key_state()),
        Some(Some(&AwsKeyState::PendingDeletion)),
        "AWS KMS"
    );
    // Cloud KMS: every version scheduled for destruction.
    let states = clouds
        .gcp_version_states(&copy(family, "gcp").provider_uri)
        .await;
    assert!(
        !states.is_empty() && states.iter().all(|s| *s == VState::DestroyScheduled),
        "Cloud KMS: {states:?}"
    );
    // Key Vault: soft-deleted, recoverable until the window ends.
    let name = azure_key_name(&copy(family, "azure").provider_uri).to_string();
    let deleted = clouds
        .azure_sdk()
        .get_deleted_key(&name, None)
        .await
        .expect("the copy is soft-deleted in Key Vault");
    assert_eq!(u16::from(deleted.status()), 200);
    // OpenBao: soft-deleted.
    let vault_uri = &copy(family, "vault").provider_uri;
    let vault_name = vault_uri.rsplit('/').next().unwrap_or(vault_uri);
    let (status, text) = b
        .bao
        .request("GET", &format!("/v1/transit/keys/{vault_name}"), None)
        .expect("read the Transit key");
    assert!(
        status == 404 || text.contains("\"soft_deleted\":true"),
        "OpenBao: {status} {text}"
    );
    assert_record_lists_copies(server, "byok/ec", family).await;
    println!("ok: the EC family is pending destruction in Vault, AWS, GCP and Azure");
}
