//! A bounded pool of logged-in read/write sessions on one token.
//!
//! PKCS#11 sessions are not thread-safe and every call blocks, so each call takes a session
//! out of the pool and runs on tokio's blocking thread pool, never on an async worker. The
//! semaphore bounds concurrent calls to the pool size. A session whose call fails with a
//! session-level error (closed, device removed, logged out, …) is dropped instead of returned;
//! the next call opens and logs in a fresh one.

use crate::errors::{OpError, is_session_level};
use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::RawAuthPin;
use keygate_provider::SecretBytes;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

pub struct SessionPool {
    inner: Arc<Inner>,
    permits: Arc<Semaphore>,
}

struct Inner {
    ctx: Pkcs11,
    slot: Slot,
    pin: RawAuthPin,
    idle: Mutex<Vec<Session>>,
}

impl Inner {
    /// Opens a session and logs the user in. Login state is per token and application, so
    /// every session after the first finds the user already logged in.
    fn open_session(&self) -> Result<Session, CkError> {
        let session = self.ctx.open_rw_session(self.slot)?;
        match session.login_with_raw(UserType::User, &self.pin) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(e),
        }
    }

    fn take(&self) -> Option<Session> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put(&self, session: Session) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(session);
    }
}

impl SessionPool {
    /// Opens and logs in the first session, so a wrong PIN or missing token shows at start-up.
    /// Blocking: call it from a blocking context.
    pub fn open(ctx: Pkcs11, slot: Slot, pin: SecretBytes, size: usize) -> Result<Self, CkError> {
        let inner = Inner {
            ctx,
            slot,
            pin: RawAuthPin::new(Box::new(pin.expose().to_vec())),
            idle: Mutex::new(Vec::with_capacity(size)),
        };
        let first = inner.open_session()?;
        inner.put(first);
        Ok(Self {
            inner: Arc::new(inner),
            permits: Arc::new(Semaphore::new(size)),
        })
    }

    /// Runs `f` with a pooled session on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, OpError>
    where
        T: Send + 'static,
        F: FnOnce(&Session) -> Result<T, OpError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| OpError::Internal("the session pool is closed".into()))?;
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let session = match inner.take() {
                Some(s) => s,
                None => inner.open_session()?,
            };
            let result = f(&session);
            match &result {
                Err(OpError::Ck(e)) if is_session_level(e) => {
                    tracing::warn!(error = %e, "dropping a PKCS#11 session after a session-level error");
                    drop(session);
                }
                _ => inner.put(session),
            }
            result
        })
        .await;
        joined.map_err(|e| OpError::Internal(format!("the PKCS#11 call did not complete: {e}")))?
    }
}
