//! A watchdog over the transactional producer's blocking calls.
//!
//! librdkafka's `send_offsets_to_transaction` can block past its own timeout
//! when the broker coordinating the job's consumer group dies: a coordinator
//! cached for a broker that left the cluster's metadata is not looked up again
//! until some other broker changes state (librdkafka issues #5511 and #5456,
//! open as of 2026). Seen on a three-broker cluster with the group's
//! coordinator SIGKILLed: the commit hung for minutes while the two other
//! brokers served. Nothing can cancel a call inside librdkafka, and a job
//! whose commits stopped would stall silently while its workers look healthy.
//!
//! So each blocking call is timed: once one has run `limit` past its start,
//! the watchdog logs an error naming the call and exits the process with
//! [`EXIT_STALLED`] (75, `EX_TEMPFAIL`: try again). The open transaction is
//! never committed; the restart fences it and resumes from the last committed
//! offsets and checkpoint, so exactly-once holds (what a supervisor such as
//! Kubernetes or systemd does with an exit).
//!
//! ```
//! use std::time::Duration;
//! use vigil::kafka::txn_watch::TxnWatch;
//!
//! let watch = TxnWatch::start(Duration::from_secs(90));
//! let answer = watch.call("commit_transaction", || 42);
//! assert_eq!(answer, 42);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::types::now_us;

/// The exit code of a process whose transactional call stalled.
pub const EXIT_STALLED: i32 = 75;

/// See the module docs.
pub struct TxnWatch {
    shared: Arc<Shared>,
}

struct Shared {
    /// When the call in progress began (µs since the epoch; 0: none).
    since_us: AtomicU64,
    what: Mutex<&'static str>,
}

impl TxnWatch {
    /// Starts the watchdog thread: a call running longer than `limit` ends the
    /// process.
    pub fn start(limit: Duration) -> TxnWatch {
        let shared = Arc::new(Shared { since_us: AtomicU64::new(0), what: Mutex::new("") });
        let weak = Arc::downgrade(&shared);
        let spawned = std::thread::Builder::new().name("vigil-txn-watch".into()).spawn(move || {
            while let Some(shared) = weak.upgrade() {
                let since = shared.since_us.load(Ordering::SeqCst);
                if since != 0 && now_us().saturating_sub(since) > limit.as_micros() as u64 {
                    let what = *shared.what.lock().unwrap_or_else(|e| e.into_inner());
                    tracing::error!(
                        call = what,
                        limit_s = limit.as_secs(),
                        "the transactional producer's `{what}` has not returned for {} s (librdkafka can block here when a \
                         coordinator broker dies: issues #5511, #5456); exiting with code {EXIT_STALLED} so that a restart \
                         resumes from the last commit (the open transaction is aborted, nothing is lost or duplicated)",
                        limit.as_secs()
                    );
                    std::process::exit(EXIT_STALLED);
                }
                drop(shared);
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the transactional watchdog; a stalled commit will not end the process");
        }
        TxnWatch { shared }
    }

    /// Runs `f`, a blocking call named `what`, under the watchdog.
    pub fn call<T>(&self, what: &'static str, f: impl FnOnce() -> T) -> T {
        *self.shared.what.lock().unwrap_or_else(|e| e.into_inner()) = what;
        self.shared.since_us.store(now_us().max(1), Ordering::SeqCst);
        let out = f();
        self.shared.since_us.store(0, Ordering::SeqCst);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a child process (the same test binary, this test alone): a call that
    /// outlives the limit ends the process with `EXIT_STALLED`.
    #[test]
    fn a_call_that_outlives_its_limit_ends_the_process_with_tempfail() {
        if std::env::var_os("VIGIL_TXN_WATCH_CHILD").is_some() {
            let watch = TxnWatch::start(Duration::from_millis(300));
            assert_eq!(watch.call("quick", || 1), 1);
            watch.call("stuck", || std::thread::sleep(Duration::from_secs(30)));
            unreachable!("the watchdog ends the process first");
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args(["--exact", "kafka::txn_watch::tests::a_call_that_outlives_its_limit_ends_the_process_with_tempfail", "--nocapture"])
            .env("VIGIL_TXN_WATCH_CHILD", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(EXIT_STALLED), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
