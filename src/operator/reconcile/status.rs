//! The status the operator writes: built in one place, applied with server-side apply.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use serde_json::json;

use crate::crd::{Echo, EchoStatus, READY_CONDITION};
use crate::echo_api::MAX_MESSAGE_CHARS;

/// The field manager that owns `.status`.
pub const FIELD_MANAGER: &str = "echo-operator";
/// The reason of a `Ready` condition that is true.
pub const READY_REASON: &str = "Reconciled";

/// The longest reply kept in status: what a well-behaved echo service answers (`echo: ` and
/// a message of up to 1024 characters of up to 4 bytes each). A faulty one may answer up to
/// a MiB, which must not push every object towards etcd's object size limit.
pub const MAX_STATUS_REPLY_BYTES: usize = "echo: ".len() + 4 * MAX_MESSAGE_CHARS;

/// How the reconcile ended, as far as status is concerned.
pub enum Outcome<'a> {
    Ready { reply: &'a str },
    NotReady { reason: &'a str, message: &'a str },
}

/// The status fields the operator owns, for `outcome`. Fields the outcome does not decide
/// (the last reply, the last reconciled generation) keep their values, and
/// `lastTransitionTime` only moves when `Ready` changes.
///
/// `conditions` holds only `Ready`: the list is a map keyed by `type`, so server-side apply
/// merges it with conditions other controllers set, and leaves those to their owners.
/// Re-sending them would make this field manager a co-owner of conditions it never decides.
pub fn build(
    echo: &Echo,
    outcome: &Outcome<'_>,
    trace_id: Option<String>,
    now: jiff::Timestamp,
) -> EchoStatus {
    let previous = echo.status.clone().unwrap_or_default();
    let generation = echo.meta().generation;
    let (status, reason, message, observed_generation, reply) = match outcome {
        Outcome::Ready { reply } => (
            "True",
            READY_REASON,
            "the echo service stored the message".to_owned(),
            generation,
            Some(truncate(reply, MAX_STATUS_REPLY_BYTES)),
        ),
        Outcome::NotReady { reason, message } => (
            "False",
            *reason,
            (*message).to_owned(),
            previous.observed_generation,
            previous.reply.clone(),
        ),
    };
    let last_transition_time = echo
        .ready_condition()
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let ready = Condition {
        type_: READY_CONDITION.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: truncate(&message, 1024),
        last_transition_time,
        observed_generation: generation,
    };
    EchoStatus {
        observed_generation,
        reply,
        trace_id,
        last_reconciled: Some(now.to_string()),
        conditions: vec![ready],
    }
}

/// The server-side apply body for the status subresource.
pub fn apply_patch(status: &EchoStatus) -> serde_json::Value {
    json!({
        "apiVersion": Echo::api_version(&()),
        "kind": Echo::kind(&()),
        "status": status,
    })
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EchoSpec;

    fn echo(generation: i64) -> Echo {
        let mut echo = Echo::new("a", EchoSpec::new("hi"));
        echo.metadata.generation = Some(generation);
        echo
    }

    #[test]
    fn failure_keeps_last_good_reply_and_generation() {
        let t0 = jiff::Timestamp::from_second(1_000).expect("ts");
        let mut e = echo(1);
        e.status = Some(build(
            &e,
            &Outcome::Ready { reply: "echo: hi" },
            Some("t1".into()),
            t0,
        ));
        e.metadata.generation = Some(2);
        let failed = build(
            &e,
            &Outcome::NotReady {
                reason: "EchoUnreachable",
                message: "down",
            },
            Some("t2".into()),
            t0,
        );
        assert_eq!(failed.observed_generation, Some(1));
        assert_eq!(failed.reply.as_deref(), Some("echo: hi"));
        assert_eq!(failed.trace_id.as_deref(), Some("t2"));
        let ready = failed
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "EchoUnreachable")
        );
        assert_eq!(ready.observed_generation, Some(2));
        assert_eq!(failed.conditions.len(), 1);
    }

    #[test]
    fn transition_time_moves_only_on_change() {
        let t0 = jiff::Timestamp::from_second(1_000).expect("ts");
        let t1 = jiff::Timestamp::from_second(2_000).expect("ts");
        let mut e = echo(1);
        e.status = Some(build(&e, &Outcome::Ready { reply: "r" }, None, t0));
        let again = build(&e, &Outcome::Ready { reply: "r" }, None, t1);
        assert_eq!(again.conditions[0].last_transition_time, Time(t0));
        let flipped = build(
            &e,
            &Outcome::NotReady {
                reason: "EchoFailing",
                message: "503",
            },
            None,
            t1,
        );
        assert_eq!(flipped.conditions[0].last_transition_time, Time(t1));
    }

    #[test]
    fn only_the_ready_condition_is_applied() {
        let t0 = jiff::Timestamp::from_second(1_000).expect("ts");
        let mut e = echo(1);
        let foreign = Condition {
            type_: "Audited".into(),
            status: "True".into(),
            reason: "PolicyChecked".into(),
            message: "set by another controller".into(),
            last_transition_time: Time(t0),
            observed_generation: Some(1),
        };
        e.status = Some(EchoStatus {
            conditions: vec![foreign],
            ..EchoStatus::default()
        });
        let patch = apply_patch(&build(&e, &Outcome::Ready { reply: "r" }, None, t0));
        let types: Vec<&str> = patch["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(types, ["Ready"], "{patch}");
    }

    #[test]
    fn a_huge_reply_is_cut_to_the_bound() {
        let t0 = jiff::Timestamp::from_second(1_000).expect("ts");
        let huge = "€".repeat(400_000); // 1.2 MB
        let status = build(&echo(1), &Outcome::Ready { reply: &huge }, None, t0);
        let kept = status.reply.expect("reply");
        assert!(kept.len() <= MAX_STATUS_REPLY_BYTES, "{} bytes", kept.len());
        assert!(huge.starts_with(&kept));
        let longest_fair = format!("echo: {}", "€".repeat(MAX_MESSAGE_CHARS));
        let status = build(
            &echo(1),
            &Outcome::Ready {
                reply: &longest_fair,
            },
            None,
            t0,
        );
        assert_eq!(
            status.reply.as_deref(),
            Some(longest_fair.as_str()),
            "a fair reply is kept whole"
        );
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
