//! The wire contract between the operator and the echo service: the path, the request, the
//! reply, and the limits. The `Echo` CRD's schema, the operator's client, the echo service
//! and the tests all read them from here, so the API server, the client and the server can
//! never disagree about what is valid.

use serde::{Deserialize, Serialize};

/// Longest `message`, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1024;
/// Longest `delayMs` the echo service honours.
pub const MAX_DELAY_MS: u32 = 10_000;
/// Most writes an object may ask the echo service to reject (`failFirst`).
pub const MAX_FAIL_FIRST: u32 = 10;
/// Largest request body the echo service reads.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest reply the operator reads; the service's own replies are a few hundred bytes.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// The route of one echo, as the server matches it and as `url.template` names it.
pub const ROUTE: &str = "/v1/echoes/{namespace}/{name}";

/// The path segments of one echo below the service's base URL (`ROUTE`, filled in).
pub fn path_segments<'a>(namespace: &'a str, name: &'a str) -> [&'a str; 4] {
    ["v1", "echoes", namespace, name]
}

/// What a `PUT` carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EchoRequest {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_first: Option<u32>,
}

impl EchoRequest {
    /// Checks the limits above; the error says which one, for a person.
    pub fn validate(&self) -> Result<(), String> {
        let chars = self.message.chars().count();
        if chars == 0 || chars > MAX_MESSAGE_CHARS || self.message.trim().is_empty() {
            return Err(format!(
                "message must be 1 to {MAX_MESSAGE_CHARS} characters and not blank"
            ));
        }
        if self.delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
            return Err(format!("delayMs must be 0 to {MAX_DELAY_MS}"));
        }
        if self.fail_first.is_some_and(|f| f > MAX_FAIL_FIRST) {
            return Err(format!("failFirst must be 0 to {MAX_FAIL_FIRST}"));
        }
        Ok(())
    }
}

/// What a successful `PUT` or `GET` answers: the echo as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EchoReply {
    pub namespace: String,
    pub name: String,
    pub message: String,
    /// The answer the operator writes to `status.reply`.
    pub reply: String,
    pub delay_ms: u32,
    pub fail_first: u32,
    /// Trace id of the request that stored this value.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Writes received for this echo so far, failed ones included.
    pub writes: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(message: &str, delay_ms: u32, fail_first: u32) -> EchoRequest {
        EchoRequest {
            message: message.to_owned(),
            delay_ms: Some(delay_ms),
            fail_first: Some(fail_first),
        }
    }

    #[test]
    fn the_limits_are_inclusive() {
        let longest = "é".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(
            request(&longest, MAX_DELAY_MS, MAX_FAIL_FIRST).validate(),
            Ok(())
        );
        let too_long = "é".repeat(MAX_MESSAGE_CHARS + 1);
        assert!(request(&too_long, 0, 0).validate().is_err());
        assert!(request("hi", MAX_DELAY_MS + 1, 0).validate().is_err());
        assert!(request("hi", 0, MAX_FAIL_FIRST + 1).validate().is_err());
        assert!(request(" \t", 0, 0).validate().is_err(), "blank");
    }
}
