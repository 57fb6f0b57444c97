//! Per-key exponential backoff with jitter.
//!
//! A failing key waits 5 ms, then about twice as long after each further
//! failure, up to 5 minutes; success resets it. Jitter (each delay drawn
//! between half and all of its nominal value) keeps keys that failed
//! together, because the engine went away, from retrying in lockstep.

use std::time::Duration;

/// First delay.
pub const INITIAL: Duration = Duration::from_millis(5);
/// Longest delay.
pub const MAX: Duration = Duration::from_secs(300);

/// Failures of one key so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The delay before the next attempt, counting this failure.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = INITIAL.saturating_mul(1u32.checked_shl(self.failures).unwrap_or(u32::MAX)).min(MAX);
        self.failures = self.failures.saturating_add(1);
        nominal.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let mut nominal = INITIAL;
        for _ in 0..30 {
            let delay = backoff.next_delay();
            assert!(delay >= nominal / 2 && delay <= nominal, "{delay:?} vs {nominal:?}");
            nominal = (nominal * 2).min(MAX);
        }
        assert_eq!(backoff.failures(), 30);
    }
}
