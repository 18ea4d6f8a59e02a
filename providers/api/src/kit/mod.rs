//! The provider kit: what every provider crate builds on.
//!
//! - [`ProviderFactory`]: each provider crate's entry point, from its configuration section
//!   to a provider and, for clouds with object storage, an [`AuditFeed`] ([`ObjectStore`]).
//! - [`Guarded`]: the decorator the registry puts around every instance: deadline, retries
//!   with a budget, circuit breaker, token bucket, metrics, shared batch requests for
//!   backends that have them, and (dev mode) fault injection, configured by [`GuardSettings`] from `[providers.NAME.guard]`.
//! - Helpers the providers share: [`require_purpose`], page tokens ([`page_after`],
//!   [`encode_token`], [`decode_token`]), [`error_chain`], [`generate_data_key`] and
//!   [`prehash`].
//! - [`backend_asked_to_wait`]: a backend's `Retry-After`, which the guard's retries honour.
//! - [`Op`], the name of every trait operation.

mod breaker;
mod bucket;
mod chain;
mod data_key;
mod digest;
mod factory;
mod guard;
mod metrics;
mod objects;
mod op;
mod pages;
mod purpose;
pub mod retry;
mod retry_after;
mod settings;

pub use breaker::BreakerState;
pub use chain::error_chain;
pub use data_key::{
    MAX_DATA_KEY_LEN, check_len, generate_data_key, random_data_key, seal_data_key,
};
pub use digest::{check_digest, digest_algorithm, prehash};
pub use factory::{
    AuditFeed, BuildContext, BuildError, Built, GUARD_TABLE, GuardDefaults, Instance,
    ProviderFactory, build_instance, typed_settings,
};
pub use guard::Guarded;
pub use metrics::{CallEvent, Metrics, NoMetrics, Outcome};
pub use objects::{ObjectInfo, ObjectStore};
pub use op::{Op, UnknownOp};
pub use pages::{DEFAULT_PAGE_SIZE, decode_token, encode_token, page_after, page_size};
pub use purpose::require_purpose;
pub use retry_after::backend_asked_to_wait;
pub use settings::{
    BreakerSettings, CoalesceSettings, DEFAULT_DEADLINE, FaultKind, FaultSettings, GuardSettings,
    GuardSettingsError, RateSettings, RetrySettings,
};
