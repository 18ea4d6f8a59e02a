//! Request dispatch: one fallback handler maps `/v1/{name}[:verb]` to the
//! Cloud KMS method it names, since custom verbs (`:encrypt`) do not fit a
//! path router.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use std::net::SocketAddr;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use super::Shared;
use super::audit::Call;
use super::errors::{ApiError, ApiResult, Code};
use super::json::{self as pj, ALGORITHM, PROTECTION_LEVEL, PUBLIC_KEY_FORMAT, PURPOSE, STATE};
use super::model::{self, CryptoKey, KeyRing, Store};
use super::names::{self, Resource, Tail, Target};
use super::{import, ops};

/// Largest plaintext / AAD / MAC data Cloud KMS accepts: 64 KiB.
pub const MAX_DATA: usize = 64 * 1024;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

type Params = HashMap<String, String>;

pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    query: Result<Query<Params>, QueryRejection>,
    body: Bytes,
) -> Response {
    let params = match query {
        Ok(Query(q)) => q,
        Err(e) => return ApiError::invalid(format!("Invalid query string: {e}")).into_response(),
    };
    if let Some(f) = shared.hooks.take_failure() {
        return ApiError::injected(f.status, f.retry_after_secs).into_response();
    }
    let int_enums = params
        .get("$alt")
        .is_some_and(|alt| alt.contains("enum-encoding=int"));
    let target = match names::parse_path(uri.path()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let audited = shared
        .audit
        .as_ref()
        .and_then(|log| Some((log, Call::of(&target, method.as_str())?)));
    let result = dispatch(&shared, &method, target, uri.path(), &params, &body);
    if let Some((log, call)) = audited {
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
        log.record(&call, peer, user_agent, result.as_ref());
    }
    match result {
        Ok(mut v) => {
            if int_enums {
                pj::enums_to_int(&mut v);
            }
            axum::Json(v).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn parse_body(body: &Bytes) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::invalid(
            "Invalid JSON payload received: expected an object.",
        ))
    }
}

fn dispatch(
    shared: &Shared,
    method: &Method,
    target: Target,
    path: &str,
    q: &Params,
    body: &Bytes,
) -> ApiResult<Value> {
    let verb = target.verb.as_deref();
    let m = method.as_str();
    let mut guard = shared
        .store
        .lock()
        .map_err(|_| ApiError::internal("Emulator state is poisoned."))?;
    let store: &mut Store = &mut guard;
    let hooks = &shared.hooks;
    match (target.resource, target.tail, m, verb) {
        (Resource::Location { parent }, Tail::KeyRings, "GET", None) => {
            list_key_rings(store, &parent, q)
        }
        (Resource::Location { parent }, Tail::KeyRings, "POST", None) => {
            create_key_ring(store, &parent, q)
        }
        (Resource::KeyRing { name }, Tail::None, "GET", None) => Ok(store.ring(&name)?.to_json()),
        (Resource::KeyRing { name }, Tail::CryptoKeys, "GET", None) => {
            list_crypto_keys(store, &name, q)
        }
        (Resource::KeyRing { name }, Tail::CryptoKeys, "POST", None) => {
            create_crypto_key(store, &name, q, &parse_body(body)?)
        }
        (Resource::KeyRing { name }, Tail::ImportJobs, "GET", None) => {
            listing("importJobs", import::list_items(store, &name)?, q)
        }
        (Resource::KeyRing { name }, Tail::ImportJobs, "POST", None) => {
            import::create(store, &name, q, &parse_body(body)?)
        }
        (Resource::ImportJob { ring, id }, Tail::None, "GET", None) => {
            import::get(store, &ring, &id)
        }
        (Resource::CryptoKey { ring, id }, Tail::Versions, "POST", Some("import")) => {
            import::import_version(store, &ring, &id, &parse_body(body)?)
        }
        (Resource::CryptoKey { ring, id }, Tail::None, "GET", None) => {
            Ok(store.key_mut(&ring, &id)?.to_json())
        }
        (Resource::CryptoKey { ring, id }, Tail::None, "PATCH", None) => {
            patch_crypto_key(store.key_mut(&ring, &id)?, q, &parse_body(body)?)
        }
        (Resource::CryptoKey { ring, id }, Tail::None, "POST", Some("updatePrimaryVersion")) => {
            update_primary(store.key_mut(&ring, &id)?, &parse_body(body)?)
        }
        (Resource::CryptoKey { ring, id }, Tail::None, "POST", Some("encrypt")) => {
            ops::encrypt(store.key_mut(&ring, &id)?, None, &parse_body(body)?, hooks)
        }
        (Resource::CryptoKey { ring, id }, Tail::None, "POST", Some("decrypt")) => {
            ops::decrypt(store.key_mut(&ring, &id)?, &parse_body(body)?, hooks)
        }
        (Resource::CryptoKey { ring, id }, Tail::Versions, "GET", None) => {
            list_versions(store.key_mut(&ring, &id)?, q)
        }
        (Resource::CryptoKey { ring, id }, Tail::Versions, "POST", None) => {
            let key = store.key_mut(&ring, &id)?;
            if key.import_only {
                return Err(ApiError::precondition(format!(
                    "{} is import-only: new versions must be imported.",
                    key.name
                )));
            }
            let n = key.add_version(Utc::now())?;
            version_json(key, n)
        }
        (Resource::Version { ring, key, number }, tail, m, verb) => {
            let key = store.key_mut(&ring, &key)?;
            key.version(number)?;
            match (tail, m, verb) {
                (Tail::None, "GET", None) => version_json(key, number),
                (Tail::None, "PATCH", None) => patch_version(key, number, q, &parse_body(body)?),
                (Tail::None, "POST", Some("destroy")) => destroy(key, number),
                (Tail::None, "POST", Some("restore")) => restore(key, number),
                (Tail::None, "POST", Some("encrypt")) => {
                    ops::encrypt(key, Some(number), &parse_body(body)?, hooks)
                }
                (Tail::None, "POST", Some("asymmetricSign")) => {
                    ops::asymmetric_sign(key, number, &parse_body(body)?, hooks)
                }
                (Tail::None, "POST", Some("asymmetricDecrypt")) => {
                    ops::asymmetric_decrypt(key, number, &parse_body(body)?, hooks)
                }
                (Tail::None, "POST", Some("macSign")) => {
                    ops::mac_sign(key, number, &parse_body(body)?, hooks)
                }
                (Tail::None, "POST", Some("macVerify")) => {
                    ops::mac_verify(key, number, &parse_body(body)?, hooks)
                }
                (Tail::PublicKey, "GET", None) => {
                    let format = pj::enum_query(
                        q.get("publicKeyFormat"),
                        "publicKeyFormat",
                        PUBLIC_KEY_FORMAT,
                    )?;
                    ops::get_public_key(key, number, format, hooks)
                }
                _ => Err(unimplemented(m, path)),
            }
        }
        _ => Err(unimplemented(m, path)),
    }
}

fn unimplemented(method: &str, path: &str) -> ApiError {
    ApiError::new(
        Code::Unimplemented,
        format!("{method} {path} is not implemented by the Cloud KMS emulator."),
    )
}

fn version_json(key: &CryptoKey, number: u32) -> ApiResult<Value> {
    Ok(key
        .version(number)?
        .to_json(&key.version_name(number), key.protection_level))
}

/// Offset-based paging: the page token is the decimal index of the next item.
fn page<T>(items: &[T], q: &Params) -> ApiResult<(std::ops::Range<usize>, Option<String>)> {
    if q.get("filter").is_some_and(|f| !f.is_empty()) {
        return Err(ApiError::invalid(
            "The emulator does not support list filters.",
        ));
    }
    let size = match q.get("pageSize").map(String::as_str) {
        None | Some("") | Some("0") => DEFAULT_PAGE,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("Invalid pageSize."))?
            .min(MAX_PAGE),
    };
    let start = match q.get("pageToken").map(String::as_str) {
        None | Some("") => 0,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|s| *s <= items.len())
            .ok_or_else(|| ApiError::invalid("Invalid pageToken."))?,
    };
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((start..end, next))
}

fn listing(field: &str, items: Vec<Value>, q: &Params) -> ApiResult<Value> {
    let total = items.len();
    let (range, next) = page(&items, q)?;
    let mut out = json!({ (field): items[range].to_vec(), "totalSize": total });
    if let Some(t) = next {
        out["nextPageToken"] = t.into();
    }
    Ok(out)
}

fn list_key_rings(store: &Store, parent: &str, q: &Params) -> ApiResult<Value> {
    let prefix = format!("{parent}/keyRings/");
    let items = store
        .rings
        .values()
        .filter(|r| r.name.starts_with(&prefix))
        .map(KeyRing::to_json)
        .collect();
    listing("keyRings", items, q)
}

fn create_key_ring(store: &mut Store, parent: &str, q: &Params) -> ApiResult<Value> {
    let id = q.get("keyRingId").map(String::as_str).unwrap_or_default();
    if !names::valid_id(id) {
        return Err(ApiError::invalid(format!(
            "Invalid keyRingId '{id}': must match [a-zA-Z0-9_-]{{1,63}}."
        )));
    }
    let name = names::ring_name(parent, id);
    if store.rings.contains_key(&name) {
        return Err(ApiError::new(
            Code::AlreadyExists,
            format!("KeyRing {name} already exists."),
        ));
    }
    let ring = KeyRing {
        name: name.clone(),
        create_time: Utc::now(),
        keys: BTreeMap::new(),
        import_jobs: BTreeMap::new(),
    };
    let out = ring.to_json();
    store.rings.insert(name, ring);
    Ok(out)
}

fn list_crypto_keys(store: &mut Store, ring: &str, q: &Params) -> ApiResult<Value> {
    let ids: Vec<String> = store.ring(ring)?.keys.keys().cloned().collect();
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.push(store.key_mut(ring, &id)?.to_json());
    }
    listing("cryptoKeys", items, q)
}

fn list_versions(key: &CryptoKey, q: &Params) -> ApiResult<Value> {
    let items = key
        .versions
        .iter()
        .map(|v| v.to_json(&key.version_name(v.number), key.protection_level))
        .collect();
    listing("cryptoKeyVersions", items, q)
}

fn labels(body: &Value) -> ApiResult<BTreeMap<String, String>> {
    match body.get("labels") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(ApiError::invalid(format!(
                    "Invalid value at 'labels[{k}]': expected a string."
                ))),
            })
            .collect(),
        Some(_) => Err(ApiError::invalid(
            "Invalid value at 'labels': expected a map.",
        )),
    }
}

fn rotation_fields(body: &Value) -> ApiResult<(Option<i64>, Option<chrono::DateTime<Utc>>)> {
    let period = pj::string_field(body, "rotationPeriod")?
        .map(|s| model::parse_duration("rotationPeriod", s))
        .transpose()?;
    if period.is_some_and(|p| p < 86_400) {
        return Err(ApiError::invalid(
            "rotationPeriod must be at least 24 hours.",
        ));
    }
    let next = pj::string_field(body, "nextRotationTime")?
        .map(|s| model::parse_ts("nextRotationTime", s))
        .transpose()?;
    Ok((period, next))
}

fn create_crypto_key(store: &mut Store, ring: &str, q: &Params, body: &Value) -> ApiResult<Value> {
    let id = q.get("cryptoKeyId").map(String::as_str).unwrap_or_default();
    if !names::valid_id(id) {
        return Err(ApiError::invalid(format!(
            "Invalid cryptoKeyId '{id}': must match [a-zA-Z0-9_-]{{1,63}}."
        )));
    }
    let name = names::key_name(ring, id);
    let r = store
        .rings
        .get_mut(ring)
        .ok_or_else(|| ApiError::not_found(&format!("KeyRing {ring}")))?;
    if r.keys.contains_key(id) {
        return Err(ApiError::new(
            Code::AlreadyExists,
            format!("CryptoKey {name} already exists."),
        ));
    }
    let purpose = pj::enum_field(body, "purpose", PURPOSE)?
        .ok_or_else(|| ApiError::invalid("CryptoKey.purpose is required."))?;
    let template = body.get("versionTemplate").cloned().unwrap_or(json!({}));
    let algorithm = match pj::enum_field(&template, "algorithm", ALGORITHM)? {
        Some(a) => a,
        None if purpose == "ENCRYPT_DECRYPT" => "GOOGLE_SYMMETRIC_ENCRYPTION",
        None => {
            return Err(ApiError::invalid(
                "versionTemplate.algorithm is required for this purpose.",
            ));
        }
    };
    match model::algorithm_purpose(algorithm) {
        Some(p) if p == purpose => {}
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "Algorithm {algorithm} is not compatible with purpose {purpose}."
            )));
        }
        None => {
            return Err(ApiError::invalid(format!(
                "Purpose {purpose} is not supported by the emulator."
            )));
        }
    }
    let protection_level =
        pj::enum_field(&template, "protectionLevel", PROTECTION_LEVEL)?.unwrap_or("SOFTWARE");
    if !matches!(protection_level, "SOFTWARE" | "HSM") {
        return Err(ApiError::invalid(format!(
            "Protection level {protection_level} is not supported by the emulator."
        )));
    }
    let (rotation_period_secs, next_rotation_time) = rotation_fields(body)?;
    if (rotation_period_secs.is_some() || next_rotation_time.is_some())
        && purpose != "ENCRYPT_DECRYPT"
    {
        return Err(ApiError::invalid(
            "Automatic rotation is only supported for purpose ENCRYPT_DECRYPT.",
        ));
    }
    let destroy_window_secs = pj::string_field(body, "destroyScheduledDuration")?
        .map(|s| model::parse_duration("destroyScheduledDuration", s))
        .transpose()?
        .unwrap_or(model::DEFAULT_DESTROY_WINDOW_SECS);
    let import_only = body
        .get("importOnly")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let skip_initial = import_only
        || q.get("skipInitialVersionCreation")
            .is_some_and(|v| v == "true");
    let now = Utc::now();
    let mut key = CryptoKey {
        name,
        purpose,
        algorithm,
        protection_level,
        create_time: now,
        rotation_period_secs,
        next_rotation_time,
        labels: labels(body)?,
        destroy_window_secs,
        import_only,
        primary: None,
        versions: Vec::new(),
    };
    if !skip_initial {
        let n = key.add_version(now)?;
        if purpose == "ENCRYPT_DECRYPT" {
            key.primary = Some(n);
        }
    }
    let out = key.to_json();
    r.keys.insert(id.to_string(), key);
    Ok(out)
}

fn update_mask(q: &Params) -> ApiResult<Vec<String>> {
    let mask = q.get("updateMask").map(String::as_str).unwrap_or_default();
    if mask.is_empty() {
        return Err(ApiError::invalid("updateMask is required."));
    }
    Ok(mask.split(',').map(|s| s.trim().to_string()).collect())
}

fn patch_crypto_key(key: &mut CryptoKey, q: &Params, body: &Value) -> ApiResult<Value> {
    let body_key = body.get("cryptoKey").unwrap_or(body);
    let mask = update_mask(q)?;
    let (period, next) = rotation_fields(body_key)?;
    for path in &mask {
        match path.as_str() {
            "labels" => key.labels = labels(body_key)?,
            "rotationPeriod" | "rotation_period" => {
                if key.purpose != "ENCRYPT_DECRYPT" && period.is_some() {
                    return Err(ApiError::invalid(
                        "Automatic rotation is only supported for purpose ENCRYPT_DECRYPT.",
                    ));
                }
                key.rotation_period_secs = period;
            }
            "nextRotationTime" | "next_rotation_time" => {
                if key.purpose != "ENCRYPT_DECRYPT" && next.is_some() {
                    return Err(ApiError::invalid(
                        "Automatic rotation is only supported for purpose ENCRYPT_DECRYPT.",
                    ));
                }
                key.next_rotation_time = next;
            }
            "versionTemplate.algorithm" | "version_template.algorithm" => {
                let template = body_key
                    .get("versionTemplate")
                    .cloned()
                    .unwrap_or(json!({}));
                let alg = pj::enum_field(&template, "algorithm", ALGORITHM)?
                    .ok_or_else(|| ApiError::invalid("versionTemplate.algorithm is required."))?;
                if model::algorithm_purpose(alg) != Some(key.purpose) {
                    return Err(ApiError::invalid(format!(
                        "Algorithm {alg} is not compatible with purpose {}.",
                        key.purpose
                    )));
                }
                key.algorithm = alg;
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "updateMask path '{other}' cannot be updated on a CryptoKey."
                )));
            }
        }
    }
    key.settle(Utc::now())?;
    Ok(key.to_json())
}

fn update_primary(key: &mut CryptoKey, body: &Value) -> ApiResult<Value> {
    key.require_purpose("ENCRYPT_DECRYPT")?;
    let id = pj::string_field(body, "cryptoKeyVersionId")?
        .ok_or_else(|| ApiError::invalid("cryptoKeyVersionId is required."))?;
    let number: u32 = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("Invalid cryptoKeyVersionId '{id}'.")))?;
    let name = key.version_name(number);
    let v = key.version(number)?;
    if v.state != "ENABLED" {
        return Err(ApiError::precondition(format!(
            "{name} cannot be made primary: its state is {}, not ENABLED.",
            v.state
        )));
    }
    key.primary = Some(number);
    Ok(key.to_json())
}

fn patch_version(key: &mut CryptoKey, number: u32, q: &Params, body: &Value) -> ApiResult<Value> {
    let body_v = body.get("cryptoKeyVersion").unwrap_or(body);
    let mask = update_mask(q)?;
    let name = key.version_name(number);
    for path in &mask {
        if path != "state" {
            return Err(ApiError::invalid(format!(
                "updateMask path '{path}' cannot be updated on a CryptoKeyVersion."
            )));
        }
        let want = pj::enum_field(body_v, "state", STATE)?
            .ok_or_else(|| ApiError::invalid("cryptoKeyVersion.state is required."))?;
        if !matches!(want, "ENABLED" | "DISABLED") {
            return Err(ApiError::invalid(format!(
                "A CryptoKeyVersion state can only be set to ENABLED or DISABLED, not {want}."
            )));
        }
        let v = key.version_mut(number)?;
        if !matches!(v.state, "ENABLED" | "DISABLED") {
            return Err(ApiError::precondition(format!(
                "{name} is in state {}; only ENABLED or DISABLED versions can change state.",
                v.state
            )));
        }
        v.state = want;
    }
    version_json(key, number)
}

fn destroy(key: &mut CryptoKey, number: u32) -> ApiResult<Value> {
    let window = key.destroy_window_secs;
    let name = key.version_name(number);
    let v = key.version_mut(number)?;
    if !matches!(v.state, "ENABLED" | "DISABLED") {
        return Err(ApiError::precondition(format!(
            "{name} is in state {} and cannot be destroyed.",
            v.state
        )));
    }
    let now = Utc::now();
    v.state = "DESTROY_SCHEDULED";
    v.destroy_time = Some(now + chrono::Duration::seconds(window));
    key.settle(now)?;
    version_json(key, number)
}

fn restore(key: &mut CryptoKey, number: u32) -> ApiResult<Value> {
    let name = key.version_name(number);
    let v = key.version_mut(number)?;
    if v.state != "DESTROY_SCHEDULED" {
        return Err(ApiError::precondition(format!(
            "{name} is in state {}; only DESTROY_SCHEDULED versions can be restored.",
            v.state
        )));
    }
    v.state = "DISABLED";
    v.destroy_time = None;
    version_json(key, number)
}
