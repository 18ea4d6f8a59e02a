//! The `keygate` command: the server (`serve`), client verbs for people and scripts, and the
//! benchmark.

mod admin_cmd;
mod approval_cmd;
mod audit_cmd;
mod bench;
mod bench_abuse;
mod bench_audit;
mod bench_rewrap;
mod byok_cmd;
mod client;
mod key_cmd;
mod migrate_cmd;
mod output;
mod policy_cmd;
mod posture_cmd;
mod report_cmd;
mod rewrap;
mod serve;
mod status_cmd;
mod use_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "keygate",
    version,
    about = "One gRPC key API over many key backends, with central policy and a tamper-evident audit log",
    long_about = "keygate fronts key backends (its embedded local provider now; AWS KMS, Azure Key Vault, \
Google Cloud KMS, Vault and PKCS#11 HSMs as providers) with one gRPC API, checks every call against \
Cedar policies and appends every call to a hash-chained audit log before replying.\n\n\
Start a server with `keygate serve --dev`; the other commands are clients of a running server \
(--endpoint / KEYGATE_ENDPOINT, --token / KEYGATE_TOKEN)."
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: client::Connection,

    /// How to print records: table (for people), json or yaml (for scripts).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = output::Format::Table)]
    pub output: output::Format,

    /// The same as `--output json`.
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Bring the configured database's schema up to this keygate's (PostgreSQL: before the
    /// first `serve` and after each upgrade).
    Migrate(migrate_cmd::MigrateArgs),
    /// Is the gateway healthy: providers and their circuit breakers, the policies in force,
    /// the audit log and its newest checkpoint. Exits 2 if a breaker is open or the audit
    /// log refuses writes.
    Status,
    /// Create, inspect and manage keys.
    #[command(subcommand)]
    Key(key_cmd::KeyCommand),
    /// Bring your own key: generate a key in an HSM, import it into other backends, and
    /// show every copy.
    #[command(subcommand)]
    Byok(byok_cmd::ByokCommand),
    /// Encrypt stdin to stdout under a key.
    Encrypt(use_cmd::EncryptArgs),
    /// Decrypt stdin (a keygate ciphertext) to stdout.
    Decrypt(use_cmd::DecryptArgs),
    /// Generate a data key: its plaintext and the same key sealed under KEY.
    DataKey(use_cmd::DataKeyArgs),
    /// Sign stdin with a key; the signature goes to stdout.
    Sign(use_cmd::SignArgs),
    /// Verify a signature over stdin; exits 1 if it is not valid.
    Verify(use_cmd::VerifyArgs),
    /// Print a signing key's public key (PEM).
    PublicKey(use_cmd::PublicKeyArgs),
    /// HMAC stdin with a key; the tag goes to stdout.
    Mac(use_cmd::MacArgs),
    /// Verify an HMAC tag over stdin; exits 1 if it is not valid.
    VerifyMac(use_cmd::VerifyMacArgs),
    /// Re-encrypt ciphertexts (one per line, base64, from files or stdin) to a key's newest
    /// version or to another key, through one stream; the new ones go out in the same order.
    Rewrap(rewrap::RewrapArgs),
    /// Every key every provider holds, as the newest inventory scan saw it (--scan runs one
    /// now), marking keys keygate does not manage and those that appeared or vanished;
    /// --live lists one provider now.
    Inventory(posture_cmd::InventoryArgs),
    /// Key posture findings: list them, acknowledge one with a reason.
    #[command(subcommand)]
    Findings(posture_cmd::FindingsCommand),
    /// Reports on the evidence keygate holds: `report compliance` maps each compliance
    /// requirement to it, as HTML, JSON or PDF.
    #[command(subcommand)]
    Report(report_cmd::ReportCommand),
    /// Query, tail and verify the audit log.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// The requests critical actions wait on: list, show, approve, deny, cancel.
    #[command(subcommand)]
    Approval(approval_cmd::ApprovalCommand),
    /// Check a policy folder offline; reload, show or explain a gateway's policies.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Operations on a provider instance as a whole: replace its master key.
    #[command(subcommand)]
    Admin(admin_cmd::AdminCommand),
    /// Load-test a running gateway and report ops/s and latency percentiles.
    Bench(bench::BenchArgs),
    /// Unauthenticated 1 MiB calls and a token-guessing flood against a gateway while
    /// legitimate calls run beside them (benches/abuse.sh).
    BenchAbuse(bench_abuse::BenchAbuseArgs),
    /// The re-encryption stream against one ReEncrypt per ciphertext, same run
    /// (benches/rewrap.sh).
    BenchRewrap(bench_rewrap::BenchRewrapArgs),
    /// The audit log measured in-process (benches/audit.sh).
    #[command(subcommand, hide = true)]
    BenchAudit(bench_audit::BenchAudit),
    /// Print a shell completion script: `source <(keygate completions bash)`, or save it where
    /// your shell loads completions from.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keygate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keygate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A CLI failure: a message for a person, already phrased.
pub type CliResult<T = ExitCode> = Result<T, String>;

async fn run(cli: Cli) -> CliResult {
    let fmt = if cli.json {
        output::Format::Json
    } else {
        cli.output
    };
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Migrate(args) => migrate_cmd::run(args).await,
        Command::Status => status_cmd::run(&cli.conn, fmt).await,
        Command::Key(cmd) => key_cmd::run(&cli.conn, fmt, cmd).await,
        Command::Byok(cmd) => byok_cmd::run(&cli.conn, fmt, cmd).await,
        Command::Encrypt(a) => use_cmd::encrypt(&cli.conn, a).await,
        Command::Decrypt(a) => use_cmd::decrypt(&cli.conn, a).await,
        Command::DataKey(a) => use_cmd::data_key(&cli.conn, fmt, a).await,
        Command::Sign(a) => use_cmd::sign(&cli.conn, a).await,
        Command::Verify(a) => use_cmd::verify(&cli.conn, fmt, a).await,
        Command::PublicKey(a) => use_cmd::public_key(&cli.conn, a).await,
        Command::Mac(a) => use_cmd::mac(&cli.conn, a).await,
        Command::VerifyMac(a) => use_cmd::verify_mac(&cli.conn, fmt, a).await,
        Command::Audit(cmd) => audit_cmd::run(&cli.conn, fmt, cmd).await,
        Command::Approval(cmd) => approval_cmd::run(&cli.conn, fmt, cmd).await,
        Command::Policy(cmd) => policy_cmd::run(&cli.conn, fmt, cmd).await,
        Command::Admin(cmd) => admin_cmd::run(&cli.conn, fmt, cmd).await,
        Command::Rewrap(a) => rewrap::run(&cli.conn, fmt, a).await,
        Command::Inventory(a) => posture_cmd::inventory(&cli.conn, fmt, a).await,
        Command::Findings(cmd) => posture_cmd::findings(&cli.conn, fmt, cmd).await,
        Command::Report(cmd) => report_cmd::run(&cli.conn, cmd).await,
        Command::Bench(args) => bench::run(&cli.conn, fmt, args).await,
        Command::BenchRewrap(a) => bench_rewrap::run(&cli.conn, a).await,
        Command::BenchAbuse(a) => bench_abuse::run(&cli.conn, a).await,
        Command::BenchAudit(cmd) => bench_audit::run(cmd).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "keygate", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}
