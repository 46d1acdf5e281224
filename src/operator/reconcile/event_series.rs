//! Which Events were published recently, so that a word-for-word repeat is counted on the
//! existing Event (a series) instead of creating another.
//!
//! Bounded: at most [`MAX_REMEMBERED`] series. Room is made in one sweep per
//! [`MAX_REMEMBERED`]/4 new series, never on every publish: a sweep walks the whole map, and
//! since our notes carry trace ids nearly every Event is a new series, so a sweep per publish
//! cost the operator 2 % of its CPU at 1,000 objects and grew with the object count.

use std::collections::HashMap;
use std::time::Duration;

/// How long a published event can still be folded into; Kubernetes keeps Events for an hour,
/// and the upstream recorder uses the same window.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// Series remembered at most; the oldest are forgotten first (a forgotten one is just
/// published again as a new Event).
pub const MAX_REMEMBERED: usize = 4096;
/// Series kept by a sweep that has to forget live ones.
const KEPT_BY_SWEEP: usize = MAX_REMEMBERED - MAX_REMEMBERED / 4;

/// What makes two Events the same series: the object, type, reason, action and note.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub regarding: (Option<String>, Option<String>, Option<String>),
    pub type_: &'static str,
    pub reason: String,
    pub action: String,
    pub note: Option<String>,
}

struct Published {
    name: String,
    count: i32,
    last_observed: jiff::Timestamp,
}

#[derive(Default)]
pub struct RecentSeries {
    published: HashMap<SeriesKey, Published>,
    sweeps: usize,
}

impl RecentSeries {
    /// Series remembered now (at most [`MAX_REMEMBERED`]).
    pub fn len(&self) -> usize {
        self.published.len()
    }

    pub fn is_empty(&self) -> bool {
        self.published.is_empty()
    }

    /// How many times room was made (for tests of the amortised cost).
    pub fn sweeps(&self) -> usize {
        self.sweeps
    }

    /// The Event name and next count of the series `key` continues, if it was published
    /// within the window. An expired series may still be in the map; it is never continued.
    pub fn next(&self, key: &SeriesKey, now: jiff::Timestamp) -> Option<(String, i32)> {
        let last = self.published.get(key)?;
        let age = now.duration_since(last.last_observed).unsigned_abs();
        (age < SERIES_WINDOW).then(|| (last.name.clone(), last.count.saturating_add(1)))
    }

    pub fn remember(&mut self, key: SeriesKey, name: String, count: i32, now: jiff::Timestamp) {
        if self.published.len() >= MAX_REMEMBERED && !self.published.contains_key(&key) {
            self.make_room(now);
        }
        let last_observed = now;
        self.published.insert(
            key,
            Published {
                name,
                count,
                last_observed,
            },
        );
    }

    /// Forgets every expired series and, if that leaves more than [`KEPT_BY_SWEEP`], the
    /// oldest of the rest down to that many.
    fn make_room(&mut self, now: jiff::Timestamp) {
        self.sweeps += 1;
        let live =
            |p: &Published| now.duration_since(p.last_observed).unsigned_abs() < SERIES_WINDOW;
        self.published.retain(|_, p| live(p));
        let surplus = self.published.len().saturating_sub(KEPT_BY_SWEEP);
        if surplus == 0 {
            return;
        }
        let mut times: Vec<jiff::Timestamp> =
            self.published.values().map(|p| p.last_observed).collect();
        let (_, newest_forgotten, _) = times.select_nth_unstable(surplus - 1);
        let newest_forgotten = *newest_forgotten;
        self.published
            .retain(|_, p| p.last_observed > newest_forgotten);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> SeriesKey {
        SeriesKey {
            regarding: (Some("default".into()), Some(format!("echo-{n}")), None),
            type_: "Normal",
            reason: "Reconciled".into(),
            action: "Reconcile".into(),
            note: Some(format!("echo service replied (trace {n:032x})")),
        }
    }

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("a valid timestamp")
    }

    #[test]
    fn a_repeat_within_the_window_continues_the_series_and_an_old_one_does_not() {
        let mut series = RecentSeries::default();
        series.remember(key(1), "echo-1.a".into(), 1, at(0));
        assert_eq!(series.next(&key(1), at(10)), Some(("echo-1.a".into(), 2)));
        assert_eq!(series.next(&key(2), at(10)), None);
        let expired = at(SERIES_WINDOW.as_secs() as i64);
        assert_eq!(series.next(&key(1), expired), None);
    }

    #[test]
    fn the_memory_stays_bounded_and_forgets_the_oldest_first() {
        let mut series = RecentSeries::default();
        let total = 3 * MAX_REMEMBERED;
        for n in 0..total {
            series.remember(key(n), format!("echo-{n}"), 1, at(n as i64 / 100));
            assert!(
                series.len() <= MAX_REMEMBERED,
                "{} series after {n}",
                series.len()
            );
        }
        let now = at(total as i64 / 100);
        assert!(
            series.next(&key(total - 1), now).is_some(),
            "the newest is kept"
        );
        assert!(
            series.next(&key(0), now).is_none(),
            "the oldest is forgotten"
        );
    }

    #[test]
    fn room_is_made_once_per_quarter_of_the_memory_not_on_every_publish() {
        let mut series = RecentSeries::default();
        let publishes = 2 * MAX_REMEMBERED;
        for n in 0..publishes {
            // A thousand a second: every series stays within the window, so sweeps must
            // forget live ones.
            series.remember(key(n), format!("echo-{n}"), 1, at(n as i64 / 1000));
        }
        let past_the_bound = publishes - MAX_REMEMBERED;
        let most = past_the_bound.div_ceil(MAX_REMEMBERED / 4);
        assert!(
            series.sweeps() <= most,
            "{} sweeps for {past_the_bound} publishes past the bound (at most {most})",
            series.sweeps()
        );
        assert!(
            series.sweeps() > 0,
            "the bound was reached, so room was made"
        );
    }

    #[test]
    fn expired_series_are_dropped_before_live_ones() {
        let mut series = RecentSeries::default();
        for n in 0..MAX_REMEMBERED {
            series.remember(key(n), format!("echo-{n}"), 1, at(0));
        }
        let later = at(SERIES_WINDOW.as_secs() as i64 + 1);
        series.remember(key(MAX_REMEMBERED), "new".into(), 1, later);
        assert_eq!(series.len(), 1, "every earlier series had expired");
    }
}
