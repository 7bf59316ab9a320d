//! Event time per partition: watermarks, late and implausible timestamps, idleness.
//!
//! Each partition keeps the maximum event time it has accepted; its watermark is
//! that maximum minus the allowed lateness. A record is judged against its own
//! partition only, in offset order, so the same input gives the same verdicts with
//! any number of workers:
//! - before 2000-01-01, or more than `max_future` beyond `max(partition max, wall
//!   clock)`: `bad_timestamp` (it never moves the watermark);
//! - older than the partition's watermark: `late`;
//! - otherwise accepted, and it may raise the partition's maximum.
//!
//! The source's progress (its timely capability) is the minimum watermark over
//! *active* partitions; a partition with no record for `idle_timeout` stops holding
//! it back, and the capability never moves backwards.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::types::{Reason, Rejection};

/// 2000-01-01T00:00:00Z in epoch milliseconds: older timestamps are implausible.
pub const MIN_PLAUSIBLE_MS: i64 = 946_684_800_000;

/// The event-time state of one partition (serializable for checkpoints).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionClock {
    /// Largest accepted event time.
    pub max_event_ms: Option<i64>,
}

/// The rules shared by all partitions of a source.
#[derive(Clone, Copy, Debug)]
pub struct TimePolicy {
    pub allowed_lateness_ms: i64,
    pub max_future_ms: i64,
}

impl PartitionClock {
    /// The partition's watermark, if it has accepted anything.
    pub fn watermark(&self, policy: &TimePolicy) -> Option<i64> {
        self.max_event_ms.map(|m| m.saturating_sub(policy.allowed_lateness_ms))
    }

    /// Judges a record's event time; on acceptance returns the partition watermark
    /// after this record (every later record of the partition is at or after it).
    pub fn admit(&mut self, time_ms: i64, now_ms: i64, policy: &TimePolicy) -> Result<i64, Rejection> {
        if time_ms < MIN_PLAUSIBLE_MS {
            return Err(Rejection::new(Reason::BadTimestamp, format!("event time {time_ms} ms is before 2000-01-01")));
        }
        let reference = self.max_event_ms.map_or(now_ms, |m| m.max(now_ms));
        if time_ms > reference.saturating_add(policy.max_future_ms) {
            return Err(Rejection::new(
                Reason::BadTimestamp,
                format!("event time {time_ms} ms is more than {} ms ahead of {reference} ms", policy.max_future_ms),
            ));
        }
        if let Some(wm) = self.watermark(policy) {
            if time_ms < wm {
                return Err(Rejection::new(Reason::Late, format!("event time {time_ms} ms is behind the partition watermark {wm} ms")));
            }
        }
        let max = self.max_event_ms.map_or(time_ms, |m| m.max(time_ms));
        self.max_event_ms = Some(max);
        Ok(max.saturating_sub(policy.allowed_lateness_ms))
    }
}

/// Tracks which partitions are active and computes the source's progress.
#[derive(Debug)]
pub struct SourceProgress {
    idle_timeout: Duration,
    last_record: Vec<Option<Instant>>,
    /// Progress reported so far; never decreases.
    low: u64,
    started: Instant,
    /// [`strict_low`](Self::strict_low) reported so far; never decreases.
    strict: i64,
}

impl SourceProgress {
    pub fn new(partitions: usize, idle_timeout: Duration) -> Self {
        SourceProgress { idle_timeout, last_record: vec![None; partitions], low: 0, started: Instant::now(), strict: i64::MIN }
    }

    /// The time below which no event of these partitions will be accepted any
    /// more: the minimum watermark over every partition, where a partition that
    /// has not delivered yet counts as the beginning of time until it has been
    /// silent for the idle timeout since the start, and an idle partition does not
    /// count. Event-time-consistent scoring waits for it (`model::gate`); unlike
    /// [`advance`](Self::advance) it never skips a partition that was not read yet.
    pub fn strict_low(&mut self, watermarks: impl Iterator<Item = Option<i64>>, now: Instant) -> i64 {
        let mut low: Option<i64> = None;
        let mut newest = i64::MIN;
        for (wm, last) in watermarks.zip(&self.last_record) {
            let since = now.duration_since(last.unwrap_or(self.started));
            let counts = since < self.idle_timeout;
            let value = match (wm, counts) {
                (Some(w), true) => w,
                (None, true) => i64::MIN,
                (w, false) => {
                    newest = newest.max(w.unwrap_or(i64::MIN));
                    continue;
                }
            };
            newest = newest.max(value);
            low = Some(low.map_or(value, |l: i64| l.min(value)));
        }
        // every partition idle: nothing holds progress below the newest watermark
        self.strict = self.strict.max(low.unwrap_or(newest));
        self.strict
    }

    /// Notes that partition slot `slot` delivered a record at `now`.
    pub fn touch(&mut self, slot: usize, now: Instant) {
        self.last_record[slot] = Some(now);
    }

    /// Minimum watermark over active partitions, never below the previous value.
    /// `watermarks[slot]` is each partition's current watermark.
    pub fn advance(&mut self, watermarks: impl Iterator<Item = Option<i64>>, now: Instant) -> u64 {
        let min_active = watermarks
            .zip(&self.last_record)
            .filter(|(_, last)| last.is_some_and(|t| now.duration_since(t) < self.idle_timeout))
            .filter_map(|(wm, _)| wm)
            .min();
        if let Some(wm) = min_active {
            self.low = self.low.max(wm.max(0) as u64);
        }
        self.low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: TimePolicy = TimePolicy { allowed_lateness_ms: 5_000, max_future_ms: 3_600_000 };
    const T0: i64 = 1_767_225_600_000; // 2026-01-01

    #[test]
    fn late_and_implausible_records_are_judged_per_partition() {
        let mut c = PartitionClock::default();
        assert_eq!(c.admit(T0, T0, &P).unwrap(), T0 - 5_000);
        assert_eq!(c.admit(T0 - 5_000, T0, &P).unwrap(), T0 - 5_000); // exactly at the watermark
        assert_eq!(c.admit(T0 - 5_001, T0, &P).unwrap_err().reason, Reason::Late);
        assert_eq!(c.admit(1_000, T0, &P).unwrap_err().reason, Reason::BadTimestamp);
        assert_eq!(c.admit(T0 + 3_600_001, T0, &P).unwrap_err().reason, Reason::BadTimestamp);
        // a rejected future record did not move the watermark
        assert_eq!(c.watermark(&P), Some(T0 - 5_000));
    }

    #[test]
    fn idle_partitions_do_not_hold_progress() {
        let start = Instant::now();
        let mut p = SourceProgress::new(2, Duration::from_secs(10));
        p.touch(0, start);
        p.touch(1, start);
        assert_eq!(p.advance([Some(100), Some(50)].into_iter(), start), 50);
        let later = start + Duration::from_secs(11);
        p.touch(0, later);
        assert_eq!(p.advance([Some(200), Some(50)].into_iter(), later), 200);
        // never backwards, even when the idle partition returns
        p.touch(1, later);
        assert_eq!(p.advance([Some(200), Some(60)].into_iter(), later), 200);
    }
}
