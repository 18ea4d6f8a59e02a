//! Raw ECDSA P-256 sign throughput of SoftHSM2 through cryptoki, without keygate: the
//! baseline the gateway's own numbers are compared against.
//!
//! ```text
//! cargo run --release -p keygate-provider-pkcs11 --example softhsm_sign_bench -- [SESSIONS] [SECONDS] [session|token]
//! ```
//!
//! Makes a throwaway token, a P-256 key (a session object by default; `token` makes it a token
//! object like keygate's, which SoftHSM2's file backend re-checks on disk at every use), then N threads each with its own
//! logged-in session sign a fixed SHA-256 digest with CKM_ECDSA in a closed loop. Prints ops/s.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use keygate_test_backends::softhsm::SoftHsm;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PIN: &str = "5678";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let token_object = match args.next().as_deref() {
        None | Some("session") => false,
        Some("token") => true,
        Some(other) => return Err(format!("expected session or token, got {other}").into()),
    };

    let hsm = SoftHsm::new("bench", "1234", PIN)?;
    // SAFETY: single-threaded here, before the module is initialised.
    unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf_path()) };
    let ctx = Pkcs11::new(hsm.module_path())?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let slot = keygate_test_backends::softhsm::slot_with_label(&ctx, "bench")
        .ok_or("bench token not found")?;
    let setup = ctx.open_rw_session(slot)?;
    setup.login(UserType::User, Some(&AuthPin::from(PIN)))?;
    let p256 = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (_public, private) = setup.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::EcParams(p256),
            Attribute::Verify(true),
            Attribute::Token(token_object),
        ],
        &[
            Attribute::Token(token_object),
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Private(true),
        ],
    )?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"benchmark");
    let digest = digest.as_ref().to_vec();

    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..sessions {
        let (ctx, count, stop, digest) = (ctx.clone(), count.clone(), stop.clone(), digest.clone());
        threads.push(std::thread::spawn(move || -> Result<(), CkError> {
            let session = ctx.open_rw_session(slot)?;
            match session.login(UserType::User, Some(&AuthPin::from(PIN))) {
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(e) => return Err(e),
            }
            while !stop.load(Ordering::Relaxed) {
                session.sign(&Mechanism::Ecdsa, private, &digest)?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    // Skip the first second so thread start-up does not count.
    std::thread::sleep(Duration::from_secs(1));
    let start_count = count.load(Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let ops = count.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "a signing thread panicked")??;
    }
    println!(
        "softhsm2 raw ECDSA P-256 sign: {sessions} sessions, {} object, {:.0} ops/s ({ops} ops in {elapsed:.1} s)",
        if token_object { "token" } else { "session" },
        ops as f64 / elapsed
    );
    Ok(())
}
