//! What `keygate serve` refuses to start with: dev mode over a production configuration, a
//! short dev token, a configured principal named like the dev root, plaintext on an address
//! other than loopback. Each refusal says why; the accepted variants are called through gRPC.

mod common;

use common::{Bearer, create, team};
use keygate::pb::key_service_client::KeyServiceClient;
use keygate_test_backends::process::ChildGuard;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `keygate serve ARGS` expecting it to stop with an error before listening; returns
/// its stderr. Anything that starts listening instead fails the test.
fn refused(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(common::keygate_bin());
    cmd.arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("refused-data"))
        .env_remove("KEYGATE_CONFIG")
        .env_remove("KEYGATE_DEV_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let ran = common::run_to_exit(cmd, dir, Duration::from_secs(60));
    assert!(!ran.status.success(), "keygate exited successfully");
    assert!(
        !ran.stdout.contains("keygate listening on"),
        "it listened: {}",
        ran.stdout
    );
    ran.stderr
}

fn team_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("keygate.toml");
    std::fs::write(
        &path,
        format!(
            "{extra}\n[providers.local]\nkind = \"local\"\npassphrase = {{ env = \"KG_TEST_PASSPHRASE\" }}\n\n{}",
            team::tokens_config()
        ),
    )
    .unwrap();
    path
}

#[test]
fn dev_mode_refuses_a_production_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = team_config(dir.path(), "");
    let config_arg = config.display().to_string();
    let stderr = refused(
        dir.path(),
        &[
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--config",
            &config_arg,
            "--dev-token",
            common::ROOT_TOKEN,
        ],
        &[],
    );
    assert!(
        stderr.contains("--dev cannot be used with --config")
            && stderr.contains("root token")
            && stderr.contains("dev_only = true"),
        "{stderr}"
    );
    // The same file named by KEYGATE_CONFIG.
    let stderr = refused(
        dir.path(),
        &["--dev", "--listen", "127.0.0.1:0"],
        &[("KEYGATE_CONFIG", &config_arg)],
    );
    assert!(
        stderr.contains("--dev cannot be used with --config"),
        "{stderr}"
    );
    // Nothing was created: no data directory, so no dev master key or database either.
    assert!(!dir.path().join("refused-data").exists());

    // A file marked for dev mode only is refused without --dev.
    let marked = team_config(dir.path(), "dev_only = true");
    let stderr = refused(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            &marked.display().to_string(),
        ],
        &[],
    );
    assert!(
        stderr.contains("dev_only = true") && stderr.contains("--dev"),
        "{stderr}"
    );
}

#[test]
fn a_dev_token_shorter_than_16_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let short = "kg_15_bytes_tok";
    assert_eq!(short.len(), 15);
    let stderr = refused(
        dir.path(),
        &["--dev", "--listen", "127.0.0.1:0", "--dev-token", short],
        &[],
    );
    assert!(
        stderr.contains("--dev-token is 15 bytes") && stderr.contains("at least 16"),
        "{stderr}"
    );
    assert!(!stderr.contains(short), "the token was echoed: {stderr}");
    // From the environment too.
    let stderr = refused(
        dir.path(),
        &["--dev", "--listen", "127.0.0.1:0"],
        &[("KEYGATE_DEV_TOKEN", short)],
    );
    assert!(stderr.contains("--dev-token is 15 bytes"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_16_byte_dev_token_is_accepted_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let token = "kg_16_bytes_tokn";
    assert_eq!(token.len(), 16);
    let mut cmd = Command::new(common::keygate_bin());
    let log = dir.path().join("serve.log");
    cmd.args([
        "serve",
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--dev-token",
        token,
    ])
    .arg("--data-dir")
    .arg(dir.path().join("data"));
    let mut child = ChildGuard::spawn(cmd, &log).expect("spawn keygate");
    let endpoint = wait_listening(&mut child, &log);
    let mut keys = KeyServiceClient::with_interceptor(
        tonic::transport::Channel::from_shared(endpoint)
            .unwrap()
            .connect()
            .await
            .unwrap(),
        Bearer::new(token),
    );
    keys.create_key(create("dev/sixteen", "aes-256-gcm", "alice"))
        .await
        .expect("the dev token authenticates");
    // The given token is not printed back.
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(!output.contains(token), "{output}");
}

fn wait_listening(child: &mut ChildGuard, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("keygate listening on "))
        {
            return line
                .trim_start_matches("keygate listening on ")
                .trim()
                .to_string();
        }
        assert!(
            child.is_running() && Instant::now() < deadline,
            "keygate did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_configured_principal_named_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("root.toml");
    std::fs::write(
        &config,
        "[[tokens]]\nprincipal = \"root\"\nkind = \"user\"\nroles = [\"key-admin\"]\ntoken = { env = \"KG_ROOT_TOKEN\" }\n",
    )
    .unwrap();
    let stderr = refused(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            &config.display().to_string(),
        ],
        &[("KG_ROOT_TOKEN", "kg_a_root_lookalike_0123456789")],
    );
    assert!(
        stderr.contains("tokens[0].principal") && stderr.contains("reserved"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_on_a_public_address_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = team_config(dir.path(), "");
    let stderr = refused(
        dir.path(),
        &[
            "--listen",
            "0.0.0.0:0",
            "--config",
            &config.display().to_string(),
        ],
        &[],
    );
    assert!(
        stderr.contains("listen.address 0.0.0.0:")
            && stderr.contains("is not a loopback address")
            && stderr.contains("[listen.tls]")
            && stderr.contains("listen.allow_plaintext = true"),
        "{stderr}"
    );
    // Dev mode gets no exception.
    let stderr = refused(
        dir.path(),
        &["--dev", "--listen", "0.0.0.0:0"],
        &[("KEYGATE_DEV_TOKEN", common::ROOT_TOKEN)],
    );
    assert!(stderr.contains("is not a loopback address"), "{stderr}");
    assert!(!dir.path().join("refused-data").exists());

    // Allowed explicitly, it serves (called here through loopback).
    let log = dir.path().join("serve.log");
    let mut cmd = Command::new(common::keygate_bin());
    cmd.args(["serve", "--dev", "--listen", "0.0.0.0:0", "--dev-token"])
        .arg(common::ROOT_TOKEN)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("KEYGATE_LISTEN__ALLOW_PLAINTEXT", "true");
    let mut child = ChildGuard::spawn(cmd, &log).expect("spawn keygate");
    let endpoint = wait_listening(&mut child, &log).replace("0.0.0.0", "127.0.0.1");
    let mut keys = KeyServiceClient::with_interceptor(
        tonic::transport::Channel::from_shared(endpoint)
            .unwrap()
            .connect()
            .await
            .unwrap(),
        Bearer::new(common::ROOT_TOKEN),
    );
    keys.create_key(create("plain/allowed", "aes-256-gcm", "alice"))
        .await
        .expect("served on 0.0.0.0 with allow_plaintext");
}
