//! Real backends for keygate's tests, each started on loopback by the test that needs it and
//! stopped when its handle drops.
//!
//! The programs themselves are installed by `tests/backends/install.sh NAME` (called by
//! `tests/run.sh`), which is idempotent; a fixture finds its program through the environment
//! variable that script documents, or on `PATH`.

pub mod localstack;
pub mod openbao;
pub mod postgres;
pub mod process;
pub mod softhsm;
