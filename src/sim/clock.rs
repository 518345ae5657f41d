//! The simulated clock: wall-clock time plus an offset that tests move forward with
//! `POST /_sim/clock/advance`, so token expiry and rotate grace windows can be tested without
//! waiting. Every time-dependent decision of the simulator reads this clock, never `SystemTime`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Wall-clock time shifted by an offset that only grows.
#[derive(Debug, Default)]
pub(crate) struct SimClock {
    /// Milliseconds added to the wall clock; atomic so reading the time never takes a lock.
    offset_ms: AtomicI64,
}

impl SimClock {
    /// The simulated current time.
    pub(crate) fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_millis(self.offset_ms.load(Ordering::Relaxed));
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or(Timestamp::MAX)
    }

    /// Moves the simulated time forward.
    pub(crate) fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// How far the clock has been moved in total.
    pub(crate) fn offset(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.offset_ms.load(Ordering::Relaxed)).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_forward() {
        let clock = SimClock::default();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        let gap = clock.now().duration_since(before);
        assert!(gap >= SignedDuration::from_secs(3600));
        assert_eq!(clock.offset(), Duration::from_secs(3600));
    }
}
