//! One private PostgreSQL cluster for a whole test run: `tests/run.sh` starts it to run the
//! gRPC suite on PostgreSQL, each test server in a database of its own.
//!
//! Prints `KEYGATE_TEST_PG_URL=postgres://USER@127.0.0.1:PORT` (no database, no password) and
//! `KEYGATE_TEST_PG_PASSWORD=…`, then `ready`; stops the cluster (and removes its directory)
//! when its standard input closes.

use keygate_test_backends::postgres::Postgres;
use std::io::{Read, Write};

fn main() -> std::process::ExitCode {
    let pg = match Postgres::start() {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("keygate-test-postgres: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let printed = writeln!(
        out,
        "KEYGATE_TEST_PG_URL=postgres://{}@127.0.0.1:{}\nKEYGATE_TEST_PG_PASSWORD={}\nready",
        Postgres::USER,
        pg.port(),
        pg.password()
    )
    .and_then(|()| out.flush());
    drop(out);
    if printed.is_ok() {
        // Until whoever started it closes the pipe (or exits).
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }
    drop(pg);
    std::process::ExitCode::SUCCESS
}
