//! The plugin's UNIX socket: created with mode 0600 and never connectable by anyone else, not
//! even for an instant.
//!
//! The apiserver trusts whatever answers at the socket's path, so the directory that holds it
//! must be one nobody else can change: owned by keygate's user or root, and not writable by
//! group or others unless it has the sticky bit (as /tmp), where only the socket's owner can
//! unlink or rename it. Anything else stops the start: whoever could replace the socket would
//! receive the apiserver's plaintext data encryption key seeds.
//!
//! The socket is bound inside a new directory of mode 0700 beside its path, set to 0600 there,
//! then renamed into place, so it appears at its path already private (the process umask,
//! shared by every thread, is left alone). A stale socket at the path (a previous run that did
//! not stop cleanly: connecting to it is refused) is replaced; a socket something still
//! answers on, one keygate cannot connect to for another reason, or anything that is not a
//! socket, is refused. The file's device and inode are recorded, so that shutdown removes
//! only the socket this process made, never a newer one at the same path.

use std::io::ErrorKind;
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixListener;

/// The socket's mode: its owner reads and writes (connects), nobody else.
pub const SOCKET_MODE: u32 = 0o600;

/// How long the start-up probe of an existing socket may take: a listener whose backlog is
/// full may never answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

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
    #[error(
        "kms_plugin.socket {path}: a socket exists there but connecting to it failed ({source}), so it may belong to another live process; refusing to replace it: see who owns it (ls -l), stop that process, or remove the socket if it is stale"
    )]
    Unprobed {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "kms_plugin.socket {path}: its directory {dir} {fault}, so someone else could replace the socket with their own and receive the apiserver's data encryption keys; put the socket in a directory owned by keygate's user or root that only its owner can write (e.g. chmod go-w {dir}, or a directory such as /run/keygate)"
    )]
    UnsafeDirectory {
        path: PathBuf,
        dir: PathBuf,
        fault: String,
    },
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> SocketError {
    let path = path.to_path_buf();
    move |source| SocketError::Io { path, what, source }
}

/// The plugin's socket, bound: its listener and the file it made.
#[derive(Debug)]
pub struct Bound {
    pub listener: UnixListener,
    pub file: SocketFile,
}

/// The socket file one [`bind`] made: its path, device and inode.
#[derive(Debug, Clone)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket file if it is still the one bound here; a file another process
    /// has put at the path since is left alone. Returns whether it removed the file.
    pub fn remove(&self) -> std::io::Result<bool> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                std::fs::remove_file(&self.path).map(|()| true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Binds the socket at `path` with mode [`SOCKET_MODE`], once its directory passes
/// [`directory_fault`]. Needs a Tokio runtime.
pub async fn bind(path: &Path) -> Result<Bound, SocketError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::metadata(parent).map_err(io(path, "cannot inspect its directory"))?;
    let euid = rustix::process::geteuid().as_raw();
    if let Some(fault) = directory_fault(dir.uid(), dir.mode(), euid) {
        return Err(SocketError::UnsafeDirectory {
            path: path.to_path_buf(),
            dir: parent.to_path_buf(),
            fault,
        });
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            let probe =
                tokio::time::timeout(PROBE_TIMEOUT, tokio::net::UnixStream::connect(path)).await;
            match probe_verdict(probe.map_or(Err(ErrorKind::TimedOut.into()), |r| r.map(drop))) {
                // The rename below replaces it.
                Probe::Stale => {}
                Probe::Served => return Err(SocketError::InUse(path.to_path_buf())),
                Probe::Unknown(source) => {
                    return Err(SocketError::Unprobed {
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(path, "cannot inspect the path")(e)),
    }
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

/// What is wrong with a socket's directory (owner `uid`, `mode`) for a process of effective
/// uid `euid`: owned by another user than it or root, or writable by group or others
/// without the sticky bit.
fn directory_fault(uid: u32, mode: u32, euid: u32) -> Option<String> {
    if uid != euid && uid != 0 {
        return Some(format!(
            "is owned by uid {uid}, neither keygate's user (uid {euid}) nor root"
        ));
    }
    let writable = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "group- and world-writable",
        (true, false) => "group-writable",
        (false, true) => "world-writable",
        (false, false) => return None,
    };
    (mode & 0o1000 == 0).then(|| {
        format!(
            "is {writable} (mode {:04o}) without the sticky bit",
            mode & 0o7777
        )
    })
}

/// What connecting to an existing socket at start-up says about it.
#[derive(Debug)]
enum Probe {
    /// Nothing listens (connection refused): a previous run's leftover.
    Stale,
    /// Something answers, or listens with its backlog full.
    Served,
    /// Anything else (permission denied, say): it may be another user's live socket.
    Unknown(std::io::Error),
}

fn probe_verdict(connected: std::io::Result<()>) -> Probe {
    match connected {
        Ok(()) => Probe::Served,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Probe::Stale,
        // A non-blocking connect to a listener with a full backlog, or one that never
        // completed.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Probe::Served,
        Err(e) => Probe::Unknown(e),
    }
}

fn bind_in(private: &Path, path: &Path) -> Result<Bound, SocketError> {
    let staged = private.join("s");
    let listener = std::os::unix::net::UnixListener::bind(&staged)
        .map_err(io(path, "cannot bind the socket"))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(io(path, "cannot set the socket's mode"))?;
    // Taken in the private directory, where nobody else can swap the file; a rename keeps
    // both.
    let meta = std::fs::symlink_metadata(&staged).map_err(io(path, "cannot inspect the socket"))?;
    std::fs::rename(&staged, path).map_err(io(path, "cannot move the socket into place"))?;
    listener
        .set_nonblocking(true)
        .map_err(io(path, "cannot make the socket non-blocking"))?;
    Ok(Bound {
        listener: UnixListener::from_std(listener)
            .map_err(io(path, "cannot register the socket"))?,
        file: SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_0600_replaces_stale_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms.sock");
        let bound = bind(&path).await.unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().mode() & 0o777,
            SOCKET_MODE
        );
        // Nothing else is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Served: refused.
        assert!(matches!(bind(&path).await, Err(SocketError::InUse(_))));
        // Stale (its listener gone): replaced.
        drop(bound);
        let again = bind(&path).await.unwrap();
        drop(again);
        // Not a socket: refused, and left alone.
        let file = dir.path().join("file");
        std::fs::write(&file, b"data").unwrap();
        assert!(matches!(bind(&file).await, Err(SocketError::NotASocket(_))));
        assert_eq!(std::fs::read(&file).unwrap(), b"data");
    }

    #[tokio::test]
    async fn a_directory_others_can_write_to_without_the_sticky_bit_is_refused() {
        let root = tempfile::tempdir().unwrap();
        for (mode, accepted) in [
            (0o777, false),
            (0o775, false),
            (0o757, false),
            (0o1777, true),
            (0o755, true),
            (0o700, true),
        ] {
            let dir = root.path().join(format!("{mode:o}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let path = dir.join("kms.sock");
            match bind(&path).await {
                Ok(bound) => {
                    assert!(accepted, "mode {mode:o} was accepted");
                    drop(bound);
                }
                Err(e) => {
                    assert!(!accepted, "mode {mode:o}: {e}");
                    assert!(matches!(e, SocketError::UnsafeDirectory { .. }), "{e}");
                    let message = e.to_string();
                    assert!(message.contains(&dir.display().to_string()), "{message}");
                    assert!(message.contains("without the sticky bit"), "{message}");
                    assert!(!path.exists(), "mode {mode:o}: the socket was made");
                }
            }
        }
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        assert!(directory_fault(1000, 0o755, 1000).is_none());
        assert!(directory_fault(0, 0o755, 1000).is_none());
        assert!(directory_fault(0, 0o1777, 1000).is_none());
        let fault = directory_fault(1001, 0o755, 1000).unwrap();
        assert!(fault.contains("owned by uid 1001"), "{fault}");
        // Someone else's directory, even with the sticky bit: its owner may still replace
        // anything in it.
        assert!(directory_fault(1001, 0o1777, 1000).is_some());
        assert_eq!(
            directory_fault(0, 0o40777, 0).unwrap(),
            "is group- and world-writable (mode 0777) without the sticky bit"
        );
    }

    #[tokio::test]
    async fn a_directory_owned_by_another_user_stops_the_start() {
        if rustix::process::geteuid().as_raw() != 0 {
            // Only root can give a directory away.
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("theirs");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
        let e = bind(&dir.join("kms.sock")).await.unwrap_err();
        assert!(e.to_string().contains("owned by uid 4242"), "{e}");
    }

    #[test]
    fn only_a_refused_connection_makes_a_socket_stale() {
        use std::io::Error;
        assert!(matches!(
            probe_verdict(Err(Error::from(ErrorKind::ConnectionRefused))),
            Probe::Stale
        ));
        assert!(matches!(probe_verdict(Ok(())), Probe::Served));
        for busy in [ErrorKind::WouldBlock, ErrorKind::TimedOut] {
            assert!(matches!(
                probe_verdict(Err(Error::from(busy))),
                Probe::Served
            ));
        }
        // Another user's live socket, as a non-root keygate sees it.
        for other in [ErrorKind::PermissionDenied, ErrorKind::Other] {
            assert!(matches!(
                probe_verdict(Err(Error::from(other))),
                Probe::Unknown(_)
            ));
        }
        let e = SocketError::Unprobed {
            path: "/run/keygate/kms.sock".into(),
            source: Error::from(ErrorKind::PermissionDenied),
        };
        assert!(e.to_string().contains("refusing to replace it"), "{e}");
    }

    #[tokio::test]
    async fn shutdown_removes_only_the_socket_it_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms.sock");
        let first = bind(&path).await.unwrap();
        // A newer instance replaced it (the first one's listener still open).
        std::fs::remove_file(&path).unwrap();
        let newer = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(!first.file.remove().unwrap());
        assert!(path.exists(), "the newer socket was removed");
        drop(newer);
        std::fs::remove_file(&path).unwrap();
        // Its own: removed.
        let own = bind(&path).await.unwrap();
        assert!(own.file.remove().unwrap());
        assert!(!path.exists());
        assert!(!own.file.remove().unwrap());
    }
}
