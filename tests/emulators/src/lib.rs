//! Local emulators of the Google Cloud KMS (REST v1) and Azure Key Vault keys
//! REST APIs, with real cryptography, for keygate's tests.
//!
//! Each emulator runs in-process on a loopback port: tests start one with
//! [`gcp::spawn`] or [`azure::spawn`] and point the vendor SDK at its URL.
//! Test hooks ([`Hooks`]) inject throttling and checksum faults on demand.

pub mod azure;
pub mod gcp;
mod hooks;
mod server;
pub mod tls;

pub use hooks::Hooks;
pub use server::{PeerAddr, ServerHandle};
