//! keygate's PKCS#11 provider: keys live on an HSM token and never leave it.
//!
//! - Keys are generated on the token as persistent (CKA_TOKEN), private, sensitive and
//!   non-extractable objects. Every object of a key carries the keygate key id as CKA_LABEL;
//!   CKA_ID names the version (see `naming`), so a restarted gateway finds them again.
//! - Key URIs follow RFC 7512: `pkcs11:token=TOKEN;object=KEY_ID`.
//! - Every PKCS#11 call runs on a logged-in session owned by a thread of its own (never on an
//!   async worker); calls queue for the next free session, and each session caches the object
//!   handles it has found (see `session_pool`).
//! - Tested against SoftHSM2.
//!
//! Using it from the gateway:
//!
//! - Deserialize a [`Pkcs11Config`], resolve its `user_pin` reference, and call
//!   [`Pkcs11Provider::connect`]`(name, &config, pin)`. Start-up failures are [`OpenError`]s that
//!   name the setting at fault; they convert into `ProviderError`.
//! - A module is loaded and `C_Initialize`d once per process and never finalised, so provider
//!   instances (and re-created ones) share it.
//! - SoftHSM2 finds its token directory through `SOFTHSM2_CONF`, read once at `C_Initialize`:
//!   set it in the gateway's environment before start (not from inside the running process:
//!   changing the environment of a multi-threaded process is unsound).
//! - PKCS#11 login state is per process and token. When another instance in the same process
//!   is already logged in to the token, the token answers CKR_USER_ALREADY_LOGGED_IN without
//!   checking this instance's PIN: configure one instance per token.
//! - Disabling a key turns off its usage attributes (CKA_ENCRYPT/DECRYPT/SIGN/VERIFY) with
//!   `C_SetAttributeValue`; a token that refuses answers `Unsupported`, and the gateway must
//!   then refuse use of the disabled key itself.

mod config;
mod crypto;
mod der;
mod errors;
mod keys;
mod listing;
mod mechanisms;
mod module;
mod naming;
mod oaep;
mod open;
mod ops;
mod provider;
mod session_pool;
mod signing;
mod uri;
mod wrap;

pub use config::{
    DEFAULT_SESSION_POOL_SIZE, Pkcs11Config, Pkcs11Factory, SecretRef, TokenSelector, factory,
};
pub use errors::OpenError;
pub use provider::Pkcs11Provider;

/// The URI, CKA_ID, OAEP and SPKI parsers, for the fuzz targets in `fuzz/`; not part of the
/// API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::oaep::decode as oaep_decode;
    pub use crate::uri::ObjectUri;

    /// Decodes a CKA_ID (bytes, then hex text) and re-encodes what parses.
    pub fn version_id(bytes: &[u8]) -> Option<Vec<u8>> {
        let id = crate::naming::VersionId::parse(bytes)?;
        let _ = crate::naming::VersionId::parse_hex(&hex::encode(bytes));
        Some(id.to_bytes())
    }

    /// Whether `spki` is an RSA public key the token could wrap with.
    pub fn rsa_wrapping_key(spki: &[u8]) -> bool {
        crate::wrap::rsa_public_for_fuzzing(spki)
    }
}
