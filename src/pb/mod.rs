//! Generated protobuf and gRPC types for `keygate.v1`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("keygate.v1");

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("keygate_descriptor");

/// The Kubernetes KMS v2 plugin API (`k8s.io/kms/apis/v2`, vendored under proto/vendor),
/// served on the plugin's UNIX socket (src/kms_plugin).
pub mod kms_v2 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("v2");
}

mod secret_fields;
