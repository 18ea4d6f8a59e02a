//! Cloud KMS resource names and keygate's URIs for them.
//!
//! A key's URI is `gcpkms://` + its resource name,
//! `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K`. A version is named by the
//! CryptoKeyVersion id (`"1"`, `"2"`, …) in `provider_version`. Names are checked before any
//! request: another project or location than the instance's is refused.

use keygate_provider::{KeySpec, KeyUri, ProviderError, Result};

pub const SCHEME: &str = "gcpkms";

/// The project, location and key ring of one instance.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub project: String,
    pub location: String,
    pub key_ring: String,
}

impl Place {
    /// `projects/P/locations/L`
    pub fn location_path(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.location)
    }

    /// `projects/P/locations/L/keyRings/R`
    pub fn ring_path(&self) -> String {
        format!("{}/keyRings/{}", self.location_path(), self.key_ring)
    }

    /// The resource name a URI names, checked to be a crypto key of this project and
    /// location.
    pub fn key_name<'u>(&self, provider: &str, uri: &'u KeyUri) -> Result<&'u str> {
        let name = uri.strip_scheme(SCHEME).ok_or_else(|| {
            ProviderError::invalid(
                provider,
                format!("{uri} is not a Cloud KMS key URI (gcpkms://projects/…/cryptoKeys/…)"),
            )
        })?;
        let parts: Vec<&str> = name.split('/').collect();
        let shape_ok = parts.len() == 8
            && parts[0] == "projects"
            && parts[2] == "locations"
            && parts[4] == "keyRings"
            && parts[6] == "cryptoKeys"
            && parts.iter().all(|p| valid_id(p));
        if !shape_ok {
            return Err(ProviderError::invalid(
                provider,
                format!(
                    "{uri} is not a Cloud KMS key name (projects/P/locations/L/keyRings/R/cryptoKeys/K)"
                ),
            ));
        }
        if parts[1] != self.project || parts[3] != self.location {
            return Err(ProviderError::invalid(
                provider,
                format!(
                    "{uri} is in project {} location {}; this instance serves project {} location {}",
                    parts[1], parts[3], self.project, self.location
                ),
            ));
        }
        Ok(name)
    }
}

/// A Cloud KMS resource id: letters, digits, `-` and `_`, 1 to 63 of them.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn uri(key_name: &str) -> KeyUri {
    KeyUri::new(format!("{SCHEME}://{key_name}"))
}

/// The resource name of version `id` of a key.
pub fn version_name(provider: &str, key_name: &str, id: &str) -> Result<String> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProviderError::invalid(
            provider,
            format!("'{id}' is not a CryptoKeyVersion id of {key_name} (a number)"),
        ));
    }
    Ok(format!("{key_name}/cryptoKeyVersions/{id}"))
}

/// The version id at the end of a CryptoKeyVersion resource name.
pub fn version_id(version_name: &str) -> Option<&str> {
    version_name
        .rsplit_once("/cryptoKeyVersions/")
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// The cryptoKeyId keygate gives a new key: its name made id-safe (so the console shows
/// something a person recognises), then 8 hex digits of SHA-256 over keygate's key id. Cloud
/// KMS never deletes a crypto key, so an id is never reused: a key created again under the
/// same name has a new keygate id, hence a new cryptoKeyId.
pub fn crypto_key_id(spec: &KeySpec) -> String {
    let mut slug: String = spec
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(50)
        .collect();
    if slug.is_empty() {
        slug.push_str("key");
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spec.key_id.as_bytes());
    let tag: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{slug}-{tag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> Place {
        Place {
            project: "p".into(),
            location: "global".into(),
            key_ring: "kg".into(),
        }
    }

    #[test]
    fn key_names_are_checked() {
        let good = KeyUri::new("gcpkms://projects/p/locations/global/keyRings/other/cryptoKeys/k");
        assert_eq!(
            place().key_name("gcp", &good).expect("valid"),
            "projects/p/locations/global/keyRings/other/cryptoKeys/k"
        );
        for bad in [
            "awskms:///arn:aws:kms:us-east-1:1:key/x",
            "gcpkms://projects/p/locations/global/keyRings/kg",
            "gcpkms://projects/p/locations/global/keyRings/kg/cryptoKeys/k/cryptoKeyVersions/1",
            "gcpkms://projects/p/locations/global/keyRings/kg/cryptoKeys/k%2F..",
        ] {
            let err = place().key_name("gcp", &KeyUri::new(bad)).unwrap_err();
            assert_eq!(err.kind(), "invalid_input", "{bad}");
        }
        let other = KeyUri::new("gcpkms://projects/q/locations/global/keyRings/kg/cryptoKeys/k");
        let err = place().key_name("gcp", &other).unwrap_err().to_string();
        assert!(
            err.contains("project q") && err.contains("serves project p"),
            "{err}"
        );
    }

    #[test]
    fn crypto_key_ids_are_valid_and_differ_per_keygate_id() {
        let mut spec = KeySpec {
            name: "payments/card-dek".into(),
            key_id: "0190aaaa".into(),
            algorithm: keygate_provider::Algorithm::Aes256Gcm,
            owner: "alice".into(),
            environment: "dev".into(),
            crypto_period: std::time::Duration::from_secs(86_400),
            labels: Default::default(),
        };
        let a = crypto_key_id(&spec);
        assert!(a.starts_with("payments-card-dek-") && valid_id(&a), "{a}");
        spec.key_id = "0190bbbb".into();
        assert_ne!(crypto_key_id(&spec), a);
        spec.name = "x".repeat(128);
        assert!(valid_id(&crypto_key_id(&spec)));
    }

    #[test]
    fn version_ids_round_trip() {
        let v = version_name("gcp", "projects/p/locations/l/keyRings/r/cryptoKeys/k", "3")
            .expect("valid");
        assert_eq!(version_id(&v), Some("3"));
        assert!(version_name("gcp", "k", "../x").is_err());
    }
}
