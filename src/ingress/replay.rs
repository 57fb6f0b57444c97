//! Replay protection: a request is executed once, however often a broker,
//! a retrying client or an attacker delivers it again.
//!
//! An envelope carries a random message id and the time it was issued,
//! both authenticated. [`ReplayGuard::check`] refuses an envelope issued
//! more than the window ago (or ahead: a sender's clock may be a little
//! off, not minutes), and one whose id it has already seen. An id is
//! remembered only while its issued-at is inside the window; after that the
//! time check alone refuses it, so memory is bounded by what arrives within
//! one window, and hard-bounded by `capacity`: when that many in-window ids
//! are remembered, further messages are refused rather than forgotten
//! (forgetting one would let it be replayed).
//!
//! Plaintext requests that carry a sender's id (an MQTT topic level, a
//! queue header) get the same dedupe through [`ReplayGuard::check_id`].
//!
//! Check only what has been authenticated ([`super::envelope::open`]
//! first): an unauthenticated id could be used to fill the guard.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The window `berth serve` is expected to use unless told otherwise.
pub(crate) const DEFAULT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The ids remembered at most, unless told otherwise: a few MiB.
pub(crate) const DEFAULT_CAPACITY: usize = 65_536;

/// What replay checks return.
pub(crate) type Result<T, E = ReplayError> = std::result::Result<T, E>;

/// Why a message is refused as stale or replayed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ReplayError {
    #[error("the payload was issued at {}, more than {} ago; check the sender's clock or send a fresh one", time(*issued_at_ms), span(*window))]
    Stale { issued_at_ms: u64, window: Duration },
    #[error("the payload was issued at {}, more than {} ahead of this host's clock ({}); check the sender's clock", time(*issued_at_ms), span(*window), time(*now_ms))]
    Future { issued_at_ms: u64, now_ms: u64, window: Duration },
    #[error("message ID {id} was already received at {}: a replayed message is refused", time(*received_at_ms))]
    Replayed { id: String, received_at_ms: u64 },
    #[error("too many messages within the window: {capacity} message IDs received in the last {} are remembered; the message is refused, send it again later", span(*window))]
    Full { capacity: usize, window: Duration },
}

/// The message ids seen within the window.
#[derive(Debug)]
pub(crate) struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    // A std Mutex: the critical section is a few map operations and never
    // awaits, so an async lock would only add cost.
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Id to when it was received (for the error).
    received: HashMap<[u8; 16], u64>,
    /// Ids by the time they leave the window, oldest first, for pruning.
    expiry: BTreeSet<(u64, [u8; 16])>,
}

impl ReplayGuard {
    /// A guard that accepts issued-at times within `window` of now and
    /// remembers at most `capacity` ids.
    pub(crate) fn new(window: Duration, capacity: usize) -> ReplayGuard {
        ReplayGuard {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            capacity,
            seen: Mutex::new(Seen::default()),
        }
    }

    fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// Accepts `message_id` issued at `issued_at_ms` once, if that is within
    /// the window of `now_ms` (all Unix milliseconds), and remembers it.
    ///
    /// # Errors
    ///
    /// Issued too long ago or ahead, already seen, or the guard is full.
    pub(crate) fn check(&self, message_id: &[u8; 16], issued_at_ms: u64, now_ms: u64) -> Result<()> {
        if issued_at_ms < now_ms.saturating_sub(self.window_ms) {
            return Err(ReplayError::Stale { issued_at_ms, window: self.window() });
        }
        if issued_at_ms > now_ms.saturating_add(self.window_ms) {
            return Err(ReplayError::Future { issued_at_ms, now_ms, window: self.window() });
        }
        self.remember(message_id, issued_at_ms, now_ms, || super::envelope::hex(message_id))
    }

    /// Accepts a plaintext request's own `id` once within the window: the
    /// dedupe of [`Self::check`], with the time of arrival as issued-at.
    ///
    /// # Errors
    ///
    /// Already seen within the window, or the guard is full.
    pub(crate) fn check_id(&self, id: &str, now_ms: u64) -> Result<()> {
        // Its own domain, so a request id never collides with an envelope's.
        let digest = Sha256::new().chain_update(b"berth request id\0").chain_update(id.as_bytes()).finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        self.remember(&key, now_ms, now_ms, || format!("{id:?}"))
    }

    fn remember(&self, id: &[u8; 16], issued_at_ms: u64, now_ms: u64, shown: impl FnOnce() -> String) -> Result<()> {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Prune what has left the window: the time check refuses it now.
        while let Some(&(expires, old)) = seen.expiry.first() {
            if expires >= now_ms {
                break;
            }
            seen.expiry.pop_first();
            seen.received.remove(&old);
        }
        if let Some(&received_at_ms) = seen.received.get(id) {
            return Err(ReplayError::Replayed { id: shown(), received_at_ms });
        }
        if seen.received.len() >= self.capacity {
            return Err(ReplayError::Full { capacity: self.capacity, window: self.window() });
        }
        seen.received.insert(*id, now_ms);
        seen.expiry.insert((issued_at_ms.saturating_add(self.window_ms), *id));
        Ok(())
    }

    /// How many ids are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).received.len()
    }
}

/// Unix milliseconds as RFC 3339 UTC.
fn time(ms: u64) -> String {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .map_or_else(|| format!("{ms} ms after 1970"), |t| humantime::format_rfc3339_millis(t).to_string())
}

fn span(window: Duration) -> String {
    humantime::format_duration(window).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;
    const MINUTE: u64 = 60_000;

    fn guard(capacity: usize) -> ReplayGuard {
        ReplayGuard::new(Duration::from_secs(300), capacity)
    }

    #[test]
    fn a_fresh_message_is_accepted_once() {
        let guard = guard(10);
        guard.check(&[1; 16], NOW - MINUTE, NOW).unwrap();
        let said = guard.check(&[1; 16], NOW - MINUTE, NOW + 1000).unwrap_err().to_string();
        assert_eq!(
            said,
            "message ID 01010101010101010101010101010101 was already received at 2023-11-14T22:13:20.000Z: a replayed message is refused"
        );
        guard.check(&[2; 16], NOW - MINUTE, NOW).unwrap();
        assert_eq!(guard.len(), 2);
    }

    #[test]
    fn messages_outside_the_window_are_refused() {
        let guard = guard(10);
        let said = guard.check(&[1; 16], NOW - 5 * MINUTE - 1, NOW).unwrap_err().to_string();
        assert_eq!(
            said,
            "the payload was issued at 2023-11-14T22:08:19.999Z, more than 5m ago; check the sender's clock or send a fresh one"
        );
        let said = guard.check(&[1; 16], NOW + 5 * MINUTE + 1, NOW).unwrap_err().to_string();
        assert!(said.contains("more than 5m ahead of this host's clock"), "{said}");
        guard.check(&[1; 16], NOW - 5 * MINUTE, NOW).unwrap();
        guard.check(&[2; 16], NOW + 5 * MINUTE, NOW).unwrap();
        assert!(guard.check(&[3; 16], 0, 0).is_ok(), "no underflow near the epoch");
        assert!(guard.check(&[4; 16], u64::MAX, u64::MAX).is_ok(), "no overflow at the end");
    }

    #[test]
    fn ids_are_forgotten_once_they_leave_the_window() {
        let guard = guard(10);
        guard.check(&[1; 16], NOW, NOW).unwrap();
        // Still inside: remembered, refused.
        assert!(matches!(guard.check(&[1; 16], NOW, NOW + 5 * MINUTE), Err(ReplayError::Replayed { .. })));
        // Past the window: pruned, and the time check refuses it instead.
        guard.check(&[2; 16], NOW + 6 * MINUTE, NOW + 6 * MINUTE).unwrap();
        assert_eq!(guard.len(), 1);
        assert!(matches!(guard.check(&[1; 16], NOW, NOW + 6 * MINUTE), Err(ReplayError::Stale { .. })));
    }

    #[test]
    fn a_full_guard_refuses_rather_than_forgets() {
        let guard = guard(3);
        for n in 0..3 {
            guard.check(&[n; 16], NOW, NOW).unwrap();
        }
        let said = guard.check(&[9; 16], NOW, NOW).unwrap_err().to_string();
        assert!(said.starts_with("too many messages within the window: 3 message IDs"), "{said}");
        assert!(matches!(guard.check(&[0; 16], NOW, NOW), Err(ReplayError::Replayed { .. })));
        // Once the first ones leave the window there is room again.
        guard.check(&[9; 16], NOW + 6 * MINUTE, NOW + 6 * MINUTE).unwrap();
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn request_ids_are_deduplicated_too() {
        let guard = guard(10);
        guard.check_id("req-1", NOW).unwrap();
        let said = guard.check_id("req-1", NOW + 1).unwrap_err().to_string();
        assert!(said.starts_with("message ID \"req-1\" was already received at 2023-11-14T22:13:20.000Z"), "{said}");
        guard.check_id("req-2", NOW).unwrap();
        guard.check_id("req-1", NOW + 6 * MINUTE).unwrap();
    }

    #[test]
    fn concurrent_checks_accept_each_id_once() {
        let guard = std::sync::Arc::new(guard(1000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let guard = guard.clone();
                std::thread::spawn(move || (0..100u8).filter(|&n| guard.check(&[n; 16], NOW, NOW).is_ok()).count())
            })
            .collect();
        let accepted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(accepted, 100);
    }
}
