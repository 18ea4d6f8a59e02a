//! Parsing of Cloud KMS resource names and request paths.
//!
//! Names look like `projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`;
//! a request path is `/v1/{name}` optionally followed by `/publicKey` or a
//! custom verb such as `:encrypt`.

use super::errors::{ApiError, ApiResult};

/// The resource a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `projects/P/locations/L` (parent of key rings).
    Location { parent: String },
    /// `.../keyRings/R`.
    KeyRing { name: String },
    /// `.../keyRings/R/cryptoKeys/K`.
    CryptoKey { ring: String, id: String },
    /// `.../cryptoKeys/K/cryptoKeyVersions/N`.
    Version {
        ring: String,
        key: String,
        number: u32,
    },
    /// `.../keyRings/R/importJobs/J`.
    ImportJob { ring: String, id: String },
}

/// The trailing collection or sub-resource segment of a path, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    None,
    KeyRings,
    CryptoKeys,
    Versions,
    PublicKey,
    ImportJobs,
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: Resource,
    pub tail: Tail,
    pub verb: Option<String>,
}

/// A resource id (key ring or crypto key) as Cloud KMS accepts it.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn ring_name(parent: &str, id: &str) -> String {
    format!("{parent}/keyRings/{id}")
}

pub fn key_name(ring: &str, id: &str) -> String {
    format!("{ring}/cryptoKeys/{id}")
}

pub fn import_job_name(ring: &str, id: &str) -> String {
    format!("{ring}/importJobs/{id}")
}

/// Parses a request path such as `/v1/projects/p/locations/l/keyRings/r:verb`.
pub fn parse_path(path: &str) -> ApiResult<Target> {
    let rest = path
        .strip_prefix("/v1/")
        .ok_or_else(|| ApiError::not_found(&format!("Path {path}")))?;
    // A custom verb only ever follows the last segment.
    let (rest, verb) = match rest.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((seg, verb)) => (format!("{head}/{seg}"), Some(verb.to_string())),
            None => (rest.to_string(), None),
        },
        None => (rest.to_string(), None),
    };
    let segs: Vec<&str> = rest.split('/').collect();
    let bad = || ApiError::not_found(&format!("Resource {rest}"));
    if segs.len() < 4 || segs[0] != "projects" || segs[2] != "locations" {
        return Err(bad());
    }
    if segs[1].is_empty() || segs[3].is_empty() {
        return Err(bad());
    }
    let parent = segs[..4].join("/");
    let target = |resource, tail| Target {
        resource,
        tail,
        verb: verb.clone(),
    };
    match &segs[4..] {
        [] => Ok(target(Resource::Location { parent }, Tail::None)),
        ["keyRings"] => Ok(target(Resource::Location { parent }, Tail::KeyRings)),
        ["keyRings", r, more @ ..] if !r.is_empty() => {
            let ring = ring_name(&parent, r);
            match more {
                [] => Ok(target(Resource::KeyRing { name: ring }, Tail::None)),
                ["cryptoKeys"] => Ok(target(Resource::KeyRing { name: ring }, Tail::CryptoKeys)),
                ["importJobs"] => Ok(target(Resource::KeyRing { name: ring }, Tail::ImportJobs)),
                ["importJobs", j] if !j.is_empty() => Ok(target(
                    Resource::ImportJob {
                        ring,
                        id: j.to_string(),
                    },
                    Tail::None,
                )),
                ["cryptoKeys", k, more @ ..] if !k.is_empty() => {
                    let key = k.to_string();
                    match more {
                        [] => Ok(target(Resource::CryptoKey { ring, id: key }, Tail::None)),
                        ["cryptoKeyVersions"] => Ok(target(
                            Resource::CryptoKey { ring, id: key },
                            Tail::Versions,
                        )),
                        ["cryptoKeyVersions", n, more @ ..] => {
                            let number: u32 = n.parse().map_err(|_| {
                                ApiError::invalid(format!(
                                    "Invalid CryptoKeyVersion id '{n}': must be a positive integer."
                                ))
                            })?;
                            let tail = match more {
                                [] => Tail::None,
                                ["publicKey"] => Tail::PublicKey,
                                _ => return Err(bad()),
                            };
                            Ok(target(Resource::Version { ring, key, number }, tail))
                        }
                        _ => Err(bad()),
                    }
                }
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_and_verbs() {
        let t = parse_path(
            "/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3:destroy",
        )
        .expect("valid path");
        assert_eq!(
            t.resource,
            Resource::Version {
                ring: "projects/p/locations/l/keyRings/r".into(),
                key: "k".into(),
                number: 3
            }
        );
        assert_eq!(t.verb.as_deref(), Some("destroy"));
        let t = parse_path("/v1/projects/p/locations/l/keyRings").expect("valid path");
        assert_eq!(t.tail, Tail::KeyRings);
        assert!(parse_path("/v2/x").is_err());
        assert!(
            parse_path("/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/x")
                .is_err()
        );
    }

    #[test]
    fn ids_follow_the_documented_pattern() {
        assert!(valid_id("ring-1_a"));
        assert!(!valid_id("bad id"));
        assert!(!valid_id(""));
        assert!(!valid_id(&"a".repeat(64)));
    }
}
