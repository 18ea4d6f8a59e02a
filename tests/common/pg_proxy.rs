//! A TCP proxy in front of PostgreSQL on loopback that can misbehave on cue, for the faults a
//! real network has: a partition (bytes vanish, connections stay open), or a connection lost
//! right after a COMMIT left, so the client never hears whether it committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The proxy's controls; it runs until the test's runtime ends.
#[derive(Clone)]
pub struct PgProxy {
    pub port: u16,
    partitioned: Arc<AtomicBool>,
    /// Set: the next COMMIT of a transaction that carried this text loses its connection.
    cut_marker: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    cuts: Arc<AtomicUsize>,
}

impl PgProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: u16) -> PgProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let proxy = PgProxy {
            port: listener.local_addr().expect("proxy address").port(),
            partitioned: Arc::default(),
            cut_marker: Arc::default(),
            cuts: Arc::default(),
        };
        let controls = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                controls.relay(client, server);
            }
        });
        proxy
    }

    /// From now on bytes in either direction are held while both connections stay open (a
    /// network partition, as the client sees it), until [`PgProxy::heal`].
    pub fn partition(&self) {
        self.partitioned.store(true, Ordering::SeqCst);
    }

    /// The next COMMIT sent on a connection after a message containing `marker` reaches the
    /// server, and then the connection is lost before the server's answer gets back. Once.
    pub fn cut_after_commit_of(&self, marker: &str) {
        *self.cut_marker.lock().expect("marker") = Some(marker.as_bytes().to_vec());
    }

    /// How many connections were cut after a COMMIT.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }

    fn relay(&self, client: tokio::net::TcpStream, server: tokio::net::TcpStream) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let cut = Arc::new(AtomicBool::new(false));
        let to_server = self.clone();
        let cut_here = cut.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut marked = false;
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                to_server.hold_if_partitioned().await;
                let cutting = {
                    let mut marker = to_server.cut_marker.lock().expect("marker");
                    if marker.as_ref().is_some_and(|m| contains(chunk, m)) {
                        marked = true;
                    }
                    // A simple-query COMMIT: 'Q', its length, the text.
                    if marked && marker.is_some() && contains(chunk, b"Q\0\0\0\x0bCOMMIT\0") {
                        *marker = None;
                        true
                    } else {
                        false
                    }
                };
                if cutting {
                    // The answer must not reach the client: flag it before the server has it.
                    cut_here.store(true, Ordering::SeqCst);
                    to_server.cuts.fetch_add(1, Ordering::SeqCst);
                }
                if server_write.write_all(chunk).await.is_err() {
                    return;
                }
                if cutting {
                    // Time for the server to commit, then the connection is gone both ways.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    return;
                }
            }
        });
        let to_client = self.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                to_client.hold_if_partitioned().await;
                if cut.load(Ordering::SeqCst) {
                    return;
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }

    /// Ends the partition: what was held is forwarded, and connections closed meanwhile close.
    pub fn heal(&self) {
        self.partitioned.store(false, Ordering::SeqCst);
    }

    async fn hold_if_partitioned(&self) {
        // Both ends stay open and nothing is forwarded until the partition heals.
        while self.partitioned.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
