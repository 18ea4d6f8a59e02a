//! Checks of a key's life: rotation, disabling, listing and unknown keys.

use super::{Suite, latest, version_ref};
use crate::{Algorithm, KeyPurpose, KeyUri, PageRequest, ProviderError, ProviderKey};
use crate::{ProviderKeyState, SecretBytes, SignInput, VersionRef};

impl Suite<'_> {
    pub(super) async fn rotation(&mut self, key: &ProviderKey) {
        let a = key.algorithm;
        let v1 = latest(key);
        // Something made under v1 to check after rotation.
        let before = self.produce(&v1).await;
        let new_version = match self.provider.rotate(&key.uri).await {
            Ok(r) => r.value,
            Err(e) => return self.fail(Some(a), format!("rotate failed: {e}")),
        };
        self.check(a, new_version.number == 2, "rotation adds version 2");
        let described = match self.provider.describe(&key.uri).await {
            Ok(r) => r.value,
            Err(e) => return self.fail(Some(a), format!("describe after rotate failed: {e}")),
        };
        self.check(
            a,
            described.versions.len() == 2 && described.versions[1] == new_version,
            "describe lists both versions, the new one last",
        );
        if described.versions.len() != 2 {
            return;
        }
        let v2 = version_ref(&described, 1);
        let after = self.produce(&v2).await;
        if let (Some(before), Some(after)) = (&before, &after) {
            self.check(
                a,
                before != after,
                "the new version produces different output",
            );
        }
        if let Some(before) = before {
            self.consume(
                &v1,
                &before,
                "output of version 1 still works after rotation",
            )
            .await;
        }
        if let Some(after) = after {
            self.consume(&v2, &after, "output of version 2 works").await;
        }
    }

    /// Output made with a version that `consume` can check with the same version.
    pub(super) async fn produce(&mut self, v: &VersionRef) -> Option<Vec<u8>> {
        let a = v.algorithm;
        let result = match a.purpose() {
            KeyPurpose::Encrypt => self
                .provider
                .encrypt(v, &SecretBytes::copy_from(b"rotation"), b"")
                .await
                .map(|r| r.value),
            KeyPurpose::Sign => self
                .provider
                .sign(v, SignInput::Message(b"rotation"))
                .await
                .map(|r| r.value),
            KeyPurpose::Mac => self.provider.mac(v, b"rotation").await.map(|r| r.value),
        };
        match result {
            Ok(out) => Some(out),
            Err(e) => {
                self.fail(
                    Some(a),
                    format!("operation with version {} failed: {e}", v.version),
                );
                None
            }
        }
    }

    pub(super) async fn consume(&mut self, v: &VersionRef, output: &[u8], check: &str) {
        let a = v.algorithm;
        let ok = match a.purpose() {
            KeyPurpose::Encrypt => self
                .provider
                .decrypt(v, output, b"")
                .await
                .map(|r| r.value.expose() == b"rotation"),
            KeyPurpose::Sign => self
                .provider
                .verify(v, SignInput::Message(b"rotation"), output)
                .await
                .map(|r| r.value),
            KeyPurpose::Mac => self
                .provider
                .verify_mac(v, b"rotation", output)
                .await
                .map(|r| r.value),
        };
        match ok {
            Ok(ok) => self.check(a, ok, check),
            Err(e) => self.fail(Some(a), format!("{check}: {e}")),
        }
    }

    pub(super) async fn disabling(&mut self, key: &ProviderKey) {
        let a = key.algorithm;
        if let Err(e) = self.provider.set_enabled(&key.uri, false).await {
            return self.fail(Some(a), format!("disable failed: {e}"));
        }
        match self.provider.describe(&key.uri).await {
            Ok(r) => self.check(
                a,
                r.value.state == ProviderKeyState::Disabled,
                "describe shows a disabled key as disabled",
            ),
            Err(e) => self.fail(Some(a), format!("describe of a disabled key failed: {e}")),
        }
        let v = latest(key);
        let v = match self.provider.describe(&key.uri).await {
            Ok(r) => latest(&r.value),
            Err(_) => v,
        };
        match self.produce_quiet(&v).await {
            Ok(()) => self.fail(Some(a), "a disabled key was usable"),
            Err(ProviderError::FailedPrecondition { .. }) => {}
            Err(e) => self.fail(
                Some(a),
                format!(
                    "using a disabled key gave {} instead of failed_precondition: {e}",
                    e.kind()
                ),
            ),
        }
        if let Err(e) = self.provider.set_enabled(&key.uri, true).await {
            return self.fail(Some(a), format!("re-enable failed: {e}"));
        }
        if let Err(e) = self.produce_quiet(&v).await {
            self.fail(Some(a), format!("a re-enabled key is not usable: {e}"));
        }
    }

    pub(super) async fn produce_quiet(&self, v: &VersionRef) -> Result<(), ProviderError> {
        match v.algorithm.purpose() {
            KeyPurpose::Encrypt => self
                .provider
                .encrypt(v, &SecretBytes::copy_from(b"x"), b"")
                .await
                .map(|_| ()),
            KeyPurpose::Sign => self
                .provider
                .sign(v, SignInput::Message(b"x"))
                .await
                .map(|_| ()),
            KeyPurpose::Mac => self.provider.mac(v, b"x").await.map(|_| ()),
        }
    }

    pub(super) async fn listing(&mut self, uri: &KeyUri, algorithm: Algorithm) {
        let mut page = PageRequest {
            page_size: 100,
            page_token: String::new(),
        };
        for _ in 0..1000 {
            match self.provider.list(&page).await {
                Ok(r) => {
                    if r.value.keys.iter().any(|k| &k.uri == uri) {
                        return;
                    }
                    if r.value.next_page_token.is_empty() {
                        break;
                    }
                    page.page_token = r.value.next_page_token;
                }
                Err(e) => return self.fail(Some(algorithm), format!("list failed: {e}")),
            }
        }
        self.fail(Some(algorithm), "list does not include the created key");
    }

    /// A page token the provider never issued is refused, not taken for the first page.
    pub(super) async fn foreign_page_token(&mut self, algorithm: Algorithm) {
        let page = PageRequest {
            page_size: 10,
            page_token: "not-a-token-this-provider-issued".into(),
        };
        match self.provider.list(&page).await {
            Err(ProviderError::InvalidInput { .. }) => {}
            Ok(_) => self.fail(Some(algorithm), "list accepted a foreign page token"),
            Err(e) => self.fail(
                Some(algorithm),
                format!(
                    "list with a foreign page token gave {} instead of invalid_input: {e}",
                    e.kind()
                ),
            ),
        }
    }

    pub(super) async fn unknown_key(&mut self) {
        let Some(uri) = self.options.unknown_uri.clone() else {
            return;
        };
        match self.provider.describe(&uri).await {
            Ok(_) => self.fail(None, format!("describe of unknown key {uri} succeeded")),
            Err(ProviderError::NotFound { .. }) => {}
            Err(e) => self.fail(
                None,
                format!(
                    "describe of unknown key gave {} instead of not_found: {e}",
                    e.kind()
                ),
            ),
        }
    }
}
