//! protobuf ↔ domain, at the edge. Requests convert without failing (every call reaches the
//! runner and is audited, malformed or not); validation is the operations' `check`.

mod approvals;
mod audit;
mod batch;
mod byok;
mod compliance;
mod crypto;
mod keys;
mod posture;

pub use approvals::approval_to_pb;
pub use audit::{checkpoint_to_pb, event_to_pb, ingester_to_pb};
pub use batch::{re_encrypt_items, re_encrypt_results};
pub use byok::family_to_pb;
pub use compliance::{ReportFromPbError, report_from_pb};
pub use keys::{key_to_pb, key_view_to_pb};

use crate::gateway::ops::DurationInput;

fn duration(d: Option<prost_types::Duration>) -> Option<DurationInput> {
    d.map(|d| DurationInput {
        seconds: d.seconds,
        nanos: d.nanos,
    })
}
