//! Providers' own audit records brought into keygate's log, through the CLI and gRPC, against
//! real backends:
//!
//! - OpenBao's file audit device, followed live: a call through keygate comes back in one
//!   merged query with OpenBao's own record linked to it; a call made straight to OpenBao with
//!   the same key is a bypass finding (query and tail); a malformed line is skipped, counted
//!   and reported with its position; a restart resumes at the cursor; the same input ingested
//!   twice adds nothing.
//! - AWS CloudTrail log files in a LocalStack S3 bucket (LocalStack's community edition has no
//!   CloudTrail, so the test writes CloudTrail-format records for the calls it really made, with
//!   the request ids KMS returned): the same merge and bypass, `audit hash` finding a hashed
//!   access key id, duplicates and malformed files, and checkpoints witnessed in S3.
//! - GCP Cloud Audit Logs written by the Cloud KMS emulator (in this process): the call linked
//!   by the request id in its User-Agent, a direct SDK call a bypass finding.
//! - Azure Key Vault AuditEvent logs written by the Key Vault emulator (in this process, over
//!   HTTPS): the call linked by its `correlationId` (keygate's `x-ms-client-request-id`), a
//!   direct SDK call a bypass finding.

mod common;

use common::{Keys, ROOT_TOKEN, Server, ServerOptions, create, events_for, request_id};
use keygate::pb;
use keygate_test_backends::localstack::LocalStack;
use keygate_test_backends::openbao::OpenBao;
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Not KEYGATE_*: keygate would take that prefix as configuration.
const TOKEN_ENV: &str = "VAULT_TOKEN_FOR_KEYGATE_TESTS";
const KEY_ID_VAR: &str = "E2E_AWS_ACCESS_KEY_ID";
const SECRET_VAR: &str = "E2E_AWS_SECRET_ACCESS_KEY";
const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";

/// `keygate --json ARGS…` against `server`: its JSON Lines.
fn json_lines(server: &Server, args: &[&str]) -> Vec<Value> {
    let out = server
        .cli()
        .arg("--json")
        .args(args)
        .output()
        .expect("run keygate");
    assert!(
        out.status.success(),
        "keygate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

/// Polls `check` until it gives a value, or fails after a minute naming `what`.
async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ingester(server: &Server, name: &str) -> Value {
    json_lines(server, &["audit", "ingesters"])
        .into_iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no ingester {name}"))
}

/// The gateway event of `gateway_id` from a merged query, once the provider's record is linked.
fn merged(server: &Server, gateway_id: &str, source: &str) -> Option<(Value, Value)> {
    let events = json_lines(
        server,
        &["audit", "query", "--request-id", gateway_id, "--linked"],
    );
    let call = events
        .iter()
        .find(|e| e["source"] == "gateway" && e["outcome"] == "ok")?;
    let linked = call["linked"]
        .as_array()?
        .iter()
        .find(|l| l["source"] == source)?
        .clone();
    Some((call.clone(), linked))
}

/// The provider's records about `key` in the log.
fn provider_records(server: &Server, key: &str, source: &str) -> Vec<Value> {
    json_lines(
        server,
        &[
            "audit", "query", "--key", key, "--source", source, "--limit", "10000",
        ],
    )
}

fn write_config(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// A key made through keygate on `provider`.
async fn create_on(keys: &mut Keys, name: &str, algorithm: &str, provider: &str) -> pb::Key {
    let mut req = create(name, algorithm, "root");
    req.provider = provider.into();
    keys.create_key(req).await.unwrap().into_inner()
}

/// One Encrypt through keygate; its request id, which the provider's record must link to.
async fn encrypt_through_keygate(keys: &mut Keys, key: &str) -> String {
    let reply = keys
        .encrypt(pb::EncryptRequest {
            key: key.into(),
            plaintext: b"through keygate".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap();
    request_id(&reply)
}

fn vault_config(dir: &Path, bao: &OpenBao, feeds: &str) -> PathBuf {
    write_config(
        &dir.join("keygate.toml"),
        &format!(
            "[providers.vault]\n\
             kind = \"vault\"\n\
             address = \"{}\"\n\
             auth = {{ method = \"token\", token = {{ env = \"{TOKEN_ENV}\" }} }}\n\
             [audit]\n\
             bypass_grace = \"2s\"\n\
             {feeds}",
            bao.addr()
        ),
    )
}

fn start_with_vault(dir: &Path, config: PathBuf, bao: &OpenBao) -> Server {
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env: vec![(TOKEN_ENV.into(), bao.token().into())],
            ..Default::default()
        },
    )
}

/// A Transit encrypt made straight to OpenBao, around keygate; its request id.
fn encrypt_around_keygate(bao: &OpenBao, vault_key: &str) -> String {
    let (status, body) = bao
        .request(
            "POST",
            &format!("/v1/transit/encrypt/{vault_key}"),
            Some(r#"{"plaintext":"aGVsbG8="}"#),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["request_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn openbao_records_merge_with_gateway_calls_and_bypasses_are_found() {
    let bao = OpenBao::start().unwrap_or_else(|e| panic!("cannot start OpenBao: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let log = bao.audit_log_path();
    let feed = |batch: usize| {
        format!(
            "[[audit.ingest]]\nname = \"openbao\"\nformat = \"vault\"\nfile = \"{}\"\npoll = \"200ms\"\nbatch = {batch}\n",
            log.display()
        )
    };
    let mut server = start_with_vault(dir.path(), vault_config(dir.path(), &bao, &feed(500)), &bao);
    let mut keys = server.root().await;
    let key = create_on(&mut keys, "ingest/dek", "aes-256-gcm", "vault").await;
    let vault_key = key
        .provider_uri
        .rsplit("/keys/")
        .next()
        .unwrap()
        .to_string();

    // A call through keygate: one merged query shows it with OpenBao's own record.
    let gateway_id = encrypt_through_keygate(&mut keys, "ingest/dek").await;
    let (call, record) = wait_for("OpenBao's record linked to the call", || {
        merged(&server, &gateway_id, "vault")
    })
    .await;
    assert_eq!(call["action"], "Encrypt");
    assert_eq!(record["action"], "Encrypt");
    assert_eq!(record["key_id"], key.id.as_str());
    assert_eq!(record["key_uri"], key.provider_uri.as_str());
    assert_eq!(record["provider_request_id"], call["provider_request_id"]);
    assert_eq!(record["linked_sequence"], call["sequence"]);
    assert_eq!(record["request_id"], gateway_id.as_str());
    assert_eq!(record["bypass"], false);
    let details: Value = serde_json::from_str(record["details"].as_str().unwrap()).unwrap();
    assert!(
        details["vault"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:"),
        "{details}"
    );
    // The query by request id returns both, side by side.
    let both = json_lines(&server, &["audit", "query", "--request-id", &gateway_id]);
    assert!(both.iter().any(|e| e["source"] == "gateway"), "{both:?}");
    assert!(both.iter().any(|e| e["source"] == "vault"), "{both:?}");

    // A call straight to OpenBao with the same key is a bypass finding, streamed by tail.
    let mut audit = server.audit(ROOT_TOKEN).await;
    let mut tail = audit
        .tail(pb::AuditTailRequest {
            bypass: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let direct = encrypt_around_keygate(&bao, &vault_key);
    let found = tokio::time::timeout(Duration::from_secs(60), tail.message())
        .await
        .expect("tail --bypass delivered nothing")
        .unwrap()
        .unwrap();
    assert_eq!(found.provider_request_id, direct);
    assert!(found.bypass);
    assert_eq!(
        (found.source.as_str(), found.action.as_str()),
        ("vault", "Encrypt")
    );
    assert_eq!(found.key_id, key.id);
    assert_eq!(found.linked_sequence, 0);
    let bypasses = json_lines(&server, &["audit", "query", "--bypass"]);
    assert_eq!(bypasses.len(), 1, "{bypasses:?}");
    assert_eq!(bypasses[0]["provider_request_id"], direct.as_str());

    // A malformed line is skipped, counted and reported with its position; the rest ingests.
    let line = std::fs::read_to_string(&log).unwrap().lines().count() + 1;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"this is not an audit record\n")
        .unwrap();
    let after_garbage = encrypt_around_keygate(&bao, &vault_key);
    wait_for("the record after the malformed line", || {
        json_lines(&server, &["audit", "query", "--bypass"])
            .iter()
            .any(|e| e["provider_request_id"] == after_garbage.as_str())
            .then_some(())
    })
    .await;
    let status = ingester(&server, "openbao");
    let skipped = json_lines(
        &server,
        &["audit", "query", "--action", "AuditIngestSkipped"],
    );
    assert_eq!(status["malformed"], 1, "{status}\n{skipped:?}");
    let reported = status["last_malformed"].as_str().unwrap();
    assert!(
        reported.contains(&format!("audit.log line {line} ")) && reported.contains("not JSON"),
        "{reported}"
    );
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("line {line} ")),
        "{}",
        skipped[0]
    );

    // A restart resumes at the cursor: records written while keygate was down come in once,
    // nothing before them comes in again.
    let before: Vec<Value> = provider_records(&server, "ingest/dek", "vault");
    server.kill9();
    let mut while_down = Vec::new();
    for _ in 0..5 {
        while_down.push(encrypt_around_keygate(&bao, &vault_key));
    }
    let server = start_with_vault(dir.path(), vault_config(dir.path(), &bao, &feed(2)), &bao);
    let after = wait_for("the records written while keygate was down", || {
        let now = provider_records(&server, "ingest/dek", "vault");
        while_down
            .iter()
            .all(|id| now.iter().any(|e| e["provider_request_id"] == id.as_str()))
            .then_some(now)
    })
    .await;
    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["provider_request_id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut unique = ids(&after);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), after.len(), "a record was ingested twice");
    assert_eq!(after.len(), before.len() + while_down.len());
    assert!(ids(&before).iter().all(|id| ids(&after).contains(id)));

    // The same input ingested again (a copy of OpenBao's log read by a second ingester) adds
    // nothing: every record is recognised by its id.
    drop(server);
    let copy = dir.path().join("copy.log");
    std::fs::copy(&log, &copy).unwrap();
    let total_lines = std::fs::read_to_string(&copy).unwrap().lines().count() as u64;
    let feeds = format!(
        "{}[[audit.ingest]]\nname = \"openbao-copy\"\nformat = \"vault\"\nfile = \"{}\"\npoll = \"200ms\"\n",
        feed(500),
        copy.display()
    );
    let server = start_with_vault(dir.path(), vault_config(dir.path(), &bao, &feeds), &bao);
    let status = wait_for("the copy to be read to its end", || {
        let s = ingester(&server, "openbao-copy");
        let seen = ["ingested", "duplicates", "ignored", "malformed"]
            .iter()
            .map(|f| s[*f].as_u64().unwrap_or(0))
            .sum::<u64>();
        (seen == total_lines).then_some(s)
    })
    .await;
    assert_eq!(status["ingested"], 0, "{status}");
    assert!(status["duplicates"].as_u64().unwrap() >= 8, "{status}");
    assert_eq!(
        provider_records(&server, "ingest/dek", "vault").len(),
        after.len()
    );
}

fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn kms_client(endpoint: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(REGION))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// A CloudTrail record of a KMS call, as CloudTrail documents them.
fn trail_record(
    event_id: &str,
    request_id: &str,
    principal: &str,
    ip: &str,
    access_key: &str,
    key_arn: &str,
) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEPRINCIPAL",
            "arn": principal,
            "accountId": ACCOUNT,
            "accessKeyId": access_key,
            "userName": principal.rsplit('/').next().unwrap(),
        },
        "eventTime": keygate::time::rfc3339(keygate::time::now_ms()),
        "eventSource": "kms.amazonaws.com",
        "eventName": "Encrypt",
        "awsRegion": REGION,
        "sourceIPAddress": ip,
        "userAgent": "aws-sdk-rust/1.3.9 os/linux lang/rust/1.95.0",
        "requestParameters": {
            "keyId": key_arn,
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "encryptionContext": {"tenant": "acme-secret-tenant"},
        },
        "responseElements": null,
        "requestID": request_id,
        "eventID": event_id,
        "readOnly": true,
        "resources": [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key_arn}],
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    })
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body).unwrap();
    gz.finish().unwrap()
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
}

/// `AWSLogs/ACCOUNT/CloudTrail/REGION/2026/12/06/ACCOUNT_CloudTrail_REGION_…_TAG.json.gz`.
fn trail_key(minute: u32, tag: &str) -> String {
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2026/12/06/{ACCOUNT}_CloudTrail_{REGION}_20261206T10{minute:02}Z_{tag}.json.gz"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudtrail_records_from_s3_merge_with_gateway_calls_and_bypasses_are_found() {
    let ls = tokio::task::spawn_blocking(LocalStack::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("LocalStack could not be started: {e}"));
    let s3 = s3_client(&ls.endpoint());
    for bucket in ["trail", "witness"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir.path().join("keygate.toml"),
        &format!(
            r#"[providers.aws]
kind = "aws-kms"
region = "{REGION}"
endpoint_url = "{endpoint}"
credentials = {{ source = "env", access_key_id_env = "{KEY_ID_VAR}", secret_access_key_env = "{SECRET_VAR}" }}
[audit]
bypass_grace = "2s"
[audit.checkpoints]
every = "1s"
[audit.witness]
objects = {{ provider = "aws", bucket = "witness", prefix = "keygate" }}
[[audit.ingest]]
name = "cloudtrail"
format = "cloudtrail"
objects = {{ provider = "aws", bucket = "trail", prefix = "AWSLogs/{ACCOUNT}/CloudTrail/" }}
poll = "300ms"
"#,
            endpoint = ls.endpoint()
        ),
    );
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            env: vec![
                (KEY_ID_VAR.into(), "test".into()),
                (SECRET_VAR.into(), "test".into()),
            ],
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    let key = create_on(&mut keys, "trail/dek", "aes-256-gcm", "aws").await;
    let arn = key
        .provider_uri
        .trim_start_matches("awskms:///")
        .to_string();

    // A call through keygate, and one straight to KMS with the same key.
    let gateway_id = encrypt_through_keygate(&mut keys, "trail/dek").await;
    let mut audit = server.audit(ROOT_TOKEN).await;
    let call = events_for(&mut audit, &gateway_id)
        .await
        .into_iter()
        .find(|e| e.action == "Encrypt")
        .unwrap();
    let kms = kms_client(&ls.endpoint());
    let direct = kms
        .encrypt()
        .key_id(&arn)
        .plaintext(aws_sdk_kms::primitives::Blob::new(
            b"around keygate".to_vec(),
        ))
        .send()
        .await
        .unwrap();
    let direct_id = aws_sdk_kms::operation::RequestId::request_id(&direct)
        .unwrap()
        .to_string();

    // CloudTrail's file for those two calls, as it would deliver it.
    let intruder_key = "AKIAIOSFODNN7EXAMPLE";
    let file = json!({"Records": [
        trail_record("0f6e1c2a-0001-4000-8000-000000000001", &call.provider_request_id,
            "arn:aws:iam::000000000000:user/keygate", "127.0.0.1", "AKIAKEYGATE000000001", &arn),
        trail_record("0f6e1c2a-0002-4000-8000-000000000002", &direct_id,
            "arn:aws:iam::000000000000:user/intruder", "203.0.113.7", intruder_key, &arn),
    ]});
    let body = gzip(file.to_string().as_bytes());
    put(&s3, "trail", &trail_key(0, "a"), body.clone()).await;

    let (gw, record) = wait_for("CloudTrail's record linked to the call", || {
        merged(&server, &gateway_id, "aws-kms")
    })
    .await;
    assert_eq!(
        record["provider_request_id"],
        call.provider_request_id.as_str()
    );
    assert_eq!(record["linked_sequence"], gw["sequence"]);
    assert_eq!(record["key_id"], key.id.as_str());
    assert_eq!(record["actor"], "arn:aws:iam::000000000000:user/keygate");
    let bypass = wait_for("the direct call as a bypass finding", || {
        json_lines(&server, &["audit", "query", "--bypass"])
            .into_iter()
            .find(|e| e["provider_request_id"] == direct_id.as_str())
    })
    .await;
    assert_eq!(bypass["source"], "aws-kms");
    assert_eq!(bypass["key_id"], key.id.as_str());
    assert_eq!(bypass["actor"], "arn:aws:iam::000000000000:user/intruder");
    assert_eq!(bypass["client_address"], "203.0.113.7");

    // The access key id and the encryption context are kept only as HMACs; `audit hash` finds
    // the event that carries one.
    let export = server.cli().args(["audit", "export"]).output().unwrap();
    let exported = String::from_utf8_lossy(&export.stdout);
    assert!(exported.contains(direct_id.as_str()));
    assert!(
        !exported.contains(intruder_key),
        "a raw access key id was stored"
    );
    assert!(
        !exported.contains("acme-secret-tenant"),
        "a raw encryption context was stored"
    );
    let found = server
        .cli()
        .args(["--json", "audit", "hash", intruder_key])
        .output()
        .unwrap();
    let found: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert!(
        found["hmac"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:keygate:")
    );
    let hits = found["events"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{found}");
    assert_eq!(hits[0]["provider_request_id"], direct_id.as_str());

    // The same file delivered again under another name adds nothing.
    let before = provider_records(&server, "trail/dek", "aws-kms").len();
    assert_eq!(before, 2);
    put(&s3, "trail", &trail_key(5, "b"), body).await;
    wait_for("the second copy to be read", || {
        (ingester(&server, "cloudtrail")["duplicates"].as_u64() == Some(2)).then_some(())
    })
    .await;
    assert_eq!(
        provider_records(&server, "trail/dek", "aws-kms").len(),
        before
    );

    // A file that is not one, and a file with a malformed record among good ones: skipped,
    // counted, reported with their positions; the good record still comes in.
    let second = kms
        .encrypt()
        .key_id(&arn)
        .plaintext(aws_sdk_kms::primitives::Blob::new(b"again".to_vec()))
        .send()
        .await
        .unwrap();
    let second_id = aws_sdk_kms::operation::RequestId::request_id(&second)
        .unwrap()
        .to_string();
    put(
        &s3,
        "trail",
        &trail_key(10, "c"),
        b"not a log file".to_vec(),
    )
    .await;
    let mixed = json!({"Records": [
        trail_record("0f6e1c2a-0003-4000-8000-000000000003", &second_id,
            "arn:aws:iam::000000000000:user/intruder", "203.0.113.7", intruder_key, &arn),
        {"eventVersion": "1.08", "eventSource": "kms.amazonaws.com"},
    ]});
    let mixed_key = trail_key(15, "d");
    put(&s3, "trail", &mixed_key, gzip(mixed.to_string().as_bytes())).await;
    wait_for("the good record of the mixed file", || {
        json_lines(&server, &["audit", "query", "--bypass"])
            .iter()
            .any(|e| e["provider_request_id"] == second_id.as_str())
            .then_some(())
    })
    .await;
    let status = wait_for("both malformed records counted", || {
        let s = ingester(&server, "cloudtrail");
        (s["malformed"].as_u64() == Some(2)).then_some(s)
    })
    .await;
    assert_eq!(
        status["last_malformed"]
            .as_str()
            .unwrap()
            .split(": ")
            .next()
            .unwrap(),
        format!("s3://trail/{mixed_key} record 2"),
        "{status}"
    );

    // Checkpoints are witnessed in the bucket, and the log verifies against them.
    let witnessed = wait_for("a checkpoint in the witness bucket", || {
        let list = futures_block(
            s3.list_objects_v2()
                .bucket("witness")
                .prefix("keygate/checkpoints/")
                .send(),
        )
        .unwrap();
        let n = list.contents().len();
        (n > 0).then_some(n)
    })
    .await;
    assert!(witnessed > 0);
    let verify = json_lines(&server, &["audit", "verify"]);
    assert_eq!(verify[0]["ok"], true, "{:?}", verify[0]);
    assert!(verify[0]["witness_sequence"].as_u64().unwrap() > 0);
}

/// Runs a future to its end from synchronous code inside the test's runtime.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Cloud Audit Logs of the Cloud KMS emulator (the same `LogEntry` lines a log sink exports):
/// a call through keygate is linked by the request id its User-Agent carries; a call made
/// straight to Cloud KMS with the same key is a bypass finding.
#[tokio::test(flavor = "multi_thread")]
async fn gcp_cloud_audit_logs_merge_with_gateway_calls_and_bypasses_are_found() {
    use google_cloud_kms_v1::client::KeyManagementService;
    use keygate_emulators::gcp::{self, GcpOptions};
    let dir = tempfile::tempdir().unwrap();
    let cloud_audit = dir.path().join("cloudaudit.jsonl");
    let emu = gcp::spawn_with(
        "127.0.0.1:0",
        GcpOptions {
            audit_log: Some(cloud_audit.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("start the Cloud KMS emulator");
    let config = write_config(
        &dir.path().join("keygate.toml"),
        &format!(
            r#"[providers.gcp]
kind = "gcp-kms"
project = "keygate-e2e"
location = "global"
key_ring = "keygate"
endpoint = "{}"
credentials = {{ source = "anonymous" }}
[audit]
bypass_grace = "2s"
[[audit.ingest]]
name = "cloud-audit"
format = "gcp"
file = "{}"
poll = "200ms"
"#,
            emu.url(),
            cloud_audit.display()
        ),
    );
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    let key = create_on(&mut keys, "cloud/dek", "aes-256-gcm", "gcp").await;
    let gateway_id = encrypt_through_keygate(&mut keys, "cloud/dek").await;
    let (call, record) = wait_for("Cloud Audit Logs' entry linked to the call", || {
        merged(&server, &gateway_id, "gcp-kms")
    })
    .await;
    assert_eq!(record["action"], "Encrypt");
    assert_eq!(record["key_id"], key.id.as_str());
    assert_eq!(record["key_uri"], key.provider_uri.as_str());
    assert_eq!(record["linked_sequence"], call["sequence"]);
    assert_eq!(record["request_id"], gateway_id.as_str());

    // Straight to Cloud KMS, with the SDK's own User-Agent: a bypass finding.
    let sdk = KeyManagementService::builder()
        .with_endpoint(emu.url())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    sdk.encrypt()
        .set_name(key.provider_uri.trim_start_matches("gcpkms://"))
        .set_plaintext(b"around keygate".to_vec())
        .send()
        .await
        .unwrap();
    let bypass = wait_for("the direct call as a bypass finding", || {
        json_lines(
            &server,
            &["audit", "query", "--bypass", "--source", "gcp-kms"],
        )
        .into_iter()
        // The SDK's first request is an unauthenticated challenge, logged as its own
        // (denied) record: the key use is the Encrypt that follows it.
        .find(|l| l["action"] == "Encrypt")
    })
    .await;
    assert_eq!(bypass["key_id"], key.id.as_str());
    assert_eq!(bypass["linked_sequence"], Value::Null);
    assert!(
        bypass["actor"]
            .as_str()
            .unwrap()
            .ends_with("gserviceaccount.com"),
        "{bypass}"
    );
}

/// Azure Key Vault AuditEvent logs of the Key Vault emulator (the records a diagnostic
/// setting exports): a call through keygate is linked by its `correlationId`, which is the
/// `x-ms-client-request-id` keygate sends; a call made straight to the vault with the same key
/// is a bypass finding.
#[tokio::test(flavor = "multi_thread")]
async fn azure_auditevent_logs_merge_with_gateway_calls_and_bypasses_are_found() {
    use azure_security_keyvault_keys::models::{EncryptionAlgorithm, KeyOperationParameters};
    use keygate_emulators::azure::{self, Options};
    let dir = tempfile::tempdir().unwrap();
    let audit_events = dir.path().join("auditevent.jsonl");
    let emu = azure::spawn_with(
        "127.0.0.1:0",
        Options {
            managed_hsm: false,
            audit_log: Some(audit_events.clone()),
        },
    )
    .await
    .expect("start the Key Vault emulator");
    emu.register_client_secret("keygate-e2e", "e2e-client-secret");
    let ca = dir.path().join("vault-ca.pem");
    std::fs::write(&ca, emu.ca_pem()).unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "e2e-client-secret\n").unwrap();
    let config = write_config(
        &dir.path().join("keygate.toml"),
        &format!(
            r#"[limits]
request_timeout = "60s"
provider_timeout = "45s"
[providers.azure]
kind = "azure-keyvault"
vault_url = "{url}"
authority_host = "{url}"
ca_bundle = "{ca}"
verify_challenge_resource = false
credential = {{ source = "client-secret", tenant_id = "tenant-1", client_id = "keygate-e2e", secret = {{ file = "{secret}" }} }}
[audit]
bypass_grace = "2s"
[[audit.ingest]]
name = "key-vault-audit"
format = "azure"
file = "{log}"
poll = "200ms"
"#,
            url = emu.url(),
            ca = ca.display(),
            secret = secret.display(),
            log = audit_events.display(),
        ),
    );
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    let key = create_on(&mut keys, "vault/wrapping", "rsa-2048-oaep", "azure").await;
    let gateway_id = encrypt_through_keygate(&mut keys, "vault/wrapping").await;
    // The SDK's first request is answered by the bearer challenge, logged under the same
    // correlationId as an Authentication record; the KeyEncrypt record is the one to find.
    let (call, record) = wait_for("the KeyEncrypt record linked to the call", || {
        let events = json_lines(
            &server,
            &["audit", "query", "--request-id", &gateway_id, "--linked"],
        );
        let call = events
            .iter()
            .find(|e| e["source"] == "gateway" && e["outcome"] == "ok")?
            .clone();
        let record = call["linked"]
            .as_array()?
            .iter()
            .find(|l| l["source"] == "azure-keyvault" && l["action"] == "Encrypt")?
            .clone();
        Some((call, record))
    })
    .await;
    assert_eq!(record["key_id"], key.id.as_str());
    assert_eq!(record["linked_sequence"], call["sequence"]);
    assert_eq!(record["request_id"], gateway_id.as_str());

    // Straight to the vault with the SDK and a token of another application: a bypass finding.
    let name = key.provider_uri.rsplit('/').next().unwrap().to_string();
    let sdk = azure_sdk(&emu);
    let params = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(b"around keygate".to_vec()),
        ..Default::default()
    };
    sdk.encrypt(&name, params.try_into().unwrap(), None)
        .await
        .expect("a direct encrypt");
    let bypass = wait_for("the direct call as a bypass finding", || {
        json_lines(
            &server,
            &["audit", "query", "--bypass", "--source", "azure-keyvault"],
        )
        .into_iter()
        // The SDK's first request is an unauthenticated challenge, logged as its own
        // (denied) record: the key use is the Encrypt that follows it.
        .find(|l| l["action"] == "Encrypt")
    })
    .await;
    assert_eq!(bypass["key_id"], key.id.as_str());
    assert_eq!(bypass["linked_sequence"], Value::Null);
}

/// The Key Vault SDK straight to the emulator, as an application outside keygate would.
fn azure_sdk(
    emu: &keygate_emulators::azure::AzureEmulator,
) -> azure_security_keyvault_keys::KeyClient {
    use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
    use azure_core::http::{ClientOptions, RetryOptions, Transport};
    use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
    use std::sync::Arc;

    #[derive(Debug)]
    struct OtherApp;

    #[async_trait::async_trait]
    impl TokenCredential for OtherApp {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            Ok(AccessToken::new(
                "outside-keygate",
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA");
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("HTTP client");
    let options = KeyClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            retry: RetryOptions::none(),
            ..Default::default()
        },
        verify_challenge_resource: Some(false),
        ..Default::default()
    };
    KeyClient::new(&emu.url(), Arc::new(OtherApp), Some(options)).expect("SDK client")
}

/// Calls that went to OpenBao in one shared Transit request (the guard's `coalesce`) each show
/// OpenBao's record of that request in a merged query, not only the call it was linked to.
#[tokio::test(flavor = "multi_thread")]
async fn calls_that_shared_a_transit_request_each_show_its_record() {
    let bao = OpenBao::start().unwrap_or_else(|e| panic!("cannot start OpenBao: {e}"));
    let dir = tempfile::tempdir().unwrap();
    // One request out per key version before calls share; each Transit encrypt is held 1 s
    // (dev-mode fault injection), so the calls sent meanwhile wait and go together.
    let feeds = format!(
        "[[audit.ingest]]\nname = \"openbao\"\nformat = \"vault\"\nfile = \"{}\"\npoll = \"200ms\"\n\
         [providers.vault.guard]\ncoalesce = {{ in_flight = 1 }}\n\
         [providers.vault.guard.faults]\ndelay = \"1s\"\nops = [\"encrypt\", \"encrypt_batch\"]\n",
        bao.audit_log_path().display()
    );
    let server = start_with_vault(dir.path(), vault_config(dir.path(), &bao, &feeds), &bao);
    let mut keys = server.root().await;
    create_on(&mut keys, "ingest/shared", "aes-256-gcm", "vault").await;
    let calls = (0..4).map(|_| {
        let mut keys = keys.clone();
        async move { encrypt_through_keygate(&mut keys, "ingest/shared").await }
    });
    let ids = futures::future::join_all(calls).await;

    let mut requests = std::collections::HashSet::new();
    for id in &ids {
        let (call, record) = wait_for("OpenBao's record linked to every call", || {
            merged(&server, id, "vault")
        })
        .await;
        assert_eq!(record["provider_request_id"], call["provider_request_id"]);
        requests.insert(record["provider_request_id"].to_string());
    }
    assert!(
        requests.len() < ids.len(),
        "{} calls went in {} Transit requests: some shared one",
        ids.len(),
        requests.len()
    );
}
