//! keygate provider for HashiCorp Vault and OpenBao Transit.
//!
//! Keys are named `hashivault://MOUNT/keys/NAME`. A key keygate creates gets the Transit name
//! `{name with '/' as '.'}.kg.{algorithm}.{key_id}` (Transit has no tags or metadata on keys),
//! so inventory can tell keygate's keys and their ids from others.
//!
//! # Which calls go where
//! - **Direct HTTP** (reqwest, the same version vaultrs uses): every Transit endpoint —
//!   `keys` (create, read, LIST, rotate, config, delete, soft-delete, soft-delete-restore),
//!   `encrypt`, `decrypt`, `datakey/plaintext`, `sign`, `verify`, `hmac`. vaultrs returns only
//!   the `data` of a response, so Vault's `request_id` (which joins keygate's audit log to
//!   Vault's) would be lost; it also hides Vault's error text, cannot read `hmac` keys and
//!   does not model `latest_version` or `auto_rotate_period`.
//! - **vaultrs**: AppRole login, token lookup-self and renew-self (see `auth`).
//!
//! # Behaviour the gateway relies on
//! - Encrypt, sign and MAC pin `key_version` to the [`keygate_provider::VersionRef`].
//! - Ciphertext blobs are Transit's own `vault:vN:BASE64` text as bytes; decrypt checks the
//!   `vN` against the version the gateway recorded.
//! - ECDSA signatures are DER, RSA-PSS uses a salt as long as the hash, Ed25519 is raw.
//! - Disable is OpenBao's Transit soft-delete, enforced by the server; HashiCorp Vault lacks it
//!   and gets `Unsupported`.
//! - Create and rotate use `keygen_timeout_ms` (default 60 s; RSA-4096 generation is slow),
//!   every other call `request_timeout_ms` (default 5 s) with a 1 s connect timeout.
//! - `list` LISTs the mount, then reads each key of the page for its type and state.
//!   Foreign RSA keys are listed without an algorithm (Transit keys carry no scheme), and
//!   `describe` reports them as the PSS variant of their size.
//! - Data keys come from `datakey/plaintext` (16, 32 or 64 bytes), bound to the associated
//!   data; `datakey/wrapped` is not used since the trait always returns the plaintext.
//! - Nothing is retried here: a 429 is `Throttled` and an unreachable server `Unavailable` at
//!   once; keygate's guard retries idempotent operations (never create or rotate) within the
//!   call's deadline, and its token bucket can keep the instance under a Vault rate quota.
//! - Transit's encrypt endpoint creates a missing key ("upsert") if the token may. Run the
//!   mount with `transit/config/keys disable_upsert=true`, or give keygate's policy no
//!   `create` on `encrypt/*`, so an externally deleted key is reported, not recreated.

mod algorithms;
mod auth;
mod client;
mod config;
mod crypto;
mod errors;
mod import;
mod keys;
mod listing;
mod provider;
mod settings;
mod signing;

pub use algorithms::{parse_vault_key_name, vault_key_name};
pub use config::{
    AuthConfig, SecretRef, SecretRefError, VaultConfig, VaultCredentials, VaultFactory, factory,
};
pub use provider::{SCHEME, VaultProvider};
