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

/// `--output json|yaml|table` on commands that print records: YAML holds what JSON holds, one
/// document per record and per streamed event; `--json` is `-o json`.
#[tokio::test(flavor = "multi_thread")]
async fn output_formats_print_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    for (name, algorithm) in [
        ("payments/card-dek", "aes-256-gcm"),
        ("release/signing", "ecdsa-p256"),
    ] {
        let create =
            format!("key create {name} --algorithm {algorithm} --owner alice --crypto-period 365d");
        let args: Vec<&str> = create.split(' ').collect();
        let (ok, _, err) = run(cli(&server, &args), b"");
        assert!(ok, "{err}");
    }
    let printed = |args: &[&str]| {
        let (ok, out, err) = run(cli(&server, args), b"");
        assert!(ok, "{args:?}: {err}");
        String::from_utf8(out).unwrap()
    };

    let json: serde_json::Value =
        serde_json::from_str(&printed(&["key", "list", "-o", "json"])).unwrap();
    let yaml_text = printed(&["key", "list", "--output", "yaml"]);
    let yaml: serde_json::Value = serde_saphyr::from_str(&yaml_text).unwrap();
    assert_eq!(yaml, json, "{yaml_text}");
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert!(
        names.contains(&"payments/card-dek") && names.contains(&"release/signing"),
        "{json}"
    );
    // Times are quoted, so YAML 1.1 readers (PyYAML) load strings too, not timestamps.
    assert!(
        yaml_text.contains("name: payments/card-dek") && yaml_text.contains("created_at: \"20"),
        "{yaml_text}"
    );
    // The older flag still prints the same JSON.
    let legacy: serde_json::Value =
        serde_json::from_str(&printed(&["key", "list", "--json"])).unwrap();
    assert_eq!(legacy, json);

    // A single record: one YAML document equal to the JSON object.
    let shown = printed(&["key", "show", "payments/card-dek", "-o", "yaml"]);
    let shown: serde_json::Value = serde_saphyr::from_str(&shown).unwrap();
    let shown_json: serde_json::Value = serde_json::from_str(&printed(&[
        "key",
        "show",
        "payments/card-dek",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(shown, shown_json);
    assert_eq!(shown["owner"], "alice");

    // A stream: one JSON line, or one YAML document, per event.
    let query = ["audit", "query", "--key", "payments/card-dek", "-o"];
    let lines: Vec<serde_json::Value> = printed(&[&query[..], &["json"]].concat())
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let yaml_stream = printed(&[&query[..], &["yaml"]].concat());
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml_stream).unwrap();
    assert!(lines.len() >= 2, "{lines:?}");
    assert_eq!(documents, lines);

    // Tables stay the default, and `-o table` asks for them.
    let table = printed(&["key", "list", "-o", "table"]);
    assert_eq!(table, printed(&["key", "list"]));
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("NAME") && header.contains("ALGORITHM") && header.contains("OWNER"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("payments/card-dek") && l.contains("aes-256-gcm")),
        "{table}"
    );

    // An unknown format is refused by name, listing the formats there are.
    let (ok, out, err) = run(cli(&server, &["key", "list", "-o", "xml"]), b"");
    assert!(!ok && out.is_empty());
    assert!(
        err.contains("invalid value 'xml' for '--output <OUTPUT>'")
            && err.contains("[possible values: table, json, yaml]"),
        "{err}"
    );
    let (ok, _, err) = run(cli(&server, &["key", "list", "--json", "-o", "yaml"]), b"");
    assert!(!ok && err.contains("cannot be used with"), "{err}");
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

/// `bench --progress` reports the calls sent on stderr, every second from the start.
#[tokio::test(flavor = "multi_thread")]
async fn bench_shows_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let (ok, stdout, stderr) = run(
        cli(
            &server,
            &[
                "bench",
                "--op",
                "encrypt",
                "--requests",
                "200",
                "--concurrency",
                "4",
                "--progress",
                "-o",
                "json",
            ],
        ),
        b"",
    );
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["ok"].as_u64(), Some(200), "{report}");
    assert!(stderr.contains("calls sent of 200"), "{stderr}");
}
