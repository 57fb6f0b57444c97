//! Starting a replica that keeps exiting: no faster than a back-off that
//! doubles from one second to five minutes, as Kubernetes' CrashLoopBackOff.
//!
//! berth starts an exited replica itself (drift repair: someone stopped it,
//! or the engine gave up restarting it). The first start is immediate, so a
//! replica stopped by hand is back within a second; but a replica that
//! exits as soon as it starts would otherwise be started again on every
//! `die` event, at the engine's full speed, each start an engine call, an
//! event in the log and a status write. The streak resets once the replica
//! has gone a while without needing a start.
//!
//! The engine's own restarts (its restart policy) are the engine's to pace;
//! what they cost berth is the restart counter in status, whose writes
//! alone are kept to one per [`RESTART_COUNT_EVERY`] per object (a write for
//! any other reason carries the latest count along).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::ObjectKey;

/// Wait before the second start of a streak.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// Longest wait between starts.
const MAX_DELAY: Duration = Duration::from_secs(300);
/// A replica that needed no start for this long (beyond its delay) starts a
/// new streak.
const CALM: Duration = Duration::from_secs(60);
/// Streaks kept before stale ones are dropped.
const KEPT: usize = 4096;
/// Least time between two status writes that change only restart counters.
pub const RESTART_COUNT_EVERY: Duration = Duration::from_secs(30);

/// The start streaks of every replica berth started.
#[derive(Debug, Default)]
pub struct CrashLoops {
    streaks: Mutex<HashMap<(ObjectKey, u32), Streak>>,
    /// When each object's status last had only its restart counters written.
    count_writes: Mutex<HashMap<ObjectKey, Instant>>,
}

#[derive(Clone, Copy, Debug)]
struct Streak {
    /// Starts in a row, each within the calm period of the one before.
    starts: u32,
    /// When the last one was.
    last: Instant,
}

impl Streak {
    /// How long after the last start the next may come.
    fn delay(&self) -> Duration {
        match self.starts {
            0 => Duration::ZERO,
            n => FIRST_DELAY.saturating_mul(1 << (n - 1).min(16)).min(MAX_DELAY),
        }
    }

    fn is_over(&self, now: Instant) -> bool {
        now.duration_since(self.last) > self.delay() + CALM
    }
}

impl CrashLoops {
    /// Records a start of replica `index` of `key` at `now` if it may start
    /// now; otherwise how long it must still wait.
    pub fn try_start(&self, key: &ObjectKey, index: u32, now: Instant) -> Result<(), Duration> {
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        if streaks.len() >= KEPT {
            streaks.retain(|_, streak| !streak.is_over(now));
        }
        let streak = streaks.entry((key.clone(), index)).or_insert(Streak { starts: 0, last: now });
        if streak.is_over(now) {
            streak.starts = 0;
        }
        let due = streak.last + streak.delay();
        if streak.starts > 0 && now < due {
            return Err(due - now);
        }
        *streak = Streak { starts: streak.starts + 1, last: now };
        Ok(())
    }

    /// Forgets the streak of replica `index` of `key`: it was created anew
    /// (a new spec deserves its first start at once).
    pub fn forget(&self, key: &ObjectKey, index: u32) {
        self.streaks.lock().unwrap_or_else(|p| p.into_inner()).remove(&(key.clone(), index));
    }

    /// Whether a status write of `key` that changes only restart counters
    /// may go at `now` (and records it if so).
    pub fn restart_count_write(&self, key: &ObjectKey, now: Instant) -> bool {
        let mut writes = self.count_writes.lock().unwrap_or_else(|p| p.into_inner());
        if writes.len() >= KEPT {
            writes.retain(|_, at| now.duration_since(*at) < RESTART_COUNT_EVERY);
        }
        match writes.get(key) {
            Some(at) if now.duration_since(*at) < RESTART_COUNT_EVERY => false,
            _ => {
                writes.insert(key.clone(), now);
                true
            }
        }
    }

    /// How long until the first of `key`'s replicas waiting to start may.
    pub fn next_due(&self, key: &ObjectKey, now: Instant) -> Option<Duration> {
        let streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        streaks
            .iter()
            .filter(|((k, _), streak)| k == key && streak.starts > 0 && !streak.is_over(now))
            .map(|(_, streak)| (streak.last + streak.delay()).saturating_duration_since(now))
            .filter(|wait| !wait.is_zero())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Kind;

    #[test]
    fn the_first_start_is_immediate_then_each_waits_twice_as_long_up_to_five_minutes() {
        let loops = CrashLoops::default();
        let key = ObjectKey::new(Kind::Container, "default", "app");
        let t0 = Instant::now();
        assert_eq!(loops.try_start(&key, 0, t0), Ok(()));
        assert_eq!(loops.try_start(&key, 1, t0), Ok(()), "replicas have streaks of their own");
        assert_eq!(loops.try_start(&key, 0, t0), Err(Duration::from_secs(1)));
        assert_eq!(loops.next_due(&key, t0), Some(Duration::from_secs(1)));
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..12 {
            let wait = loops.try_start(&key, 0, now).unwrap_err();
            waits.push(wait.as_secs());
            now += wait;
            assert_eq!(loops.try_start(&key, 0, now), Ok(()));
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        // Calm for long enough: a new streak, starting at once.
        now += MAX_DELAY + CALM + Duration::from_secs(1);
        assert_eq!(loops.try_start(&key, 0, now), Ok(()));
        assert_eq!(loops.try_start(&key, 0, now), Err(FIRST_DELAY));
    }

    #[test]
    fn restart_count_writes_go_once_per_interval_per_object() {
        let loops = CrashLoops::default();
        let (a, b) = (ObjectKey::new(Kind::Container, "default", "a"), ObjectKey::new(Kind::Container, "default", "b"));
        let t0 = Instant::now();
        assert!(loops.restart_count_write(&a, t0));
        assert!(!loops.restart_count_write(&a, t0 + Duration::from_secs(29)));
        assert!(loops.restart_count_write(&b, t0), "objects are paced apart");
        assert!(loops.restart_count_write(&a, t0 + RESTART_COUNT_EVERY));
    }
}
