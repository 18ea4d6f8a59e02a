//! What SoftHSM2 2.6 does with `CKA_WRAP_WITH_TRUSTED` and `CKA_TRUSTED`, the token's own
//! control over where a key may be wrapped to (the README's BYOK section says why keygate
//! does not use it yet):
//!
//! - it enforces `CKA_WRAP_WITH_TRUSTED`: C_WrapKey of such a key under a wrapping key
//!   without `CKA_TRUSTED` answers `CKR_KEY_NOT_WRAPPABLE`, whether the wrapping key is an
//!   AES key or an RSA public key;
//! - only the security officer sets `CKA_TRUSTED`: a user session asking for it gets
//!   `CKR_ATTRIBUTE_READ_ONLY`;
//! - the SO logs in only once the user has logged out (`CKR_USER_ANOTHER_ALREADY_LOGGED_IN`
//!   before), and the login is the whole application's: the user's logout invalidates every
//!   session's handles to private keys (`CKR_KEY_HANDLE_INVALID`), and while the SO is
//!   logged in no session of the process finds them;
//! - a trusted key the SO made (a public session object) outlives the SO's logout, and once
//!   the user is back it wraps the key the others could not.
//!
//! One test in its own binary: it logs the process in and out as the SO.

mod common;

use common::{SO_PIN, USER_PIN, raw_session};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

const GUARDED: &[u8] = b"wrap-with-trusted-probe";
const PLAIN: &[u8] = b"wrap-plain-probe";

fn rv<T>(result: Result<T, CkError>) -> Option<RvError> {
    match result {
        Ok(_) => None,
        Err(CkError::Pkcs11(rv, _)) => Some(rv),
        Err(e) => panic!("not a PKCS#11 return value: {e}"),
    }
}

fn oaep_sha1() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    ))
}

/// An AES-256 session key for wrapping; `trusted` asks for `CKA_TRUSTED`.
fn wrapping_aes(session: &Session, trusted: bool) -> Result<ObjectHandle, CkError> {
    let mut template = vec![
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::Wrap(true),
        Attribute::Extractable(true),
        Attribute::ValueLen(32.into()),
    ];
    if trusted {
        template.push(Attribute::Trusted(true));
    }
    session.generate_key(&Mechanism::AesKeyGen, &template)
}

/// A sensitive AES-256 token key, extractable under wrap only, as a BYOK source is made;
/// `with_trusted` adds `CKA_WRAP_WITH_TRUSTED`.
fn source_key(session: &Session, with_trusted: bool, label: &[u8]) -> ObjectHandle {
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(true),
                Attribute::WrapWithTrusted(with_trusted),
                Attribute::ValueLen(32.into()),
                Attribute::Label(label.to_vec()),
            ],
        )
        .expect("generate the source key")
}

#[test]
fn softhsm_enforces_wrap_with_trusted_and_keeps_trusted_keys_to_the_so() {
    let session = raw_session();
    let other = raw_session();
    let guarded = source_key(&session, true, GUARDED);
    let plain = source_key(&session, false, PLAIN);

    // An untrusted AES key and an untrusted RSA public key (a target's, as BYOK imports
    // one) wrap the plain key and not the guarded one.
    let kek = wrapping_aes(&session, false).expect("an untrusted AES key");
    let (rsa_public, _rsa_private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::Wrap(true),
                Attribute::Encrypt(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
            &[Attribute::Token(false), Attribute::Private(true)],
        )
        .expect("an RSA key pair");
    session
        .wrap_key(&Mechanism::AesKeyWrapPad, kek, plain)
        .expect("the plain key wraps under an untrusted AES key");
    session
        .wrap_key(&oaep_sha1(), rsa_public, plain)
        .expect("the plain key wraps under an untrusted RSA key");
    assert_eq!(
        rv(session.wrap_key(&Mechanism::AesKeyWrapPad, kek, guarded)),
        Some(RvError::KeyNotWrappable)
    );
    assert_eq!(
        rv(session.wrap_key(&oaep_sha1(), rsa_public, guarded)),
        Some(RvError::KeyNotWrappable)
    );

    // The user cannot make a trusted key.
    assert_eq!(
        rv(wrapping_aes(&session, true)),
        Some(RvError::AttributeReadOnly)
    );

    // The SO can, but only with the user logged out, and then for the whole process.
    let so_pin = AuthPin::from(SO_PIN);
    assert_eq!(
        rv(session.login(UserType::So, Some(&so_pin))),
        Some(RvError::UserAnotherAlreadyLoggedIn)
    );
    session.logout().expect("C_Logout");
    session
        .login(UserType::So, Some(&so_pin))
        .expect("SO login");
    let found = other
        .find_objects(&[Attribute::Label(PLAIN.to_vec())])
        .expect("C_FindObjects");
    assert!(
        found.is_empty(),
        "an SO login hides the user's private keys from every session"
    );
    assert_eq!(
        rv(other.wrap_key(&Mechanism::AesKeyWrapPad, kek, plain)),
        Some(RvError::KeyHandleInvalid),
        "the user's logout invalidated every session's handles to them"
    );
    let trusted = wrapping_aes(&session, true).expect("the SO makes a trusted key");
    session.logout().expect("SO logout");

    // Back as the user: the SO's trusted key wraps the guarded key.
    session
        .login(UserType::User, Some(&AuthPin::from(USER_PIN)))
        .expect("user login");
    let find = |label: &[u8]| {
        let found = session
            .find_objects(&[Attribute::Label(label.to_vec())])
            .expect("C_FindObjects");
        assert_eq!(found.len(), 1, "{}", String::from_utf8_lossy(label));
        found[0]
    };
    let (guarded, plain) = (find(GUARDED), find(PLAIN));
    assert_eq!(
        rv(session.wrap_key(&Mechanism::AesKeyWrapPad, kek, guarded)),
        Some(RvError::KeyNotWrappable),
        "still not under the untrusted key"
    );
    session
        .wrap_key(&Mechanism::AesKeyWrapPad, trusted, guarded)
        .expect("a trusted key wraps a CKA_WRAP_WITH_TRUSTED key");
    for key in [guarded, plain] {
        session.destroy_object(key).expect("clean up");
    }
}
