//! Synchronous helpers that run on one session, inside the pool's blocking threads.

use crate::errors::OpError;
use crate::mechanisms::{self, KeyGen};
use crate::naming::VersionId;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use keygate_provider::{Algorithm, ProviderKeyState};

/// One keygate object found on the token.
pub struct Found {
    pub handle: ObjectHandle,
    pub class: ObjectClass,
    pub id: VersionId,
}

fn class_of(attrs: &[Attribute]) -> Option<ObjectClass> {
    attrs.iter().find_map(|a| match a {
        Attribute::Class(c) => Some(*c),
        _ => None,
    })
}

fn bytes_of(attrs: &[Attribute], kind: AttributeType) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match (a, kind) {
        (Attribute::Id(v), AttributeType::Id)
        | (Attribute::Label(v), AttributeType::Label)
        | (Attribute::EcPoint(v), AttributeType::EcPoint)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent)
        | (Attribute::Value(v), AttributeType::Value) => Some(v.clone()),
        _ => None,
    })
}

pub fn bool_of(attrs: &[Attribute], kind: AttributeType) -> Option<bool> {
    attrs.iter().find_map(|a| match (a, kind) {
        (Attribute::Encrypt(b), AttributeType::Encrypt)
        | (Attribute::Decrypt(b), AttributeType::Decrypt)
        | (Attribute::Sign(b), AttributeType::Sign)
        | (Attribute::Verify(b), AttributeType::Verify) => Some(*b),
        _ => None,
    })
}

pub fn get_bytes(
    session: &Session,
    handle: ObjectHandle,
    kind: AttributeType,
) -> Result<Vec<u8>, OpError> {
    let attrs = session.get_attributes(handle, &[kind])?;
    bytes_of(&attrs, kind)
        .ok_or_else(|| OpError::Internal(format!("the token did not return {kind:?}")))
}

/// Every object (any class) of the key with this id, versions in any order.
pub fn key_objects(session: &Session, key_id: &str) -> Result<Vec<Found>, OpError> {
    let handles = session.find_objects(&[
        Attribute::Token(true),
        Attribute::Label(key_id.as_bytes().to_vec()),
    ])?;
    let mut found = Vec::with_capacity(handles.len());
    for handle in handles {
        let attrs = session.get_attributes(handle, &[AttributeType::Class, AttributeType::Id])?;
        let (Some(class), Some(id)) = (class_of(&attrs), bytes_of(&attrs, AttributeType::Id))
        else {
            continue;
        };
        if let Some(id) = VersionId::parse(&id).filter(|v| v.belongs_to(key_id)) {
            found.push(Found { handle, class, id });
        }
    }
    Ok(found)
}

/// The key's versions, oldest first (one entry per version, from its secret-side object).
pub fn versions(session: &Session, key_id: &str) -> Result<Vec<Found>, OpError> {
    let mut found: Vec<Found> = key_objects(session, key_id)?
        .into_iter()
        .filter(|f| f.class == mechanisms::secret_class(f.id.algorithm))
        .collect();
    found.sort_by_key(|f| f.id.version);
    found.dedup_by_key(|f| f.id.version);
    Ok(found)
}

/// The object of one version: its secret key, private half or public half.
pub fn version_object(
    session: &Session,
    key_id: &str,
    id: VersionId,
    class: ObjectClass,
) -> Result<ObjectHandle, OpError> {
    let handles = session.find_objects(&[
        Attribute::Token(true),
        Attribute::Class(class),
        Attribute::Label(key_id.as_bytes().to_vec()),
        Attribute::Id(id.to_bytes()),
    ])?;
    handles.first().copied().ok_or_else(|| {
        OpError::NotFound(format!(
            "version {} of key '{key_id}' ({} object)",
            id.version,
            class_name(class)
        ))
    })
}

fn class_name(class: ObjectClass) -> &'static str {
    if class == ObjectClass::PUBLIC_KEY {
        "public key"
    } else if class == ObjectClass::PRIVATE_KEY {
        "private key"
    } else {
        "secret key"
    }
}

/// Whether the usage attributes of this object are on (keygate turns all of them off together).
pub fn enabled(session: &Session, found: &Found) -> Result<ProviderKeyState, OpError> {
    let kinds = mechanisms::usage_attributes(found.id.algorithm, found.class);
    let attrs = session.get_attributes(found.handle, &kinds)?;
    let on = kinds.iter().all(|k| bool_of(&attrs, *k).unwrap_or(false));
    Ok(if on {
        ProviderKeyState::Enabled
    } else {
        ProviderKeyState::Disabled
    })
}

/// Generates one version on the token.
pub fn generate(
    session: &Session,
    key_id: &str,
    algorithm: Algorithm,
    version: u32,
) -> Result<VersionId, OpError> {
    generate_with(session, key_id, algorithm, version, false)
}

/// Generates one version; `wrappable`: extractable, but (being sensitive) only under wrap,
/// for import into other backends (BYOK).
pub fn generate_with(
    session: &Session,
    key_id: &str,
    algorithm: Algorithm,
    version: u32,
    wrappable: bool,
) -> Result<VersionId, OpError> {
    let id = VersionId::new(key_id, algorithm, version);
    let mut generation = mechanisms::key_gen(algorithm, key_id.as_bytes(), &id.to_bytes());
    if wrappable {
        let secret_side = match &mut generation {
            KeyGen::Secret { template, .. } => template,
            KeyGen::Pair { private, .. } => private,
        };
        for attribute in secret_side.iter_mut() {
            if let Attribute::Extractable(on) = attribute {
                *on = true;
            }
        }
    }
    match generation {
        KeyGen::Secret {
            mechanism,
            template,
        } => {
            session.generate_key(&mechanism, &template)?;
        }
        KeyGen::Pair {
            mechanism,
            public,
            private,
        } => {
            session.generate_key_pair(&mechanism, &public, &private)?;
        }
    }
    Ok(id)
}

/// Turns the usages of every object of the key on or off.
pub fn set_usage(session: &Session, objects: &[Found], on: bool) -> Result<(), OpError> {
    for object in objects {
        let template = mechanisms::usage_template(object.id.algorithm, object.class, on);
        session.update_attributes(object.handle, &template)?;
    }
    Ok(())
}
