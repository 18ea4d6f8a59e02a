//! Input checks that run before any work, with messages that name the limit and the size.

use super::GatewayError;

pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Key names: lower-case letters, digits and `/ _ . -`, 1-128 characters, starting with a
/// letter or digit, and not shaped like a key id (so names and ids never collide).
pub fn key_name(field: &'static str, name: &str) -> Result<(), GatewayError> {
    let invalid = |m: String| GatewayError::invalid(field, m);
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/_.-".contains(&b));
    let ok_start = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.is_empty() || name.len() > 128 || !ok_chars || !ok_start {
        return Err(invalid(format!(
            "key name '{}' is not valid: use 1-128 lower-case letters, digits and / _ . -, starting with a letter or digit",
            truncate(name, 140)
        )));
    }
    if uuid::Uuid::parse_str(name).is_ok() {
        return Err(invalid(format!(
            "key name '{name}' has the shape of a key id; choose a name that does not"
        )));
    }
    Ok(())
}

/// Owners are a person or a service account, never a team or group.
pub fn owner(owner: &str) -> Result<(), GatewayError> {
    let invalid = |m: String| GatewayError::invalid("owner", m);
    if owner.trim().is_empty() {
        return Err(invalid(
            "every key needs an owner: set `owner` to the person or service account answerable for it".into(),
        ));
    }
    let ok = owner.len() <= 128
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@:-".contains(&b));
    if !ok {
        return Err(invalid(format!(
            "owner '{}' is not valid: use a principal name (letters, digits and . _ @ : -, at most 128)",
            truncate(owner, 140)
        )));
    }
    let lower = owner.to_ascii_lowercase();
    if ["team:", "group:", "team-", "group-"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Err(invalid(format!(
            "owner '{owner}' names a team or group; a key's owner must be a person or a service account"
        )));
    }
    Ok(())
}

pub fn environment(env: &str) -> Result<(), GatewayError> {
    let ok = !env.is_empty()
        && env.len() <= 32
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(GatewayError::invalid(
            "environment",
            format!(
                "environment '{}' is not valid: use 1-32 lower-case letters, digits and -",
                truncate(env, 40)
            ),
        ))
    }
}

/// Labels a key may carry, and their sizes: they are stored in the catalog, sent to every
/// policy decision and listed with the key, so their total is bounded.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY: usize = 63;
pub const MAX_LABEL_VALUE: usize = 256;

/// Label keys: 1-63 lower-case letters, digits and `_ . - /`, starting with a letter or
/// digit; values: at most 256 bytes without control characters.
pub fn labels(labels: &std::collections::BTreeMap<String, String>) -> Result<(), GatewayError> {
    let invalid = |m: String| GatewayError::invalid("labels", m);
    if labels.len() > MAX_LABELS {
        return Err(invalid(format!(
            "{} labels given; a key carries at most {MAX_LABELS}",
            labels.len()
        )));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= MAX_LABEL_KEY
            && k.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-/".contains(&b));
        if !key_ok {
            return Err(invalid(format!(
                "label key '{}' is not valid: use 1-{MAX_LABEL_KEY} lower-case letters, digits and _ . - /, starting with a letter or digit",
                truncate(k, 70)
            )));
        }
        if v.len() > MAX_LABEL_VALUE || v.chars().any(char::is_control) {
            return Err(invalid(format!(
                "the value of label '{k}' is not valid: at most {MAX_LABEL_VALUE} bytes ({} given), no control characters",
                v.len()
            )));
        }
    }
    Ok(())
}

/// Refuses `len` over `max`; `field` is the request field, `what` names it for a person.
pub fn size(field: &'static str, what: &str, len: usize, max: usize) -> Result<(), GatewayError> {
    if len > max {
        Err(GatewayError::TooLarge {
            field,
            what: what.to_string(),
            len,
            max,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(key_name("name", "payments/card-dek").is_ok());
        assert!(key_name("name", "Payments").is_err());
        assert!(key_name("name", "/abs").is_err());
        assert!(key_name("name", "").is_err());
        assert!(key_name("name", "0b5d3f3e-7a4e-4c61-9d1e-2f7b0b8a9c10").is_err());
    }

    #[test]
    fn owners() {
        assert!(owner("alice").is_ok());
        assert!(owner("svc:payments").is_ok());
        assert!(owner("team:payments").is_err());
        assert!(owner("").is_err());
        assert!(owner("alice smith").is_err());
    }
}
