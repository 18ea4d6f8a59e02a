//! Inventory: LIST the mount, then read each key of the page for its type and state.

use crate::algorithms;
use crate::keys::state_of;
use crate::provider::{SCHEME, VaultProvider};
use keygate_provider::kit;
use keygate_provider::{KeyUri, ListedKey, Listing, PageRequest, ProviderError, Replied, Result};
use reqwest::Method;
use serde_json::Value;

pub(crate) async fn list(p: &VaultProvider, page: &PageRequest) -> Result<Replied<Listing>> {
    let mount_uri = KeyUri::new(format!("{SCHEME}://{}", p.mount));
    let op = p.op("list keys", &mount_uri);
    // Checked before the LIST, so a foreign token is refused even on an empty mount.
    kit::decode_token(&p.name, &page.page_token)?;
    let list =
        Method::from_bytes(b"LIST").map_err(|e| ProviderError::internal(&p.name, e.to_string()))?;
    let reply = match p.send(&op, list, "keys", None).await {
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
    names.dedup();
    let (names, next_page_token) = kit::page_after(&p.name, names, String::as_str, page)?;
    let mut keys = Vec::new();
    // LIST gives names only; each key is read for its type and state.
    for name in &names {
        let uri = p.uri_for(name);
        let read = p.op("list keys", &uri);
        let data = match p
            .send(&read, Method::GET, &format!("keys/{name}"), None)
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
    Ok(Replied::with_request_id(
        Listing {
            keys,
            next_page_token,
        },
        reply.request_id,
    ))
}
