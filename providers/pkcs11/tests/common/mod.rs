//! One SoftHSM2 token directory per test binary (SoftHSM2 reads `SOFTHSM2_CONF` once per
//! process), with a token for most tests and a spare one nobody logs in to.

#![allow(dead_code)]

use keygate_provider::SecretBytes;
use keygate_provider_pkcs11::{Pkcs11Config, Pkcs11Provider};
use keygate_test_backends::softhsm::SoftHsm;
use std::sync::OnceLock;

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
