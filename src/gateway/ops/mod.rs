//! Every operation keygate performs, as values the runner executes: one module per family.

pub mod adopt;
pub mod approvals;
pub mod audit;
pub mod audit_anchor;
mod backend_batch;
pub mod batch;
pub mod byok;
pub mod checklist;
pub mod compliance;
pub mod console;
pub mod crypto;
pub mod family_destruction;
pub mod inventory;
pub mod keys;
pub mod kms;
pub mod lifecycle;
pub mod owner;
pub mod policy;
pub mod posture;
mod posture_audit;
mod posture_settings;
pub mod public_keys;
pub mod retire;
pub mod signing;
pub mod status;
pub mod usage;

pub use adopt::AdoptKey;
pub use approvals::{
    ApprovalPage, CancelRequest, DecideOnRequest, Decided, GetApproval, ListApprovals,
};
pub use audit::{
    AuditExport, AuditHash, AuditPage, AuditQuery, AuditTail, AuditVerify, Checkpoints, Export,
    ExportFormat, GetVerification, ListCheckpoints, ListIngesters, StartVerification, Tail,
};
pub use audit_anchor::{AuditSigningKeys, SignAuditCheckpoint};
pub use batch::{
    BatchDecrypt, BatchEncrypt, BatchOpened, BatchReEncrypt, BatchReSealed, BatchSealed,
    DecryptItem, EncryptItem, ItemResult, MAX_BATCH_ITEMS, ReEncryptItem,
};
pub use byok::{ByokFamily, ByokImport, GetKeyFamily, ReimportByok, RetryByokImport};
pub use compliance::ComplianceReport;
pub use console::{ConsoleSignIn, SignedIn};
pub use crypto::{
    DataKeyOut, Decrypt, Encrypt, GenerateDataKey, Opened, ReEncrypt, ReSealed, Sealed,
};
pub use inventory::{InventoryEntry, InventoryPage, ListInventory, RotateMasterKey};
pub use keys::{CreateKey, DurationInput, GetKey, KeyPage, KeyView, ListKeys, Usage};
pub use kms::{KmsCall, KmsDecrypt, KmsEncrypt};
pub use lifecycle::{
    CancelKeyDestruction, DestroyKey, ListDestructionRecords, RotateKey, RotationStep,
    ScheduleKeyDestruction, SetKeyEnabled,
};
pub use owner::SetKeyOwner;
pub use policy::{ExplainPolicy, Explanation, GetPolicyStatus, PolicyStatus, ReloadPolicies};
pub use posture::{
    AcknowledgeFinding, FindingPage, GetPostureInventory, ListFindings, PostureInventory,
    ScanPosture,
};
pub use public_keys::{GetPublicKeySet, PublicKeySet};
pub use retire::RetireKeyVersions;
pub use signing::{
    GenerateMac, GetPublicKey, Mac, Payload, PublicKey, Sign, Signature, Verification, Verify,
    VerifyMac,
};
pub use status::{GatewayStatus, GetGatewayStatus};
pub use usage::VersionUsage;

/// A requested page size: 0 means the default of 100; at most 1000.
fn page_size(requested: u32) -> u32 {
    match requested {
        0 => 100,
        n => n.min(1000),
    }
}

/// The target of an operation on the key a request names in its `key` field.
fn key_target(key: &str) -> crate::gateway::runner::Target<'_> {
    crate::gateway::runner::Target::Key { field: "key", key }
}
