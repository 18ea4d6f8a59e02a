//! Request handling: the bearer challenge, fault hooks, then dispatch of
//! `/keys/...` and `/deletedkeys/...` paths to the Key Vault operations.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::{Value, json};

use super::Shared;
use super::audit;
use super::crypto::{self, Material, RsaJwk};
use super::errors::{KvError, KvResult};
use super::model::{self, Attrs, Deleted, KeyItem, KeyVersion, RotationPolicy, Vault};
use super::symmetric;
use crate::PeerAddr;

/// Key Vault's largest page.
const MAX_RESULTS: usize = 25;

type Params = HashMap<String, String>;

/// Every request: answered by [`serve`], then given a service request id and recorded in
/// the AuditEvent log.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    peer: Option<Extension<PeerAddr>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let base = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("https://{h}"))
        .unwrap_or_else(|| shared.fallback_base.clone());
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let client_request_id = headers
        .get("x-ms-client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut response = serve(&shared, &base, token.is_some(), &method, &uri, query, &body);
    let service_request_id = uuid::Uuid::new_v4().to_string();
    if let Ok(v) = HeaderValue::from_str(&service_request_id) {
        response.headers_mut().insert("x-ms-request-id", v);
    }
    if let Some(v) = client_request_id
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        response.headers_mut().insert("x-ms-client-request-id", v);
    }
    if let Some(log) = &shared.audit {
        let segs: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
        let api_version = uri
            .query()
            .and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("api-version="))
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let status = response.status();
        log.append(&audit::Record {
            operation: if token.is_none() {
                "Authentication"
            } else {
                audit::operation_name(method.as_str(), &segs)
            },
            api_version: &api_version,
            status: status.as_u16(),
            duration_ms: started.elapsed().as_millis(),
            caller_ip: peer.map(|Extension(PeerAddr(a))| a.ip().to_string()),
            client_request_id: client_request_id.as_deref(),
            claim: token.as_deref().map(|t| shared.identities.claim(t)),
            request_uri: format!(
                "{base}{}",
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            ),
            id: audit::target_id(&base, &segs),
            client_info: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            result_description: if status.is_success() {
                ""
            } else {
                status.canonical_reason().unwrap_or("")
            },
        });
    }
    response
}

fn serve(
    shared: &Shared,
    base: &str,
    authorized: bool,
    method: &Method,
    uri: &Uri,
    query: Result<Query<Params>, QueryRejection>,
    body: &Bytes,
) -> Response {
    // The SDK's first request carries no token and no body; it expects the
    // challenge before anything else is looked at.
    if !authorized {
        return KvError::unauthorized().into_response();
    }
    if let Some(f) = shared.hooks.take_failure() {
        return KvError::injected(f.status, f.retry_after_secs).into_response();
    }
    let params = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return KvError::bad_parameter(format!("Invalid query string: {e}")).into_response();
        }
    };
    if params.get("api-version").is_none_or(|v| v.is_empty()) {
        return KvError::bad_parameter(
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
        .into_response();
    }
    let ctx = Ctx {
        base: base.to_string(),
        api_version: params.get("api-version").cloned().unwrap_or_default(),
        params,
    };
    let mut vault = match shared.vault.lock() {
        Ok(v) => v,
        Err(_) => return KvError::internal("Emulator state is poisoned.").into_response(),
    };
    match dispatch(&mut vault, &ctx, method, uri.path(), body) {
        Ok(Reply::Json(v)) => axum::Json(v).into_response(),
        Ok(Reply::NoContent) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

struct Ctx {
    base: String,
    params: Params,
    api_version: String,
}

enum Reply {
    Json(Value),
    NoContent,
}

fn parse_body(body: &Bytes) -> KvResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| KvError::bad_parameter(format!("The request body is not valid JSON: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(KvError::bad_parameter(
            "The request body must be a JSON object.",
        ))
    }
}

fn dispatch(
    vault: &mut Vault,
    ctx: &Ctx,
    method: &Method,
    path: &str,
    body: &Bytes,
) -> KvResult<Reply> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = method.as_str();
    let json = |v: Value| Ok(Reply::Json(v));
    match (m, segs.as_slice()) {
        ("GET", ["keys"]) => json(list_keys(vault, ctx)?),
        ("GET", ["deletedkeys"]) => json(list_deleted(vault, ctx)?),
        ("POST", ["keys", name, "create"]) => json(create(vault, ctx, name, &parse_body(body)?)?),
        ("PUT", ["keys", name]) => json(import(vault, ctx, name, &parse_body(body)?)?),
        ("DELETE", ["keys", name]) => json(delete(vault, ctx, name)?),
        ("GET", ["keys", name]) | ("GET", ["keys", name, ""]) => {
            json(item(vault, name)?.latest()?.bundle(&ctx.base, name)?)
        }
        ("GET", ["keys", name, "versions"]) => json(list_versions(vault, ctx, name)?),
        ("POST", ["keys", name, "rotate"]) => json(rotate(vault, ctx, name)?),
        ("GET", ["keys", name, "rotationpolicy"]) => {
            json(item(vault, name)?.policy_json(&ctx.base))
        }
        ("PUT", ["keys", name, "rotationpolicy"]) => {
            json(put_policy(vault, ctx, name, &parse_body(body)?)?)
        }
        ("GET", ["keys", name, version]) => json(
            item(vault, name)?
                .version(version)?
                .bundle(&ctx.base, name)?,
        ),
        ("PATCH", ["keys", name]) => json(update(vault, ctx, name, "", &parse_body(body)?)?),
        ("PATCH", ["keys", name, version]) => {
            json(update(vault, ctx, name, version, &parse_body(body)?)?)
        }
        ("POST", ["keys", name, version, op]) => json(key_operation(
            vault,
            ctx,
            name,
            version,
            op,
            &parse_body(body)?,
        )?),
        ("GET", ["deletedkeys", name]) => json(deleted(vault, name)?.bundle(&ctx.base)?),
        ("DELETE", ["deletedkeys", name]) => {
            vault
                .deleted
                .remove(*name)
                .ok_or_else(|| KvError::deleted_key_not_found(name))?;
            Ok(Reply::NoContent)
        }
        ("POST", ["deletedkeys", name, "recover"]) => json(recover(vault, ctx, name)?),
        _ => Err(KvError::not_found(format!(
            "{m} {path} is not an operation of the Key Vault keys emulator."
        ))),
    }
}

fn item<'a>(vault: &'a Vault, name: &str) -> KvResult<&'a KeyItem> {
    vault
        .keys
        .get(name)
        .ok_or_else(|| KvError::key_not_found(name))
}

fn deleted<'a>(vault: &'a Vault, name: &str) -> KvResult<&'a Deleted> {
    vault
        .deleted
        .get(name)
        .ok_or_else(|| KvError::deleted_key_not_found(name))
}

fn valid_name(name: &str) -> KvResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(KvError::bad_parameter(format!(
            "The request URI contains an invalid name: {name}. Key names may contain only 0-9, a-z, A-Z and -."
        )))
    }
}

fn refuse_if_deleted(vault: &Vault, name: &str) -> KvResult<()> {
    if vault.deleted.contains_key(name) {
        return Err(KvError::conflict(format!(
            "Key {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged."
        )));
    }
    Ok(())
}

fn new_version_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

// ---- request field helpers ----

fn str_field<'a>(obj: &'a Value, field: &str) -> KvResult<Option<&'a str>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KvError::bad_parameter(format!(
            "Property '{field}' must be a string."
        ))),
    }
}

fn bytes_field(obj: &Value, field: &str) -> KvResult<Option<Vec<u8>>> {
    let Some(s) = str_field(obj, field)? else {
        return Ok(None);
    };
    let trimmed = s.trim_end_matches('=');
    let padded = match trimmed.len() % 4 {
        2 => format!("{trimmed}=="),
        3 => format!("{trimmed}="),
        _ => trimmed.to_string(),
    };
    URL_SAFE
        .decode(&padded)
        .or_else(|_| STANDARD.decode(&padded))
        .map(Some)
        .map_err(|_| KvError::bad_parameter(format!("Property '{field}' is not valid base64url.")))
}

fn required_bytes(obj: &Value, field: &str) -> KvResult<Vec<u8>> {
    bytes_field(obj, field)?
        .ok_or_else(|| KvError::bad_parameter(format!("Property '{field}' is required.")))
}

fn int_field(obj: &Value, field: &str) -> KvResult<Option<i64>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            KvError::bad_parameter(format!("Property '{field}' must be an integer."))
        }),
    }
}

fn tags(obj: &Value) -> KvResult<Option<BTreeMap<String, String>>> {
    match obj.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(KvError::bad_parameter(format!(
                    "Tag '{k}' must be a string."
                ))),
            })
            .collect::<KvResult<_>>()
            .map(Some),
        Some(_) => Err(KvError::bad_parameter("Property 'tags' must be an object.")),
    }
}

fn key_ops(obj: &Value, kty: &str) -> KvResult<Option<Vec<String>>> {
    let list = match obj.get("key_ops") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(KvError::bad_parameter(
                "Property 'key_ops' must be an array.",
            ));
        }
    };
    let mut ops = Vec::with_capacity(list.len());
    for v in list {
        let op = v
            .as_str()
            .ok_or_else(|| KvError::bad_parameter("Property 'key_ops' must hold strings."))?;
        let canonical = model::ALL_OPS
            .iter()
            .find(|o| o.eq_ignore_ascii_case(op))
            .ok_or_else(|| KvError::bad_parameter(format!("Invalid key operation: {op}.")))?;
        if !model::supported_ops(kty).contains(canonical) {
            return Err(KvError::bad_parameter(format!(
                "Key operation {op} is not supported for key type {kty}."
            )));
        }
        if !ops.iter().any(|o: &String| o == canonical) {
            ops.push(canonical.to_string());
        }
    }
    Ok(Some(ops))
}

/// Reads `attributes` into a fresh `Attrs` (create/import).
fn new_attrs(obj: &Value) -> KvResult<Attrs> {
    let a = obj.get("attributes").cloned().unwrap_or(json!({}));
    let enabled = match a.get("enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(KvError::bad_parameter(
                "Property 'enabled' must be a boolean.",
            ));
        }
    };
    Ok(Attrs::new(
        enabled,
        int_field(&a, "nbf")?,
        int_field(&a, "exp")?,
    ))
}

/// A key type as the vault accepts it: a Managed HSM holds `-HSM` keys only and is the one
/// place `oct-HSM` (AES) keys exist.
fn kty_name(kty: &str, managed_hsm: bool) -> KvResult<&'static str> {
    let name = match kty {
        "RSA" => "RSA",
        "RSA-HSM" => "RSA-HSM",
        "EC" => "EC",
        "EC-HSM" => "EC-HSM",
        "oct-HSM" if managed_hsm => "oct-HSM",
        "oct" | "oct-HSM" => {
            return Err(KvError::bad_parameter(format!(
                "Key type {kty} is not supported in a key vault; symmetric keys exist only in a Managed HSM."
            )));
        }
        other => {
            return Err(KvError::bad_parameter(format!(
                "Invalid key type: {other}."
            )));
        }
    };
    if managed_hsm && !name.ends_with("-HSM") {
        return Err(KvError::bad_parameter(format!(
            "Key type {name} is not supported by a Managed HSM: use {name}-HSM."
        )));
    }
    Ok(name)
}

fn insert_version(vault: &mut Vault, name: &str, version: KeyVersion) {
    vault
        .keys
        .entry(name.to_string())
        .or_insert_with(|| KeyItem {
            name: name.to_string(),
            versions: Vec::new(),
            rotation_policy: None,
        })
        .versions
        .push(version);
}

// ---- operations ----

fn create(vault: &mut Vault, ctx: &Ctx, name: &str, body: &Value) -> KvResult<Value> {
    valid_name(name)?;
    refuse_if_deleted(vault, name)?;
    let kty = kty_name(
        str_field(body, "kty")?
            .ok_or_else(|| KvError::bad_parameter("Property 'kty' is required."))?,
        vault.managed_hsm,
    )?;
    if let Some(e) = int_field(body, "public_exponent")?
        && e != 65_537
    {
        return Err(KvError::bad_parameter(
            "Only the public exponent 65537 is supported.",
        ));
    }
    let material = if kty.starts_with("RSA") {
        crypto::generate_rsa(int_field(body, "key_size")?.unwrap_or(2048))
    } else if kty == "oct-HSM" {
        symmetric::generate_oct(int_field(body, "key_size")?.unwrap_or(256))
    } else {
        crypto::generate_ec(str_field(body, "crv")?.unwrap_or("P-256"))
    }
    .map_err(|e| KvError::bad_parameter(e.0))?;
    let version = KeyVersion {
        id: new_version_id(),
        kty,
        material,
        key_ops: key_ops(body, kty)?.unwrap_or_else(|| model::default_ops(kty)),
        attrs: new_attrs(body)?,
        tags: tags(body)?.unwrap_or_default(),
    };
    let out = version.bundle(&ctx.base, name)?;
    insert_version(vault, name, version);
    Ok(out)
}

fn import(vault: &mut Vault, ctx: &Ctx, name: &str, body: &Value) -> KvResult<Value> {
    valid_name(name)?;
    refuse_if_deleted(vault, name)?;
    let jwk = body
        .get("key")
        .filter(|k| k.is_object())
        .ok_or_else(|| KvError::bad_parameter("Property 'key' is required."))?;
    let hsm = body.get("Hsm").and_then(Value::as_bool).unwrap_or(false);
    let kty = kty_name(
        str_field(jwk, "kty")?
            .ok_or_else(|| KvError::bad_parameter("Property 'kty' is required."))?,
        vault.managed_hsm,
    )?;
    let (material, kty): (Material, &'static str) = if let Some(blob) = bytes_field(jwk, "key_hsm")?
    {
        import_transferred(vault, ctx, kty, jwk, &blob)?
    } else if kty == "oct-HSM" {
        return Err(KvError::bad_parameter(
            "An oct-HSM key can be imported only as a key transfer blob (key_hsm).",
        ));
    } else if kty.starts_with("RSA") {
        let parts: Vec<Vec<u8>> = ["n", "e", "d", "p", "q", "dp", "dq", "qi"]
            .iter()
            .map(|f| required_bytes(jwk, f))
            .collect::<KvResult<_>>()?;
        let m = crypto::import_rsa(&RsaJwk {
            n: &parts[0],
            e: &parts[1],
            d: &parts[2],
            p: &parts[3],
            q: &parts[4],
            dp: &parts[5],
            dq: &parts[6],
            qi: &parts[7],
        })
        .map_err(|e| KvError::bad_parameter(e.0))?;
        (
            m,
            if hsm || kty == "RSA-HSM" {
                "RSA-HSM"
            } else {
                "RSA"
            },
        )
    } else {
        let crv = str_field(jwk, "crv")?
            .ok_or_else(|| KvError::bad_parameter("Property 'crv' is required."))?;
        let m = crypto::import_ec(
            crv,
            &required_bytes(jwk, "d")?,
            &required_bytes(jwk, "x")?,
            &required_bytes(jwk, "y")?,
        )
        .map_err(|e| KvError::bad_parameter(e.0))?;
        (
            m,
            if hsm || kty == "EC-HSM" {
                "EC-HSM"
            } else {
                "EC"
            },
        )
    };
    let version = KeyVersion {
        id: new_version_id(),
        kty,
        material,
        key_ops: key_ops(jwk, kty)?.unwrap_or_else(|| model::default_ops(kty)),
        attrs: new_attrs(body)?,
        tags: tags(body)?.unwrap_or_default(),
    };
    let out = version.bundle(&ctx.base, name)?;
    insert_version(vault, name, version);
    Ok(out)
}

/// BYOK: the target key of a transfer blob, unwrapped with the KEK it names.
fn import_transferred(
    vault: &Vault,
    ctx: &Ctx,
    kty: &'static str,
    jwk: &Value,
    blob: &[u8],
) -> KvResult<(Material, &'static str)> {
    if !kty.ends_with("-HSM") {
        return Err(KvError::bad_parameter(format!(
            "A key transfer blob imports an HSM key: use kty {kty}-HSM."
        )));
    }
    let opened = super::byok::open(vault, &ctx.base, blob)?;
    tracing::debug!(kek = %opened.kek_name, "key transfer blob opened");
    let material = if kty == "oct-HSM" {
        symmetric::import_oct(&opened.target)
    } else {
        crypto::import_pkcs8(kty, &opened.target)
    }
    .map_err(|e| KvError::bad_parameter(e.0))?;
    match (&material, kty) {
        (Material::Rsa { .. }, "RSA-HSM") | (Material::Oct { .. }, "oct-HSM") => {}
        (Material::Ec { curve, .. }, "EC-HSM") => {
            if let Some(crv) = str_field(jwk, "crv")?
                && crv != *curve
            {
                return Err(KvError::bad_parameter(format!(
                    "The transferred key is on {curve}, not {crv}."
                )));
            }
        }
        _ => {
            return Err(KvError::bad_parameter(format!(
                "The transferred key is not a {kty} key."
            )));
        }
    }
    Ok((material, kty))
}

fn update(
    vault: &mut Vault,
    ctx: &Ctx,
    name: &str,
    version: &str,
    body: &Value,
) -> KvResult<Value> {
    let item = vault
        .keys
        .get_mut(name)
        .ok_or_else(|| KvError::key_not_found(name))?;
    let v = item.version_mut(version)?;
    let new_ops = key_ops(body, v.kty)?;
    let new_tags = tags(body)?;
    if let Some(a) = body.get("attributes").filter(|a| !a.is_null()) {
        match a.get("enabled") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => v.attrs.enabled = *b,
            Some(_) => {
                return Err(KvError::bad_parameter(
                    "Property 'enabled' must be a boolean.",
                ));
            }
        }
        if a.get("nbf").is_some() {
            v.attrs.nbf = int_field(a, "nbf")?;
        }
        if a.get("exp").is_some() {
            v.attrs.exp = int_field(a, "exp")?;
        }
    }
    if let Some(ops) = new_ops {
        v.key_ops = ops;
    }
    if let Some(t) = new_tags {
        v.tags = t;
    }
    v.attrs.updated = model::now();
    v.bundle(&ctx.base, name)
}

/// Pages `items` by `maxresults` and `$skiptoken`, linking the next page.
fn paged(ctx: &Ctx, path: &str, items: Vec<Value>) -> KvResult<Value> {
    let max = match ctx.params.get("maxresults") {
        None => MAX_RESULTS,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_RESULTS).contains(&n) => n,
            _ => {
                return Err(KvError::bad_parameter(format!(
                    "maxresults must be between 1 and {MAX_RESULTS}."
                )));
            }
        },
    };
    let start = match ctx.params.get("$skiptoken") {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|s| *s <= items.len())
            .ok_or_else(|| KvError::bad_parameter("Invalid $skiptoken."))?,
    };
    let end = (start + max).min(items.len());
    let next = if end < items.len() {
        Value::from(format!(
            "{}{path}?api-version={}&$skiptoken={end}&maxresults={max}",
            ctx.base, ctx.api_version
        ))
    } else {
        Value::Null
    };
    Ok(json!({"value": items[start..end].to_vec(), "nextLink": next}))
}

fn list_keys(vault: &Vault, ctx: &Ctx) -> KvResult<Value> {
    let mut items = Vec::with_capacity(vault.keys.len());
    for (name, item) in &vault.keys {
        items.push(
            item.latest()?
                .properties(format!("{}/keys/{name}", ctx.base)),
        );
    }
    paged(ctx, "/keys", items)
}

fn list_versions(vault: &Vault, ctx: &Ctx, name: &str) -> KvResult<Value> {
    let item = item(vault, name)?;
    let items = item
        .versions
        .iter()
        .map(|v| v.properties(v.kid(&ctx.base, name)))
        .collect();
    paged(ctx, &format!("/keys/{name}/versions"), items)
}

fn list_deleted(vault: &Vault, ctx: &Ctx) -> KvResult<Value> {
    let items = vault
        .deleted
        .values()
        .map(|d| d.properties(&ctx.base))
        .collect::<KvResult<Vec<_>>>()?;
    paged(ctx, "/deletedkeys", items)
}

fn rotate(vault: &mut Vault, ctx: &Ctx, name: &str) -> KvResult<Value> {
    let item = vault
        .keys
        .get_mut(name)
        .ok_or_else(|| KvError::key_not_found(name))?;
    let latest = item.latest()?.clone();
    let material = match &latest.material {
        Material::Rsa { .. } => {
            let bits = crypto::rsa_bits(&latest.material).unwrap_or(2048);
            crypto::generate_rsa(bits as i64)
        }
        Material::Ec { curve, .. } => crypto::generate_ec(curve),
        Material::Oct { key } => symmetric::generate_oct(key.len() as i64 * 8),
    }
    .map_err(|e| KvError::internal(e.0))?;
    let mut attrs = Attrs::new(latest.attrs.enabled, None, None);
    if let Some(expiry) = item
        .rotation_policy
        .as_ref()
        .and_then(|p| p.expiry_time.as_deref())
    {
        attrs.exp = model::iso_duration_secs(expiry).map(|d| attrs.created + d);
    }
    let version = KeyVersion {
        id: new_version_id(),
        material,
        attrs,
        ..latest
    };
    let out = version.bundle(&ctx.base, name)?;
    item.versions.push(version);
    Ok(out)
}

fn put_policy(vault: &mut Vault, ctx: &Ctx, name: &str, body: &Value) -> KvResult<Value> {
    let item = vault
        .keys
        .get_mut(name)
        .ok_or_else(|| KvError::key_not_found(name))?;
    let expiry_time = match body.get("attributes").filter(|a| !a.is_null()) {
        Some(a) => str_field(a, "expiryTime")?.map(str::to_string),
        None => None,
    };
    if let Some(e) = &expiry_time {
        let secs = model::iso_duration_secs(e).ok_or_else(|| {
            KvError::bad_parameter(format!("expiryTime '{e}' is not an ISO 8601 duration."))
        })?;
        if secs < 28 * 86_400 {
            return Err(KvError::bad_parameter(
                "expiryTime must be at least 28 days (P28D).",
            ));
        }
    }
    let actions = match body.get("lifetimeActions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(KvError::bad_parameter(
                "Property 'lifetimeActions' must be an array.",
            ));
        }
    };
    let mut normalized = Vec::with_capacity(actions.len());
    for a in &actions {
        let kind = a
            .get("action")
            .and_then(|x| x.get("type"))
            .and_then(Value::as_str)
            .ok_or_else(|| KvError::bad_parameter("Each lifetime action needs action.type."))?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "rotate" => "Rotate",
            "notify" => "Notify",
            _ => {
                return Err(KvError::bad_parameter(format!(
                    "Invalid lifetime action type: {kind}."
                )));
            }
        };
        let trigger = a.get("trigger").cloned().unwrap_or(json!({}));
        let after = str_field(&trigger, "timeAfterCreate")?;
        let before = str_field(&trigger, "timeBeforeExpiry")?;
        let (field, value) = match (after, before) {
            (Some(v), None) => ("timeAfterCreate", v),
            (None, Some(v)) => ("timeBeforeExpiry", v),
            _ => {
                return Err(KvError::bad_parameter(
                    "A lifetime action trigger needs exactly one of timeAfterCreate or timeBeforeExpiry.",
                ));
            }
        };
        if model::iso_duration_secs(value).is_none() {
            return Err(KvError::bad_parameter(format!(
                "{field} '{value}' is not an ISO 8601 duration."
            )));
        }
        if field == "timeBeforeExpiry" && expiry_time.is_none() {
            return Err(KvError::bad_parameter(
                "timeBeforeExpiry needs attributes.expiryTime.",
            ));
        }
        normalized.push(json!({"trigger": {(field): value}, "action": {"type": kind}}));
    }
    let t = model::now();
    let created = item.rotation_policy.as_ref().map_or(t, |p| p.created);
    item.rotation_policy = Some(RotationPolicy {
        lifetime_actions: normalized,
        expiry_time,
        created,
        updated: t,
    });
    Ok(item.policy_json(&ctx.base))
}

fn delete(vault: &mut Vault, ctx: &Ctx, name: &str) -> KvResult<Value> {
    let item = vault
        .keys
        .remove(name)
        .ok_or_else(|| KvError::key_not_found(name))?;
    let t = model::now();
    let d = Deleted {
        item,
        deleted_date: t,
        scheduled_purge_date: t + model::RECOVERABLE_DAYS * 86_400,
    };
    let out = d.bundle(&ctx.base)?;
    vault.deleted.insert(name.to_string(), d);
    Ok(out)
}

fn recover(vault: &mut Vault, ctx: &Ctx, name: &str) -> KvResult<Value> {
    if vault.keys.contains_key(name) {
        return Err(KvError::conflict(format!(
            "Key {name} already exists and is not deleted."
        )));
    }
    let d = vault
        .deleted
        .remove(name)
        .ok_or_else(|| KvError::deleted_key_not_found(name))?;
    let out = d.item.latest()?.bundle(&ctx.base, name)?;
    vault.keys.insert(name.to_string(), d.item);
    Ok(out)
}

fn key_operation(
    vault: &Vault,
    ctx: &Ctx,
    name: &str,
    version: &str,
    op: &str,
    body: &Value,
) -> KvResult<Value> {
    let canonical = match op {
        "encrypt" => "encrypt",
        "decrypt" => "decrypt",
        "wrapkey" => "wrapKey",
        "unwrapkey" => "unwrapKey",
        "sign" => "sign",
        "verify" => "verify",
        other => {
            return Err(KvError::not_found(format!(
                "Operation {other} is not supported by the Key Vault keys emulator."
            )));
        }
    };
    let v = item(vault, name)?.version(version)?;
    v.check_op(canonical)?;
    let alg = str_field(body, "alg")?
        .ok_or_else(|| KvError::bad_parameter("Property 'alg' is required."))?;
    let bad = |e: crypto::CryptoError| KvError::bad_parameter(e.0);
    let kid = v.kid(&ctx.base, name);
    if let Material::Oct { .. } = v.material {
        return symmetric_operation(&v.material, canonical, alg, body, kid);
    }
    let result = match canonical {
        "encrypt" | "wrapKey" => {
            crypto::rsa_encrypt(&v.material, alg, &required_bytes(body, "value")?).map_err(bad)?
        }
        "decrypt" | "unwrapKey" => {
            crypto::rsa_decrypt(&v.material, alg, &required_bytes(body, "value")?).map_err(bad)?
        }
        "sign" => crypto::sign(&v.material, alg, &required_bytes(body, "value")?).map_err(bad)?,
        _ => {
            let ok = crypto::verify(
                &v.material,
                alg,
                &required_bytes(body, "digest")?,
                &required_bytes(body, "value")?,
            )
            .map_err(bad)?;
            return Ok(json!({"value": ok}));
        }
    };
    Ok(json!({"kid": kid, "value": model::b64url(&result)}))
}

/// encrypt/decrypt (AES-GCM) and wrapKey/unwrapKey (AES-KW) with an `oct-HSM` key. GCM's IV
/// is drawn by the HSM and returned with the tag; decrypt takes both back.
fn symmetric_operation(
    m: &Material,
    op: &str,
    alg: &str,
    body: &Value,
    kid: String,
) -> KvResult<Value> {
    let bad = |e: crypto::CryptoError| KvError::bad_parameter(e.0);
    let gcm = alg.ends_with("GCM");
    match op {
        "encrypt" | "decrypt" if !gcm => Err(KvError::bad_parameter(format!(
            "Algorithm {alg} cannot {op} with an oct-HSM key: use A128GCM or A256GCM."
        ))),
        "wrapKey" | "unwrapKey" if gcm || !alg.ends_with("KW") => Err(KvError::bad_parameter(
            format!("Algorithm {alg} cannot {op} with an oct-HSM key: use A128KW or A256KW."),
        )),
        "encrypt" => {
            if bytes_field(body, "iv")?.is_some() {
                return Err(KvError::bad_parameter(
                    "The iv of an AES-GCM encryption is generated by the HSM; send none.",
                ));
            }
            let aad = bytes_field(body, "aad")?.unwrap_or_default();
            let sealed = symmetric::gcm_encrypt(m, alg, &required_bytes(body, "value")?, &aad)
                .map_err(bad)?;
            let mut out = json!({
                "kid": kid,
                "value": model::b64url(&sealed.ciphertext),
                "iv": model::b64url(&sealed.iv),
                "tag": model::b64url(&sealed.tag),
            });
            if !aad.is_empty() {
                out["aad"] = model::b64url(&aad).into();
            }
            Ok(out)
        }
        "decrypt" => {
            let plaintext = symmetric::gcm_decrypt(
                m,
                alg,
                &required_bytes(body, "value")?,
                &required_bytes(body, "iv")?,
                &required_bytes(body, "tag")?,
                &bytes_field(body, "aad")?.unwrap_or_default(),
            )
            .map_err(bad)?;
            Ok(json!({"kid": kid, "value": model::b64url(&plaintext)}))
        }
        "wrapKey" => {
            let wrapped =
                symmetric::kw_wrap(m, alg, &required_bytes(body, "value")?).map_err(bad)?;
            Ok(json!({"kid": kid, "value": model::b64url(&wrapped)}))
        }
        "unwrapKey" => {
            let key = symmetric::kw_unwrap(m, alg, &required_bytes(body, "value")?).map_err(bad)?;
            Ok(json!({"kid": kid, "value": model::b64url(&key)}))
        }
        _ => Err(KvError::bad_parameter(format!("oct-HSM keys do not {op}."))),
    }
}
