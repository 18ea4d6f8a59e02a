//! EME-OAEP decoding (RFC 8017 §7.1.2) with SHA-256, MGF1-SHA-256 and an empty label, for
//! tokens whose CKM_RSA_PKCS_OAEP only knows SHA-1 (SoftHSM2 2.6): the token does the raw RSA
//! private-key operation and the padding is removed here.
//!
//! Every check runs in constant time and all failures look alike, so the caller learns only
//! "bad ciphertext" (no Manger-style padding oracle).

use aws_lc_rs::digest::{Context, SHA256, digest};

const H_LEN: usize = 32;

/// 0xff when `a == b`, else 0x00, without branching.
fn ct_eq(a: u8, b: u8) -> u8 {
    let x = u32::from(a ^ b);
    // x - 1 underflows (top bit set) only when x == 0.
    ((x.wrapping_sub(1) >> 31) as u8).wrapping_neg()
}

fn mgf1_xor(seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in out.chunks_mut(H_LEN).enumerate() {
        let mut ctx = Context::new(&SHA256);
        ctx.update(seed);
        ctx.update(&(counter as u32).to_be_bytes());
        let mask = ctx.finish();
        for (o, m) in chunk.iter_mut().zip(mask.as_ref()) {
            *o ^= m;
        }
    }
}

/// Decodes the encoded message `em` (the raw RSA output) for a modulus of `k` bytes.
pub fn decode(em: &[u8], k: usize) -> Option<Vec<u8>> {
    if k < 2 * H_LEN + 2 || em.len() > k {
        return None;
    }
    // Tokens may drop leading zero bytes of the raw result.
    let mut block = vec![0u8; k];
    block[k - em.len()..].copy_from_slice(em);
    let (y, rest) = block.split_at_mut(1);
    let (masked_seed, masked_db) = rest.split_at_mut(H_LEN);
    mgf1_xor(masked_db, masked_seed);
    let seed = masked_seed.to_vec();
    mgf1_xor(&seed, masked_db);
    let db = masked_db;

    let l_hash = digest(&SHA256, b"");
    let mut good = ct_eq(y[0], 0);
    for (a, b) in db[..H_LEN].iter().zip(l_hash.as_ref()) {
        good &= ct_eq(*a, *b);
    }
    let mut looking: u8 = 0xff;
    let mut one_index: usize = 0;
    for (i, byte) in db.iter().enumerate().skip(H_LEN) {
        let is_one = ct_eq(*byte, 1);
        let is_zero = ct_eq(*byte, 0);
        let found_here = looking & is_one;
        // Branch-free select of i into one_index.
        let mask = usize::from(found_here & 1).wrapping_neg();
        one_index = (i & mask) | (one_index & !mask);
        looking &= !is_one;
        // Before the 0x01 separator only zero bytes are allowed.
        good &= !(looking & !is_zero);
    }
    good &= !looking;
    if good != 0xff {
        return None;
    }
    Some(db[one_index + 1..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::{
        KeySize, OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PrivateDecryptingKey,
    };

    /// Raw RSA on a generated key through aws-lc-rs is not exposed, so check decode against
    /// an encoding built by hand.
    fn encode(message: &[u8], k: usize, seed: [u8; H_LEN]) -> Vec<u8> {
        let l_hash = digest(&SHA256, b"");
        let mut db = Vec::with_capacity(k - H_LEN - 1);
        db.extend_from_slice(l_hash.as_ref());
        db.resize(k - message.len() - H_LEN - 2, 0);
        db.push(1);
        db.extend_from_slice(message);
        let mut masked_db = db.clone();
        mgf1_xor(&seed, &mut masked_db);
        let mut masked_seed = seed.to_vec();
        mgf1_xor(&masked_db, &mut masked_seed);
        let mut em = vec![0u8];
        em.extend(masked_seed);
        em.extend(masked_db);
        em
    }

    #[test]
    fn decodes_and_rejects() {
        let k = 256;
        let em = encode(b"hello", k, [7u8; H_LEN]);
        assert_eq!(decode(&em, k).as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode(&em[1..], k).as_deref(), Some(&b"hello"[..]));
        let empty = encode(b"", k, [9u8; H_LEN]);
        assert_eq!(decode(&empty, k).as_deref(), Some(&b""[..]));
        for i in [0, 1, 40, 100, k - 1] {
            let mut bad = em.clone();
            bad[i] ^= 0x01;
            assert_eq!(decode(&bad, k), None, "flipped byte {i}");
        }
        assert_eq!(decode(&em, 40), None);
    }

    #[test]
    fn ct_eq_is_a_mask() {
        assert_eq!(ct_eq(3, 3), 0xff);
        assert_eq!(ct_eq(3, 4), 0x00);
        assert_eq!(ct_eq(0, 255), 0x00);
    }

    #[test]
    fn sizes_match_aws_lc() {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).expect("generate");
        let public = OaepPublicEncryptingKey::new(key.public_key()).expect("public");
        assert_eq!(
            public.max_plaintext_size(&OAEP_SHA256_MGF1SHA256),
            256 - 2 * H_LEN - 2
        );
    }
}
