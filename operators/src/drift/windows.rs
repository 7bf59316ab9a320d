//! The two samples a distribution-drift test compares: a **reference** and a
//! **current** window of the last `window` values.
//!
//! The reference is one of:
//! - `First { skip, events }`: the values `skip .. skip + events` of the stream (skip
//!   a warm-up, then pin what "normal" looks like);
//! - `TimeRange { from_ms, to_ms }`: the values whose event time falls in a pinned
//!   range (at most `max_events`, the first ones), fixed once event time passes `to_ms`;
//! - `Trailing { skip }`: the `window` values just before the current window (so a
//!   slow trend is followed and only a change within two windows alarms), from
//!   the value `skip` on (a warm-up is left out).
//!
//! [`SampleWindows::reset`] starts a new reference (a champion swap does that for
//! prediction drift: a new model is a new normal, not an alarm).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reference {
    First {
        #[serde(default)]
        skip: u64,
        events: usize,
    },
    TimeRange {
        from_ms: i64,
        to_ms: i64,
        #[serde(default = "default_max_events")]
        max_events: usize,
    },
    Trailing {
        #[serde(default)]
        skip: u64,
    },
}

fn default_max_events() -> usize {
    100_000
}

/// Reference and current samples of one monitored value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SampleWindows<T> {
    policy: Reference,
    window: usize,
    /// Values seen since the last reset.
    seen: u64,
    reference: Vec<T>,
    /// The reference is complete (never for `Trailing`, which moves).
    frozen: bool,
    current: VecDeque<T>,
    /// `Trailing` only: the values that left the current window, newest last.
    trailing: VecDeque<T>,
    /// Event-time progress, for `TimeRange`.
    progress_ms: i64,
    /// Bumped when the reference starts over, so that summaries of it can be cached.
    generation: u64,
}

impl<T: Clone> SampleWindows<T> {
    pub fn new(policy: Reference, window: usize) -> SampleWindows<T> {
        SampleWindows {
            policy,
            window: window.max(1),
            seen: 0,
            reference: Vec::new(),
            frozen: false,
            current: VecDeque::new(),
            trailing: VecDeque::new(),
            progress_ms: i64::MIN,
            generation: 0,
        }
    }

    /// Adds one value observed at event time `time_ms`.
    pub fn push(&mut self, time_ms: i64, value: T) {
        self.seen += 1;
        self.progress_ms = self.progress_ms.max(time_ms);
        if let Reference::Trailing { skip } = self.policy {
            if self.seen <= skip {
                return;
            }
        }
        match self.policy {
            Reference::First { skip, events } if !self.frozen => {
                if self.seen > skip {
                    self.reference.push(value.clone());
                }
                self.frozen = self.reference.len() >= events;
            }
            Reference::TimeRange { from_ms, to_ms, max_events } if !self.frozen => {
                if (from_ms..to_ms).contains(&time_ms) && self.reference.len() < max_events {
                    self.reference.push(value.clone());
                }
                self.frozen = self.progress_ms >= to_ms && !self.reference.is_empty();
            }
            _ => {}
        }
        self.current.push_back(value);
        if self.current.len() > self.window {
            let old = self.current.pop_front().expect("longer than the window");
            if matches!(self.policy, Reference::Trailing { .. }) {
                self.trailing.push_back(old);
                if self.trailing.len() > self.window {
                    self.trailing.pop_front();
                }
            }
        }
    }

    /// Both samples, once the reference is complete and the current window full.
    pub fn samples(&mut self) -> Option<Samples<'_, T>> {
        if self.current.len() < self.window {
            return None;
        }
        match self.policy {
            Reference::Trailing { .. } if self.trailing.len() == self.window => {
                Some(Samples { reference: ReferenceSample::Moving(&self.trailing), current: &self.current })
            }
            Reference::Trailing { .. } => None,
            _ if self.frozen => Some(Samples { reference: ReferenceSample::Fixed(&self.reference), current: &self.current }),
            _ => None,
        }
    }

    /// Forgets the reference and the current window: a new normal begins now.
    pub fn reset(&mut self) {
        self.seen = 0;
        self.generation += 1;
        self.reference.clear();
        self.frozen = false;
        self.current.clear();
        self.trailing.clear();
        if let Reference::TimeRange { .. } = self.policy {
            // a pinned time range cannot be observed again: follow the stream instead
            self.policy = Reference::First { skip: 0, events: self.window };
        }
    }

    /// Values seen since the last reset.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Changes when the reference starts over ([`reset`](Self::reset)).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn window(&self) -> usize {
        self.window
    }
}

/// The reference as a test sees it.
pub enum ReferenceSample<'a, T> {
    /// Pinned: its summary can be computed once.
    Fixed(&'a [T]),
    /// Trailing: changes with every value.
    Moving(&'a VecDeque<T>),
}

pub struct Samples<'a, T> {
    pub reference: ReferenceSample<'a, T>,
    pub current: &'a VecDeque<T>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_of(w: &mut SampleWindows<u32>) -> Option<Vec<u32>> {
        w.samples().map(|s| match s.reference {
            ReferenceSample::Fixed(r) => r.to_vec(),
            ReferenceSample::Moving(r) => r.iter().copied().collect(),
        })
    }

    #[test]
    fn first_skips_then_pins() {
        let mut w = SampleWindows::new(Reference::First { skip: 3, events: 4 }, 2);
        for i in 0..6 {
            w.push(i, i as u32);
            assert!(w.samples().is_none(), "reference incomplete at {i}");
        }
        w.push(6, 6);
        assert_eq!(reference_of(&mut w), Some(vec![3, 4, 5, 6]));
        w.push(7, 7);
        assert_eq!(w.samples().map(|s| s.current.iter().copied().collect::<Vec<_>>()), Some(vec![6, 7]));
        assert_eq!(reference_of(&mut w), Some(vec![3, 4, 5, 6]));
    }

    #[test]
    fn trailing_is_the_window_before_the_current() {
        let mut w = SampleWindows::new(Reference::Trailing { skip: 2 }, 3);
        for i in -2..0 {
            w.push(i, 99); // skipped: never in either sample
        }
        for i in 0..5 {
            w.push(i, i as u32);
            assert!(w.samples().is_none());
        }
        w.push(5, 5);
        assert_eq!(reference_of(&mut w), Some(vec![0, 1, 2]));
        w.push(6, 6);
        assert_eq!(reference_of(&mut w), Some(vec![1, 2, 3]));
        assert_eq!(w.samples().map(|s| s.current.iter().copied().collect::<Vec<_>>()), Some(vec![4, 5, 6]));
    }

    #[test]
    fn time_range_pins_once_time_passes_it() {
        let mut w = SampleWindows::new(Reference::TimeRange { from_ms: 10, to_ms: 20, max_events: 100 }, 2);
        for t in [5, 12, 15, 19, 21] {
            w.push(t, t as u32);
        }
        assert_eq!(reference_of(&mut w), Some(vec![12, 15, 19]));
        w.reset();
        assert!(w.samples().is_none());
    }
}
