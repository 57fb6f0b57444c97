//! Event log retention: the audit trail is bounded.
//!
//! A crash-looping container writes an event per restart, forever; without
//! a bound the store grows linearly with time. [`Store::prune_events`]
//! removes the oldest events beyond [`Retention::max_events`] and those
//! older than [`Retention::max_age`], but keeps the last
//! [`Retention::keep_per_object`] of every object, so `berth describe`
//! always shows an object's recent history. `berth serve` runs it in the
//! background ([`PRUNE_EVERY`]); sled reuses the space freed.
//!
//! Pruning only removes entries older than any being written, outside the
//! commit lock: appends and readers are not held up, and a crash half-way
//! leaves at most an index entry without its event, which readers skip.

use std::collections::HashMap;
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
    pub fn prune_events(&self, retention: &Retention) -> Result<usize> {
        let db = self.db()?;
        let cutoff = Utc::now() - chrono::Duration::from_std(retention.max_age).unwrap_or(chrono::Duration::MAX);
        if within_retention(&db.events, retention.max_events, cutoff)? {
            return Ok(0);
        }
        let mut per_object: HashMap<Vec<u8>, usize> = HashMap::new();
        for key in db.events_by_object.iter().keys() {
            let key = key?;
            let object = key[..key.len().saturating_sub(9)].to_vec();
            *per_object.entry(object).or_default() += 1;
        }
        let mut excess = db.events.len().saturating_sub(retention.max_events);
        let (mut log, mut index) = (sled::Batch::default(), sled::Batch::default());
        let mut removed = 0;
        for entry in db.events.iter() {
            let (key, bytes) = entry?;
            let event: Event = serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { key: format!("event {key:?}"), source })?;
            let expired = event.time < cutoff;
            if excess == 0 && !expired {
                break;
            }
            if let Some(object) = &event.object {
                let left = per_object.entry(object.as_bytes().to_vec()).or_default();
                if *left <= retention.keep_per_object {
                    continue;
                }
                *left -= 1;
                index.remove(index_key(object, event.seq));
            }
            log.remove(key);
            excess = excess.saturating_sub(1);
            removed += 1;
        }
        db.events_by_object.apply_batch(index)?;
        db.events.apply_batch(log)?;
        Ok(removed)
    }
}

/// Whether `events` surely holds nothing to prune, found from its first
/// and last entries alone: sequence numbers bound the count from above
/// (pruning leaves gaps, never extra entries), and the oldest is not
/// expired. The pruning pass reads every event; in the usual case, a log
/// within its bounds, this spares it.
fn within_retention(events: &sled::Tree, max_events: usize, cutoff: chrono::DateTime<Utc>) -> Result<bool> {
    let (Some((first, oldest)), Some((last, _))) = (events.first()?, events.last()?) else { return Ok(true) };
    let seq = |key: &[u8]| u64::from_be_bytes(key.try_into().unwrap_or([0; 8]));
    let most = seq(&last).saturating_sub(seq(&first)).saturating_add(1);
    if most > max_events as u64 {
        return Ok(false);
    }
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
