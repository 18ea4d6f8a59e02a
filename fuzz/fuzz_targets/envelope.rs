//! The ciphertext envelope (`kg` | version | key id | key version | blob) and the page tokens
//! the gateway and the provider kit hand out: whatever a client sends back to the gateway.
#![no_main]

use keygate::gateway::envelope;
use keygate::page_token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(opened) = envelope::open(data) {
        // What opens re-seals to the same bytes.
        assert_eq!(opened.header.len(), envelope::HEADER_LEN);
        assert!(!opened.blob.is_empty());
        let header = envelope::header(&opened.key_id.to_string(), opened.key_version)
            .expect("a UUID key id");
        assert_eq!(&header[..], opened.header);
        assert_eq!(envelope::seal(&header, opened.blob), data);
        assert!(envelope::bound_aad(opened.header, data).starts_with(opened.header));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "filters\ntoken": a page token for a listing with these filters.
    let (filters, token) = text.split_once('\n').unwrap_or(("", text));
    if let Ok(Some(position)) = page_token::open(filters, token) {
        let again = page_token::issue(filters, &position);
        assert_eq!(page_token::open(filters, &again), Ok(Some(position)));
    }
    if let Ok(Some(cursor)) = keygate_provider::kit::decode_token("fuzz", token) {
        let again = keygate_provider::kit::encode_token(&cursor);
        assert_eq!(
            keygate_provider::kit::decode_token("fuzz", &again).ok(),
            Some(Some(cursor))
        );
    }
    let _ = envelope::header(token, u32::MAX);
});
