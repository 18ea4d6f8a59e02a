//! Sessions that die under the provider are replaced. In its own test binary because it
//! closes every session this process has on the token.

mod common;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use keygate_provider::{Algorithm, KeyProvider, KeySpec, ProviderError, SecretBytes, VersionRef};
use keygate_provider_pkcs11::Pkcs11Provider;
use std::collections::BTreeMap;
use std::time::Duration;

/// C_CloseAllSessions on the test token: invalidates the provider's pooled sessions and, since
/// no session is left, logs the user out.
fn close_all_sessions() {
    let module = common::hsm().module_path();
    let ctx = Pkcs11::new(module).expect("load module");
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = keygate_test_backends::softhsm::slot_with_label(&ctx, common::TOKEN)
        .expect("the test token");
    // cryptoki has no wrapper for C_CloseAllSessions; the same library handle is shared
    // (dlopen), so this reaches the provider's sessions.
    // SAFETY: a valid module path; C_CloseAllSessions takes only a slot id.
    let rv = unsafe {
        let lib = cryptoki_sys::Pkcs11::new(module).expect("dlopen");
        lib.C_CloseAllSessions(slot.id() as cryptoki_sys::CK_SLOT_ID)
    };
    assert_eq!(rv, cryptoki_sys::CKR_OK, "C_CloseAllSessions");
}

#[tokio::test]
async fn closed_sessions_are_replaced_and_logged_in_again() {
    let mut config = common::config();
    config.session_pool_size = 2;
    let provider = Pkcs11Provider::connect("hsm", &config, common::pin())
        .await
        .expect("connect");
    let key = provider
        .create_key(&KeySpec {
            name: "recovery".into(),
            key_id: "recovery-aes".into(),
            algorithm: Algorithm::Aes256Gcm,
            owner: "tests".into(),
            environment: "dev".into(),
            crypto_period: Duration::from_secs(86_400),
            labels: BTreeMap::new(),
        })
        .await
        .expect("create")
        .value;
    let v = key.versions.last().expect("version");
    let v = VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: v.number,
        provider_version: v.provider_version.clone(),
    };
    let blob = provider
        .encrypt(&v, &SecretBytes::copy_from(b"before"), b"")
        .await
        .expect("encrypt")
        .value;

    close_all_sessions();

    // Each dead pooled session fails once, as unavailable, and is dropped; then a fresh,
    // logged-in session serves the call.
    let mut unavailable = 0;
    let mut recovered = None;
    for _ in 0..=config.session_pool_size {
        match provider.decrypt(&v, &blob, b"").await {
            Ok(pt) => {
                recovered = Some(pt.value);
                break;
            }
            Err(ProviderError::Unavailable { .. }) => unavailable += 1,
            Err(e) => panic!("expected unavailable while sessions are dead, got {e}"),
        }
    }
    assert!(unavailable >= 1, "the dead session was noticed");
    assert_eq!(
        recovered.expect("a fresh session took over").expose(),
        b"before"
    );
}
