//! Secrets in configuration are references, never values. One type for the gateway and every
//! provider's configuration.

use crate::SecretBytes;
use serde::Deserialize;
use std::path::PathBuf;

/// Where a secret lives: `{ env = "VAR" }` or `{ file = "PATH" }`. A plain string (an inline
/// secret) does not deserialize: the error names the setting and says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Reference {
        env: Option<String>,
        file: Option<PathBuf>,
    },
    Inline(serde::de::IgnoredAny),
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Raw::deserialize(d)? {
            Raw::Reference {
                env: Some(var),
                file: None,
            } => Ok(SecretRef::Env(var)),
            Raw::Reference {
                env: None,
                file: Some(path),
            } => Ok(SecretRef::File(path)),
            Raw::Reference { .. } => Err(D::Error::custom(
                "a secret reference needs exactly one of `env` or `file`",
            )),
            Raw::Inline(_) => Err(D::Error::custom(
                "inline secrets are refused: give a reference, { env = \"VAR\" } or { file = \"PATH\" }",
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretRefError {
    #[error("{setting}: environment variable {var} is not set")]
    MissingEnv { setting: String, var: String },
    #[error("{setting}: cannot read {path}: {source}")]
    File {
        setting: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{setting}: the secret is empty")]
    Empty { setting: String },
}

impl SecretRef {
    /// Reads the secret. `setting` names the configuration key for error messages. A trailing
    /// newline in a file is dropped (editors add one).
    pub fn resolve(&self, setting: &str) -> Result<SecretBytes, SecretRefError> {
        let mut bytes = match self {
            SecretRef::Env(var) => std::env::var_os(var)
                .map(|v| v.into_encoded_bytes())
                .ok_or_else(|| SecretRefError::MissingEnv {
                    setting: setting.into(),
                    var: var.clone(),
                })?,
            SecretRef::File(path) => {
                std::fs::read(path).map_err(|source| SecretRefError::File {
                    setting: setting.into(),
                    path: path.clone(),
                    source,
                })?
            }
        };
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        let secret = SecretBytes::new(bytes);
        if secret.is_empty() {
            return Err(SecretRefError::Empty {
                setting: setting.into(),
            });
        }
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Holder {
        #[allow(dead_code)]
        token: SecretRef,
    }

    #[test]
    fn inline_secret_is_refused_with_a_fix() {
        let err = toml_parse("token = \"hunter2hunter2\"").unwrap_err();
        assert!(err.contains("inline secrets are refused"), "{err}");
        assert!(
            !err.contains("hunter2"),
            "the error repeats the secret: {err}"
        );
    }

    #[test]
    fn references_parse() {
        assert!(toml_parse("token = { env = \"X\" }").is_ok());
        assert!(toml_parse("token = { file = \"/run/secret\" }").is_ok());
        assert!(toml_parse("token = { env = \"X\", file = \"Y\" }").is_err());
    }

    fn toml_parse(text: &str) -> Result<Holder, String> {
        // `token = VALUE` in TOML terms, as JSON.
        let (_, value) = text.split_once('=').ok_or("no =")?;
        let value = value.trim();
        let json = if let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
            let fields: Vec<String> = inner
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    format!("\"{}\": {}", k.trim(), v.trim())
                })
                .collect();
            format!("{{\"token\": {{{}}}}}", fields.join(", "))
        } else {
            format!("{{\"token\": {value}}}")
        };
        serde_json::from_str::<Holder>(&json).map_err(|e| e.to_string())
    }
}
