//! `keygate rewrap`: moves ciphertexts to a key's newest version (or to another key) through
//! one ReEncryptStream, reading them one per line (base64, as the CLI prints ciphertexts) and
//! writing the new ones in the same order. Memory stays bounded: lines are read as the stream
//! takes them.

use super::CliResult;
use super::client::{Connection, Keys, describe};
use crate::cli::output::Format;
use crate::pb;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE as B64_URL};
use clap::Args;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;

/// Messages the reader may run ahead of the stream.
const CHUNKS_QUEUED: usize = 4;

#[derive(Args, Debug)]
pub struct RewrapArgs {
    /// The key the ciphertexts were sealed under (name or id).
    #[arg(long)]
    pub key: String,
    /// Re-encrypt to this key instead of KEY's newest version.
    #[arg(long)]
    pub to: Option<String>,
    /// Files of ciphertexts, one per line, base64 (blank lines are skipped); none or `-`:
    /// stdin.
    pub files: Vec<PathBuf>,
    /// Where the new ciphertexts go, one per line in input order (default: stdout). A
    /// ciphertext that failed leaves its line empty and is reported on stderr.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Ciphertexts per stream message (1 to 1000).
    #[arg(long, default_value_t = 500)]
    pub chunk: usize,
    /// Show progress on stderr even when stderr is not a terminal.
    #[arg(long)]
    pub progress: bool,
}

/// What a rewrap did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub done: u64,
    pub failed: u64,
}

/// Sends the chunks from `chunks` through one ReEncryptStream and hands every response, in
/// order, to `each`.
pub async fn stream(
    keys: &mut Keys,
    key: String,
    destination: String,
    chunks: mpsc::Receiver<Vec<pb::BatchReEncryptItem>>,
    mut each: impl FnMut(pb::ReEncryptStreamResponse) -> Result<(), String>,
) -> Result<Tally, String> {
    let mut first = Some((key, destination));
    let requests = tokio_stream::wrappers::ReceiverStream::new(chunks).map(move |items| {
        let (key, destination_key) = first.take().unwrap_or_default();
        pb::ReEncryptStreamRequest {
            key,
            destination_key,
            items,
        }
    });
    let mut responses = keys
        .re_encrypt_stream(requests)
        .await
        .map_err(describe)?
        .into_inner();
    let mut tally = Tally::default();
    while let Some(response) = responses.message().await.map_err(describe)? {
        tally.done += response.results.len() as u64;
        tally.failed += u64::from(response.failed);
        each(response)?;
    }
    Ok(tally)
}

/// Reads the ciphertexts, `chunk` to a message, into `sink`; in a thread of its own (the
/// input is blocking I/O).
fn read_input(
    files: Vec<PathBuf>,
    chunk: usize,
    sink: mpsc::Sender<Vec<pb::BatchReEncryptItem>>,
) -> Result<(), String> {
    let sources: Vec<Option<PathBuf>> = if files.is_empty() {
        vec![None]
    } else {
        files
            .into_iter()
            .map(|f| (f.as_os_str() != "-").then_some(f))
            .collect()
    };
    let mut items = Vec::with_capacity(chunk);
    for source in sources {
        let reader: Box<dyn BufRead> = match &source {
            None => Box::new(std::io::stdin().lock()),
            Some(path) => Box::new(std::io::BufReader::new(
                std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?,
            )),
        };
        for line in reader.lines() {
            let line = line.map_err(|e| format!("reading ciphertexts: {e}"))?;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            // A line that is not base64 goes as it is: the gateway reports it, per item, as
            // not a keygate ciphertext.
            let ciphertext = B64
                .decode(line)
                .or_else(|_| B64_URL.decode(line))
                .unwrap_or_else(|_| line.as_bytes().to_vec());
            items.push(pb::BatchReEncryptItem {
                ciphertext,
                ..Default::default()
            });
            if items.len() == chunk {
                let full = std::mem::replace(&mut items, Vec::with_capacity(chunk));
                if sink.blocking_send(full).is_err() {
                    // The stream ended early; its error is reported there.
                    return Ok(());
                }
            }
        }
    }
    if !items.is_empty() {
        let _ = sink.blocking_send(items);
    }
    Ok(())
}

pub async fn run(conn: &Connection, fmt: Format, a: RewrapArgs) -> CliResult {
    if !(1..=1000).contains(&a.chunk) {
        return Err(format!("--chunk {}: between 1 and 1000", a.chunk));
    }
    let mut out: Box<dyn Write> = match &a.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("--out {}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let show = a.progress || std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (sink, chunks) = mpsc::channel(CHUNKS_QUEUED);
    let (files, chunk) = (a.files, a.chunk);
    let reader = tokio::task::spawn_blocking(move || read_input(files, chunk, sink));
    let mut keys = conn.keys().await?;
    let started = Instant::now();
    let (mut done, mut failed) = (0u64, 0u64);
    let tally = stream(
        &mut keys,
        a.key,
        a.to.unwrap_or_default(),
        chunks,
        |response| {
            for (i, result) in response.results.iter().enumerate() {
                let status = result.status.clone().unwrap_or_default();
                if status.code == 0 {
                    writeln!(out, "{}", B64.encode(&result.ciphertext))
                } else {
                    eprintln!(
                        "\rciphertext {}: {}: {}",
                        response.offset + i as u64 + 1,
                        status.reason,
                        status.message
                    );
                    writeln!(out)
                }
                .map_err(|e| format!("writing the new ciphertexts: {e}"))?;
            }
            done += response.results.len() as u64;
            failed += u64::from(response.failed);
            if show {
                let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                eprint!("\rrewrapped {done} ciphertexts ({failed} failed), {rate:.0}/s   ");
            }
            Ok(())
        },
    )
    .await;
    out.flush()
        .map_err(|e| format!("writing the new ciphertexts: {e}"))?;
    let read = reader
        .await
        .map_err(|e| format!("reading ciphertexts: {e}"))?;
    let tally = tally?;
    read?;
    let seconds = started.elapsed().as_secs_f64();
    let rate = tally.done as f64 / seconds.max(1e-3);
    if show {
        eprintln!();
    }
    if let Some(data) = fmt.data() {
        // On stderr: stdout carries the ciphertexts.
        data.write(
            std::io::stderr().lock(),
            &serde_json::json!({
                "ciphertexts": tally.done,
                "failed": tally.failed,
                "seconds": seconds,
                "per_second": rate,
            }),
        );
    } else {
        eprintln!(
            "rewrapped {} ciphertexts in {seconds:.1} s ({rate:.0}/s); {} failed",
            tally.done - tally.failed,
            tally.failed
        );
    }
    Ok(if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
