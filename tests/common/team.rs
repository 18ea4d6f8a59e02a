//! A gateway configured with real tokens for a small organisation, as a config file (no dev
//! root involved): who holds which role in which environment.

use super::{Server, ServerOptions};
use keygate::pb::approval_service_client::ApprovalServiceClient;
use std::path::Path;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// (principal, kind, roles, environments)
pub const PEOPLE: &[(&str, &str, &[&str], &[&str])] = &[
    // Key admins of prod and of dev.
    ("alice", "user", &["key-admin"], &["prod"]),
    ("bob", "user", &["key-admin"], &["dev"]),
    // An admin who may also approve others' requests (so that refusing its own approval is
    // the self-approval rule at work, not a missing role).
    ("henry", "user", &["key-admin", "approver"], &["prod"]),
    // Services using keys.
    ("svc-pay", "service-account", &["key-user"], &["prod"]),
    ("svc-dev", "service-account", &["key-user"], &["dev"]),
    // An auditor.
    ("dave", "user", &["auditor"], &[]),
    // Approvers of prod, and one of dev.
    ("erin", "user", &["approver"], &["prod"]),
    ("frank", "user", &["approver"], &["prod"]),
    ("ivan", "user", &["approver"], &["prod"]),
    ("grace", "user", &["approver"], &["dev"]),
    // A security officer (key posture, the compliance report).
    ("sam", "user", &["security-officer"], &[]),
    // A policy admin, and a person without roles who owns keys.
    ("pat", "user", &["policy-admin"], &[]),
    ("olga", "user", &[], &["prod"]),
];

/// The bearer token of `principal`.
pub fn token(principal: &str) -> String {
    format!(
        "kg_test_{}_token_0123456789abcdef",
        principal.replace('-', "_")
    )
}

fn env_var(principal: &str) -> String {
    format!(
        "KG_TEST_TOKEN_{}",
        principal.replace('-', "_").to_uppercase()
    )
}

/// The environment [`tokens_config`] reads the tokens from.
pub fn token_env() -> Vec<(String, String)> {
    PEOPLE
        .iter()
        .map(|(name, ..)| (env_var(name), token(name)))
        .collect()
}

/// The `[[tokens]]` sections for [`PEOPLE`], with team `payments`.
pub fn tokens_config() -> String {
    let mut config = String::new();
    for (name, kind, roles, environments) in PEOPLE {
        let list = |items: &[&str]| {
            items
                .iter()
                .map(|i| format!("\"{i}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        config.push_str(&format!(
            "[[tokens]]\nprincipal = \"{name}\"\nkind = \"{kind}\"\nteam = \"payments\"\nroles = [{}]\nenvironments = [{}]\ntoken = {{ env = \"{}\" }}\n\n",
            list(roles),
            list(environments),
            env_var(name)
        ));
    }
    config
}

/// A gateway with [`PEOPLE`]'s tokens and `extra` configuration (TOML sections).
pub fn start(dir: &Path, extra: &str) -> Server {
    start_with_env(dir, extra, Vec::new())
}

/// [`start`], with `env` beside the tokens' variables (what `extra` refers to).
pub fn start_with_env(dir: &Path, extra: &str, mut env: Vec<(String, String)>) -> Server {
    let config = dir.join("keygate.toml");
    std::fs::write(&config, format!("{extra}\n{}", tokens_config())).expect("write config");
    env.extend(token_env());
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env,
            ..Default::default()
        },
    )
}

pub type Approvals = ApprovalServiceClient<InterceptedService<Channel, super::Bearer>>;

impl Server {
    pub async fn approvals(&self, token: &str) -> Approvals {
        ApprovalServiceClient::with_interceptor(self.channel().await, super::Bearer::new(token))
    }

    /// The gateway's clients for `principal`.
    pub async fn keys_as(&self, principal: &str) -> super::Keys {
        self.keys(&token(principal)).await
    }

    pub async fn audit_as(&self, principal: &str) -> super::Audit {
        self.audit(&token(principal)).await
    }

    pub async fn admin_as(&self, principal: &str) -> super::Admin {
        self.admin(&token(principal)).await
    }

    pub async fn posture_as(&self, principal: &str) -> super::Posture {
        self.posture(&token(principal)).await
    }

    pub async fn approvals_as(&self, principal: &str) -> Approvals {
        self.approvals(&token(principal)).await
    }

    /// The keygate CLI run as `principal` against this server.
    pub fn cli_as(&self, principal: &str, args: &[&str]) -> std::process::Output {
        self.cli()
            .env("KEYGATE_TOKEN", token(principal))
            .args(args)
            .output()
            .expect("run the keygate CLI")
    }
}

/// The ErrorInfo reason and metadata of a failed call.
pub fn error_info(status: &tonic::Status) -> (String, std::collections::HashMap<String, String>) {
    use tonic_types::StatusExt as _;
    status
        .get_details_error_info()
        .map(|i| (i.reason, i.metadata))
        .unwrap_or_default()
}

/// The approval request a critical call opened instead of acting.
pub fn opened(status: tonic::Status) -> String {
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let (reason, metadata) = error_info(&status);
    assert_eq!(reason, "APPROVAL_PENDING", "{status:?}");
    metadata["approval_id"].clone()
}

/// A CreateKey request for `environment`.
pub fn create_in(
    name: &str,
    algorithm: &str,
    owner: &str,
    environment: &str,
) -> keygate::pb::CreateKeyRequest {
    keygate::pb::CreateKeyRequest {
        environment: environment.into(),
        ..super::create(name, algorithm, owner)
    }
}

/// The repository's policies in a folder of their own, plus `extra` files.
pub fn policy_folder(dir: &std::path::Path, extra: &[(&str, &str)]) -> std::path::PathBuf {
    let folder = dir.join("policies");
    std::fs::create_dir_all(&folder).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, folder.join(path.file_name().unwrap())).unwrap();
    }
    for (name, text) in extra {
        std::fs::write(folder.join(name), text).unwrap();
    }
    folder
}
