//! The shared provider conformance suite, run against the local provider, plus what is
//! particular to it: keys survive a reopen, and a wrong passphrase opens nothing.

use keygate_provider::conformance::{self, Options};
use keygate_provider::{KeyProvider, KeyUri, SecretBytes, SignInput, VersionRef};
use keygate_provider_local::{LocalProvider, MasterKeySource};

fn passphrase(p: &str) -> MasterKeySource {
    MasterKeySource::Passphrase(SecretBytes::copy_from(p.as_bytes()))
}

#[tokio::test]
async fn local_provider_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let provider = LocalProvider::open("local", dir.path(), MasterKeySource::DevGenerated).unwrap();
    let mut options = Options::new("conf");
    options.unknown_uri = Some(KeyUri::new("local://no-such-key"));
    if let Err(report) = conformance::run(&provider, &options).await {
        panic!("{report}");
    }
}

/// The same suite through the guard every configured instance runs inside: it must change
/// nothing a healthy provider does.
#[tokio::test]
async fn the_guarded_local_provider_passes_the_conformance_suite() {
    use keygate_provider::kit::{GuardSettings, Guarded, NoMetrics};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let provider = LocalProvider::open("local", dir.path(), MasterKeySource::DevGenerated).unwrap();
    let guarded = Guarded::new(
        Arc::new(provider),
        &GuardSettings::default(),
        std::time::Duration::from_secs(30),
        Arc::new(NoMetrics),
    );
    let mut options = Options::new("guarded");
    options.unknown_uri = Some(KeyUri::new("local://no-such-key"));
    if let Err(report) = conformance::run(&guarded, &options).await {
        panic!("{report}");
    }
}

#[tokio::test]
async fn keys_survive_reopen_and_need_the_right_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let signature;
    let version;
    {
        let provider = LocalProvider::open("local", dir.path(), passphrase("s3cret pass")).unwrap();
        let spec = keygate_provider::KeySpec {
            name: "app/signing".into(),
            key_id: "k1".into(),
            algorithm: keygate_provider::Algorithm::EcdsaP256,
            owner: "alice".into(),
            environment: "dev".into(),
            crypto_period: std::time::Duration::from_secs(86_400),
            labels: Default::default(),
        };
        let key = provider.create_key(&spec).await.unwrap().value;
        version = VersionRef {
            uri: key.uri.clone(),
            algorithm: key.algorithm,
            version: 1,
            provider_version: "1".into(),
        };
        signature = provider
            .sign(&version, SignInput::Message(b"hello"))
            .await
            .unwrap()
            .value;
    }
    let reopened = LocalProvider::open("local", dir.path(), passphrase("s3cret pass")).unwrap();
    assert!(
        reopened
            .verify(&version, SignInput::Message(b"hello"), &signature)
            .await
            .unwrap()
            .value
    );
    let err = LocalProvider::open("local", dir.path(), passphrase("wrong")).unwrap_err();
    assert!(
        err.to_string().contains("passphrase does not open"),
        "{err}"
    );
    // No key material, sealed or not, is readable as plaintext in the files.
    for entry in std::fs::read_dir(dir.path().join("keys")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains("PRIVATE"),
            "key file holds a PEM private key"
        );
    }
}
