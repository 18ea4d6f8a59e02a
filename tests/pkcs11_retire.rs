//! Retirement on the HSM itself: `RetireKeyVersions` on a PKCS#11 key turns off the usage
//! flags of the retired versions' objects, so the token refuses them to anyone, not only
//! through keygate; disabling and enabling the key leaves them retired. Against SoftHSM2,
//! checked through cryptoki directly.

mod common;

use common::backends::{hsm, providers};
use common::hsm::TestHsm;
use common::{create, start_with_config};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use keygate::pb;

/// Each version of the key and whether its secret object may decrypt, read on the token.
fn decrypt_flags(hsm: &TestHsm, key_id: &str) -> Vec<(u32, bool)> {
    let session = hsm.session();
    let handles = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(key_id.as_bytes().to_vec()),
        ])
        .expect("find objects");
    let mut flags: Vec<(u32, bool)> = handles
        .into_iter()
        .map(|h| {
            let attrs = session
                .get_attributes(h, &[AttributeType::Id, AttributeType::Decrypt])
                .expect("attributes");
            let mut version = 0;
            let mut decrypt = None;
            for a in attrs {
                match a {
                    // The object id ends with the version number (big-endian).
                    Attribute::Id(id) if id.len() >= 4 => {
                        let tail: [u8; 4] = id[id.len() - 4..].try_into().expect("4 bytes");
                        version = u32::from_be_bytes(tail);
                    }
                    Attribute::Decrypt(on) => decrypt = Some(on),
                    _ => {}
                }
            }
            (version, decrypt.expect("CKA_DECRYPT"))
        })
        .collect();
    flags.sort_unstable();
    flags
}

#[tokio::test(flavor = "multi_thread")]
async fn retired_versions_are_refused_by_the_token_itself() {
    let hsm = hsm("retire-token");
    let (config, env) = providers(Some(&hsm), None, None);
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_config(dir.path(), &config, env);
    let mut keys = server.root().await;
    let mut req = create("hsm/retired", "aes-256-gcm", "root");
    req.provider = "hsm".into();
    let key = keys.create_key(req).await.expect("create").into_inner();
    keys.rotate_key(pb::RotateKeyRequest {
        key: "hsm/retired".into(),
        ..Default::default()
    })
    .await
    .expect("rotate");
    keys.rotate_key(pb::RotateKeyRequest {
        key: "hsm/retired".into(),
        ..Default::default()
    })
    .await
    .expect("rotate");
    assert_eq!(
        decrypt_flags(&hsm, &key.id),
        [(1, true), (2, true), (3, true)]
    );

    let retired = keys
        .retire_key_versions(pb::RetireKeyVersionsRequest {
            key: "hsm/retired".into(),
            below: 3,
            force: false,
        })
        .await
        .expect("retire versions 1 and 2 (never read)")
        .into_inner();
    assert_eq!(retired.retired_below, 3);
    assert_eq!(
        decrypt_flags(&hsm, &key.id),
        [(1, false), (2, false), (3, true)]
    );

    // Disabled and enabled again: the token still refuses the retired versions.
    keys.disable_key(pb::DisableKeyRequest {
        key: "hsm/retired".into(),
    })
    .await
    .expect("disable");
    keys.enable_key(pb::EnableKeyRequest {
        key: "hsm/retired".into(),
    })
    .await
    .expect("enable");
    assert_eq!(
        decrypt_flags(&hsm, &key.id),
        [(1, false), (2, false), (3, true)]
    );
    // The primary still works through keygate.
    let sealed = keys
        .encrypt(pb::EncryptRequest {
            key: "hsm/retired".into(),
            plaintext: b"still".to_vec(),
            associated_data: vec![],
        })
        .await
        .expect("encrypt")
        .into_inner();
    let opened = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: sealed.ciphertext,
            associated_data: vec![],
        })
        .await
        .expect("decrypt")
        .into_inner();
    assert_eq!(opened.plaintext, b"still");
}
