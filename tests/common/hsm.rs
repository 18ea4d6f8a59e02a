//! A SoftHSM2 token for the end-to-end tests that also reach the HSM straight through
//! cryptoki, behind keygate's back (to put keys on it, or to check what keygate left there).

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use keygate_test_backends::softhsm::SoftHsm;

pub struct TestHsm {
    pub hsm: SoftHsm,
    pub ctx: Pkcs11,
    token: &'static str,
    user_pin: &'static str,
}

impl TestHsm {
    /// One token, removed at exit. Call it once per test binary, before any gateway starts:
    /// it sets `SOFTHSM2_CONF` for the process and clears `KEYGATE_PKCS11_MODULE` (keygate
    /// reads `KEYGATE_*` variables as configuration overrides; the tests pass the module
    /// path in the configuration).
    pub fn new(token: &'static str, so_pin: &str, user_pin: &'static str) -> Self {
        let hsm = SoftHsm::new(token, so_pin, user_pin).unwrap_or_else(|e| {
            panic!("SoftHSM2 is required for these tests and could not be set up: {e}")
        });
        hsm.remove_at_exit();
        // SAFETY: the one test of the binary that uses the HSM sets these before anything
        // else runs.
        unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf_path()) };
        // SAFETY: as above.
        unsafe { std::env::remove_var("KEYGATE_PKCS11_MODULE") };
        let ctx = Pkcs11::new(hsm.module_path()).expect("load the SoftHSM2 module");
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("C_Initialize: {e}"),
        }
        TestHsm {
            hsm,
            ctx,
            token,
            user_pin,
        }
    }

    /// The token's label.
    pub fn token(&self) -> &'static str {
        self.token
    }

    /// A logged-in read-write session on the token.
    pub fn session(&self) -> Session {
        let slot = keygate_test_backends::softhsm::slot_with_label(&self.ctx, self.token)
            .expect("the test token");
        let session = self.ctx.open_rw_session(slot).expect("open session");
        match session.login(UserType::User, Some(&AuthPin::from(self.user_pin))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => panic!("C_Login: {e}"),
        }
        session
    }
}
