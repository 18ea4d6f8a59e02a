//! Networks by environment (`[posture.networks]`): which environment a call came from,
//! judged by its client address. The rule `two-environments` reads it; nothing else does,
//! so a mistake here can open or close a finding but never admit or refuse a call.

use std::net::{IpAddr, SocketAddr};

/// One CIDR block of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub environment: String,
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetworkError {
    #[error("'{0}' is not an address or a CIDR block (10.1.0.0/16, fd00::/8)")]
    Malformed(String),
    #[error("'{block}': a prefix of {prefix} is longer than the address ({max} bits)")]
    PrefixTooLong { block: String, prefix: u8, max: u8 },
}

impl Network {
    /// `block` is `ADDRESS/PREFIX`, or one address (the whole-length prefix).
    pub fn parse(environment: &str, block: &str) -> Result<Self, NetworkError> {
        let malformed = || NetworkError::Malformed(block.chars().take(64).collect());
        let (addr, prefix) = match block.split_once('/') {
            Some((a, p)) => (
                a.trim().parse::<IpAddr>().map_err(|_| malformed())?,
                Some(p.trim().parse::<u8>().map_err(|_| malformed())?),
            ),
            None => (
                block.trim().parse::<IpAddr>().map_err(|_| malformed())?,
                None,
            ),
        };
        let max = bits(addr);
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(NetworkError::PrefixTooLong {
                block: block.chars().take(64).collect(),
                prefix,
                max,
            });
        }
        Ok(Self {
            environment: environment.to_string(),
            addr,
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack listener shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(net)), self.prefix, 32)
                    == masked(u128::from(u32::from(ip)), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn bits(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn masked(value: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    value >> (width - prefix)
}

/// The address of a recorded client (`127.0.0.1:5000`, `[::1]:5000`, `203.0.113.7`);
/// `None` for what is no address (`internal`, `unknown`).
pub fn client_ip(client_address: &str) -> Option<IpAddr> {
    client_address
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| client_address.parse::<IpAddr>())
        .ok()
}

/// The environment whose network holds `client_address`: of overlapping blocks, the most
/// specific (longest prefix), so `10.1.0.0/16 = prod` inside `10.0.0.0/8 = staging` works in
/// whatever order they are listed.
pub fn environment_of<'a>(networks: &'a [Network], client_address: &str) -> Option<&'a str> {
    let ip = client_ip(client_address)?;
    networks
        .iter()
        .filter(|n| n.contains(ip))
        .max_by_key(|n| n.prefix)
        .map(|n| n.environment.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_their_addresses_and_no_others() {
        let nets = [
            Network::parse("staging", "10.0.0.0/8").unwrap(),
            Network::parse("prod", "10.1.0.0/16").unwrap(),
            Network::parse("dev", "fd00::/8").unwrap(),
            Network::parse("ops", "192.0.2.7").unwrap(),
        ];
        assert_eq!(environment_of(&nets, "10.1.2.3:443"), Some("prod"));
        assert_eq!(environment_of(&nets, "10.2.2.3:443"), Some("staging"));
        assert_eq!(environment_of(&nets, "[fd12::1]:80"), Some("dev"));
        assert_eq!(environment_of(&nets, "192.0.2.7"), Some("ops"));
        assert_eq!(environment_of(&nets, "192.0.2.8"), None);
        assert_eq!(environment_of(&nets, "[::ffff:10.1.0.9]:1"), Some("prod"));
        assert_eq!(environment_of(&nets, "internal"), None);
        assert_eq!(environment_of(&nets, "unknown"), None);
        let all = Network::parse("any", "0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        assert!(matches!(
            Network::parse("x", "10.0.0.0/33"),
            Err(NetworkError::PrefixTooLong { prefix: 33, .. })
        ));
        assert!(matches!(
            Network::parse("x", "10.0.0/8"),
            Err(NetworkError::Malformed(_))
        ));
        assert!(matches!(
            Network::parse("x", "10.0.0.0/x"),
            Err(NetworkError::Malformed(_))
        ));
    }
}
