//! `keygate migrate`: brings the configured database's schema up to this keygate's. SQLite is
//! also migrated by `serve` itself (one process owns it); PostgreSQL only here, since
//! replicas of different versions must not change a shared schema on their own.

use super::CliResult;
use crate::config::{Config, StorageKind};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// TOML configuration file: its `[storage]` section names the database.
    #[arg(long, env = "KEYGATE_CONFIG")]
    pub config: Option<PathBuf>,
}

pub async fn run(args: MigrateArgs) -> CliResult {
    let config = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    match config.storage.kind {
        StorageKind::Sqlite => {
            crate::db::open(&config.storage.data_dir)
                .await
                .map_err(|e| format!("storage: {e}"))?;
            println!(
                "SQLite database in {} is up to date",
                config.storage.data_dir.display()
            );
        }
        StorageKind::Postgres => {
            let pool = crate::db::postgres::connect(&config.storage)
                .await
                .map_err(|e| format!("storage: {e}"))?;
            let applied = crate::db::postgres::migrate(&pool)
                .await
                .map_err(|e| format!("storage: {e}"))?;
            crate::db::postgres::check_schema(&pool)
                .await
                .map_err(|e| format!("storage: {e}"))?;
            if applied.is_empty() {
                println!("PostgreSQL schema is up to date");
            } else {
                let list: Vec<String> = applied.iter().map(i64::to_string).collect();
                println!("PostgreSQL schema migrated: applied {}", list.join(", "));
            }
            pool.close().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
