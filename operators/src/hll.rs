//! Approximate distinct counts: HyperLogLog sketches over a long window, built
//! from panes.
//!
//! A sketch cannot forget a value, so the window is never retracted: like
//! [`crate::panes`], the window of an event at `t` is `[s, t]` with `s` rounded up
//! to the pane grid, the events the key no longer retains raw are folded into one
//! sketch per pane, and panes leave whole once no future window reaches them. As
//! of an event, the estimate is that of the union of the panes from `s` on and
//! the retained events in `[s, t]` up to it (never a later one). The union of
//! the panes is cached per key and rebuilt only when `s` moves to the next pane,
//! and so is a running union of it and the retained events since `s`, which
//! every in-order event then updates in one register: an in-order event costs
//! O(1), an out-of-order one a pass over the retained events in its window, and
//! a key O(retained events + set registers of its panes) once per pane. Sketches
//! stay sparse (only the set registers) until a sixteenth of them are set.
//!
//! Registers: the top `p` bits of a tag pick one of `m = 2^p`, the rank is the
//! number of leading zeros of the rest plus one; the estimate is the standard
//! one (Flajolet et al. 2007) with linear counting below `2.5 m`. Standard error
//! about `1.04 / sqrt(m)`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::distinct::ABSENT;

/// Approximate distinct values of tag `tag` over `[s, t]` (see the module).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApproxDistinct {
    pub name: String,
    pub tag: usize,
    pub window_ms: i64,
    pub pane_ms: i64,
    /// Register bits `p` (4..=16): `2^p` registers.
    pub precision: u8,
}

impl ApproxDistinct {
    /// Start of the window as of time `t`.
    pub fn start(&self, t: i64) -> i64 {
        ((t - self.window_ms).div_euclid(self.pane_ms) + 1) * self.pane_ms
    }
}

/// Register index and rank of a tag.
pub fn register(p: u8, tag: u64) -> (usize, u8) {
    let index = (tag >> (64 - p)) as usize;
    let rest = tag << p;
    let rank = if rest == 0 { 64 - p + 1 } else { rest.leading_zeros() as u8 + 1 };
    (index, rank.min(64 - p + 1))
}

/// A sketch's registers: while few are set (a pane of a key with a handful of
/// events: most panes) only those, by index; all `2^p` once more than `2^p / 16`
/// are. A dense sketch cost a `2^p`-byte allocation per pane per key and
/// `2^p`-register unions, whatever the pane held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Registers {
    /// The non-zero registers, sorted by index.
    Sparse(Vec<(u16, u8)>),
    Dense(Vec<u8>),
}

/// A HyperLogLog sketch with its estimate's running terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    p: u8,
    registers: Registers,
    /// Sum of 2^-register over all registers, in units of 2^-64 (exact, so the
    /// estimate does not depend on the order values came in).
    inv_sum: u128,
    zeros: u32,
}

impl Sketch {
    pub fn new(p: u8) -> Self {
        let m = 1usize << p;
        Sketch { p, registers: Registers::Sparse(Vec::new()), inv_sum: (m as u128) << 64, zeros: m as u32 }
    }

    fn m(&self) -> usize {
        1usize << self.p
    }

    /// Register `j`.
    fn get(&self, j: usize) -> u8 {
        match &self.registers {
            Registers::Sparse(v) => v.binary_search_by_key(&(j as u16), |e| e.0).map_or(0, |i| v[i].1),
            Registers::Dense(r) => r[j],
        }
    }

    fn set(&mut self, j: usize, rank: u8) {
        let old = match &mut self.registers {
            Registers::Dense(r) => {
                let old = r[j];
                if rank <= old {
                    return;
                }
                r[j] = rank;
                old
            }
            Registers::Sparse(v) => match v.binary_search_by_key(&(j as u16), |e| e.0) {
                Ok(i) => {
                    let old = v[i].1;
                    if rank <= old {
                        return;
                    }
                    v[i].1 = rank;
                    old
                }
                Err(i) => {
                    v.insert(i, (j as u16, rank));
                    0
                }
            },
        };
        self.inv_sum = self.inv_sum + term(rank) - term(old);
        if old == 0 {
            self.zeros -= 1;
        }
        let m = self.m();
        if let Registers::Sparse(v) = &self.registers {
            if v.len() > m / 16 {
                let mut dense = vec![0u8; m];
                for (j, r) in v {
                    dense[*j as usize] = *r;
                }
                self.registers = Registers::Dense(dense);
            }
        }
    }

    pub fn add(&mut self, p: u8, tag: u64) {
        if tag != ABSENT {
            let (j, rank) = register(p, tag);
            self.set(j, rank);
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        match &other.registers {
            Registers::Sparse(v) => {
                for (j, r) in v {
                    self.set(*j as usize, *r);
                }
            }
            Registers::Dense(r) => {
                for (j, r) in r.iter().enumerate().filter(|(_, r)| **r > 0) {
                    self.set(j, *r);
                }
            }
        }
    }

    pub fn estimate(&self) -> f64 {
        estimate(self.m(), self.inv_sum, self.zeros)
    }

    /// The estimate of this sketch plus `tags`, without changing it.
    pub fn estimate_with(&self, p: u8, tags: impl Iterator<Item = u64>) -> f64 {
        let mut raised: Vec<(usize, u8)> = tags.filter(|t| *t != ABSENT).map(|tag| register(p, tag)).filter(|(j, rank)| *rank > self.get(*j)).collect();
        // one entry per register, its highest rank
        raised.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        raised.dedup_by_key(|(j, _)| *j);
        let (mut inv_sum, mut zeros) = (self.inv_sum, self.zeros);
        for (j, rank) in raised {
            let old = self.get(j);
            inv_sum = inv_sum + term(rank) - term(old);
            if old == 0 {
                zeros -= 1;
            }
        }
        estimate(self.m(), inv_sum, zeros)
    }
}

/// 2^-rank in units of 2^-64.
fn term(rank: u8) -> u128 {
    1u128 << (64 - rank as u32)
}

fn estimate(m: usize, inv_sum: u128, zeros: u32) -> f64 {
    let mf = m as f64;
    let inv_sum = inv_sum as f64 / 2f64.powi(64);
    let alpha = match m {
        16 => 0.673,
        32 => 0.697,
        64 => 0.709,
        _ => 0.7213 / (1.0 + 1.079 / mf),
    };
    let raw = alpha * mf * mf / inv_sum;
    if raw <= 2.5 * mf && zeros > 0 {
        mf * (mf / zeros as f64).ln()
    } else {
        raw
    }
}

/// One key's evicted events as pane sketches, and the cached union from `from` on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HllPanes {
    panes: VecDeque<(i64, Sketch)>,
    /// Union of the panes starting at or after its first number, and the start of
    /// the oldest pane in it (`i64::MAX`: none).
    cache: Option<(i64, i64, Sketch)>,
    /// The window as of the key's latest event, for windows starting at its first
    /// number: the panes' union plus every retained event since. Kept up to date
    /// while events come in order (each adds its value), so that an in-order
    /// event costs one register update instead of a pass over the retained
    /// events (a hot key retains thousands); rebuilt when the start moves on.
    running: Option<(i64, Sketch)>,
}

impl HllPanes {
    /// Folds an evicted event (in time order); drops panes before `oldest`.
    pub fn evicted(&mut self, d: &ApproxDistinct, time: i64, tag: u64, oldest: i64) {
        while self.panes.front().is_some_and(|(start, _)| *start < oldest) {
            self.panes.pop_front();
        }
        if tag == ABSENT || time < oldest {
            return;
        }
        let start = time.div_euclid(d.pane_ms) * d.pane_ms;
        if self.panes.back().is_none_or(|(s, _)| *s != start) {
            self.panes.push_back((start, Sketch::new(d.precision)));
        }
        if let Some((_, sketch)) = self.panes.back_mut() {
            sketch.add(d.precision, tag);
        }
        if let Some((from, oldest_in, cache)) = &mut self.cache {
            if start >= *from {
                cache.add(d.precision, tag);
                *oldest_in = (*oldest_in).min(start);
            }
        }
    }

    /// The estimate as of an event at `time` with value `tag` (already retained):
    /// its window starts at `from`, and `retained` gives the retained events'
    /// tags in `[from, time]` up to it. `in_order`: no retained event is later.
    pub fn observe(&mut self, d: &ApproxDistinct, from: i64, time: i64, tag: u64, in_order: bool, retained: impl Iterator<Item = u64>) -> f64 {
        if let Some((f, running)) = &mut self.running {
            if time >= *f {
                // every later window starting at `f` holds this event
                running.add(d.precision, tag);
                if in_order && *f == from {
                    return running.estimate();
                }
            }
        }
        let tags: Vec<u64> = retained.collect();
        let estimate = self.estimate(d, from, tags.iter().copied());
        if in_order {
            // the latest event's window: start a running union for it
            if let Some((f, _, cache)) = &self.cache {
                if *f == from {
                    let mut running = cache.clone();
                    for t in tags {
                        running.add(d.precision, t);
                    }
                    self.running = Some((from, running));
                }
            }
        }
        estimate
    }

    /// The estimate as of an event whose window starts at `from`, with the
    /// retained events' tags in `[from, t]` up to it.
    pub fn estimate(&mut self, d: &ApproxDistinct, from: i64, retained: impl Iterator<Item = u64>) -> f64 {
        let union = |panes: &VecDeque<(i64, Sketch)>| {
            let mut u = Sketch::new(d.precision);
            let first = panes.partition_point(|(s, _)| *s < from);
            for (_, sketch) in panes.range(first..) {
                u.merge(sketch);
            }
            (u, panes.get(first).map_or(i64::MAX, |(s, _)| *s))
        };
        if let Some((f, oldest_in, _)) = &mut self.cache {
            // the window moved on, but none of the panes in the union left it
            if *f < from && *oldest_in >= from {
                *f = from;
            }
        }
        match &self.cache {
            Some((f, _, cache)) if *f == from => cache.estimate_with(d.precision, retained),
            Some((f, _, _)) if *f > from => union(&self.panes).0.estimate_with(d.precision, retained), // an older event's window
            _ => {
                let (u, oldest_in) = union(&self.panes);
                let e = u.estimate_with(d.precision, retained);
                self.cache = Some((from, oldest_in, u));
                e
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distinct::tag_of;

    #[test]
    fn estimates_are_within_a_few_standard_errors() {
        for (p, n) in [(10u8, 100usize), (10, 5_000), (12, 100_000), (14, 1_000_000)] {
            let mut s = Sketch::new(p);
            for i in 0..n {
                s.add(p, tag_of(&format!("user-{i}")));
            }
            let err = (s.estimate() - n as f64).abs() / n as f64;
            let se = 1.04 / ((1u64 << p) as f64).sqrt();
            assert!(err < 4.0 * se, "p={p} n={n}: estimate {} ({:.2}% off, se {:.2}%)", s.estimate(), 100.0 * err, 100.0 * se);
        }
    }

    #[test]
    fn sparse_and_dense_sketches_agree() {
        // the same values into one sketch and, split, into two merged: the
        // estimates agree bit for bit while sparse, across the switch and after
        let p = 10;
        let (mut whole, mut a, mut b) = (Sketch::new(p), Sketch::new(p), Sketch::new(p));
        for i in 0..3_000 {
            let tag = tag_of(&format!("v{i}"));
            whole.add(p, tag);
            if i % 3 == 0 { &mut a } else { &mut b }.add(p, tag);
            if [10, 63, 64, 65, 100, 2_999].contains(&i) {
                let mut merged = a.clone();
                merged.merge(&b);
                assert_eq!(merged.estimate().to_bits(), whole.estimate().to_bits(), "after {i}");
                let registers: Vec<u8> = (0..1 << p).map(|j| merged.get(j)).collect();
                assert_eq!(registers, (0..1 << p).map(|j| whole.get(j)).collect::<Vec<_>>());
            }
        }
        assert!(matches!(whole.registers, Registers::Dense(_)));
        assert!(matches!(Sketch::new(p).registers, Registers::Sparse(_)));
    }

    #[test]
    fn estimating_with_extra_tags_equals_adding_them() {
        let p = 8;
        let mut s = Sketch::new(p);
        for i in 0..300 {
            s.add(p, tag_of(&format!("a{i}")));
        }
        let extra: Vec<u64> = (0..50).map(|i| tag_of(&format!("b{i}"))).chain([ABSENT]).collect();
        let with = s.estimate_with(p, extra.iter().copied());
        for t in extra {
            s.add(p, t);
        }
        assert_eq!(with.to_bits(), s.estimate().to_bits());
    }
}
