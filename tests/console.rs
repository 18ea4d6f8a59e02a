//! The web console (`[console]`) end to end: a security officer signs in with a token in a
//! real headless Chromium (Debian's, driven through chromedriver), the overview's counts are
//! the gRPC API's, filtering the audit feed by key shows that key's events, a new call shows
//! up in the live tail, a key's page charts its versions' use, and acknowledging a finding is
//! audited. Over plain HTTP: a bad token is refused and audited, a service may not sign in,
//! forms without the session's CSRF token or from another origin are refused and change
//! nothing, the cookie never holds the token.
//!
//! Needs chromium and chromium-driver (`tests/run.sh console` installs them). Screenshots go
//! to `$CARGO_TARGET_TMPDIR/console-screenshots/`.

mod common;

use common::{Server, ServerOptions, create, open, request_id, seal};
use fantoccini::{Client, ClientBuilder, Locator};
use keygate::pb;
use keygate::pb::posture_service_client::PostureServiceClient;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// (principal, kind, role)
const PEOPLE: &[(&str, &str, &str)] = &[
    ("sol", "user", "security-officer"),
    ("svc-app", "service-account", "key-user"),
    ("svc-audit", "service-account", "auditor"),
];

fn token(principal: &str) -> String {
    format!(
        "kg_console_{}_token_0123456789abcdef",
        principal.replace('-', "_")
    )
}

fn token_var(principal: &str) -> String {
    format!(
        "E2E_CONSOLE_TOKEN_{}",
        principal.replace('-', "_").to_uppercase()
    )
}

/// A gateway in dev mode with the console on a free port; returns the console's base URL.
fn start(dir: &Path) -> (Server, String) {
    let mut config = String::from(
        r#"[lifecycle]
min_crypto_period = "1s"

[posture]
scan_interval = "0s"

[console]
listen = "127.0.0.1:0"
session = "1h"

"#,
    );
    for (name, kind, role) in PEOPLE {
        config.push_str(&format!(
            "[[tokens]]\nprincipal = \"{name}\"\nkind = \"{kind}\"\nroles = [\"{role}\"]\nenvironments = [\"dev\"]\ntoken = {{ env = \"{}\" }}\n\n",
            token_var(name)
        ));
    }
    let path = dir.join("keygate.toml");
    std::fs::write(&path, config).unwrap();
    let server = Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(path),
            env: PEOPLE
                .iter()
                .map(|(name, ..)| (token_var(name), token(name)))
                .collect(),
            ..Default::default()
        },
    );
    let output = server.output();
    let base = output
        .lines()
        .find_map(|l| l.strip_prefix("console on "))
        .unwrap_or_else(|| panic!("no console address:\n{output}"))
        .trim()
        .to_string();
    (server, base)
}

type Posture = PostureServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, common::Bearer>,
>;

async fn posture_as(server: &Server, principal: &str) -> Posture {
    PostureServiceClient::with_interceptor(
        server.channel().await,
        common::Bearer::new(&token(principal)),
    )
}

async fn findings(posture: &mut Posture, state: &str) -> Vec<pb::Finding> {
    posture
        .list_findings(pb::ListFindingsRequest {
            state: state.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .findings
}

/// Keys, uses and a finding to look at: `console/app` (encrypted with 3 times, decrypted
/// twice, all with version 1) and `console/stale`, whose 1 s crypto-period has run out when
/// the scan runs.
async fn set_up(server: &Server) -> (pb::Key, pb::Finding) {
    let mut root = server.root().await;
    let mut stale = create("console/stale", "aes-256-gcm", "svc-app");
    stale.crypto_period = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    let stale = root.create_key(stale).await.unwrap().into_inner();
    let app = root
        .create_key(create("console/app", "aes-256-gcm", "svc-app"))
        .await
        .unwrap()
        .into_inner();
    let mut sealed = Vec::new();
    for i in 0..3 {
        sealed.push(seal(&mut root, "console/app", format!("record {i}").as_bytes()).await);
    }
    for ciphertext in &sealed[..2] {
        open(&mut root, ciphertext).await.unwrap();
    }
    let mut posture = posture_as(server, "sol").await;
    // The crypto-period is 1 s: scan until the finding is open (at most a minute).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        posture.run_scan(pb::RunScanRequest {}).await.unwrap();
        let open = findings(&mut posture, "open").await;
        if let Some(f) = open
            .into_iter()
            .find(|f| f.rule == "crypto-period-exceeded" && f.key_id == stale.id)
        {
            return (app, f);
        }
        assert!(Instant::now() < deadline, "no crypto-period finding");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child =
        std::process::Command::new(program("KEYGATE_CHROMEDRIVER", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver (tests/run.sh console installs it)");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

/// A headless Chromium session with a fresh profile.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": program("KEYGATE_CHROMIUM", "/usr/bin/chromium"),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = screenshots().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
}

async fn attr(client: &Client, css: &str, name: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .attr(name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{css} has no {name}"))
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn path(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_string()
}

async fn sign_in(client: &Client, base: &str, token: &str) {
    client.goto(&format!("{base}/signin")).await.unwrap();
    client
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    client
        .find(Locator::Css("form.signin button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits (at most 30 s) until the page's URL satisfies `wanted` (a click returns before the
/// navigation it starts ends).
async fn wait_for_url(client: &Client, what: &str, wanted: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = client.current_url().await.unwrap();
        if wanted(url.as_str()) {
            return;
        }
        assert!(Instant::now() < deadline, "never reached {what}: at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most 30 s) until `css` matches an element.
async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_officer_uses_the_console_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base) = start(dir.path());
    let (app, finding) = set_up(&server).await;
    let driver = start_driver().await;
    let client = browser(&driver, &dir.path().join("profile")).await;

    // Signed out, every page leads to the sign-in form; a bad token does not get past it.
    client.goto(&base).await.unwrap();
    assert_eq!(path(&client).await, "/signin");
    sign_in(&client, &base, "not-a-token").await;
    let refused = wait_for(&client, "p.error").await;
    assert_eq!(refused.text().await.unwrap(), "That token is not valid.");
    screenshot(&client, "01-sign-in-refused").await;

    sign_in(&client, &base, &token("sol")).await;
    let who = wait_for(&client, ".who").await;
    assert_eq!(who.text().await.unwrap(), "sol");
    assert_eq!(path(&client).await, "/");

    // The overview's counts are what the API gives the same principal.
    let mut keys = server.keys(&token("sol")).await;
    let listed = keys
        .list_keys(pb::ListKeysRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert!(listed.iter().any(|k| k.name == "console/app"));
    assert_eq!(
        attr(&client, "#keys-total", "data-count").await,
        listed.len().to_string()
    );
    let mut posture = posture_as(&server, "sol").await;
    let open_findings = findings(&mut posture, "open").await;
    assert_eq!(
        attr(&client, "#findings-total", "data-count").await,
        open_findings.len().to_string()
    );
    let high = open_findings
        .iter()
        .filter(|f| f.severity == "high")
        .count();
    if high > 0 {
        assert_eq!(
            text(&client, "span.n[data-severity=high]").await,
            high.to_string()
        );
    }
    let local_row = text(
        &client,
        "#keys-by-provider tr[data-provider=local] td.total",
    )
    .await;
    assert_eq!(
        local_row,
        listed
            .iter()
            .filter(|k| k.provider == "local")
            .count()
            .to_string()
    );
    screenshot(&client, "02-overview").await;

    // The audit feed filtered by key: that key's events and only them.
    client.goto(&format!("{base}/audit")).await.unwrap();
    client
        .find(Locator::Css("input[name=key]"))
        .await
        .unwrap()
        .send_keys("console/app")
        .await
        .unwrap();
    client
        .find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_url(&client, "the filtered feed", |u| {
        u.contains("key=console%2Fapp")
    })
    .await;
    let mut audit = server.audit(&token("sol")).await;
    let expected = common::query_all(
        &mut audit,
        pb::AuditQueryRequest {
            key: "console/app".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(expected.len() >= 6, "create, 3 encrypts, 2 decrypts");
    let rows = client
        .find_all(Locator::Css("#events tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), expected.len().min(100));
    let newest = expected.iter().map(|e| e.sequence).max().unwrap();
    assert_eq!(
        rows[0].attr("data-sequence").await.unwrap().unwrap(),
        newest.to_string(),
        "the feed starts with the newest event"
    );
    for row in &rows {
        let seq: u64 = row
            .attr("data-sequence")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            expected.iter().any(|e| e.sequence == seq),
            "event {seq} is not about console/app"
        );
    }

    // A new call on the key appears in the live tail.
    wait_for(&client, "#tail-status").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text(&client, "#tail-status").await.starts_with("Live") {
        assert!(Instant::now() < deadline, "the live tail never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut root = server.root().await;
    let sealed = root
        .encrypt(pb::EncryptRequest {
            key: "console/app".into(),
            plaintext: b"live".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap();
    let live = request_id(&sealed);
    let row = wait_for(&client, "#tail tbody tr").await;
    assert!(
        row.text().await.unwrap().contains(&live),
        "the tail's row is not the new call {live}"
    );
    screenshot(&client, "03-audit-feed-live").await;

    // The key's page: its versions with their use, and the chart.
    client
        .goto(&format!("{base}/keys/{}", app.id))
        .await
        .unwrap();
    assert_eq!(text(&client, "#key-owner").await, "svc-app");
    assert_eq!(
        text(&client, "#versions tr[data-version='1'] td.uses").await,
        "2",
        "two decrypts with version 1"
    );
    let bars = client
        .find_all(Locator::Css("#usage-chart rect"))
        .await
        .unwrap();
    assert!(!bars.is_empty(), "the chart has no bar");
    screenshot(&client, "04-key-page").await;

    // Acknowledging a finding: recorded with its reason, and audited as the officer.
    client.goto(&format!("{base}/findings")).await.unwrap();
    let item = format!("#finding-{}", finding.id);
    client
        .find(Locator::Css(&format!("{item} input[name=reason]")))
        .await
        .unwrap()
        .send_keys("accepted until the Q1 migration")
        .await
        .unwrap();
    screenshot(&client, "05-findings").await;
    client
        .find(Locator::Css(&format!("{item} button")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, &format!("{item} p.ack")).await;
    let acknowledged = findings(&mut posture, "all")
        .await
        .into_iter()
        .find(|f| f.id == finding.id)
        .unwrap();
    assert_eq!(acknowledged.acknowledged_by, "sol");
    assert_eq!(
        acknowledged.acknowledgement_reason,
        "accepted until the Q1 migration"
    );
    let events = common::query_all(
        &mut audit,
        pb::AuditQueryRequest {
            action: "AcknowledgeFinding".into(),
            actor: "sol".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(
        events.iter().any(|e| e.outcome == "ok"),
        "the acknowledgement was not audited: {events:?}"
    );

    // The compliance report: the API's sections, and its PDF from the console.
    client.goto(&format!("{base}/report")).await.unwrap();
    let report = posture
        .get_compliance_report(pb::GetComplianceReportRequest {})
        .await
        .unwrap()
        .into_inner();
    let shown = client
        .find_all(Locator::Css("section.kg-section"))
        .await
        .unwrap();
    assert!(!report.sections.is_empty());
    assert_eq!(shown.len(), report.sections.len());
    screenshot(&client, "06-compliance-report").await;

    // Readable on a phone: nothing wider than the screen but the scrolling tables.
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&base).await.unwrap();
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap_or(i64::MAX) <= 1,
        "the overview is wider than a phone: {overflow}"
    );
    screenshot(&client, "07-overview-phone").await;

    // Signing out ends the session.
    client
        .find(Locator::Css("form.signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_url(&client, "the sign-in page", |u| u.ends_with("/signin")).await;
    client.goto(&format!("{base}/findings")).await.unwrap();
    assert_eq!(path(&client).await, "/signin");
    client.close().await.unwrap();
}

/// A plain HTTP client that follows no redirect and keeps no cookie.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_sign_in(base: &str, token: &str) -> reqwest::Response {
    http()
        .post(format!("{base}/signin"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// The `name=value` of the session cookie a sign-in set.
fn session_cookie(response: &reqwest::Response) -> String {
    let set = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    set.split(';').next().unwrap().to_string()
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn the_console_refuses_bad_sign_ins_and_forms_without_their_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base) = start(dir.path());
    let (_, finding) = set_up(&server).await;
    let mut audit = server.audit(common::ROOT_TOKEN).await;

    // Signed out: a redirect to the sign-in form, for pages and forms alike.
    let response = http().get(format!("{base}/findings")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/signin");

    // A bad token: 401, no cookie, and the attempt is in the audit log.
    let response = post_sign_in(&base, "kg_not_a_real_token").await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("set-cookie").is_none());
    let refused = common::query_all(
        &mut audit,
        pb::AuditQueryRequest {
            action: "ConsoleSignIn".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(
        refused.iter().any(|e| e.outcome != "ok"),
        "the failed sign-in was not audited: {refused:?}"
    );

    // A service's token is valid but the console is not for services, whatever their roles.
    for service in ["svc-app", "svc-audit"] {
        let response = post_sign_in(&base, &token(service)).await;
        assert_eq!(response.status(), 403, "{service}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("may not use the console")
        );
    }

    // The officer signs in: the cookie is HttpOnly, SameSite=Strict, and not the token.
    let response = post_sign_in(&base, &token("sol")).await;
    assert_eq!(response.status(), 303);
    let cookie = session_cookie(&response);
    assert!(!cookie.contains(&token("sol")));
    let signed_in = common::query_all(
        &mut audit,
        pb::AuditQueryRequest {
            action: "ConsoleSignIn".into(),
            actor: "sol".into(),
            outcome: "ok".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(signed_in.len(), 1, "one audited sign-in");

    let page = http()
        .get(format!("{base}/findings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    let csrf = csrf_of(&page.text().await.unwrap());

    // Forms without the CSRF token, with another session's, or from another origin: 403.
    let acknowledge = format!("{base}/findings/{}/acknowledge", finding.id);
    let other = session_cookie(&post_sign_in(&base, &token("sol")).await);
    let other_page = http()
        .get(format!("{base}/findings"))
        .header("cookie", &other)
        .send()
        .await
        .unwrap();
    let other_csrf = csrf_of(&other_page.text().await.unwrap());
    assert_ne!(csrf, other_csrf);
    type Attempt<'a> = (Vec<(&'a str, &'a str)>, Option<&'a str>);
    let attempts: Vec<Attempt> = vec![
        (vec![("reason", "no token")], None),
        (vec![("reason", "wrong token"), ("csrf", "00")], None),
        (
            vec![("reason", "another session's"), ("csrf", &other_csrf)],
            None,
        ),
        (
            vec![("reason", "cross-site"), ("csrf", &csrf)],
            Some("http://evil.example"),
        ),
    ];
    for (form, origin) in attempts {
        let mut request = http()
            .post(&acknowledge)
            .header("cookie", &cookie)
            .form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{form:?} {origin:?}");
    }
    let mut posture = posture_as(&server, "sol").await;
    let still = findings(&mut posture, "open")
        .await
        .into_iter()
        .find(|f| f.id == finding.id)
        .unwrap();
    assert!(
        still.acknowledged_by.is_empty(),
        "a refused form changed the finding"
    );

    // With the token the same form goes through.
    let response = http()
        .post(&acknowledge)
        .header("cookie", &cookie)
        .form(&[("reason", "tracked in SEC-42"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let done = findings(&mut posture, "all")
        .await
        .into_iter()
        .find(|f| f.id == finding.id)
        .unwrap();
    assert_eq!(done.acknowledgement_reason, "tracked in SEC-42");

    // The report downloads as PDF and JSON with the session.
    let pdf = http()
        .get(format!("{base}/report.pdf"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-"));
    let json: serde_json::Value = http()
        .get(format!("{base}/report.json"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["generated_by"], "sol");

    // A tampered cookie is no session.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (name, value) = cookie.split_once('=').unwrap();
    let mut sealed = b64.decode(value).unwrap();
    let middle = sealed.len() / 2;
    sealed[middle] ^= 1;
    let tampered = format!("{name}={}", b64.encode(&sealed));
    let response = http()
        .get(format!("{base}/"))
        .header("cookie", &tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);

    // Sign-out needs the CSRF token too, and ends the session for every copy of the cookie.
    let response = http()
        .post(format!("{base}/signout"))
        .header("cookie", &cookie)
        .form(&[("csrf", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = http()
        .post(format!("{base}/signout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let replayed = http()
        .get(format!("{base}/findings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 303, "a signed-out cookie still works");
    let other_still = http()
        .get(format!("{base}/findings"))
        .header("cookie", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(other_still.status(), 200, "another session ended with it");
}

#[tokio::test]
async fn over_tls_the_console_marks_its_cookie_secure_and_plaintext_off_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki::pki();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (cert, key) = (
        write("console.pem", &pki.server.0),
        write("console.key", &pki.server.1),
    );
    let people = PEOPLE
        .iter()
        .map(|(name, kind, role)| {
            format!(
                "[[tokens]]\nprincipal = \"{name}\"\nkind = \"{kind}\"\nroles = [\"{role}\"]\nenvironments = [\"dev\"]\ntoken = {{ env = \"{}\" }}\n\n",
                token_var(name)
            )
        })
        .collect::<String>();
    let config = format!(
        "[console]\nlisten = \"127.0.0.1:0\"\ntls = {{ cert_file = \"{cert}\", key_file = \"{key}\" }}\n\n{people}"
    );
    let env = PEOPLE
        .iter()
        .map(|(name, ..)| (token_var(name), token(name)))
        .collect();
    let server = common::start_with_config(dir.path(), &config, env);
    let output = server.output();
    let base = output
        .lines()
        .find_map(|l| l.strip_prefix("console on "))
        .unwrap_or_else(|| panic!("no console address:\n{output}"))
        .trim()
        .replace("https://127.0.0.1", "https://localhost");
    assert!(base.starts_with("https://localhost:"), "{base}");
    let https = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let response = https
        .post(format!("{base}/signin"))
        .form(&[("token", token("sol").as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let set = response.headers()["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("__Host-keygate_console="), "{set}");
    assert!(set.contains("; Secure"), "{set}");
    assert!(response.headers().contains_key("strict-transport-security"));
    // Plain HTTP to the TLS listener gets no page.
    let plain = base.replace("https://", "http://");
    assert!(http().get(format!("{plain}/signin")).send().await.is_err());

    // Without TLS, an address other than loopback is refused at start-up.
    let open = dir.path().join("open.toml");
    std::fs::write(&open, "[console]\nlisten = \"0.0.0.0:0\"\n").unwrap();
    let mut cmd = std::process::Command::new(common::keygate_bin());
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path().join("open-data"))
        .arg("--dev")
        .arg("--config")
        .arg(common::dev_only_copy(&open, true))
        .env_remove("KEYGATE_CONFIG");
    let ran = common::run_to_exit(cmd, dir.path(), Duration::from_secs(60));
    assert!(!ran.status.success(), "started: {}", ran.stdout);
    assert!(
        ran.stderr.contains("console.listen") && ran.stderr.contains("console.tls"),
        "{}",
        ran.stderr
    );
}
