//! Durability of the writer's commits, off the commit itself.
//!
//! With `synchronous=FULL` every commit waits for the WAL's fsync, and the next batch cannot
//! be written until it returns: on a disk whose flush takes milliseconds the writer, and every
//! call behind it, sits idle most of the time. So the writer's connection commits with
//! `synchronous=NORMAL` (the commit writes the WAL frames and returns) and this module then
//! flushes the WAL file itself with `fdatasync` on a blocking thread, while the writer goes on
//! to commit the next batch. Flushes overlap, and the disk serves overlapping flushes far
//! faster than one after another. A batch is acknowledged only once a flush that began after
//! its commit has returned, which is the guarantee FULL gives.
//!
//! Why this is as safe as FULL: a flush of the WAL file makes durable every frame written to
//! it before the flush began. SQLite in WAL mode with NORMAL still syncs the WAL before a
//! checkpoint copies it and the database after, and starts the WAL over only once every frame
//! is in the synced database, so a frame overwritten by a restarted WAL is already durable in
//! the database file.

use sqlx::{Row, SqliteConnection};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use crate::audit::store::{Durable, StoreResult};

pub(super) struct WalSync {
    path: PathBuf,
    /// Opened at the first flush: the WAL file exists once the first commit is written.
    file: Option<Arc<File>>,
}

impl WalSync {
    /// Switches the writer's connection to NORMAL and returns the flusher of its WAL, or
    /// `None` for a database without a WAL file on disk (in memory), which keeps FULL.
    pub(super) async fn attach(conn: &mut SqliteConnection) -> StoreResult<Option<Self>> {
        let journal: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        // The row is (seq, name, file); the file is empty for an in-memory database.
        let file: String = sqlx::query("PRAGMA database_list")
            .fetch_one(&mut *conn)
            .await?
            .try_get(2)?;
        if !journal.eq_ignore_ascii_case("wal") || file.is_empty() {
            return Ok(None);
        }
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        Ok(Some(Self {
            path: PathBuf::from(format!("{file}-wal")),
            file: None,
        }))
    }

    /// Starts a flush of everything committed so far; the returned future waits for it.
    pub(super) fn start(&mut self) -> StoreResult<Durable> {
        let file = match &self.file {
            Some(file) => file.clone(),
            None => {
                let file = Arc::new(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&self.path)
                        .map_err(sqlx::Error::Io)?,
                );
                self.file = Some(file.clone());
                file
            }
        };
        // Spawned now, not when awaited: the flush runs while the writer commits the next
        // batch.
        let flush = tokio::task::spawn_blocking(move || file.sync_data());
        Ok(Box::pin(async move {
            match flush.await {
                Ok(result) => result.map_err(sqlx::Error::Io),
                Err(e) => Err(sqlx::Error::Io(std::io::Error::other(e))),
            }
        }))
    }
}
