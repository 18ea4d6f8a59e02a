//! keygate's request id, carried where Cloud Audit Logs record it.
//!
//! Cloud KMS returns no request id of its own, and its audit log entries have no field a
//! client fills but one: `protoPayload.requestMetadata.callerSuppliedUserAgent`, the
//! request's `User-Agent` header as the client sent it (Google's front end may append to it,
//! e.g. `,gzip(gfe)`). So every request keygate sends carries
//!
//! ```text
//! User-Agent: keygate/0.1.0 keygate-request-id/<request id>
//! ```
//!
//! where the request id is the gateway call's (`keygate_provider::context`), or a fresh
//! UUIDv7 for a request made outside a call. The same id is the provider request id of the
//! reply, so an audit event and the Cloud Audit Log entries of its requests share it;
//! [`request_id_in`] takes it back out of a logged user agent.

/// The product token that precedes the request id.
pub const REQUEST_ID_TOKEN: &str = "keygate-request-id/";

/// The `User-Agent` for a request made under `request_id`.
pub fn user_agent(request_id: &str) -> String {
    format!(
        "keygate/{} {REQUEST_ID_TOKEN}{request_id}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The keygate request id in a `callerSuppliedUserAgent`, if it carries one.
pub fn request_id_in(user_agent: &str) -> Option<&str> {
    let start = user_agent.find(REQUEST_ID_TOKEN)? + REQUEST_ID_TOKEN.len();
    let rest = &user_agent[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The id for the request being made: the call's, or a fresh one outside a call.
pub(crate) fn current_request_id() -> String {
    keygate_provider::context::request_id()
        .map(|id| id.to_string())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_id_survives_what_google_appends() {
        let ua = user_agent("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
        assert!(ua.starts_with("keygate/"));
        let logged = format!("{ua},gzip(gfe)");
        assert_eq!(
            request_id_in(&logged),
            Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(request_id_in("curl/8.0"), None);
        assert_eq!(request_id_in("keygate-request-id/"), None);
    }

    #[tokio::test]
    async fn the_call_id_is_used_inside_a_call() {
        let id =
            keygate_provider::context::with_request_id("req-42", async { current_request_id() })
                .await;
        assert_eq!(id, "req-42");
        assert_ne!(current_request_id(), current_request_id());
    }
}
