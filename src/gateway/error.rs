//! Why a call failed, typed. Each variant has one stable machine-readable reason
//! ([`GatewayError::reason`]), stored in the call's audit event and sent to the client as a
//! `google.rpc.ErrorInfo`; `server::status` maps each to one gRPC code (the one place).
//! Messages say what was wrong, for a person, and never carry a secret.

use crate::audit::AuditError;
use crate::catalog::CatalogError;
use crate::policy::Action;
use keygate_provider::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no bearer token: send `authorization: Bearer <token>` metadata")]
    NoToken,
    #[error("the bearer token is not valid (or not with this connection's client certificate)")]
    BadToken,
    #[error("{principal} may not {action} on {target}: {reason}")]
    PolicyDenied {
        principal: String,
        action: Action,
        target: String,
        /// The deciding rule and why (`denied by separation-of-duties: ...`).
        reason: String,
        /// The ids of the policies that decided.
        policies: Vec<String>,
    },
    // --- policy operations and approvals (issue 13) ---
    #[error(
        "{action} on {target} is critical and waits for {quorum} approvals by other principals: approval request {id} (until {expires_at}); approvers run `keygate approval approve {id}`"
    )]
    ApprovalPending {
        id: String,
        action: Action,
        target: String,
        quorum: u32,
        expires_at: String,
    },
    #[error(
        "the requester {0} of this approved request is no longer configured; the change does not run"
    )]
    RequesterUnknown(String),
    #[error(transparent)]
    Approval(#[from] crate::approvals::ApprovalError),
    #[error("the policies were not reloaded, and the previous ones stay in force: {0}")]
    PolicyInvalid(String),
    #[error("no principal named '{0}' is configured")]
    PrincipalUnknown(String),
    // --- end of issue 13's block ---
    #[error("no key given: set `{field}` to a key name or id")]
    NoKeyGiven { field: &'static str },
    #[error("no key named or with id '{0}'")]
    KeyNotFound(String),
    #[error("key '{key}' has no version {version} (it has 1 to {latest})")]
    VersionNotFound {
        key: String,
        version: u32,
        latest: u32,
    },
    #[error("a key named '{0}' already exists")]
    KeyExists(String),
    #[error("key '{0}' is disabled; enable it (EnableKey) to use it")]
    KeyDisabled(String),
    #[error(
        "key '{0}' is pending destruction; cancel the destruction (CancelKeyDestruction) to use it again"
    )]
    KeyPendingDestruction(String),
    #[error("key '{0}' was destroyed; nothing can be done with it")]
    KeyDestroyed(String),
    #[error("key '{key}' is {state}, not pending destruction; there is nothing to cancel")]
    NotPendingDestruction { key: String, state: String },
    #[error("key '{0}' is already pending destruction")]
    AlreadyPendingDestruction(String),
    #[error("key '{key}' is a {purpose} key ({algorithm}); {action} needs a {needs} key")]
    WrongPurpose {
        key: String,
        purpose: String,
        algorithm: String,
        action: Action,
        needs: String,
    },
    /// The caller's input is not valid; `field` names the request field.
    #[error("{message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("{what} is {len} bytes; the limit is {max} bytes")]
    TooLarge {
        field: &'static str,
        what: String,
        len: usize,
        max: usize,
    },
    /// Not a keygate ciphertext, truncated, or of a format this gateway does not read.
    #[error("{0}")]
    CiphertextMalformed(String),
    #[error(
        "ciphertext was made under key id {0}, which this gateway does not hold (a foreign or forged ciphertext)"
    )]
    CiphertextForeign(String),
    #[error("ciphertext names version {version} of key '{key}', which has versions 1 to {latest}")]
    CiphertextVersionUnknown {
        key: String,
        version: u32,
        latest: u32,
    },
    /// A batch item sealed under another key than the one the batch names.
    #[error(
        "ciphertext was made under key id {other}, not under key '{key}' that the batch names; send it in a batch for its own key"
    )]
    CiphertextOtherKey { key: String, other: String },
    /// A version below the key's retirement floor (`keygate key retire`).
    #[error(
        "version {version} of key '{key}' is retired (versions below {floor} no longer decrypt or verify); re-encrypt with a version from {floor} on"
    )]
    VersionRetired {
        key: String,
        version: u32,
        floor: u32,
    },
    /// Retirement asked for while a version it would retire was used within the quiet period.
    #[error(
        "version {version} of key '{key}' was used {uses} times in the last {}: retiring it now would break its users; re-encrypt their data first, wait out the quiet period, or retire with force", crate::time::format_duration(*quiet_period)
    )]
    VersionInUse {
        key: String,
        version: u32,
        uses: u64,
        quiet_period: std::time::Duration,
    },
    /// Retirement of the Kubernetes KMS plugin's key's versions asked for without force.
    #[error(
        "key '{key}' is the key the Kubernetes KMS plugin serves ([kms_plugin] key): etcd keeps objects sealed under its old versions until they are written again or a storage migration rewrites them (kubectl get secrets --all-namespaces -o json | kubectl replace -f -), and as the apiserver caches the data encryption keys it opened, keygate's audit log shows few uses of those versions while etcd still depends on them; complete the migration, then retire with force"
    )]
    KmsPluginKeyRetirement { key: String },
    /// The destruction checklist: a key whose data may still need it is not destroyed.
    #[error(
        "key '{key}' was used to read data {uses} times within the destruction quiet period of {} (version {version} last at {}): its data may still need it; re-encrypt that data under another key, stop the reads, and schedule the destruction once the key has been quiet for {}", crate::time::format_duration(*quiet_period), crate::time::rfc3339(*last_used_ms), crate::time::format_duration(*quiet_period)
    )]
    KeyInUse {
        key: String,
        version: u32,
        uses: u64,
        last_used_ms: i64,
        quiet_period: std::time::Duration,
    },
    /// A key another provider instance cannot work without (it seals that instance's root
    /// key): it is not destroyed, disabled or retired.
    #[error(
        "key '{key}' seals the master key of provider {}: {change} it would make every key there unrecoverable at its next start; move that provider's master key to another key first (set its `master_key.key` and run `keygate admin rotate-master-key`)", providers.join(", ")
    )]
    KeyWrapsMasterKey {
        key: String,
        change: String,
        providers: Vec<String>,
    },
    #[error("provider '{provider}' is not configured; configured: {configured}")]
    ProviderNotConfigured {
        provider: String,
        configured: String,
    },
    /// A provider asked for by name (inventory) that this gateway does not have.
    #[error("provider '{provider}' is not configured; configured: {configured}")]
    ProviderUnknown {
        provider: String,
        configured: String,
    },
    #[error(
        "key '{key}' is held by provider '{provider}', which is not configured on this gateway"
    )]
    ProviderMissing { key: String, provider: String },
    #[error("provider '{provider}' ({kind}) does not support algorithm {algorithm}")]
    AlgorithmUnsupported {
        provider: String,
        kind: String,
        algorithm: String,
    },
    /// The KMS plugin's key seals into ciphertexts longer than the kube-apiserver takes.
    #[error(
        "key '{key}' ({algorithm}) sealed a {len}-byte ciphertext; the kube-apiserver takes at most 1024 bytes: give the KMS plugin an aes-256-gcm key"
    )]
    KmsCiphertextTooLarge {
        key: String,
        algorithm: String,
        len: usize,
    },
    #[error("key '{key}' is {algorithm}; data keys are sealed under symmetric keys (aes-256-gcm)")]
    DataKeyNeedsSymmetricKey { key: String, algorithm: String },
    #[error("key '{key}' is no longer due for rotation (next due {due})")]
    NotDueForRotation { key: String, due: String },
    #[error(
        "key '{key}' is left to provider '{provider}', which rotates it by itself ({expected}); keygate rotates it if the provider has not by {deadline}"
    )]
    RotationLeftToProvider {
        key: String,
        provider: String,
        expected: String,
        deadline: String,
    },
    #[error("key '{0}' is not yet due for destruction")]
    NotDueForDestruction(String),
    #[error(
        "key '{0}' has no approved destruction on record: outside dev mode a destruction runs only when its scheduling was approved by a quorum; cancel it (CancelKeyDestruction) and schedule it again to open an approval request"
    )]
    DestructionNotApproved(String),
    #[error("the caller went away before the call was admitted; nothing was done")]
    CallerGone,
    #[error("keygate is running {limit} calls, its limit; try again shortly")]
    Overloaded { limit: usize },
    #[error(
        "'{principal}' already has {limit} Tail streams open (limits.max_tail_streams_per_principal): close one first"
    )]
    TailLimit { principal: String, limit: usize },
    #[error(
        "keygate is shutting down and admits no new call; nothing was done; retry on another replica or after the restart"
    )]
    ShuttingDown,
    #[error("the call did not finish within {}; its outcome is in the audit log", crate::time::format_duration(*after))]
    CallTimedOut { after: std::time::Duration },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Posture(#[from] crate::posture::PostureError),
    #[error(
        "{uri} is already managed by keygate as key '{key}'; use the key, there is nothing to adopt"
    )]
    AlreadyManaged { uri: String, key: String },
    #[error("{0}")]
    Internal(String),
    /// A refusal on a key the caller may not read (GetKey): the caller hears `shown` (what it
    /// would hear if the key did not exist), the audit event records `real`.
    #[error("{shown}")]
    Concealed {
        shown: Box<GatewayError>,
        real: Box<GatewayError>,
    },
}

impl GatewayError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        GatewayError::InvalidField {
            field,
            message: message.into(),
        }
    }

    /// The stable reason code: clients match on it, audit events store it. Never renamed.
    pub fn reason(&self) -> &'static str {
        use GatewayError as E;
        match self {
            E::NoToken => "TOKEN_MISSING",
            E::BadToken => "TOKEN_INVALID",
            E::PolicyDenied { .. } => "POLICY_DENIED",
            E::ApprovalPending { .. } => "APPROVAL_PENDING",
            E::RequesterUnknown(_) => "APPROVAL_REQUESTER_UNKNOWN",
            E::Approval(a) => {
                use crate::approvals::ApprovalError as A;
                match a {
                    A::NotFound(_) => "APPROVAL_NOT_FOUND",
                    A::Closed { .. } => "APPROVAL_CLOSED",
                    A::Expired { .. } => "APPROVAL_EXPIRED",
                    A::AlreadyApproved { .. } => "APPROVAL_DUPLICATE",
                    A::SelfApproval { .. } => "APPROVAL_BY_REQUESTER",
                    A::NotRequester { .. } => "APPROVAL_NOT_REQUESTER",
                    A::DigestMismatch { .. } => "APPROVAL_DIGEST_MISMATCH",
                    A::Tampered { .. } => "APPROVAL_TAMPERED",
                    A::Store(_) | A::Corrupt(_) => "APPROVAL_STORE_UNAVAILABLE",
                }
            }
            E::PolicyInvalid(_) => "POLICY_INVALID",
            E::PrincipalUnknown(_) => "PRINCIPAL_NOT_FOUND",
            E::NoKeyGiven { .. } | E::InvalidField { .. } => "INVALID_ARGUMENT",
            E::KeyNotFound(_) => "KEY_NOT_FOUND",
            E::VersionNotFound { .. } => "KEY_VERSION_NOT_FOUND",
            E::KeyExists(_) => "KEY_EXISTS",
            E::KeyDisabled(_) => "KEY_DISABLED",
            E::KeyPendingDestruction(_) => "KEY_PENDING_DESTRUCTION",
            E::KeyDestroyed(_) => "KEY_DESTROYED",
            E::NotPendingDestruction { .. } => "KEY_NOT_PENDING_DESTRUCTION",
            E::AlreadyPendingDestruction(_) => "KEY_ALREADY_PENDING_DESTRUCTION",
            E::WrongPurpose { .. } => "WRONG_PURPOSE",
            E::TooLarge { .. } => "TOO_LARGE",
            E::CiphertextMalformed(_) => "CIPHERTEXT_MALFORMED",
            E::CiphertextForeign(_) => "CIPHERTEXT_FOREIGN_KEY",
            E::CiphertextVersionUnknown { .. } => "CIPHERTEXT_VERSION_UNKNOWN",
            E::CiphertextOtherKey { .. } => "CIPHERTEXT_OTHER_KEY",
            E::VersionRetired { .. } => "VERSION_RETIRED",
            E::VersionInUse { .. } => "VERSION_IN_USE",
            E::KmsPluginKeyRetirement { .. } => "KMS_PLUGIN_KEY_NEEDS_MIGRATION",
            E::KeyInUse { .. } => "KEY_IN_USE",
            E::KeyWrapsMasterKey { .. } => "KEY_WRAPS_MASTER_KEY",
            E::ProviderNotConfigured { .. } => "PROVIDER_NOT_CONFIGURED",
            E::ProviderMissing { .. } => "PROVIDER_MISSING",
            E::ProviderUnknown { .. } => "PROVIDER_NOT_FOUND",
            E::AlgorithmUnsupported { .. } => "ALGORITHM_UNSUPPORTED",
            E::DataKeyNeedsSymmetricKey { .. } => "DATA_KEY_NEEDS_SYMMETRIC_KEY",
            E::KmsCiphertextTooLarge { .. } => "KMS_CIPHERTEXT_TOO_LARGE",
            E::NotDueForRotation { .. } => "KEY_NOT_DUE_FOR_ROTATION",
            E::RotationLeftToProvider { .. } => "KEY_ROTATION_LEFT_TO_PROVIDER",
            E::NotDueForDestruction(_) => "KEY_NOT_DUE_FOR_DESTRUCTION",
            E::DestructionNotApproved(_) => "DESTRUCTION_NOT_APPROVED",
            E::CallerGone => "CALLER_GONE",
            E::Overloaded { .. } => "OVERLOADED",
            E::TailLimit { .. } => "TAIL_LIMIT",
            E::ShuttingDown => "SHUTTING_DOWN",
            E::CallTimedOut { .. } => "CALL_TIMEOUT",
            E::Provider(p) => match p {
                ProviderError::NotFound { .. } => "PROVIDER_KEY_NOT_FOUND",
                ProviderError::AlreadyExists { .. } => "PROVIDER_KEY_EXISTS",
                ProviderError::Unsupported { .. } => "PROVIDER_UNSUPPORTED",
                ProviderError::FailedPrecondition { .. } => "PROVIDER_PRECONDITION",
                ProviderError::InvalidInput { .. } => "PROVIDER_INVALID_INPUT",
                ProviderError::AuthenticationFailed { .. } => "CIPHERTEXT_CORRUPT",
                ProviderError::BackendDenied { .. } => "PROVIDER_DENIED",
                ProviderError::Throttled { .. } => "PROVIDER_THROTTLED",
                ProviderError::Unavailable { .. } => "PROVIDER_UNAVAILABLE",
                ProviderError::OutcomeUnknown { .. } => "PROVIDER_OUTCOME_UNKNOWN",
                ProviderError::Internal { .. } => "PROVIDER_INTERNAL",
                ProviderError::IntegrityFailed { .. } => "PROVIDER_INTEGRITY",
            },
            E::Audit(AuditError::Read(_)) => "AUDIT_READ_FAILED",
            E::Audit(_) => "AUDIT_UNAVAILABLE",
            E::Catalog(CatalogError::Conflict { .. }) => "CATALOG_CONFLICT",
            E::Catalog(CatalogError::NameTaken(_)) => "KEY_EXISTS",
            E::Catalog(CatalogError::Missing(_)) => "CATALOG_INCONSISTENT",
            E::Catalog(CatalogError::ProviderKeyTaken { .. }) => "KEY_ALREADY_MANAGED",
            E::Catalog(_) => "CATALOG_UNAVAILABLE",
            E::Posture(crate::posture::PostureError::NotFound(_)) => "FINDING_NOT_FOUND",
            E::Posture(crate::posture::PostureError::Closed(_)) => "FINDING_CLOSED",
            E::Posture(crate::posture::PostureError::Store(_)) => "POSTURE_STORE_UNAVAILABLE",
            E::AlreadyManaged { .. } => "KEY_ALREADY_MANAGED",
            E::Internal(_) => "INTERNAL",
            E::Concealed { shown, .. } => shown.reason(),
        }
    }

    /// The request field at fault, for a `BadRequest` field violation.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            GatewayError::InvalidField { field, .. }
            | GatewayError::TooLarge { field, .. }
            | GatewayError::NoKeyGiven { field } => Some(field),
            _ => None,
        }
    }

    /// The audit outcome this error stands for.
    pub fn outcome(&self) -> crate::audit::Outcome {
        match self {
            GatewayError::NoToken | GatewayError::BadToken | GatewayError::PolicyDenied { .. } => {
                crate::audit::Outcome::Denied
            }
            // Nothing was done yet: the change waits for its approvals.
            GatewayError::ApprovalPending { .. } => crate::audit::Outcome::PendingApproval,
            GatewayError::Concealed { real, .. } => real.outcome(),
            _ => crate::audit::Outcome::Error,
        }
    }
}
