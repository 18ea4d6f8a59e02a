//! The plugin's UNIX socket: created with mode 0600 and never connectable by anyone else, not
//! even for an instant.
//!
//! The socket is bound inside a new directory of mode 0700 beside its path, set to 0600 there,
//! then renamed into place, so it appears at its path already private (the process umask,
//! shared by every thread, is left alone). A stale socket at the path (a previous run that did
//! not stop cleanly) is replaced; a socket something still answers on, or anything that is
//! not a socket, is refused.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;

/// The socket's mode: its owner reads and writes (connects), nobody else.
pub const SOCKET_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("kms_plugin.socket {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("kms_plugin.socket {0}: the path exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error(
        "kms_plugin.socket {0}: another process is serving on this socket; stop it or choose another path"
    )]
    InUse(PathBuf),
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> SocketError {
    let path = path.to_path_buf();
    move |source| SocketError::Io { path, what, source }
}

/// Binds the socket at `path` with mode [`SOCKET_MODE`]. Needs a Tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_path_buf()));
            }
            // Stale: the rename below replaces it.
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(path, "cannot inspect the path")(e)),
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Short, so the temporary path stays within a socket address's 108 bytes whenever the
    // final one does (or nearly).
    let mut random = uuid::Uuid::new_v4().simple().to_string();
    random.truncate(8);
    let private = parent.join(format!(".kg-{random}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io(path, "cannot create a private directory beside it"))?;
    let result = bind_in(&private, path);
    // Empty once the socket moved out; left as it is on failure only if removing it fails.
    let _ = std::fs::remove_dir_all(&private);
    result
}

fn bind_in(private: &Path, path: &Path) -> Result<UnixListener, SocketError> {
    let staged = private.join("s");
    let listener = std::os::unix::net::UnixListener::bind(&staged)
        .map_err(io(path, "cannot bind the socket"))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(io(path, "cannot set the socket's mode"))?;
    std::fs::rename(&staged, path).map_err(io(path, "cannot move the socket into place"))?;
    listener
        .set_nonblocking(true)
        .map_err(io(path, "cannot make the socket non-blocking"))?;
    UnixListener::from_std(listener).map_err(io(path, "cannot register the socket"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[tokio::test]
    async fn binds_0600_replaces_stale_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms.sock");
        let listener = bind(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().mode() & 0o777,
            SOCKET_MODE
        );
        // Nothing else is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Served: refused.
        assert!(matches!(bind(&path), Err(SocketError::InUse(_))));
        // Stale (its listener gone): replaced.
        drop(listener);
        let again = bind(&path).unwrap();
        drop(again);
        // Not a socket: refused, and left alone.
        let file = dir.path().join("file");
        std::fs::write(&file, b"data").unwrap();
        assert!(matches!(bind(&file), Err(SocketError::NotASocket(_))));
        assert_eq!(std::fs::read(&file).unwrap(), b"data");
    }
}
