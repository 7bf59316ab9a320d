//! Predictions waiting for their labels, under a memory budget.
//!
//! Each scored event with an event id leaves here the exact (imputed) feature
//! vector it was scored with, every variant's prediction and the served one, so
//! that training and progressive validation use what was known at scoring time,
//! never recomputed features.
//!
//! Cost: one entry takes [`PendingStore::bytes_per_entry`] bytes (the struct, its
//! two vectors with their allocation headers, the hash-map slot and the expiry-heap
//! entry); with the demo's 8 inputs and 8 variants that is 231 bytes.
//!
//! Budget policy: when the estimate passes the budget, predictions whose served
//! score is below `keep_above` (the bulk of them, mostly negatives) are kept with a
//! halving probability `r` (decided by a hash of the event id, so replays decide
//! the same) and weigh `1/r` in training and validation; `r` doubles back when
//! usage falls under a quarter of the budget. If the budget still binds at the
//! smallest rate, the oldest predictions are evicted (counted as timed out).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// One scored event waiting for its label.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// Hash of the event id (`types::key_hash`).
    pub id: u64,
    pub time_ms: i64,
    /// The raw (imputed) model inputs it was scored with.
    pub x: Vec<f32>,
    /// Every variant's prediction.
    pub preds: Vec<f32>,
    /// The prediction written to `scores`, and its A/B arm (0 = champion).
    pub served: f32,
    pub arm: u8,
    /// Snapshot version it was scored with.
    pub version: u64,
    /// Checkpoint epoch it was scored in.
    pub epoch: u64,
    /// Importance weight (1 unless downsampled).
    pub weight: f32,
    /// Fairness group of the event (`monitor::interner` id; 0 without one).
    #[serde(default)]
    pub group: u32,
}

impl Pending {
    /// The prediction of event `event_id` at `time_ms`, served from `slot` of
    /// `preds` (every variant's), on A/B `arm`, by snapshot `version`, in `epoch`.
    #[allow(clippy::too_many_arguments)]
    pub fn served(event_id: &str, time_ms: i64, x: &[f32], preds: &[f32], slot: usize, arm: u8, version: u64, epoch: u64, group: u32) -> Pending {
        Pending {
            id: crate::types::key_hash(event_id),
            time_ms,
            x: x.to_vec(),
            preds: preds.to_vec(),
            served: preds[slot],
            arm,
            version,
            epoch,
            weight: 1.0,
            group,
        }
    }
}

/// Whether `key` is served by the A/B arm B, which takes `share` of the keys.
pub fn arm_b(key: &str, share: f64) -> bool {
    (crate::types::key_hash(key) % 10_000) < (share * 10_000.0) as u64
}

/// Pending predictions keyed by event id, expiring by event time.
pub struct PendingStore {
    map: HashMap<u64, Pending>,
    expiry: BinaryHeap<Reverse<(i64, u64)>>,
    timeout_ms: i64,
    budget_bytes: usize,
    per_entry: usize,
    keep_above: f32,
    rate: f64,
}

/// The smallest keep probability for low-score predictions.
const MIN_RATE: f64 = 1.0 / 1024.0;

impl PendingStore {
    pub fn new(d: usize, k: usize, timeout_ms: i64, budget_bytes: usize, keep_above: f32) -> PendingStore {
        PendingStore { map: HashMap::new(), expiry: BinaryHeap::new(), timeout_ms, budget_bytes, per_entry: Self::bytes_per_entry(d, k), keep_above, rate: 1.0 }
    }

    /// Estimated bytes of one entry with `d` inputs and `k` variants.
    pub fn bytes_per_entry(d: usize, k: usize) -> usize {
        let slot = std::mem::size_of::<(u64, Pending)>() * 8 / 7 + 1; // hashbrown: 7/8 load, one control byte
        let vectors = 4 * (d + k) + 2 * 16; // contents plus allocator headers
        let heap = std::mem::size_of::<(i64, u64)>();
        slot + vectors + heap
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.map.len() * self.per_entry
    }

    pub fn sample_rate(&self) -> f64 {
        self.rate
    }

    /// Admits a prediction, or returns it when the budget policy samples it out.
    /// Evicted oldest entries (budget still exceeded at the smallest rate) are
    /// appended to `evicted`.
    pub fn admit(&mut self, mut p: Pending, evicted: &mut Vec<Pending>) -> Result<(), Pending> {
        if p.served < self.keep_above && self.rate < 1.0 {
            let u = (p.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
            if u >= self.rate {
                return Err(p);
            }
            p.weight /= self.rate as f32;
        }
        self.expiry.push(Reverse((p.time_ms, p.id)));
        self.map.insert(p.id, p);
        if self.bytes() > self.budget_bytes {
            if self.rate > MIN_RATE {
                self.rate = (self.rate / 2.0).max(MIN_RATE);
            } else {
                while self.bytes() > self.budget_bytes {
                    match self.pop_oldest() {
                        Some(old) => evicted.push(old),
                        None => break,
                    }
                }
            }
        } else if self.rate < 1.0 && self.bytes() < self.budget_bytes / 4 {
            self.rate = (self.rate * 2.0).min(1.0);
        }
        Ok(())
    }

    /// Puts back a prediction saved in a checkpoint (no budget decision: it was
    /// admitted before).
    pub fn restore(&mut self, p: Pending) {
        self.expiry.push(Reverse((p.time_ms, p.id)));
        self.map.insert(p.id, p);
    }

    /// The pending predictions scored in epochs `<= epoch` (a checkpoint's share).
    pub fn through(&self, epoch: u64) -> Vec<Pending> {
        self.map.values().filter(|p| p.epoch <= epoch).cloned().collect()
    }

    /// The event time of the oldest prediction (maybe one already taken: a hint).
    pub fn oldest_time(&self) -> Option<i64> {
        self.expiry.peek().map(|Reverse((t, _))| *t)
    }

    /// Removes and returns the prediction for `id`, if pending.
    pub fn take(&mut self, id: u64) -> Option<Pending> {
        self.map.remove(&id)
    }

    fn pop_oldest(&mut self) -> Option<Pending> {
        while let Some(Reverse((_, id))) = self.expiry.pop() {
            if let Some(p) = self.map.remove(&id) {
                return Some(p);
            }
        }
        None
    }

    /// Predictions whose event time is more than the timeout behind
    /// `labels_progress_ms`: how far in event time the labels have come (the
    /// newest event time a label has joined). Measuring against the labels rather
    /// than the newest prediction keeps a backfill, where scoring runs far ahead of
    /// the labels, from timing everything out; and it is event time, so replays
    /// expire the same way.
    pub fn expire(&mut self, labels_progress_ms: i64, out: &mut Vec<Pending>) {
        let limit = labels_progress_ms.saturating_sub(self.timeout_ms);
        while let Some(Reverse((t, id))) = self.expiry.peek().copied() {
            if t >= limit {
                break;
            }
            self.expiry.pop();
            if let Some(p) = self.map.remove(&id) {
                // the heap may hold an older entry of a re-admitted id: keep the newer
                if p.time_ms >= limit {
                    self.expiry.push(Reverse((p.time_ms, p.id)));
                    self.map.insert(p.id, p);
                    continue;
                }
                out.push(p);
            }
        }
    }

    /// Everything still pending (shutdown).
    pub fn drain(&mut self) -> Vec<Pending> {
        self.expiry.clear();
        self.map.drain().map(|(_, p)| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: u64, t: i64, served: f32) -> Pending {
        Pending { id, time_ms: t, x: vec![1.0; 4], preds: vec![served; 2], served, arm: 0, version: 1, epoch: 0, weight: 1.0, group: 0 }
    }

    #[test]
    fn joins_and_expires_by_event_time() {
        let mut s = PendingStore::new(4, 2, 1_000, usize::MAX, 0.5);
        let mut ev = Vec::new();
        for i in 0..10 {
            s.admit(p(i, i as i64 * 300, 0.1), &mut ev).unwrap();
        }
        assert_eq!(s.take(3).map(|x| x.time_ms), Some(900));
        let mut out = Vec::new();
        s.expire(i64::MIN, &mut out);
        assert!(out.is_empty(), "no label progress, no timeout");
        s.expire(2_700, &mut out);
        // labels reached 2700: everything before 1700 expired, except the joined one
        let mut ids: Vec<u64> = out.iter().map(|x| x.id).collect();
        ids.sort();
        assert_eq!(ids, vec![0, 1, 2, 4, 5]);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn budget_downsamples_low_scores_with_weights_then_evicts() {
        let per = PendingStore::bytes_per_entry(4, 2);
        let mut s = PendingStore::new(4, 2, i64::MAX / 4, per * 100, 0.5);
        let mut evicted = Vec::new();
        let (mut kept, mut dropped) = (0, 0);
        for i in 0..10_000u64 {
            match s.admit(p(i, i as i64, 0.01), &mut evicted) {
                Ok(()) => kept += 1,
                Err(_) => dropped += 1,
            }
        }
        assert!(s.bytes() <= per * 100, "budget kept: {} > {}", s.bytes(), per * 100);
        assert!(s.sample_rate() < 1.0);
        assert!(dropped > 0 && kept > 100);
        // high scores are never sampled out
        assert!(s.admit(p(99_999, 10_001, 0.9), &mut evicted).is_ok());
        // weights are the inverse keep rate of their admission
        let weights: Vec<f32> = s.drain().iter().map(|x| x.weight).collect();
        assert!(weights.iter().any(|w| *w > 1.0));
    }
}
