//! `keygate admin …`: operations on a provider instance as a whole.

use super::CliResult;
use super::client::{Connection, describe};
use crate::cli::output::Format;
use crate::pb;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Replace a provider's master key (the local provider's key-encryption key) and rewrap
    /// every key under it, atomically. The passphrase stays the same. Providers whose keys
    /// the backend wraps itself refuse (FAILED_PRECONDITION).
    RotateMasterKey {
        /// The provider instance (default: the default provider).
        provider: Option<String>,
    },
}

pub async fn run(conn: &Connection, fmt: Format, cmd: AdminCommand) -> CliResult {
    match cmd {
        AdminCommand::RotateMasterKey { provider } => {
            let reply = conn
                .admin()
                .await?
                .rotate_master_key(pb::RotateMasterKeyRequest {
                    provider: provider.unwrap_or_default(),
                })
                .await
                .map_err(describe)?
                .into_inner();
            if let Some(data) = fmt.data() {
                data.print(&serde_json::json!({
                    "provider": reply.provider,
                    "generation": reply.generation,
                    "rewrapped": reply.rewrapped,
                }));
            } else {
                println!(
                    "provider '{}': master key replaced (generation {}), {} wrapped keys rewrapped",
                    reply.provider, reply.generation, reply.rewrapped
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
