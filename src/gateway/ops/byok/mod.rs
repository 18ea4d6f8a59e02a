//! ByokImport and GetKeyFamily: a key generated in an HSM, wrapped there for each target,
//! imported, and every copy registered (a key of its own, `NAME.TARGET`, and a row of the
//! key's family).
//!
//! The whole import is one call: one intent and one outcome event, the outcome carrying each
//! target's steps (prepared, parameters fetched, wrapped, imported, registered) with their
//! times, and where a target failed, which step and why. One event keeps the record of an
//! import in one place of the chain, written before the answer leaves, like every other
//! operation's; the steps' details are what separate events would have said.

mod reimport;
mod target;

pub use reimport::ReimportByok;

use super::keys::{CreateKey, DurationInput, supported};
use crate::catalog::{KeyFamily, KeyRecord, KeyState, VersionRecord};
use crate::gateway::runner::{Changes, Exec, Mode, Operation, Reads, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::Action;
use crate::time::now_ms;
use keygate_provider::{Algorithm, KeySpec, WrappingAlgorithm};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use target::{import_all, validity_of};

pub struct ByokImport {
    /// The HSM original as CreateKey would take it; `provider` is the source HSM.
    pub key: CreateKey,
    pub targets: Vec<String>,
    /// How long the imported material lives in each target; `None`: it does not expire.
    pub material_expiry: Option<DurationInput>,
    /// Filled in by `check`.
    pub validity: Option<Duration>,
}

/// The result: the original, its family, and the keys holding the copies.
pub struct ByokFamily {
    pub original: Arc<KeyRecord>,
    pub family: KeyFamily,
    pub copies: Vec<Arc<KeyRecord>>,
}

/// What BYOK imports: secret keys as raw bytes (AES-256, HMAC-SHA256), private keys as
/// PKCS#8 (P-256, RSA-2048 and RSA-3072 signing keys).
pub const BYOK_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Aes256Gcm,
    Algorithm::HmacSha256,
    Algorithm::EcdsaP256,
    Algorithm::Rsa2048Pss,
    Algorithm::Rsa3072Pss,
];

/// The name of the copy in `target`.
pub fn copy_name(name: &str, target: &str) -> String {
    format!("{name}.{target}")
}

/// The wrap each target kind takes for `algorithm`, chosen so the HSM does as much as it can:
/// SoftHSM2's RSA-OAEP has SHA-1 only, and Transit, Cloud KMS and Key Vault take the two-step
/// wrap with SHA-1 OAEP. `None`: the target kind cannot take the algorithm through keygate,
/// and the request is refused before anything is made. Every pair below was imported for
/// real (OpenBao 2.7, LocalStack 4.10, the Cloud KMS and Key Vault emulators).
pub fn wrapping_for(kind: &str, algorithm: Algorithm) -> Option<WrappingAlgorithm> {
    if !BYOK_ALGORITHMS.contains(&algorithm) {
        return None;
    }
    match kind {
        // Transit imports aes256-gcm96, hmac, ecdsa-p256 and rsa-2048/3072 alike, all through
        // the two-step wrap.
        "vault" => Some(WrappingAlgorithm::RsaAesKeyWrapSha1),
        // A 32-byte secret key (AES, HMAC) fits one RSA block: RSAES_OAEP_SHA_1 keeps the wrap
        // wholly in the HSM. Private keys (PKCS#8) are too big for one block, and KMS has
        // RSA_AES_KEY_WRAP_SHA_256 for them (LocalStack lacks the SHA-1 form).
        "aws-kms" if algorithm.is_symmetric() => Some(WrappingAlgorithm::RsaOaepSha1),
        "aws-kms" => Some(WrappingAlgorithm::RsaAesKeyWrapSha256),
        // Import jobs with RSA_OAEP_3072_SHA1_AES_256 take every algorithm.
        "gcp-kms" => Some(WrappingAlgorithm::RsaAesKeyWrapSha1),
        // Key transfer blobs with `enc` CKM_RSA_AES_KEY_WRAP (SHA-1 OAEP): RSA-HSM and EC-HSM
        // keys, and oct-HSM (AES) keys in a Managed HSM. Key Vault has no HMAC keys.
        "azure-keyvault" if algorithm == Algorithm::HmacSha256 => None,
        "azure-keyvault" => Some(WrappingAlgorithm::RsaAesKeyWrapSha1),
        _ => None,
    }
}

/// The longest lifetime a target kind gives imported material, if it can make material
/// expire at all (AWS KMS: `ValidTo` at most 365 days ahead). Transit, Cloud KMS and Key
/// Vault keep imported material until the key is destroyed.
pub fn material_expiry_limit(kind: &str) -> Option<Duration> {
    match kind {
        "aws-kms" => Some(Duration::from_secs(365 * 86_400)),
        _ => None,
    }
}

/// Whether keygate can import a copy's material again into the same key of a target kind
/// (AWS KMS: ImportKeyMaterial onto the same EXTERNAL key, which takes only the material it
/// had). Cloud KMS re-imports only into a destroyed version; Transit and Key Vault import new
/// material as new versions or keys, not the same again.
pub fn reimports(kind: &str) -> bool {
    kind == "aws-kms"
}

/// A requested material lifetime, checked: positive, in whole seconds at least one minute.
fn material_validity(d: Option<DurationInput>) -> Result<Option<Duration>, GatewayError> {
    let Some(d) = d else {
        return Ok(None);
    };
    match d.to_duration() {
        Some(v) if v >= Duration::from_secs(60) => Ok(Some(v)),
        _ => Err(GatewayError::invalid(
            "material_expiry",
            "the imported material's lifetime must be at least one minute",
        )),
    }
}

/// Refuses a material lifetime a target kind cannot give.
fn check_validity(
    target: &str,
    kind: &str,
    validity: Option<Duration>,
) -> Result<(), GatewayError> {
    let Some(validity) = validity else {
        return Ok(());
    };
    match material_expiry_limit(kind) {
        None => Err(GatewayError::invalid(
            "material_expiry",
            format!("target '{target}' ({kind}) keeps imported material without an expiry"),
        )),
        Some(limit) if validity > limit => Err(GatewayError::invalid(
            "material_expiry",
            format!(
                "target '{target}' ({kind}) keeps imported material for at most {}",
                crate::time::format_duration(limit)
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// A short, stable name for a wrapping public key: the first 16 bytes of its SHA-256.
fn wrapping_key_id(spki: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    hex::encode(&digest.as_ref()[..16])
}

impl Operation for ByokImport {
    type Output = ByokFamily;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::ByokImport
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        if self.key.provider.is_empty() {
            return Err(GatewayError::invalid(
                "source",
                "name the HSM provider instance that generates and wraps the key",
            ));
        }
        let draft = self.key.draft(settings)?;
        if !BYOK_ALGORITHMS
            .iter()
            .any(|a| a.as_str() == draft.algorithm.as_str())
        {
            return Err(GatewayError::invalid(
                "algorithm",
                format!(
                    "BYOK imports {} keys; {} is not supported yet",
                    BYOK_ALGORITHMS.map(Algorithm::as_str).join(", "),
                    draft.algorithm
                ),
            ));
        }
        if self.targets.is_empty() {
            return Err(GatewayError::invalid(
                "targets",
                "name at least one provider instance to import into",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for target in &self.targets {
            if target == &draft.provider || !seen.insert(target.as_str()) {
                return Err(GatewayError::invalid(
                    "targets",
                    format!(
                        "target '{}' is the source or named twice",
                        validate::truncate(target, 64)
                    ),
                ));
            }
            validate::key_name("targets", &copy_name(&draft.name, target))?;
        }
        self.validity = material_validity(self.material_expiry)?;
        self.key.draft = Some(draft);
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        match &self.key.draft {
            Some(draft) => Target::NewKey(draft),
            None => Target::Key {
                field: "name",
                key: "",
            },
        }
    }

    /// Everything that can be known before a backend is called: the source makes the
    /// algorithm, each target exists, imports it, and its copy's name is free.
    fn ready(&self, cx: &Exec<'_, Changes>) -> Result<(), GatewayError> {
        let draft = cx.draft()?;
        let algorithm = supported(cx, draft)?;
        for target in &self.targets {
            let provider = cx.import_target(target)?;
            let capabilities = provider.capabilities();
            if !capabilities.import || wrapping_for(provider.kind(), algorithm).is_none() {
                return Err(GatewayError::invalid(
                    "targets",
                    format!(
                        "target '{target}' ({}) does not import {algorithm} keys through keygate",
                        provider.kind()
                    ),
                ));
            }
            if !capabilities.supports(algorithm) {
                return Err(GatewayError::invalid(
                    "targets",
                    format!(
                        "target '{target}' ({}) has no {algorithm} keys",
                        provider.kind()
                    ),
                ));
            }
            check_validity(target, provider.kind(), self.validity)?;
            let name = copy_name(&draft.name, target);
            if cx.lookup_key(&name).is_some() {
                return Err(GatewayError::KeyExists(name));
            }
        }
        Ok(())
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<ByokFamily, GatewayError> {
        let draft = cx.draft()?.clone();
        let algorithm = supported(cx, &draft)?;
        let spec = KeySpec {
            name: draft.name.clone(),
            key_id: draft.id.clone(),
            algorithm,
            owner: draft.owner.clone(),
            environment: draft.environment.clone(),
            crypto_period: draft.crypto_period,
            labels: draft.labels.clone(),
        };
        let created = cx.create_wrappable_in_backend(&spec).await?;
        cx.detail("provider_uri", created.uri.to_string());
        let now = now_ms();
        let record = KeyRecord {
            id: draft.id.clone(),
            name: draft.name.clone(),
            owner: draft.owner.clone(),
            purpose: draft.purpose,
            environment: draft.environment.clone(),
            algorithm,
            provider: draft.provider.clone(),
            provider_uri: created.uri,
            state: KeyState::Enabled,
            crypto_period: draft.crypto_period,
            created_at_ms: now,
            rotation_due_at_ms: crate::time::after(now, draft.crypto_period),
            destruction_at_ms: None,
            labels: draft.labels.clone(),
            versions: vec![VersionRecord {
                version: 1,
                provider_version: created
                    .versions
                    .first()
                    .map(|v| v.provider_version.clone())
                    .ok_or_else(|| {
                        GatewayError::Internal("the HSM made a key with no version".into())
                    })?,
                created_at_ms: now,
            }],
            retired_below: 0,
            expires_at_ms: None,
            primary_version: None,
        };
        let original = cx.insert_key(record).await?;
        cx.note_version(1);
        cx.detail("algorithm", algorithm.as_str());
        cx.detail("owner", original.owner.clone());
        let mut family = KeyFamily {
            key_id: original.id.clone(),
            created_by: cx.actor_name(),
            created_at_ms: now,
            copies: Vec::new(),
        };
        if let Some(validity) = self.validity {
            cx.detail("material_expiry", crate::time::format_duration(validity));
        }
        let targets: Vec<_> = self
            .targets
            .iter()
            .map(|t| (t.clone(), self.validity))
            .collect();
        let mut copies = Vec::new();
        let steps = import_all(cx, &original, &mut family, &targets, &mut copies).await?;
        cx.detail("targets", Value::Object(steps));
        cx.detail("family_state", family.state());
        Ok(ByokFamily {
            original,
            family,
            copies,
        })
    }
}

/// Imports an incomplete family's original again into the targets that failed.
pub struct RetryByokImport {
    pub key: String,
}

impl Operation for RetryByokImport {
    type Output = ByokFamily;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::ByokImport
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<ByokFamily, GatewayError> {
        let original = cx.key()?.record().clone();
        let mut family = load_family(cx, &original).await?;
        // Each with the material lifetime its import asked for.
        let failed: Vec<_> = family
            .copies
            .iter()
            .filter(|c| !c.imported)
            .map(|c| (c.provider.clone(), validity_of(c.material_validity_ms)))
            .collect();
        let mut copies = Vec::new();
        let steps = import_all(cx, &original, &mut family, &failed, &mut copies).await?;
        cx.detail("targets", Value::Object(steps));
        cx.detail("family_state", family.state());
        Ok(with_copies(cx, original, family))
    }
}

pub(super) async fn load_family<M: Mode>(
    cx: &Exec<'_, M>,
    original: &KeyRecord,
) -> Result<KeyFamily, GatewayError> {
    cx.key_family(&original.id)
        .await?
        .ok_or_else(|| not_a_family(original))
}

/// The family with the keys that hold its copies.
pub(super) fn with_copies<M: Mode>(
    cx: &Exec<'_, M>,
    original: Arc<KeyRecord>,
    family: KeyFamily,
) -> ByokFamily {
    let copies = family
        .copies
        .iter()
        .filter_map(|c| c.copy_key_id.as_deref())
        .filter_map(|id| cx.key_by_id(id))
        .collect();
    ByokFamily {
        original,
        family,
        copies,
    }
}

fn not_a_family(original: &KeyRecord) -> GatewayError {
    GatewayError::invalid(
        "key",
        format!("key '{}' was not made by a BYOK import", original.name),
    )
}

/// A key's BYOK family (GetKeyFamily): read as GetKey reads the original.
pub struct GetKeyFamily {
    pub key: String,
}

impl Operation for GetKeyFamily {
    type Output = ByokFamily;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GetKey
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<ByokFamily, GatewayError> {
        let original = cx.key()?.record().clone();
        let family = load_family(cx, &original).await?;
        Ok(with_copies(cx, original, family))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_get_the_wrap_that_keeps_most_in_the_hsm() {
        let aes = Algorithm::Aes256Gcm;
        assert_eq!(
            wrapping_for("vault", aes),
            Some(WrappingAlgorithm::RsaAesKeyWrapSha1)
        );
        assert_eq!(
            wrapping_for("aws-kms", aes),
            Some(WrappingAlgorithm::RsaOaepSha1)
        );
        assert_eq!(
            wrapping_for("aws-kms", Algorithm::EcdsaP256),
            Some(WrappingAlgorithm::RsaAesKeyWrapSha256)
        );
        assert_eq!(wrapping_for("local", aes), None);
        for algorithm in BYOK_ALGORITHMS {
            assert_eq!(
                wrapping_for("gcp-kms", algorithm),
                Some(WrappingAlgorithm::RsaAesKeyWrapSha1),
                "{algorithm}"
            );
        }
        assert_eq!(
            wrapping_for("azure-keyvault", aes),
            Some(WrappingAlgorithm::RsaAesKeyWrapSha1)
        );
        assert_eq!(
            wrapping_for("azure-keyvault", Algorithm::EcdsaP256),
            Some(WrappingAlgorithm::RsaAesKeyWrapSha1)
        );
        assert_eq!(wrapping_for("azure-keyvault", Algorithm::HmacSha256), None);
    }

    #[test]
    fn hmac_keys_go_like_aes_keys_and_rsa_keys_like_ec_keys() {
        assert_eq!(
            wrapping_for("aws-kms", Algorithm::HmacSha256),
            Some(WrappingAlgorithm::RsaOaepSha1)
        );
        for rsa in [Algorithm::Rsa2048Pss, Algorithm::Rsa3072Pss] {
            assert_eq!(
                wrapping_for("aws-kms", rsa),
                Some(WrappingAlgorithm::RsaAesKeyWrapSha256)
            );
        }
        for algorithm in BYOK_ALGORITHMS {
            assert_eq!(
                wrapping_for("vault", algorithm),
                Some(WrappingAlgorithm::RsaAesKeyWrapSha1)
            );
        }
        // Not offered: no target gets a wrap for it.
        assert_eq!(wrapping_for("vault", Algorithm::Rsa4096Pss), None);
        assert_eq!(wrapping_for("aws-kms", Algorithm::Rsa2048Pkcs1), None);
    }

    #[test]
    fn wrapping_key_ids_are_short_and_stable() {
        assert_eq!(wrapping_key_id(b"spki"), wrapping_key_id(b"spki"));
        assert_eq!(wrapping_key_id(b"spki").len(), 32);
        assert_ne!(wrapping_key_id(b"spki"), wrapping_key_id(b"other"));
    }
}
