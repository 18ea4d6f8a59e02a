//! `[server]`: how connections live and how the server stops.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// After SIGTERM (or Ctrl-C): the longest the server takes to stop accepting, end Tail
    /// streams, let calls under way finish and write their audit events, then exit.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: String,
    /// HTTP/2 PING to an idle client this often, so dead connections are noticed (and
    /// middleboxes keep idle ones open); `0s` turns it off.
    #[serde(default = "default_keepalive_interval")]
    pub keepalive_interval: String,
    /// A connection whose PING is not answered within this is closed.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: String,
    /// A connection older than this is asked to go away (GOAWAY), so clients spread over
    /// replicas added since they connected; `0s`: never.
    #[serde(default = "default_max_connection_age")]
    pub max_connection_age: String,
    /// How long calls on a connection past its age may take to finish before it is closed.
    #[serde(default = "default_max_connection_age_grace")]
    pub max_connection_age_grace: String,
    /// Client connections open at once; further connections wait in the listen backlog
    /// until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Calls (HTTP/2 streams) one connection may have open at once.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// A connection that sends nothing this long after it opens (after its TLS handshake,
    /// with TLS) is closed, so silent connections cannot hold `max_connections` slots.
    #[serde(default = "default_silent_connection_timeout")]
    pub silent_connection_timeout: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            shutdown_grace: default_shutdown_grace(),
            keepalive_interval: default_keepalive_interval(),
            keepalive_timeout: default_keepalive_timeout(),
            max_connection_age: default_max_connection_age(),
            max_connection_age_grace: default_max_connection_age_grace(),
            max_connections: default_max_connections(),
            max_concurrent_streams: default_max_concurrent_streams(),
            silent_connection_timeout: default_silent_connection_timeout(),
        }
    }
}

fn default_silent_connection_timeout() -> String {
    "10s".into()
}

fn default_shutdown_grace() -> String {
    "10s".into()
}
fn default_keepalive_interval() -> String {
    "60s".into()
}
fn default_keepalive_timeout() -> String {
    "20s".into()
}
fn default_max_connection_age() -> String {
    "0s".into()
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_concurrent_streams() -> u32 {
    128
}
fn default_max_connection_age_grace() -> String {
    "30s".into()
}

impl ServerSettings {
    /// The part of `shutdown_grace` calls under way get; the last quarter is kept for the
    /// audit feed's final work (flood counts, the last checkpoint).
    pub fn drain_grace(&self) -> std::time::Duration {
        self.shutdown_grace * 3 / 4
    }
}

/// `[server]` as durations.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    pub shutdown_grace: std::time::Duration,
    pub keepalive_interval: Option<std::time::Duration>,
    pub keepalive_timeout: std::time::Duration,
    pub max_connection_age: Option<std::time::Duration>,
    pub max_connection_age_grace: std::time::Duration,
    pub max_connections: usize,
    pub max_concurrent_streams: u32,
    pub silent_connection_timeout: std::time::Duration,
}

impl super::Config {
    /// `[server]` parsed; each error names its setting.
    pub fn server_settings(&self) -> Result<ServerSettings, super::ConfigError> {
        let s = &self.server;
        let nonzero = |d: std::time::Duration| (!d.is_zero()).then_some(d);
        let grace = self.duration("server.shutdown_grace", &s.shutdown_grace)?;
        if grace.is_zero() {
            return Err(Self::invalid(
                "server.shutdown_grace",
                "must be more than 0s: calls under way need time to finish and be audited",
            ));
        }
        for (setting, value) in [
            ("server.max_connections", s.max_connections),
            (
                "server.max_concurrent_streams",
                s.max_concurrent_streams as usize,
            ),
        ] {
            if value == 0 {
                return Err(Self::invalid(setting, "must be at least 1"));
            }
        }
        let silent_connection_timeout = self.duration(
            "server.silent_connection_timeout",
            &s.silent_connection_timeout,
        )?;
        if silent_connection_timeout.is_zero() {
            return Err(Self::invalid(
                "server.silent_connection_timeout",
                "must be more than 0s",
            ));
        }
        let keepalive_timeout = self.duration("server.keepalive_timeout", &s.keepalive_timeout)?;
        if keepalive_timeout.is_zero() {
            return Err(Self::invalid(
                "server.keepalive_timeout",
                "must be more than 0s",
            ));
        }
        Ok(ServerSettings {
            silent_connection_timeout,
            shutdown_grace: grace,
            keepalive_interval: nonzero(
                self.duration("server.keepalive_interval", &s.keepalive_interval)?,
            ),
            keepalive_timeout,
            max_connection_age: nonzero(
                self.duration("server.max_connection_age", &s.max_connection_age)?,
            ),
            max_connection_age_grace: self.duration(
                "server.max_connection_age_grace",
                &s.max_connection_age_grace,
            )?,
            max_connections: s.max_connections,
            max_concurrent_streams: s.max_concurrent_streams,
        })
    }
}
