//! `keygate-emulators gcp --listen ADDR` / `keygate-emulators azure --listen ADDR [--ca-out FILE]`:
//! run one emulator by hand until Ctrl-C.

use std::process::ExitCode;

const USAGE: &str = "usage: keygate-emulators (gcp|azure) [--listen ADDR] [--ca-out FILE] [--audit-log FILE]\n\
  gcp    Google Cloud KMS REST v1 over plain HTTP (default 127.0.0.1:8085);\n\
         with --audit-log, every call appends a Cloud Audit Logs entry (JSON Lines) to FILE\n\
  azure  Azure Key Vault keys REST over HTTPS (default 127.0.0.1:8443);\n\
         the test CA certificate is written to --ca-out (default ./keygate-emulator-ca.pem)";

struct Args {
    which: String,
    listen: Option<String>,
    ca_out: String,
    audit_log: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let which = it.next().ok_or("missing emulator name")?;
    let mut args = Args {
        which,
        listen: None,
        ca_out: "keygate-emulator-ca.pem".to_string(),
        audit_log: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => args.listen = Some(value),
            "--ca-out" => args.ca_out = value,
            "--audit-log" => args.audit_log = Some(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.which.as_str() {
        "gcp" => {
            run_gcp(
                args.listen.as_deref().unwrap_or("127.0.0.1:8085"),
                args.audit_log.as_deref(),
            )
            .await
        }
        "azure" => {
            run_azure(
                args.listen.as_deref().unwrap_or("127.0.0.1:8443"),
                &args.ca_out,
            )
            .await
        }
        other => Err(format!("unknown emulator '{other}'")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

async fn run_gcp(listen: &str, audit_log: Option<&str>) -> Result<(), String> {
    let options = keygate_emulators::gcp::GcpOptions {
        audit_log: audit_log.map(Into::into),
        ..Default::default()
    };
    let emu = keygate_emulators::gcp::spawn_with(listen, options)
        .await
        .map_err(|e| format!("cannot listen on {listen} (or open the audit log): {e}"))?;
    println!("Cloud KMS emulator listening on {}", emu.url());
    if let Some(path) = audit_log {
        println!("Cloud Audit Logs entries appended to {path}");
    }
    wait_for_ctrl_c().await
}

async fn run_azure(listen: &str, ca_out: &str) -> Result<(), String> {
    let emu = keygate_emulators::azure::spawn(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    std::fs::write(ca_out, emu.ca_pem()).map_err(|e| format!("cannot write {ca_out}: {e}"))?;
    println!("Azure Key Vault emulator listening on {}", emu.url());
    println!("test CA certificate written to {ca_out}");
    wait_for_ctrl_c().await
}

async fn wait_for_ctrl_c() -> Result<(), String> {
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))
}
