//! Each provider's key URI, resource name and blob parsing: the first byte picks the parser,
//! the rest is its input.
#![no_main]

use keygate_provider::KeyUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let uri = KeyUri::new(text.to_string());
    match which % 8 {
        0 => {
            use keygate_provider_aws::fuzzing::{account_of, key_id};
            if let Ok(id) = key_id("fuzz", &uri, "eu-west-1", Some("111122223333")) {
                assert!(!id.is_empty());
            }
            let _ = key_id("fuzz", &uri, "eu-west-1", None);
            let _ = account_of(&text);
        }
        1 => {
            use keygate_provider_gcp::fuzzing::{key_name, valid_id, version_id, version_name};
            if let Ok(name) = key_name("p", "global", "ring", &uri) {
                assert!(name.starts_with("projects/p/locations/global/"), "{name}");
            }
            let _ = version_id(&text);
            if valid_id(&text) {
                let _ = version_name(
                    "fuzz",
                    "projects/p/locations/global/keyRings/ring/cryptoKeys/k",
                    &text,
                );
            }
        }
        2 => {
            use keygate_provider_azure::fuzzing::{key_name, parse_kid, valid_name};
            if let Ok(name) = key_name("fuzz", "vault.example.net", &uri) {
                assert!(valid_name(name));
            }
            let _ = parse_kid(&text);
        }
        3 => {
            use keygate_provider_pkcs11::fuzzing::ObjectUri;
            if let Some(object) = ObjectUri::parse(&uri) {
                // What parses prints to a URI that parses back to the same object.
                assert_eq!(ObjectUri::parse(&object.to_uri()), Some(object));
            }
        }
        4 => {
            let _ = keygate_provider_vault::parse_vault_key_name(&text);
        }
        5 => {
            if let Some(bytes) = keygate_provider_pkcs11::fuzzing::version_id(rest) {
                assert_eq!(bytes, rest);
            }
        }
        6 => {
            // An OAEP block for a modulus of k bytes (k from the first two bytes).
            if let [a, b, em @ ..] = rest {
                let k = usize::from(u16::from_be_bytes([*a, *b]) % 1024);
                let _ = keygate_provider_pkcs11::fuzzing::oaep_decode(em, k);
            }
        }
        _ => {
            let (aad, blob) = rest.split_at(rest.len().min(usize::from(which / 8)));
            let _ = keygate_provider_local::fuzzing::open_aes_blob(blob, aad);
        }
    }
});
