//! Event log retention: the audit trail is bounded.
//!
//! A crash-looping container writes an event per restart, forever; without
//! a bound the store grows linearly with time. [`Store::prune_events`]
//! removes the oldest events beyond [`Retention::max_events`] and those
//! older than [`Retention::max_age`], but keeps the last
//! [`Retention::keep_per_object`] of every object, so `berth describe`
//! always shows an object's recent history. `berth serve` runs it in the
//! background ([`PRUNE_EVERY`]); sled reuses the space freed. It reads the
//! log only when the in-memory tally of events per object
//! ([`event_tally`](super::event_tally)) says something may go.
//!
//! Pruning only removes entries older than any being written, outside the
//! commit lock: appends and readers are not held up, and a crash half-way
//! leaves at most an index entry without its event, which readers skip.

use std::time::Duration;

use chrono::Utc;

use super::events::{index_key, Event};
use super::{Result, Store, StoreError};

/// How often `berth serve` prunes.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What the event log keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Most events kept (beyond the per-object floor).
    pub max_events: usize,
    /// Events older than this go (beyond the per-object floor).
    pub max_age: Duration,
    /// The last this many events of every object always stay.
    pub keep_per_object: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_events: 10_000, max_age: Duration::from_secs(7 * 24 * 3600), keep_per_object: 50 }
    }
}

impl Store {
    /// Removes what `retention` does not keep; returns how many events went.
    ///
    /// The in-memory tally answers first: when every object is within its
    /// floor and no event is about no object, nothing may go, and the log
    /// is not read (the usual case with many quiet objects).
    pub fn prune_events(&self, retention: &Retention) -> Result<usize> {
        let db = self.db()?;
        let (total, mut per_object) = {
            let tally = self.inner.event_tally.lock().unwrap_or_else(|p| p.into_inner());
            if tally.removable(retention.keep_per_object) == 0 {
                return Ok(0);
            }
            (tally.total(), tally.counts())
        };
        let cutoff = Utc::now() - chrono::Duration::from_std(retention.max_age).unwrap_or(chrono::Duration::MAX);
        if total <= retention.max_events && oldest_is_recent(&db.events, cutoff)? {
            return Ok(0);
        }
        let mut excess = total.saturating_sub(retention.max_events);
        let (mut log, mut index) = (sled::Batch::default(), sled::Batch::default());
        let mut removed: Vec<Option<String>> = Vec::new();
        for entry in db.events.iter() {
            let (key, bytes) = entry?;
            let event: Event = serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { key: format!("event {key:?}"), source })?;
            let expired = event.time < cutoff;
            if excess == 0 && !expired {
                break;
            }
            if let Some(object) = &event.object {
                let left = per_object.entry(object.clone()).or_default();
                if *left <= retention.keep_per_object {
                    continue;
                }
                *left -= 1;
                index.remove(index_key(object, event.seq));
            }
            log.remove(key);
            excess = excess.saturating_sub(1);
            removed.push(event.object);
        }
        db.events_by_object.apply_batch(index)?;
        db.events.apply_batch(log)?;
        let mut tally = self.inner.event_tally.lock().unwrap_or_else(|p| p.into_inner());
        removed.iter().for_each(|object| tally.remove(object.as_deref()));
        Ok(removed.len())
    }
}

/// Whether the oldest event, if any, is newer than `cutoff`.
fn oldest_is_recent(events: &sled::Tree, cutoff: chrono::DateTime<Utc>) -> Result<bool> {
    let Some((_, oldest)) = events.first()? else { return Ok(true) };
    Ok(serde_json::from_slice::<Event>(&oldest).is_ok_and(|event| event.time >= cutoff))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectKey;
    use crate::store::WriteBatch;

    fn log(store: &Store, object: Option<&str>, count: usize, age: chrono::Duration) {
        let mut batch = WriteBatch::new();
        for i in 0..count {
            let mut event = match object {
                Some(key) => Event::about(&ObjectKey::parse(key).unwrap(), "restarted", "Test", format!("{i}")),
                None => Event { object: None, ..Event::about(&ObjectKey::parse("Volume/a/b").unwrap(), "x", "y", "") },
            };
            event.time = Utc::now() - age;
            batch = batch.event(event);
        }
        store.commit(batch).unwrap();
    }

    fn count(store: &Store, object: Option<&str>) -> usize {
        let key = object.map(|k| ObjectKey::parse(k).unwrap());
        store.events(key.as_ref(), 0, usize::MAX).unwrap().len()
    }

    #[test]
    fn the_oldest_go_beyond_the_limit_but_every_object_keeps_its_last_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (noisy, quiet) = ("Container/default/crashloop", "Volume/default/data");
        log(&store, Some(quiet), 10, chrono::Duration::zero());
        log(&store, None, 40, chrono::Duration::zero());
        log(&store, Some(noisy), 1_000, chrono::Duration::zero());
        let retention = Retention { max_events: 200, max_age: Duration::from_secs(3600), keep_per_object: 50 };
        let removed = store.prune_events(&retention).unwrap();
        assert_eq!(removed, 1_050 - 200);
        assert_eq!(count(&store, None), 200);
        assert_eq!(count(&store, Some(quiet)), 10, "a quiet object keeps its history");
        let left = store.events(Some(&ObjectKey::parse(noisy).unwrap()), 0, usize::MAX).unwrap();
        assert_eq!(left.len(), 190);
        assert_eq!(left.last().unwrap().message, "999", "the newest stay");
        // Idempotent.
        assert_eq!(store.prune_events(&retention).unwrap(), 0);
    }

    #[test]
    fn many_objects_within_their_floor_keep_everything_across_a_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention { max_events: 100, max_age: Duration::from_secs(3600), keep_per_object: 50 };
        {
            let store = Store::open(dir.path()).unwrap();
            for i in 0..300 {
                log(&store, Some(&format!("Container/default/c{i}")), 2, chrono::Duration::zero());
            }
            assert_eq!(store.prune_events(&retention).unwrap(), 0, "600 events over 100, all within their floor");
            log(&store, None, 3, chrono::Duration::zero());
        }
        // Counted again from the database: the events without an object
        // and one object beyond its floor are what may go.
        let store = Store::open(dir.path()).unwrap();
        log(&store, Some("Container/default/c0"), 58, chrono::Duration::zero());
        assert_eq!(store.prune_events(&retention).unwrap(), 3 + 10);
        assert_eq!(count(&store, None), 661 - 13);
        assert_eq!(count(&store, Some("Container/default/c0")), 50);
        assert_eq!(store.prune_events(&retention).unwrap(), 0);
    }

    #[test]
    fn old_events_go_down_to_the_per_object_floor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let object = "Container/default/old";
        log(&store, Some(object), 120, chrono::Duration::days(30));
        log(&store, None, 5, chrono::Duration::days(30));
        let removed = store.prune_events(&Retention::default()).unwrap();
        assert_eq!(removed, 70 + 5);
        assert_eq!(count(&store, Some(object)), 50);
    }
}
