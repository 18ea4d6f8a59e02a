//! keygate's PKCS#11 provider: keys live on an HSM token and never leave it.
//!
//! - Keys are generated on the token as persistent (CKA_TOKEN), private, sensitive and
//!   non-extractable objects. Every object of a key carries the keygate key id as CKA_LABEL;
//!   CKA_ID names the version (see `naming`), so a restarted gateway finds them again.
//! - Key URIs follow RFC 7512: `pkcs11:token=TOKEN;object=KEY_ID`.
//! - Every PKCS#11 call runs on a pooled, logged-in session on tokio's blocking pool.
//! - Tested against SoftHSM2.

mod config;
mod der;
mod errors;
mod mechanisms;
mod module;
mod naming;
mod oaep;
mod ops;
mod provider;
mod session_pool;
mod uri;

pub use config::{DEFAULT_SESSION_POOL_SIZE, Pkcs11Config, SecretRef, TokenSelector};
pub use errors::OpenError;
pub use provider::Pkcs11Provider;
