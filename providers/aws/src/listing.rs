//! Inventory: ListKeys, each key described, with KMS's marker behind keygate's page token.

use crate::arn;
use crate::keys::{self, tag};
use crate::provider::AwsKmsProvider;
use keygate_provider::kit;
use keygate_provider::{ListedKey, Listing, PageRequest, ProviderError, Replied, Result};

pub(crate) async fn list(p: &AwsKmsProvider, page: &PageRequest) -> Result<Replied<Listing>> {
    const OP: &str = "list keys";
    let marker = kit::decode_token(&p.name, &page.page_token)?;
    let request = p
        .client
        .list_keys()
        .limit(kit::page_size(page, 1000) as i32)
        .set_marker(marker);
    let sent = p.call(OP, "", request.send()).await?;
    let out = sent.out;
    let mut keys = Vec::new();
    for entry in out.keys() {
        let Some(id) = entry.key_arn().or(entry.key_id()) else {
            continue;
        };
        // ListKeys lists only this account's keys: a safe place to learn the account.
        p.learn_account(id);
        let uri = arn::uri(id);
        // A key deleted between ListKeys and DescribeKey is simply gone.
        let metadata = match p.metadata(OP, &uri).await {
            Ok(r) => r.value,
            Err(ProviderError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let tags = p.tags(OP, metadata.key_id()).await?;
        keys.push(ListedKey {
            uri: arn::uri(metadata.arn().unwrap_or(id)),
            algorithm: keys::algorithm(&metadata, &tags),
            state: keys::state(&metadata),
            keygate_id: keys::tag_value(&tags, tag::KEY_ID).map(str::to_string),
        });
    }
    let next_page_token = match &out.next_marker {
        Some(m) if out.truncated => kit::encode_token(m),
        _ => String::new(),
    };
    Ok(Replied::with_request_id(
        Listing {
            keys,
            next_page_token,
        },
        sent.request_id,
    ))
}
