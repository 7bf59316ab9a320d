//! Health of a running job, for an orchestrator's probes (`GET /healthz`,
//! `GET /readyz` in [`crate::http`]).
//!
//! - **Live** (`/healthz`): every worker of this process finished a turn of its
//!   loop within the stall limit. Workers wake at least once a second even with
//!   no input, so a worker that has not come back for `stall` is stuck in one
//!   step (a runaway operator, a deadlock); restarting the process is the cure.
//!   A worker counts once its dataflow is built (restoring a large state is not
//!   a stall) and until it ends (bounded input, shutdown). While a worker waits
//!   for room in the producer's queue (the output brokers are slow or down), a
//!   stall is reported but the process stays live: a restart would not help.
//! - **Ready** (`/readyz`): every worker this process expects has built its
//!   dataflow (its state restored from the checkpoint) and been assigned its
//!   partitions, the consumer lag has been measured and is at most the limit,
//!   and no shutdown is under way. A pod that is catching up serves stale
//!   features, so it stays out of the Service until it has caught up.
//!
//! A leaf module: it imports nothing from the crate; the lag comes in as an
//! argument.
//!
//! ```
//! use std::time::Duration;
//! use vigil::health::Health;
//!
//! let health = Health::default();
//! health.expect_workers(1);
//! assert!(!health.readiness(Some(0), 100, false).ready); // no worker yet
//! let w = health.worker(0);
//! w.assign(4); // 4 partitions
//! w.ready(); // dataflow built, state restored
//! assert!(health.readiness(Some(10), 100, false).ready);
//! assert!(!health.readiness(Some(500), 100, false).ready); // behind
//! assert!(health.liveness(Duration::from_secs(30), false).live);
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The default stall limit of `/healthz`.
pub const DEFAULT_STALL: Duration = Duration::from_secs(60);
/// The default lag limit of `/readyz`, in records summed over the partitions.
pub const DEFAULT_READY_MAX_LAG: i64 = 100_000;

/// What the workers of one process say about themselves.
pub struct Health {
    epoch: Instant,
    expected: AtomicUsize,
    workers: Mutex<Vec<Arc<WorkerHealth>>>,
}

impl Default for Health {
    fn default() -> Self {
        Health { epoch: Instant::now(), expected: AtomicUsize::new(0), workers: Mutex::new(Vec::new()) }
    }
}

/// One worker's share: its last turn, whether it is ready, what it owns.
pub struct WorkerHealth {
    index: usize,
    epoch: Instant,
    /// Milliseconds from `epoch` to the end of the worker's last turn.
    beat_ms: AtomicU64,
    ready: AtomicBool,
    partitions: AtomicUsize,
    ended: AtomicBool,
}

impl WorkerHealth {
    /// The worker finished a turn of its loop.
    pub fn beat(&self) {
        self.beat_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    /// The worker was assigned `n` more partitions (of one source).
    pub fn assign(&self, n: usize) {
        self.partitions.fetch_add(n, Ordering::Relaxed);
    }
    /// The worker built its dataflow (state restored, partitions assigned).
    pub fn ready(&self) {
        self.ready.store(true, Ordering::Release);
        self.beat();
    }
    /// The worker's loop ended: it no longer counts for liveness.
    pub fn ended(&self) {
        self.ended.store(true, Ordering::Release);
    }
}

/// The answer of `/healthz`.
#[derive(Clone, Debug, Serialize)]
pub struct Liveness {
    pub live: bool,
    /// Some thread waits for room in a producer's queue: stalls are not held
    /// against the process.
    pub waiting_on_output: bool,
    /// Workers that have not finished a turn within the stall limit, with the
    /// seconds since their last turn.
    pub stalled: Vec<(usize, f64)>,
    pub workers: usize,
}

/// The answer of `/readyz`: each check, and the verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Workers that built their dataflow and were assigned partitions, of those expected.
    pub workers_ready: usize,
    pub workers_expected: usize,
    pub partitions: usize,
    /// The consumer lag summed over the partitions (null: not measured yet).
    pub lag: Option<i64>,
    pub max_lag: i64,
    pub stopping: bool,
    /// Why not ready, one line per failed check.
    pub reasons: Vec<String>,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    /// This process runs `n` workers: ready once all of them are.
    pub fn expect_workers(&self, n: usize) {
        self.expected.store(n, Ordering::Relaxed);
    }

    /// Worker `index` (its global timely index), registered by its first call.
    pub fn worker(&self, index: usize) -> Arc<WorkerHealth> {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = workers.iter().find(|w| w.index == index) {
            return w.clone();
        }
        let w = Arc::new(WorkerHealth {
            index,
            epoch: self.epoch,
            beat_ms: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            partitions: AtomicUsize::new(0),
            ended: AtomicBool::new(false),
        });
        w.beat();
        workers.push(w.clone());
        w
    }

    /// Live unless a running worker has not finished a turn within `stall`
    /// while no output is blocked.
    pub fn liveness(&self, stall: Duration, output_blocked: bool) -> Liveness {
        let now = self.epoch.elapsed().as_millis() as u64;
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let stalled: Vec<(usize, f64)> = workers
            .iter()
            .filter(|w| w.ready.load(Ordering::Acquire) && !w.ended.load(Ordering::Acquire))
            .filter_map(|w| {
                let since = now.saturating_sub(w.beat_ms.load(Ordering::Relaxed));
                (since > stall.as_millis() as u64).then_some((w.index, since as f64 / 1000.0))
            })
            .collect();
        Liveness { live: stalled.is_empty() || output_blocked, waiting_on_output: output_blocked, stalled, workers: workers.len() }
    }

    /// Ready when every expected worker is, the lag (summed over the
    /// partitions) is measured and at most `max_lag`, and the job is not stopping.
    pub fn readiness(&self, lag: Option<i64>, max_lag: i64, stopping: bool) -> Readiness {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let expected = self.expected.load(Ordering::Relaxed);
        let ready: Vec<&Arc<WorkerHealth>> = workers.iter().filter(|w| w.ready.load(Ordering::Acquire)).collect();
        let partitions = ready.iter().map(|w| w.partitions.load(Ordering::Relaxed)).sum();
        let mut reasons = Vec::new();
        if expected == 0 || ready.len() < expected {
            reasons.push(format!("{} of {} workers have restored their state and been assigned partitions", ready.len(), expected));
        }
        match lag {
            None if partitions > 0 => reasons.push("the consumer lag is not measured yet".to_owned()),
            Some(l) if l > max_lag => reasons.push(format!("the consumer lag is {l} records, above the limit of {max_lag}")),
            _ => {}
        }
        if stopping {
            reasons.push("the job is stopping".to_owned());
        }
        Readiness { ready: reasons.is_empty(), workers_ready: ready.len(), workers_expected: expected, partitions, lag, max_lag, stopping, reasons }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_does_not_come_back_is_stalled_and_an_ended_one_does_not_count() {
        let h = Health::default();
        h.expect_workers(3);
        let (a, b, restoring) = (h.worker(0), h.worker(1), h.worker(2));
        a.ready();
        b.ready();
        // a turn 2 s ago is a stall for a limit of 1 s; a turn now is not
        let past = |w: &WorkerHealth| w.beat_ms.store(h.epoch.elapsed().as_millis().saturating_sub(2000) as u64, Ordering::Relaxed);
        let stall = Duration::from_secs(1);
        std::thread::sleep(Duration::from_secs(2).saturating_sub(h.epoch.elapsed()));
        past(&b);
        past(&restoring);
        a.beat();
        let l = h.liveness(stall, false);
        assert!(!l.live);
        assert_eq!(l.stalled.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1], "a worker still restoring does not count");
        assert!(h.liveness(stall, true).live, "waiting on the output brokers is not a stall");
        b.ended();
        assert!(h.liveness(stall, false).live);
    }

    #[test]
    fn ready_needs_every_worker_a_measured_lag_under_the_limit_and_no_shutdown() {
        let h = Health::default();
        h.expect_workers(2);
        let a = h.worker(0);
        a.assign(3);
        a.ready();
        let r = h.readiness(Some(0), 10, false);
        assert!(!r.ready);
        assert_eq!(r.reasons, vec!["1 of 2 workers have restored their state and been assigned partitions"]);
        h.worker(1).ready();
        assert!(!h.readiness(None, 10, false).ready, "lag not measured");
        let r = h.readiness(Some(10), 10, false);
        assert!(r.ready, "{r:?}");
        assert_eq!(r.partitions, 3);
        assert!(!h.readiness(Some(11), 10, false).ready);
        assert_eq!(h.readiness(Some(0), 10, true).reasons, vec!["the job is stopping"]);
    }

    #[test]
    fn a_process_that_owns_no_partition_is_ready_without_a_lag() {
        let h = Health::default();
        h.expect_workers(1);
        h.worker(0).ready();
        assert!(h.readiness(None, 10, false).ready);
    }
}
