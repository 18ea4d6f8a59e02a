//! `keygate key …`

use super::CliResult;
use super::client::{Connection, EXIT_PENDING_APPROVAL, describe, pending_approval};
use super::output;
use crate::cli::output::Format;
use crate::pb;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a key. Every key needs an owner and a crypto-period.
    Create {
        /// Lower-case path-like name, e.g. payments/card-dek.
        name: String,
        /// encrypt | sign | mac (defaults to what the algorithm is for).
        #[arg(long)]
        purpose: Option<String>,
        /// aes-256-gcm, rsa-3072-oaep, ecdsa-p256, ecdsa-p384, ed25519, rsa-2048-pss, rsa-2048-pkcs1, hmac-sha256, …
        #[arg(long)]
        algorithm: String,
        /// The person or service account answerable for the key (never a team).
        #[arg(long)]
        owner: String,
        /// How long each version may be used before rotation, e.g. 365d, 90d.
        #[arg(long)]
        crypto_period: String,
        /// prod | staging | dev | … (default dev).
        #[arg(long)]
        environment: Option<String>,
        /// Provider instance (default: the gateway's default provider).
        #[arg(long)]
        provider: Option<String>,
        /// Labels, KEY=VALUE; repeatable.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// A short-lived key: the scheduler destroys it when this ends (e.g. 24h), with a
        /// destruction record and no pending window.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Bring a key a provider holds, which keygate does not manage (an unmanaged-key
    /// finding), into the catalog; from then on it is used, rotated and audited like any other.
    Adopt {
        /// The key's provider URI, as `keygate inventory` lists it.
        provider_uri: String,
        /// The keygate name it gets, e.g. payments/legacy-dek.
        #[arg(long)]
        name: String,
        /// The person or service account answerable for the key.
        #[arg(long)]
        owner: String,
        /// How long each version may be used before rotation, e.g. 365d; runs from adoption.
        #[arg(long)]
        crypto_period: String,
        /// prod | staging | dev | … (default dev).
        #[arg(long)]
        environment: Option<String>,
        /// Provider instance (default: the one the newest scan listed the URI under).
        #[arg(long)]
        provider: Option<String>,
        /// keygate's algorithm name (default: the one the newest scan saw).
        #[arg(long)]
        algorithm: Option<String>,
        /// Labels, KEY=VALUE; repeatable.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// List keys you may see.
    List {
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        environment: Option<String>,
        /// Only short-lived keys whose TTL ends within this (e.g. 24h; default 7d).
        #[arg(long, num_args = 0..=1, default_missing_value = "7d")]
        expiring: Option<String>,
        /// Only enabled keys past their rotation date (the overdue report): not yet rotated,
        /// or left to a provider that rotates them by itself and has not yet.
        #[arg(long)]
        overdue: bool,
    },
    /// Show one key, with each version's uses in the usage window (from the audit log).
    Show { key: String },
    /// Stop the versions below --below decrypting and verifying (on the provider too).
    /// Refused while one of them was used within the quiet period, unless --force (which
    /// waits for approvals under the default policies).
    Retire {
        key: String,
        /// The first version that stays.
        #[arg(long)]
        below: u32,
        #[arg(long)]
        force: bool,
    },
    /// Add a version and make it primary. With --stage (signing keys): publish the new
    /// version's public key first; the current version keeps signing until `key promote`
    /// or, after `[lifecycle] signing_propagation_delay`, the scheduler promotes it.
    Rotate {
        key: String,
        #[arg(long)]
        stage: bool,
    },
    /// Make a signing key's staged version the one that signs.
    Promote { key: String },
    /// The key's public keys as a JWKS document (primary, staged and older versions still
    /// verifying), for verifiers to fetch.
    Jwks { key: String },
    /// Allow use of a disabled key again.
    Enable { key: String },
    /// Refuse every use of a key until it is enabled. On a critical key (by default, prod
    /// keys) this opens an approval request and exits 3.
    Disable { key: String },
    /// Start the pending window after which the key is destroyed. Critical by default: it
    /// opens an approval request, prints its id and exits 3; approvers then run `keygate
    /// approval approve ID`.
    ScheduleDestruction {
        key: String,
        /// e.g. 30d (the default); at least the gateway's minimum (7d by default).
        #[arg(long)]
        window: Option<String>,
        /// The key is a BYOK original: destroy every copy with it (`keygate byok destroy`).
        #[arg(long)]
        family: bool,
    },
    /// Stop a pending destruction; the key comes back disabled.
    CancelDestruction { key: String },
    /// Hand a key to another owner (a configured person or service account). Critical by
    /// default: it opens an approval request, prints its id and exits 3.
    SetOwner {
        key: String,
        /// The new owner.
        #[arg(long)]
        owner: String,
    },
    /// Who asked for a key's destruction, who approved it, when, which versions, how, and
    /// the destruction checklist it passed. Records outlive the key.
    #[command(alias = "destruction-record")]
    DestructionRecords { key: String },
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("label '{s}' is not KEY=VALUE"))
}

fn duration(flag: &str, text: &str) -> Result<prost_types::Duration, String> {
    let d = crate::time::parse_duration(text).map_err(|e| format!("{flag}: {e}"))?;
    Ok(prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: 0,
    })
}

fn print_key(fmt: Format, key: &pb::Key) {
    if let Some(data) = fmt.data() {
        data.print(&output::key_json(key));
    } else {
        print!("{}", output::key_details(key));
    }
}

pub async fn run(conn: &Connection, fmt: Format, cmd: KeyCommand) -> CliResult {
    let mut keys = conn.keys().await?;
    let key = match cmd {
        KeyCommand::Create {
            name,
            purpose,
            algorithm,
            owner,
            crypto_period,
            environment,
            provider,
            labels,
            ttl,
        } => {
            keys.create_key(pb::CreateKeyRequest {
                name,
                purpose: purpose.unwrap_or_default(),
                algorithm,
                owner,
                environment: environment.unwrap_or_default(),
                crypto_period: Some(duration("--crypto-period", &crypto_period)?),
                provider: provider.unwrap_or_default(),
                labels: labels.into_iter().collect(),
                ttl: ttl.map(|t| duration("--ttl", &t)).transpose()?,
            })
            .await
        }
        KeyCommand::Adopt {
            provider_uri,
            name,
            owner,
            crypto_period,
            environment,
            provider,
            algorithm,
            labels,
        } => {
            let (provider, algorithm) = match (provider, algorithm) {
                (Some(p), Some(a)) => (p, a),
                (p, a) => {
                    let (listed_provider, listed_algorithm) =
                        super::posture_cmd::last_listed(conn, &provider_uri).await?;
                    (p.unwrap_or(listed_provider), a.unwrap_or(listed_algorithm))
                }
            };
            keys.adopt_key(pb::AdoptKeyRequest {
                provider_uri,
                provider,
                name,
                owner,
                crypto_period: Some(duration("--crypto-period", &crypto_period)?),
                environment: environment.unwrap_or_default(),
                algorithm,
                labels: labels.into_iter().collect(),
            })
            .await
        }
        KeyCommand::List {
            owner,
            environment,
            expiring,
            overdue,
        } => {
            let expiring_within = expiring.map(|e| duration("--expiring", &e)).transpose()?;
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = keys
                    .list_keys(pb::ListKeysRequest {
                        page_size: 500,
                        page_token,
                        owner: owner.clone().unwrap_or_default(),
                        environment: environment.clone().unwrap_or_default(),
                        expiring_within,
                        rotation_overdue: overdue,
                    })
                    .await
                    .map_err(describe)?
                    .into_inner();
                all.extend(page.keys);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if let Some(data) = fmt.data() {
                data.print(&serde_json::Value::Array(
                    all.iter().map(output::key_json).collect(),
                ));
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|k| {
                        vec![
                            k.name.clone(),
                            k.algorithm.clone(),
                            k.owner.clone(),
                            k.environment.clone(),
                            k.state.clone(),
                            k.primary_version.to_string(),
                            k.provider.clone(),
                            k.rotation_due_at.clone(),
                            k.expires_at.clone(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    output::table(
                        &[
                            "NAME",
                            "ALGORITHM",
                            "OWNER",
                            "ENV",
                            "STATE",
                            "VERSION",
                            "PROVIDER",
                            "ROTATION DUE",
                            "EXPIRES (TTL)"
                        ],
                        &rows
                    )
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        KeyCommand::Show { key } => keys.get_key(pb::GetKeyRequest { key, usage: true }).await,
        KeyCommand::Retire { key, below, force } => {
            keys.retire_key_versions(pb::RetireKeyVersionsRequest { key, below, force })
                .await
        }
        KeyCommand::Rotate { key, stage } => {
            keys.rotate_key(pb::RotateKeyRequest {
                key,
                stage,
                promote: false,
            })
            .await
        }
        KeyCommand::Promote { key } => {
            keys.rotate_key(pb::RotateKeyRequest {
                key,
                stage: false,
                promote: true,
            })
            .await
        }
        KeyCommand::Jwks { key } => {
            let set = keys
                .get_public_key_set(pb::GetPublicKeySetRequest { key })
                .await
                .map_err(describe)?
                .into_inner();
            println!("{}", set.jwks);
            return Ok(ExitCode::SUCCESS);
        }
        KeyCommand::Enable { key } => keys.enable_key(pb::EnableKeyRequest { key }).await,
        KeyCommand::Disable { key } => keys.disable_key(pb::DisableKeyRequest { key }).await,
        KeyCommand::ScheduleDestruction {
            key,
            window,
            family,
        } => {
            let pending_window = window.map(|w| duration("--window", &w)).transpose()?;
            keys.schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
                key,
                pending_window,
                family,
            })
            .await
        }
        KeyCommand::CancelDestruction { key } => {
            keys.cancel_key_destruction(pb::CancelKeyDestructionRequest { key })
                .await
        }
        KeyCommand::SetOwner { key, owner } => {
            keys.set_key_owner(pb::SetKeyOwnerRequest { key, owner })
                .await
        }
        KeyCommand::DestructionRecords { key } => {
            return destruction_records(conn, fmt, key).await;
        }
    };
    match key {
        Ok(key) => print_key(fmt, &key.into_inner()),
        Err(status) => {
            let Some(id) = pending_approval(&status) else {
                return Err(describe(status));
            };
            if let Some(data) = fmt.data() {
                data.print(&serde_json::json!({"approval_id": id, "message": status.message()}));
            } else {
                eprintln!("{}", status.message());
                println!("approval request: {id}");
            }
            return Ok(ExitCode::from(EXIT_PENDING_APPROVAL));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn destruction_records(conn: &Connection, fmt: Format, key: String) -> CliResult {
    let records = conn
        .admin()
        .await?
        .list_destruction_records(pb::ListDestructionRecordsRequest { key })
        .await
        .map_err(describe)?
        .into_inner()
        .records;
    if let Some(data) = fmt.data() {
        let rows: Vec<_> = records.iter().map(output::destruction_json).collect();
        data.print(&serde_json::Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    for r in &records {
        let mut lines = vec![
            ("record", r.id.clone()),
            ("key", format!("{} ({})", r.key_name, r.environment)),
            ("state", r.state.clone()),
            ("requested by", r.requested_by.clone()),
            ("scheduled", r.scheduled_at.clone()),
            ("window", format!("{}s", r.window_seconds)),
            ("destruction at", r.destruction_at.clone()),
        ];
        if !r.approval_id.is_empty() {
            lines.push((
                "approved by",
                format!("{} (request {})", r.approved_by.join(", "), r.approval_id),
            ));
        }
        for (name, value) in [
            ("cancelled by", &r.cancelled_by),
            ("cancelled", &r.cancelled_at),
            ("destroyed", &r.destroyed_at),
            ("method", &r.method),
        ] {
            if !value.is_empty() {
                lines.push((name, value.clone()));
            }
        }
        if !r.versions.is_empty() {
            let versions: Vec<String> = r.versions.iter().map(u32::to_string).collect();
            lines.push(("versions", versions.join(", ")));
        }
        for (name, value) in lines {
            println!("{name:<15} {value}");
        }
        if !r.checklist.is_empty() {
            println!("checklist");
            for c in &r.checklist {
                println!("  - {}: {}", c.check, c.result);
            }
        }
        if !r.copies.is_empty() {
            println!("copies");
            for c in &r.copies {
                println!(
                    "  - {} in {} ({}): {}\n    {}",
                    c.key_name, c.provider, c.provider_kind, c.provider_uri, c.method
                );
            }
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn inventory(conn: &Connection, fmt: Format, provider: Option<String>) -> CliResult {
    let mut admin = conn.admin().await?;
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_inventory(pb::ListInventoryRequest {
                provider: provider.clone().unwrap_or_default(),
                page_size: 500,
                page_token,
            })
            .await
            .map_err(describe)?
            .into_inner();
        all.extend(page.keys);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if let Some(data) = fmt.data() {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|k| {
                serde_json::json!({
                    "provider": k.provider,
                    "provider_uri": k.provider_uri,
                    "algorithm": k.algorithm,
                    "state": k.state,
                    "managed": k.managed,
                    "key_id": k.key_id,
                    "key_name": k.key_name,
                })
            })
            .collect();
        data.print(&serde_json::Value::Array(rows));
    } else {
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|k| {
                vec![
                    if k.managed {
                        k.key_name.clone()
                    } else {
                        "(unmanaged)".into()
                    },
                    k.algorithm.clone(),
                    k.state.clone(),
                    k.provider_uri.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(&["KEY", "ALGORITHM", "STATE", "PROVIDER URI"], &rows)
        );
    }
    Ok(ExitCode::SUCCESS)
}
