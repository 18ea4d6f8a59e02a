//! keygate: one gRPC key API over many key backends, with a central policy engine and a
//! tamper-evident audit log.
//!
//! Every call goes through one pipeline ([`gateway`]): authenticate → resolve the key in the
//! [`catalog`] → authorize with the [`policy`] engine → check the key's [`lifecycle`] state →
//! call the provider → append the [`audit`] event durably → reply.

pub mod approvals;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod db;
pub mod gateway;
pub mod lifecycle;
pub mod page_token;
pub mod pb;
pub mod policy;
pub mod posture;
pub mod providers;
pub mod server;
pub mod telemetry;
pub mod time;
