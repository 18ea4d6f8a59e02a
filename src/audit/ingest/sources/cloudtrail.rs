//! AWS CloudTrail records of KMS (`eventSource` `kms.amazonaws.com`), as delivered to S3:
//! `AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/…json.gz`, each file `{"Records": [...]}`.
//!
//! `requestID` is the `x-amzn-RequestId` of KMS's reply, which keygate's event records as the
//! provider request id. The access key id and the encryption context are HMAC'd.

use super::super::record::{
    Normalised, Normaliser, ProviderRecord, parse_time, request_id_in_user_agent, text,
};
use crate::audit::hmac::Hasher;
use serde_json::{Map, Value};

pub struct CloudTrail;

fn operation(event_name: &str) -> &str {
    match event_name {
        "GenerateDataKey"
        | "GenerateDataKeyWithoutPlaintext"
        | "GenerateDataKeyPair"
        | "GenerateDataKeyPairWithoutPlaintext" => "GenerateDataKey",
        "ScheduleKeyDeletion" => "ScheduleKeyDestruction",
        "CancelKeyDeletion" => "CancelKeyDestruction",
        "RotateKeyOnDemand" => "RotateKey",
        "DescribeKey" => "GetKey",
        "ImportKeyMaterial" => "ImportKey",
        other => other,
    }
}

/// kebab-case of CloudTrail's `userIdentity.type` (`IAMUser` → `iam-user`).
fn kind(identity_type: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = identity_type.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let prev_lower = i > 0 && chars[i - 1].is_lowercase();
        if c.is_uppercase() && i > 0 && (prev_lower || next_lower) {
            out.push('-');
        }
        out.extend(c.to_lowercase());
    }
    if out.is_empty() {
        "aws-principal".into()
    } else {
        out
    }
}

impl Normaliser for CloudTrail {
    fn source(&self) -> &'static str {
        "aws-kms"
    }

    fn normalise(&self, r: &Value, hasher: &Hasher) -> Normalised {
        let (event_id, event_name, source) = (
            text(r, "/eventID"),
            text(r, "/eventName"),
            text(r, "/eventSource"),
        );
        if event_id.is_empty() || event_name.is_empty() || source.is_empty() {
            return Normalised::Malformed(
                "not a CloudTrail record: eventID, eventName or eventSource is missing".into(),
            );
        }
        if source != "kms.amazonaws.com" {
            return Normalised::Ignored("not a KMS event");
        }
        let Some(time_ms) = parse_time(text(r, "/eventTime")) else {
            return Normalised::Malformed(format!(
                "eventTime '{}' is not RFC 3339",
                text(r, "/eventTime")
            ));
        };
        let arn = r
            .get("resources")
            .and_then(Value::as_array)
            .and_then(|rs| {
                rs.iter()
                    .find(|x| text(x, "/type") == "AWS::KMS::Key")
                    .map(|x| text(x, "/ARN"))
            })
            .filter(|a| !a.is_empty())
            .or_else(|| {
                Some(text(r, "/requestParameters/keyId"))
                    .filter(|k| k.starts_with("arn:") && k.contains(":key/"))
            })
            .unwrap_or("");
        let error_code = text(r, "/errorCode");
        let outcome = if error_code.is_empty() {
            "ok"
        } else if error_code.contains("AccessDenied")
            || error_code.contains("NotAuthorized")
            || error_code.contains("Unauthorized")
        {
            "denied"
        } else {
            "error"
        };
        let actor = [
            "/userIdentity/arn",
            "/userIdentity/principalId",
            "/userIdentity/invokedBy",
            "/userIdentity/type",
        ]
        .iter()
        .map(|p| text(r, p))
        .find(|v| !v.is_empty())
        .unwrap_or("unknown")
        .to_string();
        let user_agent = text(r, "/userAgent");
        let mut aws = Map::new();
        for (name, pointer) in [
            ("event_name", "/eventName"),
            ("event_id", "/eventID"),
            ("event_category", "/eventCategory"),
            ("region", "/awsRegion"),
            ("account", "/recipientAccountId"),
            ("user_agent", "/userAgent"),
            (
                "encryption_algorithm",
                "/requestParameters/encryptionAlgorithm",
            ),
            ("signing_algorithm", "/requestParameters/signingAlgorithm"),
            ("key_spec", "/requestParameters/keySpec"),
        ] {
            let v = text(r, pointer);
            if !v.is_empty() {
                aws.insert(name.into(), v.into());
            }
        }
        let access_key = text(r, "/userIdentity/accessKeyId");
        if !access_key.is_empty() {
            aws.insert("access_key_id".into(), hasher.protect(access_key).into());
        }
        if let Some(context) = r.pointer("/requestParameters/encryptionContext") {
            aws.insert("encryption_context".into(), hasher.protect_all(context));
        }
        if let Some(read_only) = r.get("readOnly") {
            aws.insert("read_only".into(), read_only.clone());
        }
        let mut details = Map::new();
        details.insert("aws".into(), Value::Object(aws));
        Normalised::Record(Box::new(ProviderRecord {
            record_id: event_id.to_string(),
            time_ms,
            operation: operation(event_name).to_string(),
            native_operation: event_name.to_string(),
            actor,
            actor_kind: kind(text(r, "/userIdentity/type")),
            client_address: text(r, "/sourceIPAddress").to_string(),
            key_uri: if arn.is_empty() {
                String::new()
            } else {
                format!("awskms:///{arn}")
            },
            native_version: String::new(),
            outcome,
            error_code: error_code.to_string(),
            reason: text(r, "/errorMessage").to_string(),
            provider_request_id: text(r, "/requestID").to_string(),
            keygate_request_id: request_id_in_user_agent(user_agent),
            details,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CloudTrail record of a KMS Encrypt, in the documented format.
    const ENCRYPT: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::000000000000:user/app","accountId":"000000000000","accessKeyId":"AKIAIOSFODNN7EXAMPLE","userName":"app"},"eventTime":"2026-12-06T10:00:00Z","eventSource":"kms.amazonaws.com","eventName":"Encrypt","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.10","userAgent":"aws-sdk-rust/1.3 keygate-request-id/0190a1b2-c3d4","requestParameters":{"keyId":"arn:aws:kms:us-east-1:000000000000:key/1234abcd","encryptionAlgorithm":"SYMMETRIC_DEFAULT","encryptionContext":{"tenant":"acme"}},"responseElements":null,"requestID":"5f0e6b7c-aaaa-bbbb-cccc-1234567890ab","eventID":"e1f2a3b4-0000-1111-2222-333344445555","readOnly":true,"resources":[{"accountId":"000000000000","type":"AWS::KMS::Key","ARN":"arn:aws:kms:us-east-1:000000000000:key/1234abcd"}],"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"000000000000","eventCategory":"Management"}"#;

    fn norm(text: &str) -> Normalised {
        CloudTrail.normalise(&serde_json::from_str(text).unwrap(), &Hasher::new(&[2; 32]))
    }

    #[test]
    fn a_kms_record_normalises() {
        let Normalised::Record(r) = norm(ENCRYPT) else {
            panic!()
        };
        assert_eq!(r.record_id, "e1f2a3b4-0000-1111-2222-333344445555");
        assert_eq!(
            r.provider_request_id,
            "5f0e6b7c-aaaa-bbbb-cccc-1234567890ab"
        );
        assert_eq!(
            r.key_uri,
            "awskms:///arn:aws:kms:us-east-1:000000000000:key/1234abcd"
        );
        assert_eq!((r.operation.as_str(), r.outcome), ("Encrypt", "ok"));
        assert_eq!(r.actor, "arn:aws:iam::000000000000:user/app");
        assert_eq!(r.actor_kind, "iam-user");
        assert_eq!(r.keygate_request_id.as_deref(), Some("0190a1b2-c3d4"));
        let text = serde_json::to_string(&r.details).unwrap();
        assert!(!text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
        assert!(!text.contains("acme"), "{text}");
        assert!(text.contains("hmac-sha256:keygate:"), "{text}");
    }

    #[test]
    fn errors_other_services_and_garbage() {
        let denied = ENCRYPT.replace(
            "\"eventType\"",
            "\"errorCode\":\"AccessDeniedException\",\"errorMessage\":\"not allowed\",\"eventType\"",
        );
        let Normalised::Record(r) = norm(&denied) else {
            panic!()
        };
        assert_eq!((r.outcome, r.reason.as_str()), ("denied", "not allowed"));
        let s3 = ENCRYPT.replace("kms.amazonaws.com", "s3.amazonaws.com");
        assert!(matches!(norm(&s3), Normalised::Ignored(_)));
        assert!(matches!(norm("{\"Records\":[]}"), Normalised::Malformed(_)));
        assert_eq!(kind("AssumedRole"), "assumed-role");
        assert_eq!(kind("AWSService"), "aws-service");
        assert_eq!(kind("Root"), "root");
    }
}
