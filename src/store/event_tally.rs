//! How many events the log holds per object, kept in memory, so that
//! pruning knows without reading the log whether anything may go.
//!
//! Retention keeps the last [`Retention::keep_per_object`](super::Retention)
//! events of every object. With many objects that floor is most of the
//! log: 10,000 Containers with two or three events each are 25,000 events
//! over a 10,000 limit, none of which may go. Finding that out by reading
//! the log cost a pass over every event each time pruning ran; the tally
//! answers it from one number per object. It is counted from the index
//! and the log once when the store opens, and kept by the commits that
//! append and the pruning that removes.

use std::collections::HashMap;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::Result;

/// Events per object, and those about no object.
#[derive(Debug, Default)]
pub(super) struct EventTally {
    per_object: HashMap<String, usize>,
    unowned: usize,
}

/// Of an event, only whether it is about an object.
#[derive(Deserialize)]
struct Owner {
    #[serde(default)]
    object: Option<IgnoredAny>,
}

impl EventTally {
    /// Counts what `events` and its index `by_object` hold.
    pub(super) fn count(events: &sled::Tree, by_object: &sled::Tree) -> Result<Self> {
        let mut tally = EventTally::default();
        for key in by_object.iter().keys() {
            let key = key?;
            let object = String::from_utf8_lossy(super::events::index_object(&key)).into_owned();
            *tally.per_object.entry(object).or_default() += 1;
        }
        for value in events.iter().values() {
            let value = value?;
            // An entry that does not parse is skipped by readers; it counts
            // as unowned, so that pruning still considers it.
            if serde_json::from_slice::<Owner>(&value).map_or(true, |owner| owner.object.is_none()) {
                tally.unowned += 1;
            }
        }
        Ok(tally)
    }

    /// One more event, about `object` or none.
    pub(super) fn add(&mut self, object: Option<&str>) {
        match object {
            Some(object) => *self.per_object.entry(object.to_string()).or_default() += 1,
            None => self.unowned += 1,
        }
    }

    /// One event fewer.
    pub(super) fn remove(&mut self, object: Option<&str>) {
        match object {
            Some(object) => {
                if let Some(count) = self.per_object.get_mut(object) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.per_object.remove(object);
                    }
                }
            }
            None => self.unowned = self.unowned.saturating_sub(1),
        }
    }

    /// Events in the log.
    pub(super) fn total(&self) -> usize {
        self.per_object.values().sum::<usize>() + self.unowned
    }

    /// Events that retention may remove at all: those beyond their
    /// object's last `keep_per_object`, and those about no object.
    pub(super) fn removable(&self, keep_per_object: usize) -> usize {
        self.per_object.values().map(|n| n.saturating_sub(keep_per_object)).sum::<usize>() + self.unowned
    }

    /// Every object's count, for a pass that spends them.
    pub(super) fn counts(&self) -> HashMap<String, usize> {
        self.per_object.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_beyond_the_floor_or_without_an_object_are_removable() {
        let mut tally = EventTally::default();
        for _ in 0..3 {
            tally.add(Some("Container/a/web"));
        }
        tally.add(Some("Volume/a/data"));
        assert_eq!((tally.total(), tally.removable(2)), (4, 1));
        tally.add(None);
        assert_eq!((tally.total(), tally.removable(2)), (5, 2));
        tally.remove(Some("Container/a/web"));
        tally.remove(None);
        assert_eq!((tally.total(), tally.removable(2)), (3, 0));
        assert_eq!(tally.counts(), HashMap::from([("Container/a/web".into(), 2), ("Volume/a/data".into(), 1)]));
    }
}
