//! Using keys from the shell: stdin in, stdout out.

use super::CliResult;
use super::client::{Connection, describe};
use crate::cli::output::Format;
use crate::pb;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use zeroize::Zeroizing;

fn stdin() -> Result<Zeroizing<Vec<u8>>, String> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    Ok(buf)
}

fn stdout(bytes: &[u8]) -> CliResult {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(|e| format!("cannot write stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

fn read_file(flag: &str, path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

#[derive(Args, Debug)]
pub struct EncryptArgs {
    #[arg(long)]
    pub key: String,
    /// Associated data bound to the ciphertext (must be given again to decrypt).
    #[arg(long)]
    pub aad: Option<String>,
}

#[derive(Args, Debug)]
pub struct DecryptArgs {
    #[arg(long)]
    pub aad: Option<String>,
}

#[derive(Args, Debug)]
pub struct DataKeyArgs {
    #[arg(long)]
    pub key: String,
    /// Data key length in bytes (default 32).
    #[arg(long)]
    pub bytes: Option<u32>,
    /// Return only the sealed data key.
    #[arg(long)]
    pub without_plaintext: bool,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    #[arg(long)]
    pub key: String,
    /// stdin is a precomputed digest (SHA-256, or SHA-384 for ecdsa-p384), not the message.
    #[arg(long)]
    pub digest: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[arg(long)]
    pub key: String,
    /// File holding the signature (raw bytes, as `sign` writes it).
    #[arg(long)]
    pub signature: PathBuf,
    #[arg(long)]
    pub digest: bool,
    /// Key version that made the signature (default: primary).
    #[arg(long)]
    pub key_version: Option<u32>,
}

#[derive(Args, Debug)]
pub struct PublicKeyArgs {
    #[arg(long)]
    pub key: String,
    #[arg(long)]
    pub key_version: Option<u32>,
}

#[derive(Args, Debug)]
pub struct MacArgs {
    #[arg(long)]
    pub key: String,
}

#[derive(Args, Debug)]
pub struct VerifyMacArgs {
    #[arg(long)]
    pub key: String,
    /// File holding the tag (raw bytes, as `mac` writes it).
    #[arg(long)]
    pub mac: PathBuf,
    #[arg(long)]
    pub key_version: Option<u32>,
}

pub async fn encrypt(conn: &Connection, a: EncryptArgs) -> CliResult {
    let plaintext = stdin()?;
    let reply = conn
        .keys()
        .await?
        .encrypt(pb::EncryptRequest {
            key: a.key,
            plaintext: plaintext.to_vec(),
            associated_data: a.aad.unwrap_or_default().into_bytes(),
        })
        .await
        .map_err(describe)?;
    stdout(&reply.into_inner().ciphertext)
}

pub async fn decrypt(conn: &Connection, a: DecryptArgs) -> CliResult {
    let ciphertext = stdin()?;
    let reply = conn
        .keys()
        .await?
        .decrypt(pb::DecryptRequest {
            ciphertext: ciphertext.to_vec(),
            associated_data: a.aad.unwrap_or_default().into_bytes(),
        })
        .await
        .map_err(describe)?;
    let plaintext = Zeroizing::new(std::mem::take(&mut reply.into_inner().plaintext));
    stdout(&plaintext)
}

pub async fn data_key(conn: &Connection, fmt: Format, a: DataKeyArgs) -> CliResult {
    let reply = conn
        .keys()
        .await?
        .generate_data_key(pb::GenerateDataKeyRequest {
            key: a.key,
            length_bytes: a.bytes.unwrap_or_default(),
            without_plaintext: a.without_plaintext,
            associated_data: Vec::new(),
        })
        .await
        .map_err(describe)?
        .into_inner();
    let plaintext = Zeroizing::new(B64.encode(&reply.plaintext));
    let ciphertext = B64.encode(&reply.ciphertext);
    if let Some(data) = fmt.data() {
        data.print(&serde_json::json!({
            "plaintext_base64": plaintext.as_str(),
            "ciphertext_base64": ciphertext,
            "key_id": reply.key_id,
            "key_version": reply.key_version,
        }));
    } else {
        if !a.without_plaintext {
            println!("plaintext (base64):  {}", plaintext.as_str());
        }
        println!("ciphertext (base64): {ciphertext}");
        println!("key version:         {}", reply.key_version);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn sign(conn: &Connection, a: SignArgs) -> CliResult {
    let data = stdin()?;
    let input = if a.digest {
        pb::sign_request::Input::Digest(data.to_vec())
    } else {
        pb::sign_request::Input::Message(data.to_vec())
    };
    let reply = conn
        .keys()
        .await?
        .sign(pb::SignRequest {
            key: a.key,
            input: Some(input),
        })
        .await
        .map_err(describe)?;
    stdout(&reply.into_inner().signature)
}

fn verdict(fmt: Format, valid: bool, version: u32) -> CliResult {
    if let Some(data) = fmt.data() {
        data.print(&serde_json::json!({"valid": valid, "key_version": version}));
    } else {
        println!("{}", if valid { "valid" } else { "NOT valid" });
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn verify(conn: &Connection, fmt: Format, a: VerifyArgs) -> CliResult {
    let data = stdin()?;
    let signature = read_file("--signature", &a.signature)?;
    let input = if a.digest {
        pb::verify_request::Input::Digest(data.to_vec())
    } else {
        pb::verify_request::Input::Message(data.to_vec())
    };
    let reply = conn
        .keys()
        .await?
        .verify(pb::VerifyRequest {
            key: a.key,
            input: Some(input),
            signature,
            key_version: a.key_version.unwrap_or_default(),
        })
        .await
        .map_err(describe)?
        .into_inner();
    verdict(fmt, reply.valid, reply.key_version)
}

pub async fn public_key(conn: &Connection, a: PublicKeyArgs) -> CliResult {
    let reply = conn
        .keys()
        .await?
        .get_public_key(pb::GetPublicKeyRequest {
            key: a.key,
            key_version: a.key_version.unwrap_or_default(),
        })
        .await
        .map_err(describe)?;
    stdout(reply.into_inner().pem.as_bytes())
}

pub async fn mac(conn: &Connection, a: MacArgs) -> CliResult {
    let data = stdin()?;
    let reply = conn
        .keys()
        .await?
        .generate_mac(pb::GenerateMacRequest {
            key: a.key,
            message: data.to_vec(),
        })
        .await
        .map_err(describe)?;
    stdout(&reply.into_inner().mac)
}

pub async fn verify_mac(conn: &Connection, fmt: Format, a: VerifyMacArgs) -> CliResult {
    let data = stdin()?;
    let tag = read_file("--mac", &a.mac)?;
    let reply = conn
        .keys()
        .await?
        .verify_mac(pb::VerifyMacRequest {
            key: a.key,
            message: data.to_vec(),
            mac: tag,
            key_version: a.key_version.unwrap_or_default(),
        })
        .await
        .map_err(describe)?
        .into_inner();
    verdict(fmt, reply.valid, reply.key_version)
}
