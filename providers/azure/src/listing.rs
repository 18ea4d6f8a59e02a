//! Inventory: Key Vault's key list, page by page, following its `nextLink` behind keygate's
//! page token; keys keygate did not create are listed too, without a keygate id.
//!
//! A page token carries the `nextLink`, which must point into this vault: a token that names
//! another host is refused rather than followed (the client would send its bearer token there).

use crate::algorithms;
use crate::keys::{self, tag};
use crate::names;
use crate::provider::AzureKeyVaultProvider;
use azure_core::http::Url;
use azure_core::http::pager::{PagerContinuation, PagerOptions};
use azure_security_keyvault_keys::models::KeyClientListKeyPropertiesOptions;
use futures::TryStreamExt;
use keygate_provider::kit;
use keygate_provider::{ListedKey, Listing, PageRequest, ProviderError, Replied, Result};

/// Key Vault's largest page.
const MAX_PAGE: usize = 25;

pub(crate) async fn list(
    p: &AzureKeyVaultProvider,
    page: &PageRequest,
) -> Result<Replied<Listing>> {
    const OP: &str = "list keys";
    let continuation = match kit::decode_token(&p.name, &page.page_token)? {
        None => None,
        Some(link) => Some(PagerContinuation::Link(next_link(p, &link)?)),
    };
    let options = KeyClientListKeyPropertiesOptions {
        maxresults: Some(kit::page_size(page, MAX_PAGE) as i32),
        method_options: PagerOptions {
            continuation,
            ..Default::default()
        },
    };
    let sdk = |e| crate::errors::from_sdk(p.at(OP, ""), e);
    let mut pages = p
        .client
        .list_key_properties(Some(options))
        .map_err(sdk)?
        .into_pages();
    let Some(response) = pages.try_next().await.map_err(sdk)? else {
        return Ok(Replied::local(Listing::default()));
    };
    let request_id = crate::errors::request_id(response.headers());
    let result = response.into_model().map_err(sdk)?;
    let mut keys = Vec::with_capacity(result.value.len());
    for item in &result.value {
        let Some((_, name, _)) = item.kid.as_deref().and_then(names::parse_kid) else {
            continue;
        };
        let uri = p.key_uri(name);
        let tags = item.tags.clone().unwrap_or_default();
        let tagged = tags.get(tag::ALGORITHM).and_then(|a| a.parse().ok());
        // keygate's keys say their algorithm in a tag; others are read to find it.
        let algorithm = match tagged {
            Some(a) => Some(a),
            None => match p.client.get_key(name, None).await {
                Ok(r) => r.into_model().ok().and_then(|k| {
                    k.key
                        .as_ref()
                        .and_then(|jwk| algorithms::from_jwk(jwk, None))
                }),
                // Deleted between the list and the read: simply gone.
                Err(e) if e.http_status().map(u16::from) == Some(404) => continue,
                Err(e) => return Err(crate::errors::from_sdk(p.at(OP, uri.as_str()), e)),
            },
        };
        keys.push(ListedKey {
            uri,
            algorithm,
            state: keys::state(item.attributes.as_ref().and_then(|a| a.enabled)),
            keygate_id: tags.get(tag::KEY_ID).cloned(),
        });
    }
    let next_page_token = match pages.into_continuation() {
        Some(next) => kit::encode_token(&String::from(next)),
        None => String::new(),
    };
    Ok(Replied::with_request_id(
        Listing {
            keys,
            next_page_token,
        },
        request_id,
    ))
}

/// The `nextLink` in a page token, if it points into this vault over HTTPS.
fn next_link(p: &AzureKeyVaultProvider, link: &str) -> Result<Url> {
    let url = Url::parse(link).ok().filter(|u| {
        let host = match (u.host_str(), u.port()) {
            (Some(h), Some(port)) => format!("{h}:{port}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        };
        u.scheme() == "https" && host.eq_ignore_ascii_case(&p.host)
    });
    url.ok_or_else(|| {
        ProviderError::invalid(
            &p.name,
            "page token does not continue a listing of this vault; list again from the first page (an empty token)",
        )
    })
}
