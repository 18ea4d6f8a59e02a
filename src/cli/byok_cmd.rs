//! `keygate byok …`: generate a key in an HSM and import it into other backends; show a key's
//! family (the original and every copy).

use super::CliResult;
use super::client::{Connection, describe};
use super::output;
use crate::cli::output::Format;
use crate::pb;
use clap::Subcommand;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ByokCommand {
    /// Generate NAME in the HSM (--from) and import a wrapped copy into each target (--to);
    /// each copy is a key of its own, NAME.TARGET. Exits 1 if a target failed (the others
    /// keep their copies and the family is incomplete).
    Import {
        name: String,
        /// The PKCS#11 provider instance that generates and wraps the key.
        #[arg(long = "from")]
        source: String,
        /// Provider instances to import into, comma-separated.
        #[arg(long = "to", value_delimiter = ',', required = true)]
        targets: Vec<String>,
        /// aes-256-gcm, hmac-sha256, ecdsa-p256, rsa-2048-pss or rsa-3072-pss.
        #[arg(long, default_value = "aes-256-gcm")]
        algorithm: String,
        /// The person or service account answerable for the key and its copies.
        #[arg(long)]
        owner: String,
        /// e.g. 365d.
        #[arg(long)]
        crypto_period: String,
        #[arg(long)]
        environment: Option<String>,
        /// How long each copy's material lives in its target before the target deletes it
        /// (AWS KMS ValidTo, at most 365d), e.g. 30d; unset: it does not expire.
        #[arg(long)]
        material_expires: Option<String>,
    },
    /// Import an incomplete family's key again into the targets that failed.
    Retry { key: String },
    /// Import the same key again into copies that hold it (AWS KMS), after their material
    /// expired or was deleted, or to give it a new lifetime. Exits 1 if a target failed.
    Reimport {
        key: String,
        /// The targets whose copies get the material again, comma-separated; unset: every
        /// imported copy in a target that can re-import.
        #[arg(long = "to", value_delimiter = ',')]
        targets: Vec<String>,
        /// The material's new lifetime, e.g. 30d; unset: each copy's lifetime from its
        /// import.
        #[arg(long)]
        material_expires: Option<String>,
    },
    /// The key's family: the HSM original and each copy, how and when it was imported.
    Show { key: String },
    /// Schedule the destruction of the original and every copy, through the same pending
    /// window and approval (`keygate key schedule-destruction --family`). Critical by
    /// default: it opens an approval request, prints its id and exits 3.
    Destroy {
        key: String,
        /// e.g. 30d (the default); at least the gateway's minimum (7d by default).
        #[arg(long)]
        window: Option<String>,
    },
}

fn family_json(f: &pb::KeyFamily) -> serde_json::Value {
    json!({
        "original": f.original.as_ref().map(output::key_json),
        "state": f.state,
        "created_by": f.created_by,
        "created_at": f.created_at,
        "copies": f.copies.iter().map(|c| json!({
            "provider": c.provider,
            "provider_kind": c.provider_kind,
            "status": c.status,
            "key_id": c.key_id,
            "key_name": c.key_name,
            "provider_uri": c.provider_uri,
            "import_method": c.import_method,
            "wrapping_key_id": c.wrapping_key_id,
            "ephemeral_left_hsm": c.ephemeral_left_hsm,
            "imported_at": c.imported_at,
            "imported_by": c.imported_by,
            "import_expires_at": c.import_expires_at,
            "material_expires_at": c.material_expires_at,
            "error": c.error,
        })).collect::<Vec<_>>(),
    })
}

/// One line per target: what was imported where, or why not.
fn copy_line(c: &pb::KeyCopy) -> String {
    if c.status == "imported" {
        let expiry = if c.import_expires_at.is_empty() {
            String::new()
        } else {
            format!(", parameters valid to {}", c.import_expires_at)
        };
        let material = if c.material_expires_at.is_empty() {
            String::new()
        } else {
            format!(
                "\n               material expires {}",
                c.material_expires_at
            )
        };
        let hsm = if c.ephemeral_left_hsm {
            "ephemeral key wrapped in the gateway"
        } else {
            "wrapped wholly in the HSM"
        };
        format!(
            "  {:<12} imported  {} ({}; {}; wrapping key {}{expiry})\n               {}{material}",
            c.provider, c.key_name, c.import_method, hsm, c.wrapping_key_id, c.provider_uri
        )
    } else {
        format!("  {:<12} FAILED    {}", c.provider, c.error)
    }
}

fn print_family(fmt: Format, f: &pb::KeyFamily) {
    if let Some(data) = fmt.data() {
        data.print(&family_json(f));
        return;
    }
    if let Some(k) = &f.original {
        println!(
            "{} ({}) in {}: {}  [{}]",
            k.name, k.algorithm, k.provider, k.provider_uri, f.state
        );
    }
    println!("  created by {} at {}", f.created_by, f.created_at);
    for c in &f.copies {
        println!("{}", copy_line(c));
    }
}

/// `--material-expires`, as the request's duration.
fn lifetime(text: Option<&str>) -> Result<Option<prost_types::Duration>, String> {
    text.map(|t| {
        let d = crate::time::parse_duration(t).map_err(|e| format!("--material-expires: {e}"))?;
        Ok(prost_types::Duration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        })
    })
    .transpose()
}

pub async fn run(conn: &Connection, fmt: Format, cmd: ByokCommand) -> CliResult {
    let mut keys = conn.keys().await?;
    let family = match cmd {
        ByokCommand::Import {
            name,
            source,
            targets,
            algorithm,
            owner,
            crypto_period,
            environment,
            material_expires,
        } => {
            if fmt.is_table() {
                eprintln!(
                    "generating {name} in {source}, importing into {}",
                    targets.join(", ")
                );
            }
            let d = crate::time::parse_duration(&crypto_period)
                .map_err(|e| format!("--crypto-period: {e}"))?;
            keys.byok_import(pb::ByokImportRequest {
                name,
                algorithm,
                owner,
                environment: environment.unwrap_or_default(),
                crypto_period: Some(prost_types::Duration {
                    seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    nanos: 0,
                }),
                source,
                targets,
                labels: Default::default(),
                material_expiry: lifetime(material_expires.as_deref())?,
            })
            .await
        }
        ByokCommand::Reimport {
            key,
            targets,
            material_expires,
        } => {
            keys.reimport_byok(pb::ReimportByokRequest {
                key,
                targets,
                material_expiry: lifetime(material_expires.as_deref())?,
            })
            .await
        }
        ByokCommand::Retry { key } => {
            keys.retry_byok_import(pb::RetryByokImportRequest { key })
                .await
        }
        ByokCommand::Show { key } => keys.get_key_family(pb::GetKeyFamilyRequest { key }).await,
        ByokCommand::Destroy { key, window } => {
            let destroy = super::key_cmd::KeyCommand::ScheduleDestruction {
                key,
                window,
                family: true,
            };
            return super::key_cmd::run(conn, fmt, destroy).await;
        }
    }
    .map_err(describe)?
    .into_inner();
    print_family(fmt, &family);
    Ok(if family.state == "complete" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
