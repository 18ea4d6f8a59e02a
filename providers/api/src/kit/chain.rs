//! Error cause chains in one line: SDKs' top-level messages ("dispatch failure", "error
//! sending request") hide the cause that says what went wrong.

/// `err` and each of its sources, joined by `: `, skipping a source whose text an earlier
/// part already contains (many errors repeat their source in their own message).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct E {
        text: &'static str,
        #[source]
        source: Option<Box<E>>,
    }

    #[test]
    fn causes_are_joined_once() {
        let e = E {
            text: "dispatch failure",
            source: Some(Box::new(E {
                text: "io error: connection refused",
                source: Some(Box::new(E {
                    text: "connection refused",
                    source: None,
                })),
            })),
        };
        assert_eq!(
            error_chain(&e),
            "dispatch failure: io error: connection refused"
        );
    }
}
