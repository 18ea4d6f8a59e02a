//! The PostgreSQL fixture itself: a private cluster starts, takes the password, survives a
//! restart with its data, and is gone after drop.

use keygate_test_backends::postgres::Postgres;

#[test]
fn postgres_cluster_starts_restarts_and_stops() {
    let mut pg = Postgres::start().expect("start postgres");
    pg.create_database("fixture").expect("create database");
    pg.psql(
        "fixture",
        "CREATE TABLE t (v int); INSERT INTO t VALUES (42)",
    )
    .expect("write");
    pg.restart().expect("restart");
    let v = pg.psql("fixture", "SELECT v FROM t").expect("read");
    assert_eq!(v.trim(), "42");
    let port = pg.port();
    drop(pg);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} once the fixture is dropped"
    );
}
