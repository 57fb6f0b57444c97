//! Exponential backoff with jitter, for every retry loop berth has.
//!
//! [`Backoff`] is the delay arithmetic: a first delay, about twice as long
//! after each further failure, up to a cap; jitter (each delay drawn between
//! half and all of its nominal value) keeps loops that failed together,
//! because the engine went away, from retrying in lockstep. The controller
//! keeps one per key (5 ms to 5 minutes, [`Backoff::default`]).
//!
//! [`Reconnect`] is the loop around a connection that should stay up (an
//! engine's event stream, the engine itself): it sleeps between attempts,
//! counts a stream that ends before its first item as a failure (Docker's
//! `events()` answers at once and fails on the first poll, so resetting on
//! "connected" would spin), and logs a repeated failure once per backoff
//! step, then once every [`QUIET_AT_CAP`] attempts at the cap, instead of on
//! every attempt: an outage costs a bounded number of log lines and no CPU.

use std::time::Duration;

/// First delay of a reconcile retry.
pub const INITIAL: Duration = Duration::from_millis(5);
/// Longest delay of a reconcile retry.
pub const MAX: Duration = Duration::from_secs(300);

/// Failures so far, and the delays they lead to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
    initial: Duration,
    max: Duration,
}

impl Default for Backoff {
    /// A reconcile's: 5 ms doubling to 5 minutes.
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

impl Backoff {
    /// Delays from `initial` doubling to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Backoff { failures: 0, initial, max }
    }

    /// The nominal (unjittered) delay after `failures` failures.
    fn nominal(&self, failures: u32) -> Duration {
        self.initial.saturating_mul(1u32.checked_shl(failures).unwrap_or(u32::MAX)).min(self.max)
    }

    /// The delay before the next attempt, counting this failure.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal(self.failures);
        self.failures = self.failures.saturating_add(1);
        nominal.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the delays have reached the cap.
    fn at_cap(&self) -> bool {
        self.nominal(self.failures) >= self.max
    }

    /// Forgets the failures: the next delay is the first one again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A stream open this long was a working connection, even if quiet.
pub const HEALTHY_FOR: Duration = Duration::from_secs(30);

/// At the cap, a failure is logged once every this many attempts.
pub const QUIET_AT_CAP: u32 = 10;

/// Reconnects with backoff and logs an outage in a bounded number of lines.
#[derive(Debug)]
pub struct Reconnect {
    /// What is being reconnected, for the log ("engine events").
    what: &'static str,
    backoff: Backoff,
    /// Failures at the cap so far.
    at_cap: u32,
}

impl Reconnect {
    /// Attempts at `what`, 500 ms doubling to 30 s apart.
    pub fn new(what: &'static str) -> Self {
        Reconnect::with(what, Backoff::new(Duration::from_millis(500), Duration::from_secs(30)))
    }

    /// Attempts at `what` with `backoff`'s delays.
    pub fn with(what: &'static str, backoff: Backoff) -> Self {
        Reconnect { what, backoff, at_cap: 0 }
    }

    /// An attempt failed: logs it (unless it is a repeat at the cap) and
    /// returns how long to wait before the next one.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) -> Duration {
        let capped = self.backoff.at_cap();
        let delay = self.backoff.next_delay();
        if capped {
            self.at_cap += 1;
        }
        if !capped || self.at_cap % QUIET_AT_CAP == 1 {
            let attempts = self.backoff.failures();
            tracing::warn!(attempts, "{} unavailable ({error}); retrying in {delay:.1?}", self.what);
        }
        delay
    }

    /// The connection delivered (its first item, not merely "connected"):
    /// the next failure starts from the first delay again. Logs the
    /// recovery when there was an outage.
    pub fn succeeded(&mut self) {
        if self.backoff.failures() > 0 {
            tracing::info!(attempts = self.backoff.failures(), "{} back", self.what);
        }
        self.backoff.reset();
        self.at_cap = 0;
    }

    /// A stream ended: when it had `delivered` an item or stayed up for
    /// [`HEALTHY_FOR`], it was a working connection and it is reopened at
    /// once (`None`); else the end counts as a failed attempt (Docker's
    /// `events()` answers at once and fails on the first poll) and the
    /// delay to wait is returned.
    pub fn stream_ended(&mut self, delivered: bool, lasted: Duration) -> Option<Duration> {
        if delivered || lasted >= HEALTHY_FOR {
            self.succeeded();
            tracing::info!("{} ended; reopening", self.what);
            return None;
        }
        Some(self.failed(&"it ended before delivering anything"))
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
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

    #[test]
    fn an_outage_waits_longer_each_time_and_a_success_starts_over() {
        let mut reconnect = Reconnect::new("test");
        let delays: Vec<Duration> = (0..12).map(|_| reconnect.failed(&"down")).collect();
        assert!(delays[0] >= Duration::from_millis(250) && delays[0] <= Duration::from_millis(500));
        assert!(delays[11] >= Duration::from_secs(15), "{delays:?}");
        let total: Duration = delays.iter().sum();
        assert!(total >= Duration::from_secs(60), "12 failures are spread over a minute or more: {total:?}");
        reconnect.succeeded();
        assert_eq!(reconnect.failures(), 0);
        assert!(reconnect.failed(&"down") <= Duration::from_millis(500));
    }

    #[test]
    fn a_stream_that_ends_at_once_is_a_failure_and_one_that_worked_is_reopened_at_once() {
        let mut reconnect = Reconnect::new("test");
        let first = reconnect.stream_ended(false, Duration::from_millis(1)).expect("a wait");
        let second = reconnect.stream_ended(false, Duration::from_millis(1)).expect("a wait");
        assert!(second > first / 2 && reconnect.failures() == 2, "{first:?} {second:?}");
        assert_eq!(reconnect.stream_ended(true, Duration::from_millis(1)), None);
        assert_eq!(reconnect.failures(), 0);
        assert_eq!(reconnect.stream_ended(false, HEALTHY_FOR), None);
    }
}
