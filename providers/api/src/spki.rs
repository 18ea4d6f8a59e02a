//! Just enough DER to take the key out of a SubjectPublicKeyInfo.

/// The BIT STRING contents of a DER SubjectPublicKeyInfo: the EC point, the Ed25519 key, or the
/// RSAPublicKey DER (what aws-lc-rs's `UnparsedPublicKey` takes). `None` if malformed.
pub fn spki_public_key_bits(spki: &[u8]) -> Option<&[u8]> {
    let (tag, body, _) = der_tlv(spki)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, rest) = der_tlv(body)?; // AlgorithmIdentifier
    let (tag, bits, _) = der_tlv(rest)?;
    (tag == 0x03 && bits.first() == Some(&0)).then(|| &bits[1..])
}

/// One DER TLV: (tag, contents, the bytes after it). Definite lengths up to 4 bytes only.
pub fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let body = input.get(header..end)?;
    Some((tag, body, &input[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_input_is_none_not_a_panic() {
        assert!(spki_public_key_bits(&[]).is_none());
        assert!(spki_public_key_bits(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(spki_public_key_bits(&[0x30, 0x03, 0x30, 0x00, 0x03]).is_none());
    }
}
