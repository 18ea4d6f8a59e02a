//! One SoftHSM2 token directory per test binary (SoftHSM2 reads `SOFTHSM2_CONF` once per
//! process), with a token for most tests and a spare one nobody logs in to.

#![allow(dead_code)]

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use keygate_provider::{Algorithm, KeySpec, ProviderKey, SecretBytes, VersionRef};
use keygate_provider_pkcs11::{Pkcs11Config, Pkcs11Provider};
use keygate_test_backends::softhsm::SoftHsm;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

pub const TOKEN: &str = "keygate";
/// A token no test logs in to with the right PIN, so a wrong PIN is really checked (a token
/// the process is already logged in to answers CKR_USER_ALREADY_LOGGED_IN without looking at
/// the PIN).
pub const SPARE_TOKEN: &str = "keygate-spare";
pub const SO_PIN: &str = "1234";
pub const USER_PIN: &str = "5678";

pub fn hsm() -> &'static SoftHsm {
    static HSM: OnceLock<SoftHsm> = OnceLock::new();
    HSM.get_or_init(|| {
        let hsm = SoftHsm::new(TOKEN, SO_PIN, USER_PIN).unwrap_or_else(|e| {
            panic!("SoftHSM2 is required for these tests and could not be set up: {e}")
        });
        hsm.add_token(SPARE_TOKEN, SO_PIN, USER_PIN)
            .unwrap_or_else(|e| panic!("could not add the spare SoftHSM2 token: {e}"));
        hsm.remove_at_exit();
        // SAFETY: set once, inside this OnceLock, before any test initialises the module;
        // nothing else in these test binaries reads or writes the environment meanwhile.
        unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf_path()) };
        hsm
    })
}

/// SoftHSM2 2.6 has OAEP with SHA-1 only, so the padding is removed in the provider.
pub fn config() -> Pkcs11Config {
    let mut config = Pkcs11Config::new(hsm().module_path(), TOKEN);
    config.oaep_unpad_in_provider = true;
    config
}

pub fn pin() -> SecretBytes {
    SecretBytes::copy_from(USER_PIN.as_bytes())
}

pub async fn provider() -> Pkcs11Provider {
    Pkcs11Provider::connect("hsm", &config(), pin())
        .await
        .unwrap_or_else(|e| panic!("opening the SoftHSM2 token failed: {e}"))
}

/// A provider on the test token with its own pool of `size` sessions.
pub async fn provider_with_pool(size: usize) -> Pkcs11Provider {
    let mut config = config();
    config.session_pool_size = size;
    Pkcs11Provider::connect("hsm", &config, pin())
        .await
        .unwrap_or_else(|e| panic!("opening the SoftHSM2 token failed: {e}"))
}

pub fn spec(key_id: &str, algorithm: Algorithm) -> KeySpec {
    KeySpec {
        name: format!("tests/{key_id}"),
        key_id: key_id.into(),
        algorithm,
        owner: "tests".into(),
        environment: "dev".into(),
        crypto_period: Duration::from_secs(86_400),
        labels: BTreeMap::new(),
    }
}

pub fn latest(key: &ProviderKey) -> VersionRef {
    let v = key.versions.last().expect("a key has versions");
    VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: v.number,
        provider_version: v.provider_version.clone(),
    }
}

/// A session opened with cryptoki directly, bypassing the provider, on the test token.
pub fn raw_session() -> Session {
    hsm();
    let ctx = Pkcs11::new(hsm().module_path()).expect("load module");
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot =
        keygate_test_backends::softhsm::slot_with_label(&ctx, TOKEN).expect("the test token");
    let session = ctx.open_rw_session(slot).expect("open session");
    match session.login(UserType::User, Some(&AuthPin::from(USER_PIN))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    session
}
