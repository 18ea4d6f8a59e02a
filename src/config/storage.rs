//! `[storage]`: where the catalog, approvals and audit log live. SQLite in the data directory
//! is the default (one node, nothing else to run); PostgreSQL is the shared store of several
//! replicas.
//!
//! ```toml
//! [storage]
//! kind = "postgres"
//! url = "postgres://keygate@db.internal:5432/keygate"   # no password here
//! password = { file = "/run/secrets/pg-password" }       # or { env = "PGPASSWORD" }
//! pool_size = 16
//! tls = "verify-full"                                     # disable | require | verify-ca | verify-full
//! tls_ca_file = "/etc/keygate/db-ca.pem"
//! catalog_resync = "10s"    # the latest a replica sees another's key change if a notification is lost
//! ```

use super::{Config, ConfigError, SecretRef};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageKind {
    #[default]
    Sqlite,
    Postgres,
}

/// How the connection to PostgreSQL is protected. There is no `prefer`: a key gateway does not
/// fall back to plaintext because the server offered nothing better.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgTlsMode {
    /// Plaintext: only for a database on loopback or a private socket.
    Disable,
    /// Encrypted, certificate not checked.
    Require,
    /// Encrypted, certificate signed by `tls_ca_file` (or the system roots).
    VerifyCa,
    /// As `verify-ca`, and the certificate names the host in `url`.
    #[default]
    VerifyFull,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default)]
    pub kind: StorageKind,
    /// Holds the SQLite database (kind = "sqlite"), the local provider's keys and the audit
    /// HMAC key.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// PostgreSQL: `postgres://USER@HOST:PORT/DATABASE[?options]`, without a password.
    pub url: Option<String>,
    /// PostgreSQL: the password, as a reference.
    pub password: Option<SecretRef>,
    /// PostgreSQL: connections per replica for queries and the catalog listener (default
    /// 16); the audit writer (2) and the leader lock (1) have their own.
    pub pool_size: Option<u32>,
    /// PostgreSQL: TLS to the database (default `verify-full`).
    #[serde(default)]
    pub tls: PgTlsMode,
    /// PostgreSQL: PEM file of the CA that signs the database's certificate.
    pub tls_ca_file: Option<PathBuf>,
    /// PostgreSQL: how often a replica compares its in-memory catalog with the database, in
    /// case a change notification was lost (default 10s). Notified changes arrive sooner.
    pub catalog_resync: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::default(),
            data_dir: default_data_dir(),
            url: None,
            password: None,
            pool_size: None,
            tls: PgTlsMode::default(),
            tls_ca_file: None,
            catalog_resync: None,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("keygate-data")
}

pub const DEFAULT_POOL_SIZE: u32 = 16;

pub const DEFAULT_CATALOG_RESYNC: &str = "10s";

impl StorageConfig {
    pub fn pool_size(&self) -> u32 {
        self.pool_size.unwrap_or(DEFAULT_POOL_SIZE)
    }

    pub fn catalog_resync(&self) -> Result<std::time::Duration, ConfigError> {
        let value = self
            .catalog_resync
            .as_deref()
            .unwrap_or(DEFAULT_CATALOG_RESYNC);
        match crate::time::parse_duration(value) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(Config::invalid(
                "storage.catalog_resync",
                "must be longer than zero",
            )),
            Err(e) => Err(Config::invalid("storage.catalog_resync", e)),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let postgres_only = [
            ("storage.url", self.url.is_some()),
            ("storage.password", self.password.is_some()),
            ("storage.pool_size", self.pool_size.is_some()),
            ("storage.tls_ca_file", self.tls_ca_file.is_some()),
            ("storage.catalog_resync", self.catalog_resync.is_some()),
        ];
        match self.kind {
            StorageKind::Sqlite => {
                if let Some((setting, _)) = postgres_only.iter().find(|(_, set)| *set) {
                    return Err(Config::invalid(
                        *setting,
                        "applies to kind = \"postgres\" only (storage.kind is \"sqlite\")",
                    ));
                }
            }
            StorageKind::Postgres => {
                let Some(url) = &self.url else {
                    return Err(Config::invalid(
                        "storage.url",
                        "is required with kind = \"postgres\" (postgres://USER@HOST:PORT/DATABASE)",
                    ));
                };
                check_url(url)?;
                if self.pool_size == Some(0) {
                    return Err(Config::invalid("storage.pool_size", "must be at least 1"));
                }
                self.catalog_resync()?;
            }
        }
        Ok(())
    }
}

/// The URL must be a PostgreSQL URL with no password in it: the password is a reference, like
/// every secret. The URL itself is never echoed back (it could hold the password).
fn check_url(url: &str) -> Result<(), ConfigError> {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Err(Config::invalid(
            "storage.url",
            "must start with postgres:// or postgresql://",
        ));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return Err(Config::invalid(
            "storage.url",
            "holds a password: inline secrets are refused; give it as storage.password = { env = \"VAR\" } or { file = \"PATH\" }",
        ));
    }
    let query = rest.split_once('?').map(|(_, q)| q).unwrap_or_default();
    if query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("password"))
    {
        return Err(Config::invalid(
            "storage.url",
            "holds a password parameter: give it as storage.password = { env = \"VAR\" } or { file = \"PATH\" }",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(url: &str) -> StorageConfig {
        StorageConfig {
            kind: StorageKind::Postgres,
            url: Some(url.into()),
            ..StorageConfig::default()
        }
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_echoing_it() {
        for url in [
            "postgres://keygate:hunter2@db:5432/kg",
            "postgresql://keygate@db/kg?password=hunter2",
        ] {
            let err = pg(url).validate().unwrap_err().to_string();
            assert!(err.contains("storage.url"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        pg("postgres://keygate@db:5432/kg?sslmode=disable")
            .validate()
            .expect("no password: accepted");
    }

    #[test]
    fn postgres_settings_need_kind_postgres_and_a_url() {
        let sqlite = StorageConfig {
            pool_size: Some(4),
            ..StorageConfig::default()
        };
        assert!(
            sqlite
                .validate()
                .unwrap_err()
                .to_string()
                .contains("storage.pool_size")
        );
        let no_url = StorageConfig {
            kind: StorageKind::Postgres,
            ..StorageConfig::default()
        };
        assert!(
            no_url
                .validate()
                .unwrap_err()
                .to_string()
                .contains("storage.url")
        );
        assert!(pg("mysql://x@y/z").validate().is_err());
    }
}
