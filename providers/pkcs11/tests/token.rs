//! What the token itself holds: sensitive keys, persistence across restarts, destruction,
//! inventory of foreign objects, and start-up errors that name the setting.

mod common;

use common::{latest, raw_session, spec};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::Session;
use keygate_provider::{
    Algorithm, KeyProvider, PageRequest, ProviderError, SecretBytes, SignInput,
};
use keygate_provider_pkcs11::{OpenError, Pkcs11Config, Pkcs11Provider, TokenSelector};

fn objects_labelled(session: &Session, label: &str) -> usize {
    session
        .find_objects(&[
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .expect("find objects")
        .len()
}

#[tokio::test]
async fn key_material_is_sensitive_on_the_token() {
    let provider = common::provider().await;
    for (id, algorithm) in [
        ("sensitive-aes", Algorithm::Aes256Gcm),
        ("sensitive-ec", Algorithm::EcdsaP256),
    ] {
        provider
            .create_key(&spec(id, algorithm))
            .await
            .expect("create");
        let session = raw_session();
        let class = if algorithm.is_symmetric() {
            ObjectClass::SECRET_KEY
        } else {
            ObjectClass::PRIVATE_KEY
        };
        let handles = session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Label(id.as_bytes().to_vec()),
            ])
            .expect("find");
        assert_eq!(handles.len(), 1, "{id}: one secret-side object");
        let info = session
            .get_attribute_info(handles[0], &[AttributeType::Value])
            .expect("C_GetAttributeValue");
        assert!(
            matches!(info[0], AttributeInfo::Sensitive),
            "{id}: CKA_VALUE must be CKR_ATTRIBUTE_SENSITIVE, got {:?}",
            info[0]
        );
        let attrs = session
            .get_attributes(
                handles[0],
                &[
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                ],
            )
            .expect("attributes");
        for expected in [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ] {
            assert!(
                attrs
                    .iter()
                    .any(|a| format!("{a:?}") == format!("{expected:?}")),
                "{id}: expected {expected:?} in {attrs:?}"
            );
        }
    }
}

#[tokio::test]
async fn keys_survive_a_new_provider() {
    let (key, blob, signature) = {
        let provider = common::provider().await;
        let key = provider
            .create_key(&spec("restart-aes", Algorithm::Aes256Gcm))
            .await
            .expect("create")
            .value;
        provider.rotate(&key.uri).await.expect("rotate");
        let key = provider.describe(&key.uri).await.expect("describe").value;
        let blob = provider
            .encrypt(&latest(&key), &SecretBytes::copy_from(b"kept"), b"ctx")
            .await
            .expect("encrypt")
            .value;
        let ec = provider
            .create_key(&spec("restart-ec", Algorithm::EcdsaP384))
            .await
            .expect("create ec")
            .value;
        let sig = provider
            .sign(&latest(&ec), SignInput::Message(b"m"))
            .await
            .expect("sign")
            .value;
        (key, blob, (ec, sig))
    };
    let provider = common::provider().await;
    let again = provider
        .describe(&key.uri)
        .await
        .expect("found again")
        .value;
    assert_eq!(again.versions, key.versions);
    let pt = provider
        .decrypt(&latest(&again), &blob, b"ctx")
        .await
        .expect("decrypt after restart")
        .value;
    assert_eq!(pt.expose(), b"kept");
    let (ec, sig) = signature;
    let ec_again = provider.describe(&ec.uri).await.expect("ec found").value;
    assert!(
        provider
            .verify(&latest(&ec_again), SignInput::Message(b"m"), &sig)
            .await
            .expect("verify")
            .value
    );
}

#[tokio::test]
async fn destroy_removes_every_object_of_every_version() {
    let provider = common::provider().await;
    let key = provider
        .create_key(&spec("doomed-rsa", Algorithm::Rsa2048Pss))
        .await
        .expect("create")
        .value;
    provider.rotate(&key.uri).await.expect("rotate");
    let session = raw_session();
    assert_eq!(objects_labelled(&session, "doomed-rsa"), 4, "two key pairs");
    provider.destroy(&key.uri).await.expect("destroy");
    assert_eq!(objects_labelled(&session, "doomed-rsa"), 0);
    assert!(matches!(
        provider.describe(&key.uri).await,
        Err(ProviderError::NotFound { .. })
    ));
    assert!(matches!(
        provider.sign(&latest(&key), SignInput::Message(b"m")).await,
        Err(ProviderError::NotFound { .. })
    ));
}

#[tokio::test]
async fn duplicate_key_ids_are_refused() {
    let provider = common::provider().await;
    provider
        .create_key(&spec("dup", Algorithm::HmacSha256))
        .await
        .expect("create");
    assert!(matches!(
        provider
            .create_key(&spec("dup", Algorithm::HmacSha256))
            .await,
        Err(ProviderError::AlreadyExists { .. })
    ));
}

#[tokio::test]
async fn inventory_shows_foreign_objects_without_a_keygate_id() {
    let provider = common::provider().await;
    provider
        .create_key(&spec("inventoried", Algorithm::EcdsaP256))
        .await
        .expect("create");
    let session = raw_session();
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(b"made-elsewhere".to_vec()),
                Attribute::Id(vec![0xca, 0xfe]),
                Attribute::Encrypt(true),
            ],
        )
        .expect("foreign key");
    let mut all = Vec::new();
    let mut page = PageRequest {
        page_size: 2,
        page_token: String::new(),
    };
    loop {
        let listing = provider.list(&page).await.expect("list").value;
        all.extend(listing.keys);
        if listing.next_page_token.is_empty() {
            break;
        }
        page.page_token = listing.next_page_token;
    }
    let ours = all
        .iter()
        .find(|k| k.keygate_id.as_deref() == Some("inventoried"))
        .expect("keygate key listed");
    assert_eq!(ours.algorithm, Some(Algorithm::EcdsaP256));
    let foreign = all
        .iter()
        .find(|k| k.uri.as_str().contains("object=made-elsewhere"))
        .expect("foreign key listed");
    assert_eq!(foreign.keygate_id, None);
    assert!(
        foreign.uri.as_str().ends_with(";id=%CA%FE"),
        "{}",
        foreign.uri
    );
}

#[tokio::test]
async fn concurrent_calls_share_the_pool() {
    let provider = std::sync::Arc::new(common::provider_with_pool(2).await);
    let key = provider
        .create_key(&spec("busy-ec", Algorithm::EcdsaP256))
        .await
        .expect("create")
        .value;
    let v = latest(&key);
    let mut tasks = Vec::new();
    for i in 0..32u8 {
        let (provider, v) = (provider.clone(), v.clone());
        tasks.push(tokio::spawn(async move {
            let sig = provider.sign(&v, SignInput::Message(&[i])).await?.value;
            provider.verify(&v, SignInput::Message(&[i]), &sig).await
        }));
    }
    for task in tasks {
        assert!(task.await.expect("join").expect("sign+verify").value);
    }
}

#[tokio::test]
async fn token_without_sha256_oaep_is_reported_unsupported() {
    let mut config = common::config();
    config.oaep_unpad_in_provider = false;
    let provider = Pkcs11Provider::connect("hsm", &config, common::pin())
        .await
        .expect("connect");
    let key = provider
        .create_key(&spec("oaep-strict", Algorithm::Rsa2048Oaep))
        .await
        .expect("create")
        .value;
    let v = latest(&key);
    let blob = provider
        .encrypt(&v, &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect("encrypt")
        .value;
    match provider.decrypt(&v, &blob, b"").await {
        // A SoftHSM2 build with SHA-256 OAEP would decrypt; 2.6 refuses the parameters.
        Ok(pt) => assert_eq!(pt.value.expose(), b"x"),
        Err(ProviderError::Unsupported { what, .. }) => {
            assert!(what.contains("oaep_unpad_in_provider"), "{what}")
        }
        Err(e) => panic!("expected unsupported, got {e}"),
    }
}

#[tokio::test]
async fn wrong_pin_names_the_setting() {
    common::hsm();
    let mut config = common::config();
    config.token = TokenSelector::Label(common::SPARE_TOKEN.into());
    let err = Pkcs11Provider::connect("hsm", &config, SecretBytes::copy_from(b"0000"))
        .await
        .expect_err("a wrong PIN must fail");
    assert!(matches!(err, OpenError::PinRejected { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("user_pin") && !text.contains("0000"),
        "{text}"
    );
    assert!(matches!(
        ProviderError::from(err),
        ProviderError::BackendDenied { .. }
    ));
}

#[tokio::test]
async fn missing_module_names_the_setting() {
    let mut config = common::config();
    config.module = "/nonexistent/libpkcs11.so".into();
    let err = Pkcs11Provider::connect("hsm", &config, common::pin())
        .await
        .expect_err("a missing module must fail");
    assert!(matches!(err, OpenError::ModuleMissing { .. }), "{err}");
    assert!(err.to_string().contains("setting `module`"), "{err}");

    let mut config = common::config();
    config.module = "/etc/hostname".into();
    let err = Pkcs11Provider::connect("hsm", &config, common::pin())
        .await
        .expect_err("a file that is no module must fail");
    assert!(matches!(err, OpenError::ModuleLoad { .. }), "{err}");
}

#[tokio::test]
async fn unknown_token_lists_what_is_there() {
    let mut config: Pkcs11Config = common::config();
    config.token = TokenSelector::Label("no-such-token".into());
    let err = Pkcs11Provider::connect("hsm", &config, common::pin())
        .await
        .expect_err("an unknown token must fail");
    let text = err.to_string();
    assert!(matches!(err, OpenError::TokenNotFound { .. }), "{text}");
    assert!(
        text.contains("setting `token`") && text.contains(common::TOKEN),
        "{text}"
    );
}

#[tokio::test]
async fn objects_destroyed_outside_keygate_are_not_found_not_used_through_a_stale_handle() {
    // Pool of one, so the session that cached the handles is the one asked again.
    let provider = common::provider_with_pool(1).await;
    let ec = provider
        .create_key(&spec("vanishing-ec", Algorithm::EcdsaP256))
        .await
        .expect("create")
        .value;
    let aes = provider
        .create_key(&spec("vanishing-aes", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let secret = SecretBytes::copy_from(b"before");
    // Use both once, so the session holds their handles.
    provider
        .sign(&latest(&ec), SignInput::Message(b"m"))
        .await
        .expect("sign");
    provider
        .encrypt(&latest(&aes), &secret, b"")
        .await
        .expect("encrypt");
    // An operator destroys the objects with another application.
    let session = raw_session();
    for label in ["vanishing-ec", "vanishing-aes"] {
        let handles = session
            .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
            .expect("find");
        for handle in handles {
            session
                .destroy_object(handle)
                .expect("destroy outside keygate");
        }
    }
    let sign = provider.sign(&latest(&ec), SignInput::Message(b"m")).await;
    assert!(
        matches!(sign, Err(ProviderError::NotFound { .. })),
        "{sign:?}"
    );
    let encrypt = provider.encrypt(&latest(&aes), &secret, b"").await;
    assert!(
        matches!(encrypt, Err(ProviderError::NotFound { .. })),
        "{encrypt:?}"
    );
}

#[tokio::test]
async fn a_key_destroyed_through_keygate_is_forgotten_by_every_session() {
    let provider = std::sync::Arc::new(common::provider_with_pool(3).await);
    let key = provider
        .create_key(&spec("forgotten-hmac", Algorithm::HmacSha256))
        .await
        .expect("create")
        .value;
    let v = latest(&key);
    // Enough concurrent calls that every session caches the handle.
    let calls: Vec<_> = (0..24u8)
        .map(|i| {
            let (provider, v) = (provider.clone(), v.clone());
            tokio::spawn(async move { provider.mac(&v, &[i]).await })
        })
        .collect();
    for call in calls {
        call.await.expect("join").expect("mac");
    }
    provider.destroy(&key.uri).await.expect("destroy");
    for i in 0..6u8 {
        let result = provider.mac(&v, &[i]).await;
        assert!(
            matches!(result, Err(ProviderError::NotFound { .. })),
            "{result:?}"
        );
    }
}
