//! Inventory: every private and secret key on the token, keygate's grouped per key.

use crate::errors::OpError;
use crate::naming::VersionId;
use crate::ops;
use crate::provider::Pkcs11Provider;
use crate::uri::ObjectUri;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use keygate_provider::kit;
use keygate_provider::{
    Algorithm, ListedKey, Listing, PageRequest, ProviderKeyState, Replied, Result,
};
use std::collections::BTreeMap;

pub(crate) async fn list(p: &Pkcs11Provider, page: &PageRequest) -> Result<Replied<Listing>> {
    // Checked before the token is asked, so a foreign token is refused at once.
    kit::decode_token(&p.name, &page.page_token)?;
    let token = p.token_label.clone();
    let mut keys = p
        .run(
            || "list the token's keys".to_string(),
            move |s| list_blocking(s, &token),
        )
        .await?;
    keys.sort_by(|a, b| a.uri.as_str().cmp(b.uri.as_str()));
    keys.dedup_by(|a, b| a.uri == b.uri);
    let (keys, next_page_token) = kit::page_after(&p.name, keys, |k| k.uri.as_str(), page)?;
    Ok(Replied::local(Listing {
        keys,
        next_page_token,
    }))
}

/// Every private and secret key on the token: keygate's grouped per key, others one by one.
fn list_blocking(
    s: &cryptoki::session::Session,
    token: &str,
) -> std::result::Result<Vec<ListedKey>, OpError> {
    let mut keygate: BTreeMap<String, (Algorithm, u32, ProviderKeyState)> = BTreeMap::new();
    let mut foreign = Vec::new();
    for class in [ObjectClass::SECRET_KEY, ObjectClass::PRIVATE_KEY] {
        let handles = s.find_objects(&[Attribute::Token(true), Attribute::Class(class)])?;
        for handle in handles {
            let attrs = s.get_attributes(handle, &[AttributeType::Label, AttributeType::Id])?;
            let mut label = Vec::new();
            let mut id = Vec::new();
            for a in attrs {
                match a {
                    Attribute::Label(v) => label = v,
                    Attribute::Id(v) => id = v,
                    _ => {}
                }
            }
            let label = String::from_utf8_lossy(&label).into_owned();
            match VersionId::parse(&id).filter(|v| v.belongs_to(&label)) {
                Some(v) => {
                    let found = ops::Found {
                        handle,
                        class,
                        id: v,
                    };
                    let state = ops::enabled(s, &found)?;
                    let entry = keygate.entry(label).or_insert((v.algorithm, 0, state));
                    if v.version >= entry.1 {
                        *entry = (v.algorithm, v.version, state);
                    }
                }
                None => foreign.push(ListedKey {
                    uri: ObjectUri {
                        token: token.to_string(),
                        object: label,
                        id: Some(id),
                    }
                    .to_uri(),
                    // A foreign key's algorithm is not knowable from the token alone (RSA for
                    // signing or decryption, which hash…).
                    algorithm: None,
                    state: ProviderKeyState::Enabled,
                    keygate_id: None,
                }),
            }
        }
    }
    let mut keys: Vec<ListedKey> = keygate
        .into_iter()
        .map(|(key_id, (algorithm, _, state))| ListedKey {
            uri: ObjectUri::key(token, &key_id).to_uri(),
            algorithm: Some(algorithm),
            state,
            keygate_id: Some(key_id),
        })
        .collect();
    keys.extend(foreign);
    Ok(keys)
}
