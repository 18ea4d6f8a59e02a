//! Direct HTTP calls to the Vault API: one request in, Vault's `request_id` and `data` out.
//!
//! Every Transit call goes through here rather than through vaultrs, because vaultrs strips
//! the response envelope (losing `request_id`, which the audit log needs), hides Vault's error
//! text, cannot read `hmac` keys and does not model `latest_version` or `auto_rotate_period`.

use crate::config::VaultConfig;
use crate::errors::{Op, VaultFailure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_provider::{ProviderError, SecretBytes};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::RwLock;
use std::time::Duration;
use zeroize::Zeroizing;

// Header names made once: a name given as text is parsed (and lowercased into a new buffer)
// on every request.
const TOKEN: HeaderName = HeaderName::from_static("x-vault-token");
/// The header carrying keygate's request id on every request.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-keygate-request-id");
/// W3C trace context, sent when keygate exports traces.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Vault's answer to one request.
#[derive(Debug)]
pub struct Reply {
    pub request_id: Option<String>,
    /// The `data` object (`Value::Null` for 204 answers), wiped when dropped.
    pub data: Data,
}

/// A serialized request body, zeroized when dropped.
pub(crate) struct WipedOnDrop(Vec<u8>);

impl WipedOnDrop {
    /// `body` as JSON in a buffer of `capacity` bytes. Given room for the whole body, the
    /// serializer never grows the buffer, so no copy of a plaintext is freed unwiped.
    pub(crate) fn json<B: Serialize>(body: &B, capacity: usize) -> Result<Self, VaultFailure> {
        let mut out = Self(Vec::with_capacity(capacity));
        serde_json::to_writer(&mut out.0, body)
            .map_err(|e| VaultFailure::Malformed(e.to_string()))?;
        Ok(out)
    }
}

impl AsRef<[u8]> for WipedOnDrop {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for WipedOnDrop {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Zeroizes every string in `value` (plaintexts and keys travel as base64 strings).
pub(crate) fn wipe_strings(value: &mut Value) {
    match value {
        Value::String(text) => zeroize::Zeroize::zeroize(text),
        Value::Array(items) => items.iter_mut().for_each(wipe_strings),
        Value::Object(fields) => fields.values_mut().for_each(wipe_strings),
        _ => {}
    }
}

/// An answer's `data`, its strings zeroized when dropped.
#[derive(Debug, Default)]
pub struct Data(pub Value);

impl std::ops::Deref for Data {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.0
    }
}

impl std::ops::DerefMut for Data {
    fn deref_mut(&mut self) -> &mut Value {
        &mut self.0
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        wipe_strings(&mut self.0);
    }
}

impl Reply {
    pub fn str_field(&self, field: &str) -> Result<&str, VaultFailure> {
        self.data
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| VaultFailure::Malformed(format!("no string field '{field}' in data")))
    }

    /// A string field of `data`, or an error naming `op` and the field.
    pub fn text(&self, op: &Op<'_>, field: &str) -> Result<&str, ProviderError> {
        self.str_field(field).map_err(|f| f.into_provider_error(op))
    }

    /// A base64 field (plaintexts, data keys), decoded into a zeroizing buffer.
    pub fn secret(&self, op: &Op<'_>, field: &str) -> Result<SecretBytes, ProviderError> {
        B64.decode(self.text(op, field)?)
            .map(SecretBytes::new)
            .map_err(|e| malformed(op, format!("{field} is not base64: {e}")))
    }

    /// A `vault:vN:BASE64` field (signatures, HMACs), decoded.
    pub fn unprefixed(&self, op: &Op<'_>, field: &str) -> Result<Vec<u8>, ProviderError> {
        unprefix(self.text(op, field)?)
            .map(|(_, bytes)| bytes)
            .ok_or_else(|| malformed(op, format!("{field} is not vault:vN:base64")))
    }

    /// A boolean field (`valid`), false when absent.
    pub fn flag(&self, field: &str) -> bool {
        self.data
            .get(field)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

fn malformed(op: &Op<'_>, detail: String) -> ProviderError {
    VaultFailure::Malformed(detail).into_provider_error(op)
}

/// Splits Transit's `vault:vN:BASE64` output into its version and decoded bytes.
pub fn unprefix(text: &str) -> Option<(u32, Vec<u8>)> {
    let rest = text.strip_prefix("vault:v")?;
    let (version, b64) = rest.split_once(':')?;
    Some((version.parse().ok()?, B64.decode(b64).ok()?))
}

/// The token every request carries; swapped by the renewal task after a new login.
pub struct TokenCell(RwLock<HeaderValue>);

impl TokenCell {
    pub fn new(token: &SecretBytes) -> Result<Self, String> {
        Ok(Self(RwLock::new(sensitive_header(token)?)))
    }

    pub fn set(&self, token: &SecretBytes) -> Result<(), String> {
        let value = sensitive_header(token)?;
        if let Ok(mut slot) = self.0.write() {
            *slot = value;
        }
        Ok(())
    }

    fn get(&self) -> Option<HeaderValue> {
        self.0.read().ok().map(|v| v.clone())
    }

    /// The token as text, for the few auth calls made through vaultrs.
    pub fn expose(&self) -> Option<Zeroizing<String>> {
        self.get()
            .and_then(|v| v.to_str().ok().map(|s| Zeroizing::new(s.to_string())))
    }
}

/// A header value that `Debug` and HTTP/2 HPACK indexing treat as secret.
fn sensitive_header(token: &SecretBytes) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_bytes(token.expose())
        .map_err(|_| "the Vault token contains bytes not allowed in an HTTP header".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

pub struct VaultHttp {
    http: reqwest::Client,
    /// `https://host:port/v1/`.
    base: String,
    /// `base`, parsed once: a request's URL is a copy with its path set, so the host is not
    /// parsed again for every request.
    base_url: Option<Url>,
    keygen_timeout: Duration,
    pub token: TokenCell,
}

/// An answer read into `T` (the `data` of a 2xx answer), or, when it is not one `T` reads
/// (an error status, a `data` without the expected fields), the generic [`Reply`], so such
/// answers are judged exactly as [`VaultHttp::call`] judges them.
pub enum Answer<T> {
    Typed { request_id: Option<String>, data: T },
    Other(Reply),
}

/// The fields of Vault's envelope a typed answer reads; the others are skipped unread. `T`
/// must wipe what it holds if that can be secret: this is the answer's only parsed copy.
#[derive(serde::Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    request_id: Option<String>,
    data: T,
}

impl VaultHttp {
    pub fn new(
        provider: &str,
        config: &VaultConfig,
        token: TokenCell,
    ) -> Result<Self, ProviderError> {
        let address = check_address(provider, &config.address)?;
        let mut headers = HeaderMap::new();
        if let Some(ns) = &config.namespace {
            let value = HeaderValue::from_str(ns).map_err(|_| {
                ProviderError::invalid(
                    provider,
                    format!("namespace '{ns}' is not a valid header value"),
                )
            })?;
            headers.insert("X-Vault-Namespace", value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            // Vault does not compress its answers; other crates of the build turn reqwest's
            // decoders on, which would only add `Accept-Encoding` and a check to each request.
            .no_gzip()
            .no_deflate()
            .no_brotli()
            .no_zstd()
            .connect_timeout(config.connect_timeout())
            .timeout(config.request_timeout());
        if address.starts_with("http://") {
            // Plain HTTP needs no trust store; loading the platform verifier can fail on hosts
            // without one (reqwest issue 2988, worked around the same way in vaultrs).
            builder = builder.tls_certs_only(Vec::new());
        } else if let Some(path) = &config.ca_bundle {
            let pem = std::fs::read(path).map_err(|e| {
                ProviderError::invalid(
                    provider,
                    format!("cannot read CA bundle {}: {e}", path.display()),
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ProviderError::invalid(
                    provider,
                    format!("CA bundle {} is not PEM: {e}", path.display()),
                )
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            ProviderError::internal(provider, format!("cannot build the HTTP client: {e}"))
        })?;
        let base = format!("{address}/v1/");
        Ok(Self {
            http,
            base_url: Url::parse(&base).ok(),
            base,
            keygen_timeout: config.keygen_timeout(),
            token,
        })
    }

    /// The URL of `path` (relative to `/v1/`): the parsed base with its path set, the same URL
    /// parsing `base + path` gives for the paths keygate sends (no query, no fragment).
    fn url(&self, path: &str) -> Option<Url> {
        if path.contains(['?', '#']) {
            return None;
        }
        let mut url = self.base_url.clone()?;
        let full = format!("{}{path}", url.path());
        url.set_path(&full);
        Some(url)
    }

    /// One Vault request. `path` is relative to `/v1/`. Nothing is retried here: a 429 is
    /// `Throttled` and an outage `Unavailable` at once, and keygate's guard decides whether
    /// the operation may be tried again (it must not be for create or rotate).
    pub async fn call(
        &self,
        op: &Op<'_>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ProviderError> {
        self.call_raw(method, path, body, None)
            .await
            .map_err(|f| f.into_provider_error(op))
    }

    /// [`VaultHttp::call`] for requests that generate key material, with the longer keygen
    /// timeout instead of the request timeout.
    pub async fn call_keygen(
        &self,
        op: &Op<'_>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ProviderError> {
        self.call_raw(method, path, body, Some(self.keygen_timeout))
            .await
            .map_err(|f| f.into_provider_error(op))
    }

    /// A request whose 2xx answer's `data` reads as `T` (typed serde, no `Value` tree): the
    /// hot path of encrypt. `body` is the serialized request, wiped once reqwest is done
    /// with it. Any other answer comes back as the [`Reply`] [`VaultHttp::call`] would give.
    pub async fn call_typed<T: DeserializeOwned>(
        &self,
        op: &Op<'_>,
        method: Method,
        path: &str,
        body: WipedOnDrop,
    ) -> Result<Answer<T>, ProviderError> {
        let (status, raw) = self
            .exchange(method, path, Some(body), None)
            .await
            .map_err(|f| f.into_provider_error(op))?;
        if (200..300).contains(&status)
            && let Ok(envelope) = serde_json::from_slice::<Envelope<T>>(&raw)
        {
            wipe_bytes(raw);
            return Ok(Answer::Typed {
                request_id: envelope.request_id,
                data: envelope.data,
            });
        }
        reply_from(status, raw)
            .map(Answer::Other)
            .map_err(|f| f.into_provider_error(op))
    }

    async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<Reply, VaultFailure> {
        // The body may hold base64 plaintext: reqwest gets the one serialized copy, wiped when
        // it is done with it.
        let body = match body {
            Some(v) => Some(WipedOnDrop(
                serde_json::to_vec(v).map_err(|e| VaultFailure::Malformed(e.to_string()))?,
            )),
            None => None,
        };
        let (status, raw) = self.exchange(method, path, body, timeout).await?;
        reply_from(status, raw)
    }

    /// Sends one request; its answer's status and body.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<WipedOnDrop>,
        timeout: Option<Duration>,
    ) -> Result<(u16, bytes::Bytes), VaultFailure> {
        let mut request = match self.url(path) {
            Some(url) => self.http.request(method, url),
            None => self.http.request(method, format!("{}{}", self.base, path)),
        };
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(token) = self.token.get() {
            request = request.header(TOKEN, token);
        }
        // keygate's request id, which Vault's audit log records once the header is audited
        // (`register_audit_header`), so its records join the call's event.
        if let Some(id) = keygate_provider::context::request_id() {
            request = request.header(REQUEST_ID, id.as_ref());
        }
        // The caller's trace continues into Vault (its audit log records the header).
        if let Some(traceparent) = keygate_provider::context::traceparent() {
            request = request.header(TRACEPARENT, traceparent);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, JSON)
                .body(reqwest::Body::from(bytes::Bytes::from_owner(body)));
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let raw = response.bytes().await.map_err(transport)?;
        Ok((status, raw))
    }
}

/// Zeroizes an answer's body once parsed (when no one else holds the buffer, which is the
/// case for a body read whole): it may hold base64 plaintext.
fn wipe_bytes(raw: bytes::Bytes) {
    if let Ok(mut raw) = raw.try_into_mut() {
        zeroize::Zeroize::zeroize(raw.as_mut());
    }
}

/// Vault's answer as a [`Reply`] (2xx, or a batch whose every item failed), or its failure.
fn reply_from(status: u16, raw: bytes::Bytes) -> Result<Reply, VaultFailure> {
    let mut json: Value = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).unwrap_or(Value::Null)
    };
    // The answer may hold base64 plaintext too: wipe it once parsed.
    wipe_bytes(raw);
    // A batch whose every item failed answers 400 with each item's error: the items'
    // results, not a failed request.
    let batch_answer = status == 400 && json.pointer("/data/batch_results").is_some();
    if (200..300).contains(&status) || batch_answer {
        let request_id = json
            .get("request_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        // Moved, not copied: the only copy is the Reply's, wiped when it drops.
        let data = json
            .as_object_mut()
            .and_then(|o| o.remove("data"))
            .unwrap_or(Value::Null);
        return Ok(Reply {
            request_id,
            data: Data(data),
        });
    }
    let errors: Vec<String> = json
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if status == 429 {
        return Err(VaultFailure::Throttled { errors });
    }
    Err(VaultFailure::Status { status, errors })
}

impl VaultHttp {
    /// Asks Vault to record [`REQUEST_ID`] and [`TRACEPARENT`] in its audit
    /// devices, unhashed. Best effort: a refusal (the token lacks `sudo` on the path) is
    /// logged with what to run instead.
    pub async fn register_audit_header(&self, provider: &str) {
        // Vault keeps audited header names lowercased, as they are here.
        for header in [REQUEST_ID.as_str(), TRACEPARENT.as_str()] {
            self.register_one_audit_header(provider, header).await;
        }
    }

    async fn register_one_audit_header(&self, provider: &str, header: &str) {
        let path = format!("sys/config/auditing/request-headers/{header}");
        let body = serde_json::json!({ "hmac": false });
        match self.call_raw(Method::PUT, &path, Some(&body), None).await {
            Ok(_) => tracing::debug!(provider, header, "Vault audits the header"),
            Err(e) => tracing::warn!(
                provider,
                header,
                error = ?e,
                "Vault refused to audit one of keygate's headers; its audit records still join keygate's events by request.id. To add it: vault write {path} hmac=false"
            ),
        }
    }
}

/// The address without a trailing `/`, if it is an http(s) URL. Checked before anything else
/// because vaultrs panics on an unparsable address.
pub fn check_address<'a>(provider: &str, address: &'a str) -> Result<&'a str, ProviderError> {
    let address = address.trim_end_matches('/');
    if !(address.starts_with("http://") || address.starts_with("https://")) {
        return Err(ProviderError::invalid(
            provider,
            format!("Vault address '{address}' must start with http:// or https://"),
        ));
    }
    reqwest::Url::parse(address).map_err(|e| {
        ProviderError::invalid(
            provider,
            format!("Vault address '{address}' is not a URL: {e}"),
        )
    })?;
    Ok(address)
}

fn transport(e: reqwest::Error) -> VaultFailure {
    // reqwest's Display includes the URL, which carries no secret; the source chain says why.
    VaultFailure::Transport {
        timed_out: e.is_timeout(),
        detail: keygate_provider::kit::error_chain(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_before_use() {
        assert_eq!(
            check_address("v", "https://vault:8200/").ok(),
            Some("https://vault:8200")
        );
        assert!(check_address("v", "vault:8200").is_err());
        assert!(check_address("v", "http://[bad").is_err());
    }

    #[test]
    fn request_urls_are_those_of_the_whole_address() {
        use crate::config::{SecretRef, VaultConfig};
        for address in [
            "http://127.0.0.1:8200",
            "https://vault.example:8200/prefix/",
        ] {
            let config = VaultConfig::with_token(address, SecretRef::Env("UNUSED".into()));
            let cell = TokenCell::new(&SecretBytes::copy_from(b"t")).expect("valid token");
            let http = VaultHttp::new("v", &config, cell).expect("client");
            for path in [
                "transit/encrypt/payments.card-dek.kg.aes-256-gcm.0190",
                "transit/keys/a_b-c.d/rotate",
                "sys/config/auditing/request-headers/X-Keygate-Request-Id",
                "my transit/keys",
            ] {
                let whole = Url::parse(&format!("{}{path}", http.base)).expect("url");
                assert_eq!(http.url(path).as_ref(), Some(&whole), "{path}");
            }
            assert_eq!(http.url("transit/keys?list=true"), None);
        }
    }

    #[test]
    fn a_body_given_room_is_never_moved() {
        #[derive(Serialize)]
        struct Body<'a> {
            key_version: u32,
            associated_data: Option<&'a str>,
            plaintext: &'a str,
        }
        let plaintext = "A".repeat(4096);
        let body = Body {
            key_version: u32::MAX,
            associated_data: Some("YWFk"),
            plaintext: &plaintext,
        };
        let room = plaintext.len() + 4 + 96;
        let out = WipedOnDrop::json(&body, room).expect("serializes");
        assert_eq!(out.0.capacity(), room, "the buffer grew (and was copied)");
        assert!(out.0.len() <= room);
    }

    #[test]
    fn the_token_header_is_sensitive() {
        let cell = TokenCell::new(&SecretBytes::copy_from(b"s.secret")).expect("valid token");
        let value = cell.get().expect("set");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("s.secret"));
    }
}

#[cfg(test)]
mod wipe_tests {
    use super::*;

    #[test]
    fn every_string_of_an_answer_is_wiped() {
        let mut data = serde_json::json!({
            "plaintext": "c2VjcmV0",
            "batch_results": [{"plaintext": "b25l", "reference": ""}, {"error": "x"}],
            "n": 3
        });
        wipe_strings(&mut data);
        assert_eq!(
            data,
            serde_json::json!({
                "plaintext": "",
                "batch_results": [{"plaintext": "", "reference": ""}, {"error": ""}],
                "n": 3
            })
        );
    }
}
