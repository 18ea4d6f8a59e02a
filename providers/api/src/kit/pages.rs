//! Page tokens for `list`: opaque to callers, checked when they come back.
//!
//! A token carries a cursor (the sort key of the last item served, or a backend's own
//! marker) behind a version prefix, base64url-encoded. A token keygate did not issue is
//! `InvalidInput`, never silently the first page.

use crate::{PageRequest, ProviderError, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

/// Page size when the request asks for none.
pub const DEFAULT_PAGE_SIZE: usize = 100;

const PREFIX: &str = "kg1:";

/// The token for the page after `cursor`.
pub fn encode_token(cursor: &str) -> String {
    B64URL.encode(format!("{PREFIX}{cursor}"))
}

/// The cursor in `token`: `None` for the first page (an empty token).
pub fn decode_token(provider: &str, token: &str) -> Result<Option<String>> {
    if token.is_empty() {
        return Ok(None);
    }
    B64URL
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(PREFIX).map(str::to_string))
        .map(Some)
        .ok_or_else(|| {
            let shown: String = token.chars().take(40).collect();
            ProviderError::invalid(
                provider,
                format!(
                    "page token '{shown}{}' is not one this provider issued; list again from \
                     the first page (an empty token)",
                    if shown.len() < token.len() { "…" } else { "" }
                ),
            )
        })
}

/// The page size asked for, at most `max`.
pub fn page_size(page: &PageRequest, max: usize) -> usize {
    match page.page_size {
        0 => DEFAULT_PAGE_SIZE.min(max),
        n => (n as usize).min(max),
    }
}

/// One page of `items`, which must be sorted by `key` with no two items sharing one: the
/// items after the request's cursor, and the token for the rest (empty when none remain).
/// A cursor survives items being added or removed between pages, where an offset would skip
/// or repeat some.
pub fn page_after<T>(
    provider: &str,
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    page: &PageRequest,
) -> Result<(Vec<T>, String)> {
    let cursor = decode_token(provider, &page.page_token)?;
    let size = page_size(page, usize::MAX);
    let mut rest = items
        .into_iter()
        .filter(|item| cursor.as_deref().is_none_or(|c| key(item) > c));
    let taken: Vec<T> = rest.by_ref().take(size).collect();
    let next = match (rest.next(), taken.last()) {
        (Some(_), Some(last)) => encode_token(key(last)),
        _ => String::new(),
    };
    Ok((taken, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(size: u32, token: &str) -> PageRequest {
        PageRequest {
            page_size: size,
            page_token: token.into(),
        }
    }

    #[test]
    fn pages_walk_every_item_once() {
        let items: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        let mut token = String::new();
        let mut seen = Vec::new();
        loop {
            let (page, next) =
                page_after("p", items.clone(), |s| s.as_str(), &request(3, &token)).unwrap();
            seen.extend(page);
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn a_foreign_token_is_invalid_input_not_the_first_page() {
        for garbage in ["3", "not base64!", &B64URL.encode("other:k1")] {
            let err = decode_token("p", garbage).unwrap_err();
            assert_eq!(err.kind(), "invalid_input", "{garbage}");
            assert!(err.to_string().contains("not one this provider issued"));
        }
        assert_eq!(decode_token("p", "").unwrap(), None);
        let token = encode_token("marker/with:odd=chars");
        assert_eq!(
            decode_token("p", &token).unwrap().as_deref(),
            Some("marker/with:odd=chars")
        );
    }
}
