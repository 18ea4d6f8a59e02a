//! Page tokens, one scheme for the gateway's paged listings (ListKeys, ListApprovals, audit
//! Query): the position to continue from, a digest of the listing's filters, and a check over
//! both. (ListInventory hands back the provider's own tokens, which the provider kit checks
//! the same way: `keygate_provider::kit::decode_token`.) A token the gateway did not issue (typed,
//! truncated, from another listing) is refused with a message that says what to send instead,
//! rather than quietly listing from somewhere else.
//!
//! The check catches mistakes, not an adversary: a token only chooses where a listing the
//! caller may read anyway starts, and every entry is still authorized on its own.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const NOT_ISSUED: &str = "page_token is not one this gateway issued; send the `next_page_token` of the previous page, or none";
pub const OTHER_FILTERS: &str = "page_token belongs to a query with other filters; repeat the query's filters, or start again without a token";

fn short_digest(parts: &[&str]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        // Length-prefixed, so no two lists of parts digest alike.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    hex::encode(&ctx.finish().as_ref()[..6])
}

/// The token that continues the listing described by `filters` after `position`.
pub fn issue(filters: &str, position: &str) -> String {
    let scope = short_digest(&[filters]);
    let check = short_digest(&[&scope, position]);
    format!("{}.{scope}.{check}", URL_SAFE_NO_PAD.encode(position))
}

/// The position `token` continues from (`None` for the first page); `Err` says why the token
/// is refused.
pub fn open(filters: &str, token: &str) -> Result<Option<String>, &'static str> {
    if token.is_empty() {
        return Ok(None);
    }
    let mut parts = token.split('.');
    let (Some(position), Some(scope), Some(check), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(NOT_ISSUED);
    };
    let position = URL_SAFE_NO_PAD
        .decode(position)
        .ok()
        .and_then(|p| String::from_utf8(p).ok())
        .ok_or(NOT_ISSUED)?;
    if check != short_digest(&[scope, &position]) {
        return Err(NOT_ISSUED);
    }
    if scope != short_digest(&[filters]) {
        return Err(OTHER_FILTERS);
    }
    Ok(Some(position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_only_in_their_own_listing() {
        let token = issue("keys|a", "payments/dek");
        assert_eq!(open("keys|a", &token), Ok(Some("payments/dek".into())));
        assert_eq!(open("keys|b", &token), Err(OTHER_FILTERS));
        assert_eq!(open("keys|a", ""), Ok(None));
        assert_eq!(open("keys|a", "payments/dek"), Err(NOT_ISSUED));
        // Another position under the same check is refused.
        let (_, rest) = token.split_once('.').unwrap();
        let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode("zzz"));
        assert_eq!(open("keys|a", &forged), Err(NOT_ISSUED));
        assert_eq!(open("keys|a", &format!("{token}.x")), Err(NOT_ISSUED));
    }
}
