//! `[console]`: the web console `serve` runs beside its gRPC listener (src/server/console/),
//! for security teams: inventory, findings, a key's page, the audit feed. Off unless set.

use super::{Config, ConfigError, TlsConfig};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Address of the console, e.g. `127.0.0.1:8444`.
    pub listen: String,
    /// HTTPS, with the same files as `[listen.tls]` (a `client_ca_file` asks browsers for a
    /// client certificate too). Without it the console speaks plain HTTP, which `serve` takes
    /// only on a loopback address or with `allow_plaintext`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Plain HTTP on a non-loopback address, for a TLS-terminating proxy in front.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// How long a sign-in lasts before the token must be given again.
    #[serde(default = "default_session")]
    pub session: String,
}

fn default_session() -> String {
    "8h".into()
}

/// The longest sign-in: a browser left signed in for days is a token left lying about.
pub const MAX_SESSION: Duration = Duration::from_secs(24 * 3600);

impl ConsoleConfig {
    pub fn session_length(&self, config: &Config) -> Result<Duration, ConfigError> {
        config.duration("console.session", &self.session)
    }

    pub(super) fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        if self.listen.trim().is_empty() {
            return Err(Config::invalid("console.listen", "is empty"));
        }
        let session = self.session_length(config)?;
        if session.is_zero() || session > MAX_SESSION {
            return Err(Config::invalid(
                "console.session",
                format!(
                    "must be between 1s and {}",
                    crate::time::format_duration(MAX_SESSION)
                ),
            ));
        }
        Ok(())
    }
}
