// Compiles proto/keygate/v1 with a vendored protoc, so the build needs nothing outside cargo.
/// Each has its `Debug` in `src/pb/secret_fields.rs`; the compiler holds the two lists together
/// (prost needs a `Debug`, and a second one conflicts with the derived one).
const SECRET_MESSAGES: [&str; 9] = [
    "EncryptRequest",
    "DecryptResponse",
    "GenerateDataKeyResponse",
    "BatchEncryptItem",
    "BatchDecryptResult",
    // What is signed or MACed may be sensitive too (tokens, documents).
    "SignRequest",
    "VerifyRequest",
    "GenerateMacRequest",
    "VerifyMacRequest",
];

/// The Kubernetes KMS v2 plugin API, vendored with its license.
const KMS_PROTO: &str = "proto/vendor/k8s.io/kms/v2/api.proto";
/// Its messages that carry plaintext.
const KMS_SECRET_MESSAGES: [&str; 2] = ["EncryptRequest", "DecryptResponse"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY of intent: build scripts are single-threaded; PROTOC tells prost-build which binary.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/keygate/v1/keys.proto",
        "proto/keygate/v1/audit.proto",
        "proto/keygate/v1/admin.proto",
        "proto/keygate/v1/approvals.proto",
        "proto/keygate/v1/posture.proto",
    ];
    tonic_prost_build::configure()
        // Messages that carry plaintext or data keys get a redacting `Debug` and a zeroizing
        // `Drop` written by hand (src/pb/secret_fields.rs), never the derived ones.
        .skip_debug(SECRET_MESSAGES.iter().map(|m| format!(".keygate.v1.{m}")))
        .file_descriptor_set_path(out_dir.join("keygate_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    // The Kubernetes KMS v2 plugin API (vendored, package `v2`), served only on the plugin's
    // UNIX socket: compiled apart, so it stays out of the keygate descriptor set that
    // reflection serves on the gRPC listener. Its plaintext-carrying messages get the same
    // redacting `Debug` (src/pb/secret_fields.rs).
    tonic_prost_build::configure()
        .skip_debug(KMS_SECRET_MESSAGES.iter().map(|m| format!(".v2.{m}")))
        .compile_protos(&[KMS_PROTO], &["proto/vendor"])?;
    println!("cargo:rerun-if-changed={KMS_PROTO}");
    // Each file, not only the folder: a target directory shared between checkouts must see
    // an edited file as changed.
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
