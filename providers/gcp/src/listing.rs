//! Inventory: every crypto key of every key ring in the instance's project and location,
//! keygate's or not (a key keygate created carries its id in the `keygate-key-id` label).
//!
//! keygate's page token holds the key ring and Cloud KMS's own page token within it, behind
//! the kit's token prefix.

use crate::keys;
use crate::labels;
use crate::names;
use crate::provider::GcpKmsProvider;
use keygate_provider::kit;
use keygate_provider::{ListedKey, Listing, PageRequest, ProviderError, Replied, Result};

const OP: &str = "list keys";

pub(crate) async fn list(p: &GcpKmsProvider, page: &PageRequest) -> Result<Replied<Listing>> {
    let (start_ring, mut token) = match kit::decode_token(&p.name, &page.page_token)? {
        None => (None, String::new()),
        Some(cursor) => match cursor.split_once('\n') {
            Some((ring, token)) => (Some(ring.to_string()), token.to_string()),
            None => return Err(foreign(p, &page.page_token)),
        },
    };
    let request_id = p.request_id();
    let rings = key_rings(p, &request_id).await?;
    let mut at = match &start_ring {
        None => 0,
        // Key rings are never deleted, but look the place up by order all the same.
        Some(ring) => rings.partition_point(|r| r < ring),
    };
    if start_ring.is_some() && rings.get(at) != start_ring.as_ref() {
        token.clear();
    }
    let size = kit::page_size(page, 1000);
    let mut keys = Vec::new();
    while at < rings.len() && keys.len() < size {
        let want = i32::try_from(size - keys.len()).unwrap_or(1000);
        let request = p
            .client
            .list_crypto_keys()
            .set_parent(&rings[at])
            .set_page_size(want)
            .set_page_token(std::mem::take(&mut token));
        let listed = p.call(OP, &rings[at], &request_id, request).await?.out;
        for key in listed.crypto_keys {
            // A key's versions give its state.
            let versions = p.versions(OP, &key.name, &request_id).await?;
            keys.push(ListedKey {
                uri: names::uri(&key.name),
                algorithm: keys::algorithm(&key),
                state: keys::state(&key, &versions),
                keygate_id: key
                    .labels
                    .get(labels::KEY_ID)
                    .and_then(|v| labels::unescape(v)),
            });
        }
        if listed.next_page_token.is_empty() {
            at += 1;
        } else {
            token = listed.next_page_token;
        }
    }
    let next_page_token = if at < rings.len() {
        kit::encode_token(&format!("{}\n{token}", rings[at]))
    } else {
        String::new()
    };
    Ok(Replied::with_request_id(
        Listing {
            keys,
            next_page_token,
        },
        Some(request_id),
    ))
}

fn foreign(p: &GcpKmsProvider, token: &str) -> ProviderError {
    let shown: String = token.chars().take(40).collect();
    ProviderError::invalid(
        &p.name,
        format!(
            "page token '{shown}' is not one this provider issued; list again from the first page (an empty token)"
        ),
    )
}

/// Every key ring of the location, sorted by name.
async fn key_rings(p: &GcpKmsProvider, request_id: &str) -> Result<Vec<String>> {
    let location = p.place.location_path();
    let mut rings = Vec::new();
    let mut token = String::new();
    loop {
        let request = p
            .client
            .list_key_rings()
            .set_parent(&location)
            .set_page_size(1000)
            .set_page_token(token);
        let page = p.call(OP, &location, request_id, request).await?.out;
        rings.extend(page.key_rings.into_iter().map(|r| r.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    rings.sort();
    Ok(rings)
}
