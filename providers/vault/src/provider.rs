//! [`KeyProvider`] over Vault / OpenBao Transit.

use crate::algorithms::{self, SUPPORTED};
use crate::auth::{self, AppRoleLogin};
use crate::client::{self, Reply, TokenCell, VaultHttp};
use crate::config::{VaultConfig, VaultCredentials};
use crate::errors::{Op, VaultFailure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_provider::{
    Algorithm, Capabilities, DataKey, DataKeySpec, KeyProvider, KeyPurpose, KeySpec, KeyUri,
    KeyVersionInfo, ListedKey, Listing, PageRequest, ProviderError, ProviderKey, ProviderKeyState,
    PublicKeyInfo, Replied, Result, SecretBytes, SignInput, VersionRef,
};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// URI scheme of Vault keys: `hashivault://MOUNT/keys/NAME`.
pub const SCHEME: &str = "hashivault";

/// Transit's shortest auto-rotation period; shorter crypto-periods are left to the gateway's
/// own rotation scheduler.
const MIN_AUTO_ROTATE: Duration = Duration::from_secs(3600);

/// Default page size for [`KeyProvider::list`].
const DEFAULT_PAGE: usize = 100;

/// A Vault / OpenBao Transit mount as a keygate provider.
pub struct VaultProvider {
    name: String,
    mount: String,
    http: Arc<VaultHttp>,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for VaultProvider {
    fn drop(&mut self) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
    }
}

impl VaultProvider {
    /// Builds the provider. With AppRole this logs in (so it fails fast on bad credentials);
    /// with a token it makes no request. Either way a background task then keeps the token
    /// renewed; it must be called inside a Tokio runtime.
    pub async fn connect(
        name: impl Into<String>,
        config: VaultConfig,
        credentials: VaultCredentials,
    ) -> Result<Self> {
        let name = name.into();
        client::check_address(&name, &config.address)?;
        let (token, approle, lease) = match credentials {
            VaultCredentials::Token(token) => (token, None, auth::Next::Lookup),
            VaultCredentials::AppRole { role_id, secret_id } => {
                let login = AppRoleLogin {
                    mount: config.approle_mount().to_string(),
                    role_id,
                    secret_id,
                };
                let lease = auth::approle_login(&name, &config, &login).await?;
                let next = auth::Next::Lease {
                    ttl: lease.ttl,
                    renewable: lease.renewable,
                };
                (lease.token, Some(login), next)
            }
        };
        let cell = TokenCell::new(&token).map_err(|e| ProviderError::invalid(&name, e))?;
        let http = Arc::new(VaultHttp::new(&name, &config, cell)?);
        let mount = config.mount.trim_matches('/').to_string();
        let renewal = tokio::spawn(auth::maintain(
            name.clone(),
            config,
            http.clone(),
            approle,
            lease,
        ));
        Ok(Self {
            name,
            mount,
            http,
            renewal: Some(renewal),
        })
    }

    /// The URI of a Transit key in this provider's mount.
    pub fn uri_for(&self, vault_name: &str) -> KeyUri {
        KeyUri::new(format!("{SCHEME}://{}/keys/{vault_name}", self.mount))
    }

    /// The Transit key name inside a URI of this provider's mount.
    fn key_name<'u>(&self, uri: &'u KeyUri) -> Result<&'u str> {
        let rest = uri.strip_scheme(SCHEME).ok_or_else(|| {
            ProviderError::invalid(&self.name, format!("{uri} is not a {SCHEME}:// URI"))
        })?;
        let (mount, name) = rest.rsplit_once("/keys/").ok_or_else(|| {
            ProviderError::invalid(
                &self.name,
                format!("{uri} is not of the form {SCHEME}://MOUNT/keys/NAME"),
            )
        })?;
        if mount != self.mount {
            return Err(ProviderError::invalid(
                &self.name,
                format!(
                    "{uri} belongs to mount '{mount}'; this provider serves '{}'",
                    self.mount
                ),
            ));
        }
        // Only Transit's own name characters, so a URI cannot steer the request to another path.
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ProviderError::invalid(
                &self.name,
                format!("{uri} has no valid key name"),
            ));
        }
        Ok(name)
    }

    fn path(&self, tail: &str) -> String {
        format!("{}/{tail}", self.mount)
    }

    fn op<'a>(&'a self, name: &'static str, key: &'a KeyUri) -> Op<'a> {
        Op::new(&self.name, name, key.as_str())
    }

    fn malformed(&self, op: &Op<'_>, f: VaultFailure) -> ProviderError {
        f.into_provider_error(op)
    }

    /// Refuses an operation outside the key's purpose before asking Vault.
    fn require(&self, v: &VersionRef, purpose: KeyPurpose, what: &str) -> Result<()> {
        if v.algorithm.purpose() != purpose {
            return Err(ProviderError::precondition(
                &self.name,
                format!(
                    "{what} with {}: it is a {} key ({}), not a {purpose} key",
                    v.uri,
                    v.algorithm.purpose(),
                    v.algorithm
                ),
            ));
        }
        Ok(())
    }

    /// The Transit version number an operation pins.
    fn version_of(&self, v: &VersionRef) -> Result<u32> {
        v.provider_version.parse::<u32>().map_err(|_| {
            ProviderError::invalid(
                &self.name,
                format!(
                    "{}: provider version '{}' is not a Transit version number",
                    v.uri, v.provider_version
                ),
            )
        })
    }

    async fn read_key(&self, uri: &KeyUri) -> Result<(Reply, ProviderKey)> {
        let name = self.key_name(uri)?;
        let op = self.op("describe", uri);
        let reply = self
            .http
            .call(&op, Method::GET, &self.path(&format!("keys/{name}")), None)
            .await?;
        let key = self
            .parse_key(uri, name, &reply.data)
            .map_err(|f| self.malformed(&op, f))?;
        Ok((reply, key))
    }

    fn parse_key(
        &self,
        uri: &KeyUri,
        name: &str,
        data: &Value,
    ) -> Result<ProviderKey, VaultFailure> {
        let vault_type = data
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| VaultFailure::Malformed("key has no type".into()))?;
        let algorithm = algorithm_of(name, vault_type).ok_or_else(|| {
            VaultFailure::Malformed(format!(
                "Transit key type '{vault_type}' has no keygate algorithm"
            ))
        })?;
        Ok(ProviderKey {
            uri: uri.clone(),
            algorithm,
            state: state_of(data),
            versions: versions_of(data),
        })
    }

    /// Base fields every encrypt-like call sends.
    fn sealing_body(&self, v: &VersionRef, aad: &[u8]) -> Result<Map<String, Value>> {
        let mut body = Map::new();
        body.insert("key_version".into(), json!(self.version_of(v)?));
        if !aad.is_empty() {
            if v.algorithm.rsa_bits().is_some() {
                return Err(ProviderError::invalid(
                    &self.name,
                    format!("{}: RSA-OAEP in Transit takes no associated data", v.uri),
                ));
            }
            body.insert("associated_data".into(), json!(B64.encode(aad)));
        }
        Ok(body)
    }

    fn sign_request(
        &self,
        v: &VersionRef,
        input: SignInput<'_>,
    ) -> Result<(String, Map<String, Value>)> {
        let name = self.key_name(&v.uri)?;
        let a = v.algorithm;
        let mut body = Map::new();
        body.insert("key_version".into(), json!(self.version_of(v)?));
        let bytes = match input {
            SignInput::Message(m) => m,
            SignInput::Digest(d) => {
                let Some(len) = a.digest_len() else {
                    return Err(ProviderError::invalid(
                        &self.name,
                        format!("{}: {a} signs messages, not digests", v.uri),
                    ));
                };
                if d.len() != len {
                    return Err(ProviderError::invalid(
                        &self.name,
                        format!("{}: a {a} digest is {len} bytes, got {}", v.uri, d.len()),
                    ));
                }
                body.insert("prehashed".into(), json!(true));
                d
            }
        };
        body.insert("input".into(), json!(B64.encode(bytes)));
        if matches!(a, Algorithm::EcdsaP256 | Algorithm::EcdsaP384) {
            // DER (X9.62 Ecdsa-Sig-Value), as the trait requires; Transit's default, made explicit.
            body.insert("marshaling_algorithm".into(), json!("asn1"));
        }
        if let Some(scheme) = algorithms::rsa_signature_algorithm(a) {
            body.insert("signature_algorithm".into(), json!(scheme));
            if scheme == "pss" {
                body.insert("salt_length".into(), json!("hash"));
            }
        }
        let path = match algorithms::hash_algorithm(a) {
            Some(hash) => format!("{name}/{hash}"),
            None => name.to_string(),
        };
        Ok((path, body))
    }
}

/// keygate's algorithm for a Transit key: from the name keygate gave it, else from its type.
/// A foreign RSA key is reported as the PSS variant of its size: Transit keys carry no scheme.
fn algorithm_of(name: &str, vault_type: &str) -> Option<Algorithm> {
    if let Some((algorithm, _)) = algorithms::parse_vault_key_name(name)
        && algorithms::vault_type(algorithm) == vault_type
    {
        return Some(algorithm);
    }
    algorithms::from_vault_type(vault_type).or(match vault_type {
        "rsa-2048" => Some(Algorithm::Rsa2048Pss),
        "rsa-3072" => Some(Algorithm::Rsa3072Pss),
        "rsa-4096" => Some(Algorithm::Rsa4096Pss),
        _ => None,
    })
}

fn state_of(data: &Value) -> ProviderKeyState {
    if data.get("soft_deleted").and_then(Value::as_bool) == Some(true) {
        ProviderKeyState::Disabled
    } else {
        ProviderKeyState::Enabled
    }
}

/// Versions from the `keys` map; HMAC keys have no such map, so fall back to the range up to
/// `latest_version` (versions below `min_available_version` were trimmed).
fn versions_of(data: &Value) -> Vec<KeyVersionInfo> {
    let mut numbers: Vec<u32> = match data.get("keys").and_then(Value::as_object) {
        Some(keys) => keys.keys().filter_map(|k| k.parse().ok()).collect(),
        None => {
            let latest = data
                .get("latest_version")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32;
            let first = data
                .get("min_available_version")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .max(1) as u32;
            (first..=latest).collect()
        }
    };
    numbers.sort_unstable();
    numbers
        .into_iter()
        .map(|n| KeyVersionInfo {
            number: n,
            provider_version: n.to_string(),
        })
        .collect()
}

/// Splits Transit's `vault:vN:BASE64` output into its version and decoded bytes.
fn unprefix(text: &str) -> Option<(u32, Vec<u8>)> {
    let rest = text.strip_prefix("vault:v")?;
    let (version, b64) = rest.split_once(':')?;
    Some((version.parse().ok()?, B64.decode(b64).ok()?))
}

/// A public key as SPKI DER: Transit gives PEM for ECDSA and RSA, raw base64 for Ed25519.
fn spki_der(algorithm: Algorithm, public_key: &str) -> Option<Vec<u8>> {
    if algorithm == Algorithm::Ed25519 {
        let raw = B64.decode(public_key.trim()).ok()?;
        if raw.len() != 32 {
            return None;
        }
        // SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (32 bytes) }
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&raw);
        return Some(der);
    }
    let body: String = public_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    B64.decode(body).ok()
}

#[async_trait::async_trait]
impl KeyProvider for VaultProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "vault"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            algorithms: SUPPORTED.to_vec(),
            rotate: true,
            disable: true,
            destroy: true,
            list: true,
            sign_digest: true,
        }
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        let vault_name = algorithms::vault_key_name(&spec.name, spec.algorithm, &spec.key_id)
            .map_err(|e| ProviderError::invalid(&self.name, e))?;
        let uri = self.uri_for(&vault_name);
        let op = self.op("create key", &uri);
        // Transit's create is an upsert that silently keeps an existing key: check first.
        match self.read_key(&uri).await {
            Ok(_) => {
                return Err(ProviderError::AlreadyExists {
                    provider: self.name.clone(),
                    what: format!("key {uri}"),
                });
            }
            Err(ProviderError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut body = json!({
            "type": algorithms::vault_type(spec.algorithm),
            "exportable": false,
            "allow_plaintext_backup": false,
        });
        if spec.algorithm == Algorithm::HmacSha256 {
            body["key_size"] = json!(32);
        }
        if spec.crypto_period >= MIN_AUTO_ROTATE {
            body["auto_rotate_period"] = json!(format!("{}s", spec.crypto_period.as_secs()));
        }
        let created = self
            .http
            .call_keygen(
                &op,
                Method::POST,
                &self.path(&format!("keys/{vault_name}")),
                Some(&body),
            )
            .await?;
        let (_, key) = self.read_key(&uri).await?;
        Ok(Replied::with_request_id(key, created.request_id))
    }

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        let (reply, key) = self.read_key(key).await?;
        Ok(Replied::with_request_id(key, reply.request_id))
    }

    async fn list(&self, page: &PageRequest) -> Result<Replied<Listing>> {
        let mount_uri = KeyUri::new(format!("{SCHEME}://{}", self.mount));
        let op = self.op("list keys", &mount_uri);
        let list = Method::from_bytes(b"LIST")
            .map_err(|e| ProviderError::internal(&self.name, e.to_string()))?;
        let reply = match self.http.call(&op, list, &self.path("keys"), None).await {
            Ok(r) => r,
            // An empty mount answers 404.
            Err(ProviderError::NotFound { .. }) => {
                return Ok(Replied::local(Listing::default()));
            }
            Err(e) => return Err(e),
        };
        let mut names: Vec<String> = reply
            .data
            .get("keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let start: usize = if page.page_token.is_empty() {
            0
        } else {
            page.page_token.parse().map_err(|_| {
                ProviderError::invalid(
                    &self.name,
                    format!(
                        "page token '{}' is not one this provider issued",
                        page.page_token
                    ),
                )
            })?
        };
        let size = if page.page_size == 0 {
            DEFAULT_PAGE
        } else {
            page.page_size as usize
        };
        let end = (start + size).min(names.len());
        let mut keys = Vec::new();
        // LIST gives names only; each key is read for its type and state.
        for name in names.get(start..end).unwrap_or_default() {
            let uri = self.uri_for(name);
            let read = self.op("list keys", &uri);
            let data = match self
                .http
                .call(
                    &read,
                    Method::GET,
                    &self.path(&format!("keys/{name}")),
                    None,
                )
                .await
            {
                Ok(reply) => reply.data,
                // Deleted between LIST and read.
                Err(ProviderError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let parsed = algorithms::parse_vault_key_name(name);
            let vault_type = data.get("type").and_then(Value::as_str).unwrap_or("");
            // A foreign RSA key's scheme is unknown, so inventory reports no algorithm for it.
            let algorithm = match &parsed {
                Some((a, _)) if algorithms::vault_type(*a) == vault_type => Some(*a),
                _ => algorithms::from_vault_type(vault_type),
            };
            keys.push(ListedKey {
                uri,
                algorithm,
                state: state_of(&data),
                keygate_id: parsed.map(|(_, id)| id),
            });
        }
        let next_page_token = if end < names.len() {
            end.to_string()
        } else {
            String::new()
        };
        Ok(Replied::with_request_id(
            Listing {
                keys,
                next_page_token,
            },
            reply.request_id,
        ))
    }

    async fn encrypt(
        &self,
        key: &VersionRef,
        plaintext: &SecretBytes,
        aad: &[u8],
    ) -> Result<Replied<Vec<u8>>> {
        self.require(key, KeyPurpose::Encrypt, "encrypt")?;
        let name = self.key_name(&key.uri)?;
        let op = self.op("encrypt", &key.uri);
        let mut body = self.sealing_body(key, aad)?;
        let encoded = Zeroizing::new(B64.encode(plaintext.expose()));
        body.insert("plaintext".into(), Value::String(encoded.to_string()));
        let body = Value::Object(body);
        let reply = self
            .http
            .call(
                &op,
                Method::POST,
                &self.path(&format!("encrypt/{name}")),
                Some(&body),
            )
            .await?;
        let ciphertext = reply
            .str_field("ciphertext")
            .map_err(|f| self.malformed(&op, f))?;
        let blob = ciphertext.as_bytes().to_vec();
        Ok(Replied::with_request_id(blob, reply.request_id))
    }

    async fn decrypt(
        &self,
        key: &VersionRef,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<Replied<SecretBytes>> {
        self.require(key, KeyPurpose::Encrypt, "decrypt")?;
        let name = self.key_name(&key.uri)?;
        let op = self.op("decrypt", &key.uri).authenticated();
        // The blob is Transit's `vault:vN:…`; it must name the version the gateway recorded.
        let version = self.version_of(key)?;
        let Ok(ciphertext) = std::str::from_utf8(blob) else {
            return Err(ProviderError::auth_failed(&self.name));
        };
        if !ciphertext.starts_with(&format!("vault:v{version}:")) {
            return Err(ProviderError::auth_failed(&self.name));
        }
        let mut body = self.sealing_body(key, aad)?;
        body.remove("key_version");
        body.insert("ciphertext".into(), json!(ciphertext));
        let reply = self
            .http
            .call(
                &op,
                Method::POST,
                &self.path(&format!("decrypt/{name}")),
                Some(&Value::Object(body)),
            )
            .await?;
        let encoded = reply
            .str_field("plaintext")
            .map_err(|f| self.malformed(&op, f))?;
        let plaintext = B64.decode(encoded).map_err(|e| {
            self.malformed(
                &op,
                VaultFailure::Malformed(format!("plaintext is not base64: {e}")),
            )
        })?;
        Ok(Replied::with_request_id(
            SecretBytes::new(plaintext),
            reply.request_id,
        ))
    }

    async fn generate_data_key(
        &self,
        key: &VersionRef,
        spec: DataKeySpec,
        aad: &[u8],
    ) -> Result<Replied<DataKey>> {
        self.require(key, KeyPurpose::Encrypt, "generate a data key")?;
        if !key.algorithm.is_symmetric() {
            return Err(ProviderError::precondition(
                &self.name,
                format!(
                    "generate a data key with {}: Transit makes data keys under symmetric keys only",
                    key.uri
                ),
            ));
        }
        let bits = match spec.len {
            16 | 32 | 64 => spec.len * 8,
            other => {
                return Err(ProviderError::invalid(
                    &self.name,
                    format!("Transit makes data keys of 16, 32 or 64 bytes, not {other}"),
                ));
            }
        };
        let name = self.key_name(&key.uri)?;
        let op = self.op("generate data key", &key.uri);
        let mut body = self.sealing_body(key, aad)?;
        body.insert("bits".into(), json!(bits));
        let reply = self
            .http
            .call(
                &op,
                Method::POST,
                &self.path(&format!("datakey/plaintext/{name}")),
                Some(&Value::Object(body)),
            )
            .await?;
        let sealed = reply
            .str_field("ciphertext")
            .map_err(|f| self.malformed(&op, f))?
            .as_bytes()
            .to_vec();
        let encoded = reply
            .str_field("plaintext")
            .map_err(|f| self.malformed(&op, f))?;
        let plaintext = B64.decode(encoded).map_err(|e| {
            self.malformed(
                &op,
                VaultFailure::Malformed(format!("data key is not base64: {e}")),
            )
        })?;
        Ok(Replied::with_request_id(
            DataKey {
                plaintext: SecretBytes::new(plaintext),
                sealed,
            },
            reply.request_id,
        ))
    }

    async fn sign(&self, key: &VersionRef, input: SignInput<'_>) -> Result<Replied<Vec<u8>>> {
        self.require(key, KeyPurpose::Sign, "sign")?;
        let op = self.op("sign", &key.uri);
        let (path, body) = self.sign_request(key, input)?;
        let reply = self
            .http
            .call(
                &op,
                Method::POST,
                &self.path(&format!("sign/{path}")),
                Some(&Value::Object(body)),
            )
            .await?;
        let signature = reply
            .str_field("signature")
            .map_err(|f| self.malformed(&op, f))?;
        let (_, raw) = unprefix(signature).ok_or_else(|| {
            self.malformed(
                &op,
                VaultFailure::Malformed("signature is not vault:vN:base64".into()),
            )
        })?;
        Ok(Replied::with_request_id(raw, reply.request_id))
    }

    async fn verify(
        &self,
        key: &VersionRef,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<Replied<bool>> {
        self.require(key, KeyPurpose::Sign, "verify")?;
        let op = self.op("verify", &key.uri);
        let (path, mut body) = self.sign_request(key, input)?;
        body.remove("key_version");
        let version = self.version_of(key)?;
        body.insert(
            "signature".into(),
            json!(format!("vault:v{version}:{}", B64.encode(signature))),
        );
        let reply = self
            .http
            .call(
                &op,
                Method::POST,
                &self.path(&format!("verify/{path}")),
                Some(&Value::Object(body)),
            )
            .await?;
        let valid = reply
            .data
            .get("valid")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Replied::with_request_id(valid, reply.request_id))
    }

    async fn public_key(&self, key: &VersionRef) -> Result<Replied<PublicKeyInfo>> {
        self.require(key, KeyPurpose::Sign, "get the public key")?;
        let (reply, _) = self.read_key(&key.uri).await?;
        let op = self.op("get public key", &key.uri);
        let version = self.version_of(key)?.to_string();
        let pem = reply
            .data
            .get("keys")
            .and_then(|k| k.get(&version))
            .and_then(|v| v.get("public_key"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ProviderError::not_found(&self.name, format!("version {version} of {}", key.uri))
            })?;
        let spki_der = spki_der(key.algorithm, pem).ok_or_else(|| {
            self.malformed(
                &op,
                VaultFailure::Malformed("public key is not PEM/base64".into()),
            )
        })?;
        Ok(Replied::with_request_id(
            PublicKeyInfo { spki_der },
            reply.request_id,
        ))
    }

    async fn mac(&self, key: &VersionRef, message: &[u8]) -> Result<Replied<Vec<u8>>> {
        self.require(key, KeyPurpose::Mac, "generate a MAC")?;
        let name = self.key_name(&key.uri)?;
        let op = self.op("generate MAC", &key.uri);
        let body = json!({ "input": B64.encode(message), "key_version": self.version_of(key)? });
        let reply = self
            .http
            .call(
                &op,
                Method::POST,
                &self.path(&format!("hmac/{name}/sha2-256")),
                Some(&body),
            )
            .await?;
        let tag = reply
            .str_field("hmac")
            .map_err(|f| self.malformed(&op, f))?;
        let (_, raw) = unprefix(tag).ok_or_else(|| {
            self.malformed(
                &op,
                VaultFailure::Malformed("hmac is not vault:vN:base64".into()),
            )
        })?;
        Ok(Replied::with_request_id(raw, reply.request_id))
    }

    async fn verify_mac(
        &self,
        key: &VersionRef,
        message: &[u8],
        tag: &[u8],
    ) -> Result<Replied<bool>> {
        self.require(key, KeyPurpose::Mac, "verify a MAC")?;
        let name = self.key_name(&key.uri)?;
        let op = self.op("verify MAC", &key.uri);
        let version = self.version_of(key)?;
        let body = json!({
            "input": B64.encode(message),
            "hmac": format!("vault:v{version}:{}", B64.encode(tag)),
        });
        let reply = self
            .http
            .call(
                &op,
                Method::POST,
                &self.path(&format!("verify/{name}/sha2-256")),
                Some(&body),
            )
            .await?;
        let valid = reply
            .data
            .get("valid")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Replied::with_request_id(valid, reply.request_id))
    }

    async fn rotate(&self, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        let name = self.key_name(key)?;
        let op = self.op("rotate", key);
        let reply = self
            .http
            .call_keygen(
                &op,
                Method::POST,
                &self.path(&format!("keys/{name}/rotate")),
                None,
            )
            .await?;
        // Recent Vault and OpenBao return the key; older servers answer 204, so read it back.
        let latest = match reply.data.get("latest_version").and_then(Value::as_u64) {
            Some(v) => v as u32,
            None => {
                let (_, described) = self.read_key(key).await?;
                described.versions.last().map(|v| v.number).unwrap_or(0)
            }
        };
        Ok(Replied::with_request_id(
            KeyVersionInfo {
                number: latest,
                provider_version: latest.to_string(),
            },
            reply.request_id,
        ))
    }

    /// Disabling uses OpenBao's Transit soft-delete (`DELETE keys/NAME/soft-delete`), which the
    /// server enforces for every operation and reverses with `soft-delete-restore`. HashiCorp
    /// Vault has no such endpoint; there this returns `Unsupported` rather than pretend.
    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        let name = self.key_name(key)?;
        let (op, method, tail) = if enabled {
            (
                self.op("enable", key),
                Method::POST,
                format!("keys/{name}/soft-delete-restore"),
            )
        } else {
            (
                self.op("disable", key),
                Method::DELETE,
                format!("keys/{name}/soft-delete"),
            )
        };
        // Both endpoints answer for unknown keys too, so confirm the key exists first.
        self.read_key(key).await?;
        let reply = match self.http.call(&op, method, &self.path(&tail), None).await {
            Err(ProviderError::NotFound { .. } | ProviderError::Unsupported { .. }) => {
                return Err(ProviderError::unsupported(
                    &self.name,
                    "enabling or disabling keys (this server lacks Transit soft-delete, an OpenBao feature)",
                ));
            }
            other => other?,
        };
        Ok(Replied::with_request_id((), reply.request_id))
    }

    /// Soft-deletes the key for the pending window, so nothing uses it meanwhile. Cancelling
    /// (the default `cancel_destroy`) leaves it disabled; the gateway re-enables it explicitly.
    /// On servers without soft-delete (HashiCorp Vault) nothing is done here, as the trait
    /// allows: the gateway keeps the window and refuses use of the key itself.
    async fn schedule_destroy(&self, key: &KeyUri, _window: Duration) -> Result<Replied<()>> {
        match self.set_enabled(key, false).await {
            Err(ProviderError::Unsupported { .. }) => {
                tracing::info!(
                    provider = %self.name,
                    key = %key,
                    "no Transit soft-delete on this server; the gateway alone guards the pending window"
                );
                Ok(Replied::local(()))
            }
            other => other,
        }
    }

    /// Sets `deletion_allowed` and deletes the key with all its versions.
    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        let name = self.key_name(key)?;
        let op = self.op("destroy", key);
        let body = json!({ "deletion_allowed": true });
        self.http
            .call(
                &op,
                Method::POST,
                &self.path(&format!("keys/{name}/config")),
                Some(&body),
            )
            .await?;
        let reply = self
            .http
            .call(
                &op,
                Method::DELETE,
                &self.path(&format!("keys/{name}")),
                None,
            )
            .await?;
        Ok(Replied::with_request_id((), reply.request_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transit_output_is_unprefixed() {
        assert_eq!(unprefix("vault:v2:AAEC"), Some((2, vec![0, 1, 2])));
        assert_eq!(unprefix("v2:AAEC"), None);
        assert_eq!(unprefix("vault:vx:AAEC"), None);
    }

    #[test]
    fn hmac_versions_come_from_latest_version() {
        let data = json!({"type": "hmac", "latest_version": 3, "min_available_version": 0});
        let numbers: Vec<u32> = versions_of(&data).iter().map(|v| v.number).collect();
        assert_eq!(numbers, vec![1, 2, 3]);
    }

    #[test]
    fn versions_sort_numerically() {
        let data = json!({"keys": {"10": 1, "9": 1, "1": 1}});
        let numbers: Vec<u32> = versions_of(&data).iter().map(|v| v.number).collect();
        assert_eq!(numbers, vec![1, 9, 10]);
    }
}
