//! Generated protobuf and gRPC types for `keygate.v1`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("keygate.v1");

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("keygate_descriptor");

mod secret_fields;
