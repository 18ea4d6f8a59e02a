//! An OpenBao dev server and a keygate whose `vault` provider points at it.

use super::{Server, ServerOptions, create};
use keygate::pb;
use keygate_test_backends::openbao::OpenBao;

/// The environment variable the generated config names for the Vault token, so the token
/// itself never appears in the file.
/// Not `KEYGATE_…`: keygate would take that prefix for a configuration override.
pub const TOKEN_ENV: &str = "VAULT_TOKEN_FOR_KEYGATE_TESTS";

/// An OpenBao dev server and a keygate configured with a `vault` provider pointing at it.
/// Field order matters: keygate is stopped before OpenBao.
pub struct Stack {
    pub server: Server,
    pub bao: OpenBao,
    _dir: tempfile::TempDir,
}

pub fn start() -> Stack {
    start_with_guard("")
}

/// As [`start`], with `guard` (TOML: a `[providers.vault.guard]` table and its parts) after
/// the provider's section.
pub fn start_with_guard(guard: &str) -> Stack {
    let bao = OpenBao::start().unwrap_or_else(|e| {
        panic!(
            "cannot start OpenBao: {e}\n\
             install it with: eval \"$(tests/backends/install.sh openbao)\"; export KEYGATE_BAO_BIN"
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[providers.vault]\n\
             kind = \"vault\"\n\
             address = \"{}\"\n\
             mount = \"transit\"\n\
             auth = {{ method = \"token\", token = {{ env = \"{TOKEN_ENV}\" }} }}\n\
             {guard}",
            bao.addr()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            env: vec![(TOKEN_ENV.into(), bao.token().into())],
            ..Default::default()
        },
    );
    Stack {
        server,
        bao,
        _dir: dir,
    }
}

pub fn on_vault(name: &str, algorithm: &str) -> pb::CreateKeyRequest {
    let mut req = create(name, algorithm, "root");
    req.provider = "vault".into();
    req
}
