//! Group commit: concurrent durable commits share one flush of the database.
//!
//! A commit is in sled (and in the cache, and told to watchers) as soon as
//! its transaction ends; only its answer waits for the disk. Each commit
//! takes a ticket in commit order. The first committer to wait flushes
//! everything written so far; commits that arrive during that flush wait
//! for it and then share the next one. With eight writers, one fsync
//! answers up to eight commits, yet none is answered before its data is on
//! disk, as PostgreSQL's and etcd's group commits do.
//!
//! Waiting blocks the calling thread; on a multi-threaded tokio runtime it
//! runs under `block_in_place`, so the runtime's other tasks (a `/healthz`,
//! a reconcile) move to another worker meanwhile.

use std::sync::{Condvar, Mutex};

/// Tickets and flushes of one database.
#[derive(Default)]
pub(super) struct GroupFlush {
    state: Mutex<State>,
    flushed: Condvar,
}

#[derive(Default)]
struct State {
    /// The ticket of the newest commit written to sled.
    written: u64,
    /// Every commit up to this ticket is on disk.
    durable: u64,
    /// A flush is running (by one of the waiters).
    flushing: bool,
}

impl GroupFlush {
    /// A ticket for a commit just written; call under the commit lock, so
    /// tickets follow commit order.
    pub(super) fn ticket(&self) -> u64 {
        let mut state = self.lock();
        state.written += 1;
        state.written
    }

    /// Returns once the commit of `ticket` is on disk, running `flush`
    /// itself when no flush that covers it is under way. A failed flush
    /// fails the waiter that ran it; the others try again on their own.
    pub(super) fn wait<E>(&self, ticket: u64, flush: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        blocking(|| {
            let mut state = self.lock();
            loop {
                if state.durable >= ticket {
                    return Ok(());
                }
                if !state.flushing {
                    break;
                }
                state = self.flushed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            state.flushing = true;
            let covers = state.written;
            drop(state);
            let result = flush();
            let mut state = self.lock();
            state.flushing = false;
            if result.is_ok() {
                state.durable = state.durable.max(covers);
            }
            drop(state);
            self.flushed.notify_all();
            result
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `wait`, off the async workers when it is called from one.
fn blocking<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    use super::*;

    #[test]
    fn a_flush_covers_every_commit_written_before_it_starts() {
        let group = GroupFlush::default();
        let flushes = AtomicUsize::new(0);
        let flush = || {
            flushes.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(())
        };
        let first = group.ticket();
        let second = group.ticket();
        group.wait(first, flush).unwrap();
        group.wait(second, flush).unwrap();
        assert_eq!(flushes.load(Ordering::SeqCst), 1, "the second commit was written before the first flush");
        let third = group.ticket();
        group.wait(third, flush).unwrap();
        assert_eq!(flushes.load(Ordering::SeqCst), 2, "a commit after a flush needs its own");
    }

    #[test]
    fn concurrent_commits_share_flushes_and_none_returns_before_its_own() {
        let group = Arc::new(GroupFlush::default());
        let flushes = Arc::new(AtomicUsize::new(0));
        let writers = 8;
        let start = Arc::new(Barrier::new(writers));
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let (group, flushes, start) = (group.clone(), flushes.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..20 {
                        let ticket = group.ticket();
                        group
                            .wait(ticket, || {
                                std::thread::sleep(std::time::Duration::from_millis(2));
                                flushes.fetch_add(1, Ordering::SeqCst);
                                Ok::<_, ()>(())
                            })
                            .unwrap();
                        assert!(group.lock().durable >= ticket, "answered before its flush");
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let flushes = flushes.load(Ordering::SeqCst);
        assert!(flushes < writers * 20, "{flushes} flushes for {} commits: none was shared", writers * 20);
    }

    #[test]
    fn a_failed_flush_fails_its_waiter_and_the_next_one_flushes_again() {
        let group = GroupFlush::default();
        let ticket = group.ticket();
        assert_eq!(group.wait(ticket, || Err("disk full")), Err("disk full"));
        let mut ran = false;
        group
            .wait(ticket, || {
                ran = true;
                Ok::<_, &str>(())
            })
            .unwrap();
        assert!(ran, "a commit whose flush failed is not durable");
    }
}
