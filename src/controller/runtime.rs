//! The reconcile runtime: which key reconciles when, modelled on
//! kube-runtime's scheduler and runner.
//!
//! # Guarantees
//! - At most one reconcile runs per key, and at most one more is pending:
//!   requests for a key that is already due merge, the earliest deadline wins.
//! - At most `concurrency` reconciles run at once.
//! - A failed reconcile is retried after the key's backoff; success resets it.
//! - A terminal failure parks the key: only a [`Trigger::Changed`] request
//!   (the object itself changed) wakes it; engine events and resyncs do not.
//! - A reconcile that panics or outlives `timeout` is reported and retried
//!   with backoff; the runtime lives on.
//! - Shutdown drains: no new reconcile starts, running ones finish. A forced
//!   shutdown aborts them (reconcilers are idempotent; the next start resumes).
//!
//! Every step is recorded in [`RuntimeMetrics`] (work-queue adds, depth,
//! waits, retries; reconcile results and durations), which names a key's
//! controller through a function it is given: the runtime stays generic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::action::{Action, ReconcileError};
use crate::backoff::Backoff;
use crate::metrics::runtime::{Outcome, Work};
use crate::metrics::RuntimeMetrics;

/// Why a key is requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The object itself changed: wakes a parked key.
    Changed,
    /// Anything else: an engine event, a dependency, a resync.
    Other,
}

/// A request to reconcile `key` after `delay`.
#[derive(Clone, Debug)]
pub struct Request<K> {
    /// The key.
    pub key: K,
    /// How long from now.
    pub delay: Duration,
    /// Why.
    pub trigger: Trigger,
}

impl<K> Request<K> {
    /// Reconcile `key` now.
    pub fn now(key: K, trigger: Trigger) -> Self {
        Request { key, delay: Duration::ZERO, trigger }
    }
}

/// Shutdown phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Keep running.
    Running,
    /// Start nothing new; finish what runs.
    Drain,
    /// Abort what runs.
    Force,
}

/// What became of one reconcile, for logs, events and metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    /// It succeeded.
    Success {
        /// How long it took.
        took: Duration,
    },
    /// It failed and will be retried.
    Retry {
        /// Why.
        message: String,
        /// After how long.
        delay: Duration,
        /// Consecutive failures of this key, this one included.
        attempt: u32,
    },
    /// It failed and waits for the object to change.
    Parked {
        /// Why.
        message: String,
    },
}

/// Settings of the runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Reconciles running at once.
    pub concurrency: usize,
    /// Longest a reconcile may run.
    pub timeout: Duration,
}

/// The reconcile function.
pub type ReconcileFn<K> = Arc<dyn Fn(K) -> BoxFuture<'static, Result<Action, ReconcileError>> + Send + Sync>;
/// Called after every reconcile.
pub type ReportFn<K> = Arc<dyn Fn(&K, &Report) + Send + Sync>;

/// A reconcile's result, or the timeout that cut it short.
type Timed = Result<Result<Action, ReconcileError>, tokio::time::error::Elapsed>;

/// Keys waiting for their deadline.
struct Schedule<K> {
    /// The pending deadline of each key (and its tie-breaking sequence number).
    due: HashMap<K, (Instant, u64)>,
    /// The same entries, by deadline.
    queue: BTreeMap<(Instant, u64), K>,
    sequence: u64,
    /// The entries up to this slot have had their deadline pass, and there
    /// are `passed` of them: the queue's depth, kept as entries come and go
    /// and as time passes, so that no step counts the whole queue.
    horizon: (Instant, u64),
    passed: usize,
}

impl<K: Clone + Eq + Hash> Schedule<K> {
    fn new() -> Self {
        let horizon = (Instant::now(), u64::MAX);
        Schedule { due: HashMap::new(), queue: BTreeMap::new(), sequence: 0, horizon, passed: 0 }
    }

    /// Moves the horizon to `now`, counting the deadlines that passed.
    fn advance(&mut self, now: Instant) {
        let horizon = (now, u64::MAX);
        if horizon > self.horizon {
            self.passed += self.queue.range((Bound::Excluded(self.horizon), Bound::Included(horizon))).count();
            self.horizon = horizon;
        }
    }

    /// Keys whose deadline has passed (as of the last [`advance`](Self::advance))
    /// and that are not running: the work queue's depth.
    fn depth(&self, running: &HashSet<K>) -> usize {
        let horizon = self.horizon;
        let held = running.iter().filter(|key| self.due.get(*key).is_some_and(|slot| *slot <= horizon)).count();
        debug_assert!(held <= self.passed, "a running key counted as due must be among the passed");
        self.passed.saturating_sub(held)
    }

    fn insert(&mut self, slot: (Instant, u64), key: K) {
        self.passed += usize::from(slot <= self.horizon);
        self.queue.insert(slot, key);
    }

    fn remove(&mut self, slot: &(Instant, u64)) {
        if self.queue.remove(slot).is_some() {
            self.passed -= usize::from(*slot <= self.horizon);
        }
    }

    /// Schedules `key` at `at`, unless it is already due earlier. Returns
    /// whether the key was not waiting before (an "add" of the work queue).
    fn schedule(&mut self, key: K, at: Instant) -> bool {
        if let Some(&(existing, sequence)) = self.due.get(&key) {
            if existing <= at {
                return false;
            }
            self.remove(&(existing, sequence));
        }
        self.sequence += 1;
        let added = self.due.insert(key.clone(), (at, self.sequence)).is_none();
        self.insert((at, self.sequence), key);
        added
    }

    /// The earliest due key that is not running, if its deadline has passed,
    /// with that deadline.
    fn pop_ready(&mut self, now: Instant, running: &HashSet<K>) -> Option<(K, Instant)> {
        let entry = self.queue.iter().take_while(|((at, _), _)| *at <= now).find(|(_, key)| !running.contains(key));
        let (&slot, key) = entry?;
        let key = key.clone();
        self.remove(&slot);
        self.due.remove(&key);
        Some((key, slot.0))
    }

    /// The earliest deadline of a key that is not running.
    fn next_deadline(&self, running: &HashSet<K>) -> Option<Instant> {
        self.queue.iter().find(|(_, key)| !running.contains(key)).map(|((at, _), _)| *at)
    }

    /// The earliest deadline still to come.
    fn next_deadline_after(&self, now: Instant) -> Option<Instant> {
        self.queue.range((now, u64::MAX)..).next().map(|((at, _), _)| *at).filter(|at| *at > now)
    }

    fn len(&self) -> usize {
        self.queue.len()
    }
}

/// Runs reconciles for the requests received until shutdown (or until every
/// request sender is gone and nothing is running or due).
pub async fn run<K>(
    config: RuntimeConfig,
    mut requests: mpsc::UnboundedReceiver<Request<K>>,
    reconcile: ReconcileFn<K>,
    report: ReportFn<K>,
    metrics: RuntimeMetrics<K>,
    mut shutdown: watch::Receiver<Shutdown>,
) where
    K: Clone + Eq + Hash + Debug + Send + Sync + 'static,
{
    let mut schedule = Schedule::new();
    let mut running: HashSet<K> = HashSet::new();
    let mut backoff: HashMap<K, Backoff> = HashMap::new();
    let mut parked: HashSet<K> = HashSet::new();
    let mut tasks: JoinSet<(Timed, Duration)> = JoinSet::new();
    // The key of each task, and its record in the metrics (dropped with
    // the map if the runtime stops first).
    let mut task_keys: HashMap<tokio::task::Id, (K, Work)> = HashMap::new();
    let mut draining = false;
    let mut senders_gone = false;
    loop {
        let now = Instant::now();
        schedule.advance(now);
        if !draining {
            while running.len() < config.concurrency.max(1) {
                let Some((key, due)) = schedule.pop_ready(now, &running) else { break };
                running.insert(key.clone());
                let work = metrics.started(&key, now.duration_since(due));
                let future = reconcile(key.clone());
                let timeout = config.timeout;
                let handle = tasks.spawn(async move {
                    let started = Instant::now();
                    (tokio::time::timeout(timeout, future).await, started.elapsed())
                });
                task_keys.insert(handle.id(), (key, work));
            }
        }
        metrics.set_depth(schedule.depth(&running));
        if tasks.is_empty() && (draining || (senders_gone && schedule.len() == 0)) {
            return;
        }
        let next = if draining {
            None
        } else if running.len() >= config.concurrency.max(1) {
            // Nothing can start, but the depth grows when a deadline passes.
            schedule.next_deadline_after(now)
        } else {
            schedule.next_deadline(&running)
        };
        tokio::select! {
            // Cancel safety: `recv` loses nothing when another branch wins.
            request = requests.recv(), if !senders_gone && !draining => match request {
                Some(Request { key, delay, trigger }) => {
                    if trigger == Trigger::Changed {
                        parked.remove(&key);
                    }
                    if !parked.contains(&key) && schedule.schedule(key, Instant::now() + delay) {
                        metrics.added();
                    }
                }
                None => senders_gone = true,
            },
            // Cancel safety: `join_next_with_id` loses nothing when another branch wins.
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let (id, result) = match done {
                    Ok((id, (result, took))) => (id, Ok((result, took))),
                    Err(error) => (error.id(), Err(error)),
                };
                let Some((key, work)) = task_keys.remove(&id) else { continue };
                running.remove(&key);
                // Metrics first: whoever reacts to a report sees them counted.
                let failure = match result {
                    Ok((Ok(Ok(action)), took)) => {
                        backoff.remove(&key);
                        let outcome = if action.requeue_after.is_some() { Outcome::RequeueAfter } else { Outcome::Success };
                        metrics.finished(work, outcome);
                        if let Some(delay) = action.requeue_after {
                            if schedule.schedule(key.clone(), Instant::now() + delay) {
                                metrics.added();
                            }
                        }
                        report(&key, &Report::Success { took });
                        None
                    }
                    Ok((Ok(Err(ReconcileError::Terminal(error))), _)) => {
                        metrics.finished(work, Outcome::Terminal);
                        parked.insert(key.clone());
                        report(&key, &Report::Parked { message: error });
                        None
                    }
                    Ok((Ok(Err(ReconcileError::Transient(error))), _)) => {
                        metrics.finished(work, Outcome::Error);
                        Some(error)
                    }
                    Ok((Err(_), _)) => {
                        metrics.finished(work, Outcome::Error);
                        Some(format!("reconcile timed out after {:?}", config.timeout))
                    }
                    Err(join) if join.is_panic() => {
                        metrics.finished(work, Outcome::Panic);
                        Some(format!("reconcile panicked: {}", panic_message(join.into_panic())))
                    }
                    Err(_) => None,
                };
                if let Some(message) = failure {
                    let key_backoff = backoff.entry(key.clone()).or_default();
                    let delay = key_backoff.next_delay();
                    if schedule.schedule(key.clone(), Instant::now() + delay) {
                        metrics.added();
                    }
                    metrics.retried();
                    report(&key, &Report::Retry { message, delay, attempt: key_backoff.failures() });
                }
                // Idle: nothing running, nothing due, no request waiting (benchmarks time convergence by it).
                if tasks.is_empty() && requests.is_empty() && schedule.next_deadline(&running).is_none_or(|at| at > Instant::now()) {
                    tracing::debug!(scheduled = schedule.len(), "reconcile queue idle");
                }
            }
            // Cancel safety: a sleep is recreated each iteration.
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
            // Cancel safety: `changed` loses nothing; the value is re-read.
            changed = shutdown.changed() => match (changed, read_phase(&shutdown)) {
                (Err(_), _) | (_, Shutdown::Force) => {
                    // Abort and wait, so no reconcile outlives the runtime.
                    tasks.shutdown().await;
                    return;
                }
                (_, Shutdown::Drain) => draining = true,
                (_, Shutdown::Running) => {}
            },
        }
    }
}

/// The current phase, with the watch's read guard released at once.
fn read_phase(shutdown: &watch::Receiver<Shutdown>) -> Shutdown {
    *shutdown.borrow()
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::assert_renders;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    struct Harness {
        requests: mpsc::UnboundedSender<Request<u32>>,
        shutdown: watch::Sender<Shutdown>,
        reports: Arc<Mutex<Vec<(u32, Report, Instant)>>>,
        metrics: crate::metrics::Metrics,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(concurrency: usize, reconcile: ReconcileFn<u32>) -> Harness {
        let (requests, receiver) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = watch::channel(Shutdown::Running);
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        let report: ReportFn<u32> =
            Arc::new(move |key, report| sink.lock().unwrap().push((*key, report.clone(), Instant::now())));
        let config = RuntimeConfig { concurrency, timeout: Duration::from_secs(60) };
        let metrics = crate::metrics::Metrics::new();
        let recorder = RuntimeMetrics::new(&metrics, |_| "test");
        let task = tokio::spawn(run(config, receiver, reconcile, report, recorder, shutdown_rx));
        Harness { requests, shutdown, reports, metrics, task }
    }

    #[tokio::test(start_paused = true)]
    async fn one_reconcile_per_key_under_a_storm_of_triggers() {
        let active = Arc::new(Mutex::new(HashSet::new()));
        let runs = Arc::new(AtomicUsize::new(0));
        let (active2, runs2) = (active.clone(), runs.clone());
        let reconcile: ReconcileFn<u32> = Arc::new(move |key| {
            let (active, runs) = (active2.clone(), runs2.clone());
            Box::pin(async move {
                assert!(active.lock().unwrap().insert(key), "key {key} reconciled twice at once");
                tokio::time::sleep(Duration::from_millis(10)).await;
                active.lock().unwrap().remove(&key);
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            })
        });
        let harness = start(4, reconcile);
        for round in 0..100 {
            for key in 0..5 {
                harness.requests.send(Request::now(key, Trigger::Other)).unwrap();
            }
            if round % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let runs = runs.load(Ordering::SeqCst);
        // Each key ran at least once and far fewer times than it was requested:
        // requests merge while a key is due or running.
        assert!((5..=5 * 12).contains(&runs), "{runs} runs for 500 requests");
        harness.shutdown.send(Shutdown::Drain).unwrap();
        harness.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_limited() {
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (active2, peak2) = (active.clone(), peak.clone());
        let reconcile: ReconcileFn<u32> = Arc::new(move |_| {
            let (active, peak) = (active2.clone(), peak2.clone());
            Box::pin(async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                active.fetch_sub(1, Ordering::SeqCst);
                Ok(Action::await_change())
            })
        });
        let harness = start(3, reconcile);
        for key in 0..50 {
            harness.requests.send(Request::now(key, Trigger::Other)).unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(harness.reports.lock().unwrap().len(), 50);
    }

    /// A reconcile that works for `took`, then answers `answer(key, attempt)`;
    /// `attempt` counts the calls of every key, from 0. Returns the count too.
    fn scripted(
        took: Duration,
        answer: impl Fn(u32, usize) -> Result<Action, ReconcileError> + Send + Sync + 'static,
    ) -> (ReconcileFn<u32>, Arc<AtomicUsize>) {
        let attempts = Arc::new(AtomicUsize::new(0));
        let (counter, answer) = (attempts.clone(), Arc::new(answer));
        let reconcile: ReconcileFn<u32> = Arc::new(move |key| {
            let (attempt, answer) = (counter.fetch_add(1, Ordering::SeqCst), answer.clone());
            Box::pin(async move {
                if !took.is_zero() {
                    tokio::time::sleep(took).await;
                }
                answer(key, attempt)
            })
        });
        (reconcile, attempts)
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_success_resets() {
        let (reconcile, attempts) = scripted(Duration::ZERO, |_, attempt| match attempt {
            0..=5 => Err(ReconcileError::transient("engine unavailable")),
            _ => Ok(Action::requeue(Duration::from_secs(30))),
        });
        let harness = start(1, reconcile);
        let begin = Instant::now();
        harness.requests.send(Request::now(7, Trigger::Other)).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let reports = harness.reports.lock().unwrap().clone();
        let delays: Vec<Duration> = reports
            .iter()
            .filter_map(|(_, r, _)| if let Report::Retry { delay, .. } = r { Some(*delay) } else { None })
            .collect();
        assert_eq!(delays.len(), 6);
        for (i, delay) in delays.iter().enumerate() {
            let nominal = Duration::from_millis(5 * (1 << i));
            assert!(*delay >= nominal / 2 && *delay <= nominal, "retry {i}: {delay:?}");
        }
        // Retries happened when the backoff said: each attempt's time is the
        // previous one's plus its delay.
        let times: Vec<Duration> = reports.iter().map(|(_, _, at)| *at - begin).collect();
        for i in 1..times.len() {
            assert!(times[i] - times[i - 1] >= delays[i - 1], "attempt {i} came early");
        }
        assert!(matches!(reports.last().unwrap().1, Report::Success { .. }));
        // Success reset the backoff; the requeue comes after 30 s.
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(attempts.load(Ordering::SeqCst), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn terminal_errors_wait_for_a_change_of_the_object() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let attempts2 = attempts.clone();
        let reconcile: ReconcileFn<u32> = Arc::new(move |_| {
            attempts2.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err(ReconcileError::terminal("cannot be realized")) })
        });
        let harness = start(1, reconcile);
        harness.requests.send(Request::now(1, Trigger::Changed)).unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
        harness.requests.send(Request::now(1, Trigger::Other)).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "no retry, and resyncs do not wake it");
        harness.requests.send(Request::now(1, Trigger::Changed)).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_is_reported_and_the_runtime_lives_on() {
        let reconcile: ReconcileFn<u32> = Arc::new(|key| {
            Box::pin(async move {
                if key == 1 {
                    panic!("bug in reconciler");
                }
                Ok(Action::await_change())
            })
        });
        let harness = start(2, reconcile);
        harness.requests.send(Request::now(1, Trigger::Other)).unwrap();
        harness.requests.send(Request::now(2, Trigger::Other)).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let reports = harness.reports.lock().unwrap().clone();
        assert!(reports.iter().any(|(k, r, _)| *k == 1
            && matches!(r, Report::Retry { message, .. } if message == "reconcile panicked: bug in reconciler")));
        assert!(reports.iter().any(|(k, r, _)| *k == 2 && matches!(r, Report::Success { .. })));
        assert!(!harness.task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn earliest_deadline_wins_and_drain_finishes_running_work() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let order2 = order.clone();
        let reconcile: ReconcileFn<u32> = Arc::new(move |key| {
            let order = order2.clone();
            Box::pin(async move {
                order.lock().unwrap().push(key);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(Action::await_change())
            })
        });
        let harness = start(1, reconcile);
        harness.requests.send(Request { key: 1, delay: Duration::from_secs(10), trigger: Trigger::Other }).unwrap();
        harness.requests.send(Request { key: 2, delay: Duration::from_secs(5), trigger: Trigger::Other }).unwrap();
        harness.requests.send(Request { key: 1, delay: Duration::from_secs(1), trigger: Trigger::Other }).unwrap();
        tokio::time::sleep(Duration::from_millis(1001)).await;
        harness.shutdown.send(Shutdown::Drain).unwrap();
        harness.task.await.unwrap();
        assert_eq!(*order.lock().unwrap(), [1], "key 1 moved to 1 s; draining started nothing more");
        assert_eq!(harness.reports.lock().unwrap().len(), 1, "the running reconcile finished");
    }

    #[tokio::test(start_paused = true)]
    async fn the_depth_counts_due_keys_that_are_not_running() {
        let start = Instant::now();
        let mut schedule = Schedule::new();
        let second = Duration::from_secs(1);
        schedule.schedule(1, start);
        schedule.schedule(2, start + second);
        schedule.schedule(3, start + 2 * second);
        schedule.advance(start);
        assert_eq!(schedule.depth(&HashSet::new()), 1);
        // Key 3 moves earlier, to a deadline that has passed.
        schedule.schedule(3, start);
        assert_eq!(schedule.depth(&HashSet::new()), 2);
        tokio::time::advance(second).await;
        schedule.advance(Instant::now());
        assert_eq!(schedule.depth(&HashSet::new()), 3);
        assert_eq!(schedule.depth(&HashSet::from([2])), 2, "a running key's next turn waits for it");
        assert_eq!(schedule.pop_ready(Instant::now(), &HashSet::from([2])), Some((1, start)));
        assert_eq!(schedule.depth(&HashSet::from([2])), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_and_the_results_are_measured() {
        let (reconcile, _) = scripted(Duration::from_millis(100), |key, attempt| match (key, attempt) {
            (1, 0) => Err(ReconcileError::transient("engine unavailable")),
            (1, _) => Ok(Action::requeue(Duration::from_secs(30))),
            _ => Ok(Action::await_change()),
        });
        let harness = start(1, reconcile);
        for key in [1, 2, 3] {
            harness.requests.send(Request::now(key, Trigger::Other)).unwrap();
        }
        harness.requests.send(Request { key: 4, delay: Duration::from_millis(20), trigger: Trigger::Other }).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_renders(
            &harness.metrics,
            &[
                // Key 1 runs; 2 and 3 wait, and 4 came due while the one worker was busy.
                "workqueue_depth{name=\"berth\"} 3",
                "controller_runtime_active_workers{controller=\"test\"} 1",
                "workqueue_unfinished_work_seconds{name=\"berth\"} 0.05",
            ],
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_renders(
            &harness.metrics,
            &[
                // 4 requests, the retry of 1 and its requeue.
                "workqueue_adds_total{name=\"berth\"} 6",
                "workqueue_retries_total{name=\"berth\"} 1",
                "workqueue_depth{name=\"berth\"} 0",
                "workqueue_queue_duration_seconds_count{name=\"berth\"} 5",
                "workqueue_work_duration_seconds_count{name=\"berth\"} 5",
                "workqueue_work_duration_seconds_sum{name=\"berth\"} 0.5",
                "controller_runtime_reconcile_total{controller=\"test\",result=\"success\"} 3",
                "controller_runtime_reconcile_total{controller=\"test\",result=\"requeue_after\"} 1",
                "controller_runtime_reconcile_total{controller=\"test\",result=\"error\"} 1",
                "controller_runtime_reconcile_errors_total{controller=\"test\"} 1",
                "controller_runtime_active_workers{controller=\"test\"} 0",
                "workqueue_unfinished_work_seconds{name=\"berth\"} 0.0",
            ],
        );
    }
}
