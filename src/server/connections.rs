//! At most `server.max_connections` client connections at once. The listener accepts the
//! next connection only when a permit is free, so further clients wait in the kernel's listen
//! backlog instead of each costing the server a task, HTTP/2 buffers and TLS state.

use futures::{Stream, StreamExt as _};
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::Connected;

/// An accepted connection holding its permit until it closes.
pub struct Counted<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
}

/// `incoming`, accepting a connection only while fewer than `max` are open.
pub fn limit<S, IO, E>(incoming: S, max: usize) -> impl Stream<Item = Result<Counted<IO>, E>>
where
    S: Stream<Item = Result<IO, E>> + Unpin,
{
    let permits = Arc::new(Semaphore::new(max));
    futures::stream::unfold((incoming, permits), |(mut incoming, permits)| async move {
        // The semaphore is never closed, so the permit always comes, once one is free.
        let permit = permits.clone().acquire_owned().await.ok()?;
        let next = incoming.next().await?;
        Some((
            next.map(|io| Counted {
                io,
                _permit: permit,
            }),
            (incoming, permits),
        ))
    })
}

impl<IO: Connected> Connected for Counted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

/// The writing half of a connection wrapper, passed straight to the connection it wraps
/// (`io`): the wrappers here only watch or limit reading and the connection's life.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<IO: AsyncWrite + Unpin> AsyncWrite for $wrapper<IO> {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<std::io::Result<usize>> {
                Pin::new(&mut self.io).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> Poll<std::io::Result<usize>> {
                Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }

            fn poll_flush(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.io).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.io).poll_shutdown(cx)
            }
        }
    };
}

write_through!(Counted);

/// A connection closed if its client sends nothing within `timeout` of its wrapping (its
/// accept, or the end of its TLS handshake): a client that connects and stays silent would
/// otherwise hold one of `server.max_connections` slots for as long as it likes, since
/// HTTP/2 waits for the client's preface without a limit.
pub struct SpeakSoon<IO> {
    io: IO,
    /// Until the first bytes arrive.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> SpeakSoon<IO> {
    pub fn new(io: IO, timeout: std::time::Duration) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl<IO: Connected> Connected for SpeakSoon<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for SpeakSoon<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client sent nothing after connecting",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

write_through!(SpeakSoon);
