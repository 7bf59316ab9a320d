//! The monitor's input in a fixed order under event-time consistency
//! (`model::gate`): scorers hand over observations in whatever order their
//! threads score, which moves the monitors' count-based windows a little from run
//! to run. Here observations wait until the gate says every event before a time
//! has been scored, and are then fed in (event time, content hash) order: the same
//! stream gives the same windows, evaluations and verdicts at any speed.
//!
//! Why it is complete: a scorer sends its observations before the predictions of
//! the same batch, the learner builds boundary `B` only after the predictions of
//! every event before `B` arrived, and the monitor reads the gate's boundary
//! *before* draining its channel; so every observation before `B` is drained by
//! then.
//!
//! ```
//! use vigil::monitor::{reorder::Reorder, Observations};
//! let mut r = Reorder::default();
//! r.push(Observations { time_ms: vec![30, 10], numeric: vec![3.0, 1.0], score: vec![0.3, 0.1], ..Default::default() });
//! let first = r.take_before(20).expect("one before 20");
//! assert_eq!(first.time_ms, vec![10]);
//! assert_eq!(first.numeric, vec![1.0]);
//! assert!(r.take_before(20).is_none());
//! assert_eq!(r.take_before(i64::MAX).map(|o| o.time_ms), Some(vec![30]));
//! ```

use super::distribution::Observations;

/// Observations waiting for their time to be complete.
#[derive(Default)]
pub struct Reorder {
    waiting: Observations,
}

/// Row widths of a batch: numeric, categorical and input values per event.
fn widths(o: &Observations) -> (usize, usize, usize) {
    let n = o.len().max(1);
    (o.numeric.len() / n, o.categorical.len() / n, o.inputs.len() / n)
}

fn row_hash(o: &Observations, i: usize, (nn, _, ni): (usize, usize, usize)) -> u64 {
    // category ids are assigned in arrival order: left out; the rest is the event's own
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bits: u64| h = (h ^ bits).wrapping_mul(0x0000_0100_0000_01b3);
    o.numeric[i * nn..(i + 1) * nn].iter().for_each(|v| mix(v.to_bits()));
    o.inputs[i * ni..(i + 1) * ni].iter().for_each(|v| mix(v.to_bits() as u64));
    mix(o.score.get(i).map_or(0, |s| s.to_bits() as u64));
    h
}

fn push_row(to: &mut Observations, from: &Observations, i: usize, (nn, nc, ni): (usize, usize, usize)) {
    to.time_ms.push(from.time_ms[i]);
    to.numeric.extend_from_slice(&from.numeric[i * nn..(i + 1) * nn]);
    to.categorical.extend_from_slice(&from.categorical[i * nc..(i + 1) * nc]);
    if let Some(s) = from.score.get(i) {
        to.score.push(*s);
    }
    to.inputs.extend_from_slice(&from.inputs[i * ni..(i + 1) * ni]);
}

impl Reorder {
    pub fn push(&mut self, batch: Observations) {
        if self.waiting.is_empty() {
            self.waiting = batch;
            return;
        }
        let w = widths(&batch);
        for i in 0..batch.len() {
            push_row(&mut self.waiting, &batch, i, w);
        }
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The observations of events before `limit`, in (time, content) order.
    pub fn take_before(&mut self, limit: i64) -> Option<Observations> {
        let o = &self.waiting;
        let w = widths(o);
        let mut due: Vec<(i64, u64, usize)> = (0..o.len()).filter(|i| o.time_ms[*i] < limit).map(|i| (o.time_ms[i], row_hash(o, i, w), i)).collect();
        if due.is_empty() {
            return None;
        }
        due.sort_unstable();
        let mut out = Observations::default();
        for (_, _, i) in &due {
            push_row(&mut out, o, *i, w);
        }
        let mut rest = Observations::default();
        for i in (0..o.len()).filter(|i| o.time_ms[*i] >= limit) {
            push_row(&mut rest, o, i, w);
        }
        self.waiting = rest;
        Some(out)
    }
}
