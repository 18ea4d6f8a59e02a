//! The DER encodings (ECDSA signatures, SubjectPublicKeyInfo) are shared by the providers
//! and live in the provider API.

pub use keygate_provider::der::{ec_spki, ecdsa_der_to_raw, ecdsa_raw_to_der, rsa_spki};
