//! The one way tests wait: poll a probe until it yields what was awaited, or fail naming
//! it. Asynchronous only: every test that waits runs on a tokio runtime.

use std::time::Duration;

use tokio::time::Instant;

/// What a probe may answer: `true`, `Some` or `Ok` end the wait; an `Err` says what was
/// seen instead, for the message should the wait time out.
pub trait Outcome {
    type Value;
    fn settle(self) -> Result<Self::Value, String>;
}

impl Outcome for bool {
    type Value = ();
    fn settle(self) -> Result<(), String> {
        if self { Ok(()) } else { Err(String::new()) }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn settle(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

impl<T> Outcome for Result<T, String> {
    type Value = T;
    fn settle(self) -> Result<T, String> {
        self
    }
}

/// A wait for `what`: 20 s at most, looking every 50 ms unless told otherwise.
#[must_use = "a wait does nothing until `until` is awaited"]
pub struct Eventually {
    what: String,
    within: Duration,
    every: Duration,
}

/// Starts describing a wait: `eventually("the status write").until(async || ...).await`.
pub fn eventually(what: impl Into<String>) -> Eventually {
    Eventually {
        what: what.into(),
        within: Duration::from_secs(20),
        every: Duration::from_millis(50),
    }
}

impl Eventually {
    pub fn within(mut self, within: Duration) -> Self {
        self.within = within;
        self
    }

    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Runs `probe` until it settles and returns its value; panics once `within` has passed
    /// without it, with what was awaited and what the last probe saw.
    pub async fn until<O: Outcome>(self, mut probe: impl AsyncFnMut() -> O) -> O::Value {
        let deadline = Instant::now() + self.within;
        loop {
            let seen = match probe().await.settle() {
                Ok(value) => return value,
                Err(seen) => seen,
            };
            if Instant::now() >= deadline {
                let sep = if seen.is_empty() { "" } else { "; seen:\n" };
                panic!(
                    "timed out after {:?} waiting for {}{sep}{seen}",
                    self.within, self.what
                );
            }
            tokio::time::sleep(self.every).await;
        }
    }
}
