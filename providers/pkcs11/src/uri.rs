//! PKCS#11 URIs (RFC 7512): `pkcs11:token=T;object=L;id=%01%02`.
//!
//! A keygate key is `pkcs11:token=T;object=KEY_ID`: every version's objects carry the key id as
//! CKA_LABEL, so the URI names all of them in RFC 7512 terms. A single object (a version, or an
//! object keygate did not create) adds `id=` with its CKA_ID.

use keygate_provider::KeyUri;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// RFC 7512 `pk11-pchar` keeps RFC 3986 unreserved characters as they are; anything else is
/// percent-encoded (more than strictly needed, which the RFC allows).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const SCHEME: &str = "pkcs11:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUri {
    pub token: String,
    pub object: String,
    pub id: Option<Vec<u8>>,
}

impl ObjectUri {
    pub fn key(token: &str, object: &str) -> Self {
        Self {
            token: token.to_string(),
            object: object.to_string(),
            id: None,
        }
    }

    pub fn to_uri(&self) -> KeyUri {
        let mut s = format!(
            "{SCHEME}token={};object={}",
            utf8_percent_encode(&self.token, ENCODE),
            utf8_percent_encode(&self.object, ENCODE)
        );
        if let Some(id) = &self.id {
            s.push_str(";id=");
            for b in id {
                s.push_str(&format!("%{b:02X}"));
            }
        }
        KeyUri::new(s)
    }

    /// Parses a URI that has at least `token` and `object`; other path attributes and any
    /// query part are ignored. `None` when it is not such a URI.
    pub fn parse(uri: &KeyUri) -> Option<Self> {
        let rest = uri.as_str().strip_prefix(SCHEME)?;
        let path = rest.split('?').next().unwrap_or_default();
        let (mut token, mut object, mut id) = (None, None, None);
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr.split_once('=')?;
            match name {
                "token" => token = Some(percent_decode_str(value).decode_utf8().ok()?.into_owned()),
                "object" => {
                    object = Some(percent_decode_str(value).decode_utf8().ok()?.into_owned())
                }
                "id" => id = Some(percent_decode_str(value).collect::<Vec<u8>>()),
                _ => {}
            }
        }
        Some(Self {
            token: token?,
            object: object?,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_reserved_characters() {
        let uri = ObjectUri {
            token: "key gate".into(),
            object: "payments/card-dek;v=1".into(),
            id: Some(vec![0x00, 0xab, 0x7f]),
        };
        let text = uri.to_uri();
        assert_eq!(
            text.as_str(),
            "pkcs11:token=key%20gate;object=payments%2Fcard-dek%3Bv%3D1;id=%00%AB%7F"
        );
        assert_eq!(ObjectUri::parse(&text), Some(uri));
    }

    #[test]
    fn rejects_other_schemes_and_missing_parts() {
        assert_eq!(ObjectUri::parse(&KeyUri::new("local://x")), None);
        assert_eq!(ObjectUri::parse(&KeyUri::new("pkcs11:token=t")), None);
        assert!(ObjectUri::parse(&KeyUri::new("pkcs11:token=t;object=o?pin-value=1")).is_some());
    }
}
