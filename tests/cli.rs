//! The README's tour, through the CLI binary.

mod common;

use common::Server;
use std::io::Write;
use std::process::{Command, Stdio};

fn run(mut cmd: Command, stdin: &[u8]) -> (bool, Vec<u8>, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn cli(server: &Server, args: &[&str]) -> Command {
    let mut cmd = server.cli();
    cmd.args(args);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn five_minute_tour() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));

    let (ok, out, err) = run(
        cli(
            &server,
            &[
                "key",
                "create",
                "payments/card-dek",
                "--purpose",
                "encrypt",
                "--algorithm",
                "aes-256-gcm",
                "--owner",
                "alice",
                "--crypto-period",
                "365d",
            ],
        ),
        b"",
    );
    assert!(ok, "{err}");
    let shown = String::from_utf8_lossy(&out);
    assert!(
        shown.contains("payments/card-dek") && shown.contains("365d"),
        "{shown}"
    );

    let (ok, ct, err) = run(
        cli(&server, &["encrypt", "--key", "payments/card-dek"]),
        b"4111 1111 1111 1111",
    );
    assert!(ok, "{err}");
    let (ok, pt, err) = run(cli(&server, &["decrypt"]), &ct);
    assert!(ok, "{err}");
    assert_eq!(pt, b"4111 1111 1111 1111");

    let (ok, _, err) = run(cli(&server, &["key", "rotate", "payments/card-dek"]), b"");
    assert!(ok, "{err}");
    let (ok, pt, _) = run(cli(&server, &["decrypt"]), &ct);
    assert!(
        ok && pt == b"4111 1111 1111 1111",
        "old ciphertext decrypts after rotation"
    );

    let (ok, out, err) = run(
        cli(&server, &["key", "show", "payments/card-dek", "--json"]),
        b"",
    );
    assert!(ok, "{err}");
    let key: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(key["primary_version"], 2);

    run(
        cli(
            &server,
            &[
                "key",
                "create",
                "release/signing",
                "--algorithm",
                "ed25519",
                "--owner",
                "alice",
                "--crypto-period",
                "730d",
            ],
        ),
        b"",
    );
    let (ok, sig, err) = run(
        cli(&server, &["sign", "--key", "release/signing"]),
        b"artifact",
    );
    assert!(ok, "{err}");
    let sig_file = dir.path().join("sig.bin");
    std::fs::write(&sig_file, &sig).unwrap();
    let (ok, out, _) = run(
        cli(
            &server,
            &[
                "verify",
                "--key",
                "release/signing",
                "--signature",
                sig_file.to_str().unwrap(),
            ],
        ),
        b"artifact",
    );
    assert!(ok && String::from_utf8_lossy(&out).contains("valid"));
    let (ok, out, _) = run(
        cli(
            &server,
            &[
                "verify",
                "--key",
                "release/signing",
                "--signature",
                sig_file.to_str().unwrap(),
            ],
        ),
        b"tampered",
    );
    assert!(
        !ok && String::from_utf8_lossy(&out).contains("NOT valid"),
        "a bad signature exits non-zero"
    );

    let (ok, out, err) = run(
        cli(
            &server,
            &["data-key", "--key", "payments/card-dek", "--json"],
        ),
        b"",
    );
    assert!(ok, "{err}");
    let dk: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(dk["key_version"], 2);

    let (ok, out, _) = run(cli(&server, &["key", "list"]), b"");
    assert!(ok);
    let table = String::from_utf8_lossy(&out);
    assert!(
        table.starts_with("NAME") && table.contains("release/signing"),
        "{table}"
    );

    let (ok, out, _) = run(
        cli(&server, &["audit", "query", "--key", "payments/card-dek"]),
        b"",
    );
    assert!(ok);
    assert!(String::from_utf8_lossy(&out).contains("RotateKey"));

    // Errors are one clear line with the gRPC code, and a non-zero exit.
    let (ok, _, err) = run(cli(&server, &["encrypt", "--key", "no/such-key"]), b"x");
    assert!(!ok);
    assert!(
        err.contains("NotFound") && err.contains("no/such-key"),
        "{err}"
    );
}

#[test]
fn help_explains_the_commands() {
    let out = Command::new(common::keygate_bin())
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "key", "encrypt", "audit", "bench"] {
        assert!(text.contains(word), "--help does not mention {word}");
    }
    let out = Command::new(common::keygate_bin())
        .args(["key", "create", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("crypto-period"));
}

/// Bash completes `keygate` subcommands and their options with the generated script.
#[test]
fn bash_completion_completes_commands_and_options() {
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let script = format!(
            r#"source <("{bin}" completions bash) || exit 3
COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}
_keygate keygate "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
            bin = common::keygate_bin(),
            words = words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            cword = words.len() - 1,
        );
        let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let commands = complete("keygate ");
    for word in ["serve", "key", "audit", "completions"] {
        assert!(
            commands.lines().any(|l| l == word),
            "{word} not offered: {commands}"
        );
    }
    let options = complete("keygate serve --");
    assert!(options.lines().any(|l| l == "--dev"), "{options}");
    for shell in ["zsh", "fish"] {
        let out = Command::new(common::keygate_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("serve"),
            "{shell}"
        );
    }
}

#[test]
fn a_config_with_an_inline_secret_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        "[[tokens]]\nprincipal = \"alice\"\nkind = \"user\"\ntoken = \"hunter2-inline\"\n",
    )
    .unwrap();
    let out = Command::new(common::keygate_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("inline secrets are refused") && err.contains("token"),
        "{err}"
    );
    assert!(!err.contains("hunter2-inline"));
}
