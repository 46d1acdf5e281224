//! Kubernetes Events for people, one per distinct message.
//!
//! kube-runtime's `Recorder` folds a repeated event into a series by reason, action and
//! object, ignoring the note, and keeps the first note for its cache's lifetime (6 minutes).
//! Our notes carry the trace id of the reconcile that wrote them, so that would show a stale
//! trace on every later Event. This recorder keys its series on the note as well: a new
//! trace gives a new Event, and only a word-for-word repeat (with tracing off, say) is
//! counted on the existing one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType, Reporter};

use super::event_series::{RecentSeries, SeriesKey};
use crate::crd::K8S_TRACEPARENT_ANNOTATION;
use crate::lock::lock;
use crate::operator::calls::written::{self, Written};

/// The API server refuses an Event whose note is longer (bytes).
const MAX_NOTE: usize = 1024;
/// Nor may an object's name be longer, the Event's included.
const MAX_NAME: usize = 253;

/// An Event's note: `body (trace ID)`. A long body (an echoed message of 1024 multi-byte
/// characters, say) is cut, never the trace id, which is what the note is for.
pub fn note(body: &str, trace_id: Option<&str>) -> String {
    let suffix = format!(" (trace {})", trace_id.unwrap_or("none"));
    let room = MAX_NOTE.saturating_sub(suffix.len());
    if body.len() <= room {
        return format!("{body}{suffix}");
    }
    let mut end = room.saturating_sub('…'.len_utf8());
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…{suffix}", &body[..end])
}

/// `{object}.{nanoseconds in hex}`, unique per publish like `kubectl`'s own Event names,
/// with the object's name cut so that the whole is still a valid name: an object named with
/// all 253 characters allowed must get Events too.
fn event_name(object: &str, now: jiff::Timestamp) -> String {
    let suffix = format!("{:x}", now.as_nanosecond());
    let room = MAX_NAME.saturating_sub(suffix.len() + 1);
    // Names are DNS subdomains (ASCII); the part before the dot must end alphanumeric.
    let prefix = object.get(..room.min(object.len())).unwrap_or("event");
    let prefix = prefix.trim_end_matches(['.', '-']);
    format!("{prefix}.{suffix}")
}

pub struct EventRecorder {
    client: kube::Client,
    reporter: Reporter,
    published: Mutex<RecentSeries>,
}

impl EventRecorder {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            published: Mutex::default(),
        }
    }

    /// Event series remembered now (bounded, see [`RecentSeries`]).
    pub fn remembered(&self) -> usize {
        self.lock().len()
    }

    /// Creates the Event, or counts it on the identical one published within the window.
    /// A new Event carries `traceparent`, the publishing reconcile's W3C context, in the
    /// annotation `tracing.k8s.io/traceparent`.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        traceparent: Option<&str>,
    ) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        let key = SeriesKey {
            regarding: (
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ),
            type_: type_name(event.type_),
            reason: event.reason.clone(),
            action: event.action.clone(),
            note: event.note.clone(),
        };
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Written<K8sEvent>> = Api::namespaced(self.client.clone(), namespace);
        let next_in_series = self.lock().next(&key, now);
        let (name, count) = match next_in_series {
            Some((name, count)) => {
                let series = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: MicroTime(now) }
                });
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await?;
                (name, count)
            }
            None => {
                let mut new_event = self.new_event(event, regarding, now);
                if let Some(traceparent) = traceparent {
                    new_event.metadata.annotations = Some(BTreeMap::from([(
                        K8S_TRACEPARENT_ANNOTATION.to_owned(),
                        traceparent.to_owned(),
                    )]));
                }
                let created =
                    written::create(&self.client, &api, &PostParams::default(), &new_event).await?;
                (created.name().unwrap_or_default().to_owned(), 1)
            }
        };
        self.lock().remember(key, name, count, now);
        Ok(())
    }

    fn new_event(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        now: jiff::Timestamp,
    ) -> K8sEvent {
        let object = regarding
            .name
            .as_deref()
            .unwrap_or(&self.reporter.controller);
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(event_name(object, now)),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(type_name(event.type_).to_owned()),
            reason: Some(event.reason.clone()),
            action: Some(event.action.clone()),
            note: event.note.clone(),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..K8sEvent::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecentSeries> {
        lock(&self.published)
    }
}

fn type_name(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn a_long_note_is_cut_before_the_trace_id() {
        let body = format!("echo service replied {:?}", "€".repeat(1024));
        let cut = note(&body, Some(TRACE));
        assert!(cut.len() <= MAX_NOTE, "{} bytes", cut.len());
        assert!(cut.ends_with(&format!("… (trace {TRACE})")), "{cut}");
        assert_eq!(
            note(&"x".repeat(10), Some(TRACE)),
            format!("xxxxxxxxxx (trace {TRACE})")
        );
    }

    #[test]
    fn event_names_stay_valid_for_the_longest_object_names() {
        let now = jiff::Timestamp::from_nanosecond(1_795_000_000_123_456_789).expect("time");
        let suffix = format!(".{:x}", now.as_nanosecond());
        let longest = format!("{}.{}", "a".repeat(200), "b-".repeat(26)); // 253 characters
        assert_eq!(longest.len(), MAX_NAME);
        let name = event_name(&longest, now);
        assert!(name.len() <= MAX_NAME, "{} characters", name.len());
        assert!(name.ends_with(&suffix));
        let before_dot = name.trim_end_matches(&suffix);
        assert!(
            before_dot.ends_with(|c: char| c.is_ascii_alphanumeric()),
            "{name}"
        );
        assert_eq!(event_name("hello", now), format!("hello{suffix}"));
    }
}
