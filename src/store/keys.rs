//! Job idempotency keys, made in one place so every producer of jobs
//! keeps to one length rule and the formats never meet: a call's key is
//! scoped by service and operation ([`scoped`]), a request put on the SQS
//! queue from outside is keyed by its MessageId ([`sqs_message`]), and a
//! polling-table row by its id ([`request_row`]). A second enqueue with a
//! key already stored returns the first job.

use sha2::{Digest, Sha256};

/// The longest idempotency key the store keeps (`VARCHAR(255)` on the
/// server databases).
const MAX_KEY_CHARS: usize = 255;

/// `{service}/{operation}/{kind}:{value}`; when that is too long to store,
/// the value (or, for very long names, the whole key) is replaced by its
/// SHA-256, which keeps equal keys equal and different keys apart.
pub fn scoped(service: &str, operation: &str, kind: &str, value: &str) -> String {
    let hex = |s: &str| -> String {
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let key = format!("{service}/{operation}/{kind}:{value}");
    if key.chars().count() <= MAX_KEY_CHARS {
        return key;
    }
    let hashed = format!("{service}/{operation}/{kind}-sha256:{}", hex(value));
    if hashed.chars().count() <= MAX_KEY_CHARS {
        return hashed;
    }
    format!("sha256:{}", hex(&key))
}

/// A request put on the request queue from outside: its SQS MessageId, so
/// a redelivery of the message is not a second job.
pub fn sqs_message(message_id: &str) -> String {
    format!("sqs:{message_id}")
}

/// A `soapgate_requests` row: its id, so the row becomes one job however
/// often it is picked up.
pub fn request_row(id: i64) -> String {
    format!("soapgate_requests:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_scoped_and_fit_the_column() {
        assert_eq!(scoped("S", "Op", "key", "DOC-1"), "S/Op/key:DOC-1");
        assert_ne!(
            scoped("S", "Op", "key", "DOC-1"),
            scoped("S", "Other", "key", "DOC-1")
        );
        let long = "x".repeat(1000);
        let k = scoped("S", "Op", "message-id", &long);
        assert!(k.starts_with("S/Op/message-id-sha256:"), "{k}");
        assert!(k.chars().count() <= MAX_KEY_CHARS);
        assert_eq!(k, scoped("S", "Op", "message-id", &long));
        assert_ne!(k, scoped("S", "Op", "message-id", &format!("{long}y")));
        let name = "N".repeat(300);
        let k = scoped(&name, "Op", "key", "v");
        assert!(k.starts_with("sha256:") && k.len() <= MAX_KEY_CHARS, "{k}");
    }
}
