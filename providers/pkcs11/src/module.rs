//! Loading and initialising a PKCS#11 module, once per process.
//!
//! `C_Initialize` is per process: a second call on the same library fails with
//! CKR_CRYPTOKI_ALREADY_INITIALIZED, and `C_Finalize` would pull the module out from under any
//! other provider instance using it. So each module is loaded and initialised on first use and
//! kept, with its library handle, until the process exits; every provider instance (and a
//! re-created one) shares it.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The initialised module at `path` (canonicalised, so two spellings share one context).
pub fn load(path: &Path) -> Result<Pkcs11, CkError> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    // A panic while holding the lock leaves the map consistent (inserts are atomic).
    let mut map = modules().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = map.get(&key) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&key)?;
    // OS locking: sessions are used from many blocking threads.
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // Someone else in this process (another crate, a test helper) initialised it first.
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(e),
    }
    map.insert(key, ctx.clone());
    Ok(ctx)
}
