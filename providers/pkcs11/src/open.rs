//! Opening a token: the module, the slot by label or id, the session pool and login. Each
//! failure names the setting at fault.

use crate::config::{Pkcs11Config, TokenSelector};
use crate::errors::OpenError;
use crate::provider::Pkcs11Provider;
use crate::session_pool::{PoolError, SessionPool};
use cryptoki::error::{Error as CkError, RvError};
use keygate_provider::SecretBytes;

impl Pkcs11Provider {
    /// Loads the module, finds the token and logs in. `user_pin` is the resolved value of the
    /// config's `user_pin` reference; it is kept only inside the session pool (for re-login)
    /// and never logged. The blocking work runs on tokio's blocking pool.
    pub async fn connect(
        name: impl Into<String>,
        config: &Pkcs11Config,
        user_pin: SecretBytes,
    ) -> std::result::Result<Self, OpenError> {
        let name = name.into();
        let config = config.clone();
        let task_name = name.clone();
        tokio::task::spawn_blocking(move || Self::open_blocking(task_name, &config, user_pin))
            .await
            .map_err(|e| OpenError::Backend {
                provider: name,
                what: "opening the token".into(),
                reason: e.to_string(),
            })?
    }

    /// [`Pkcs11Provider::connect`] for callers outside an async runtime.
    pub fn open_blocking(
        name: impl Into<String>,
        config: &Pkcs11Config,
        user_pin: SecretBytes,
    ) -> std::result::Result<Self, OpenError> {
        let provider = name.into();
        if config.session_pool_size == 0 {
            return Err(OpenError::InvalidPoolSize { provider });
        }
        if !config.module.is_file() {
            return Err(OpenError::ModuleMissing {
                provider,
                path: config.module.clone(),
            });
        }
        let ctx = crate::module::load(&config.module).map_err(|e| OpenError::ModuleLoad {
            provider: provider.clone(),
            path: config.module.clone(),
            reason: e.to_string(),
        })?;
        let backend = |what: &str, e: CkError| OpenError::Backend {
            provider: provider.clone(),
            what: what.into(),
            reason: e.to_string(),
        };
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| backend("listing slots", e))?;
        let mut present = Vec::new();
        let mut chosen = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| backend("reading token info", e))?;
            let label = info.label().trim_end().to_string();
            let matches = match &config.token {
                TokenSelector::Label(wanted) => &label == wanted,
                TokenSelector::SlotId(id) => slot.id() == *id,
            };
            if matches && chosen.is_none() {
                chosen = Some((slot, label.clone()));
            }
            present.push(format!("'{label}' in slot {}", slot.id()));
        }
        let Some((slot, token_label)) = chosen else {
            return Err(OpenError::TokenNotFound {
                provider,
                selector: config.token.to_string(),
                present: if present.is_empty() {
                    "none".into()
                } else {
                    present.join(", ")
                },
            });
        };
        let pool = SessionPool::open(ctx, slot, user_pin, config.session_pool_size, &provider)
            .map_err(|e| match e {
                PoolError::Login(
                    e @ CkError::Pkcs11(
                        RvError::PinIncorrect
                        | RvError::PinInvalid
                        | RvError::PinLenRange
                        | RvError::PinLocked
                        | RvError::PinExpired,
                        _,
                    ),
                ) => OpenError::PinRejected {
                    provider: provider.clone(),
                    reason: e.to_string(),
                },
                PoolError::Login(e) => backend("opening a session and logging in", e),
                PoolError::Thread(e) => OpenError::Backend {
                    provider: provider.clone(),
                    what: "starting the session threads".into(),
                    reason: e.to_string(),
                },
            })?;
        tracing::info!(provider = %provider, token = %token_label, slot = slot.id(), "PKCS#11 token opened");
        Ok(Self {
            name: provider.into(),
            token_label,
            pool,
            oaep_unpad_in_provider: config.oaep_unpad_in_provider,
            versioning: tokio::sync::Mutex::new(()),
        })
    }
}
