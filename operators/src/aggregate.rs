//! Aggregate functions over the events of one key's window, and the summary they
//! are computed from.
//!
//! Sums are kept in fixed point (units of 1e-6, in `i128`), so adding an event and
//! later removing it cancels exactly: a running window and a fresh scan of the same
//! events give bit-identical results, whatever the order of updates. Sums of
//! squares (for the variance) are kept the same way: each value's square, rounded
//! once to 1e-6 ([`square_fixed`]), is added and later subtracted with wrapping
//! arithmetic, so they cancel exactly too.

use serde::{Deserialize, Serialize};

/// Fixed-point scale of sums: values are summed in units of 1e-6.
pub const FIXED_SCALE: f64 = 1e6;

/// A finite value in fixed point (saturating far outside the f64 range of money).
pub fn to_fixed(x: f64) -> i128 {
    round_to_i128(x * FIXED_SCALE)
}

/// A value's square in fixed point (1e-6 units; |x| <= 1e15 gives at most 1e36).
pub fn square_fixed(x: f64) -> i128 {
    round_to_i128(x * x * FIXED_SCALE)
}

/// `x.round() as i128` (half away from zero, saturating, NaN to 0), without the
/// libm call and the software f64-to-i128 conversion when `x` fits an i64 (they
/// were 30% of a job's time where windows are rescanned for out-of-order events).
#[inline]
fn round_to_i128(x: f64) -> i128 {
    if x.abs() < 9.0e18 {
        // truncation is exact here, and so is the fraction below 2^52 (above it
        // `x` is an integer and the fraction is 0)
        let i = x as i64;
        let frac = x - i as f64;
        (if frac >= 0.5 {
            i + 1
        } else if frac <= -0.5 {
            i - 1
        } else {
            i
        }) as i128
    } else {
        x.round() as i128
    }
}

/// An aggregate over one numeric field of the events in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agg {
    /// Number of events in the window (the field is ignored).
    Count,
    /// Sum of the field over events where it is present (exact to 1e-6).
    Sum,
    /// Mean of the field over events where it is present; null when none.
    Mean,
    /// Maximum of the field; null when no event has it.
    Max,
    /// Minimum of the field; null when no event has it.
    Min,
    /// Sample variance (n - 1 in the denominator) of the field; null below two values.
    Variance,
    /// Sample standard deviation: the square root of `Variance`.
    Std,
}

impl Agg {
    /// Parses the name used in job specs.
    pub fn parse(name: &str) -> Option<Agg> {
        Some(match name {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "mean" | "avg" => Agg::Mean,
            "max" => Agg::Max,
            "min" => Agg::Min,
            "variance" | "var" => Agg::Variance,
            "std" | "stddev" => Agg::Std,
            _ => return None,
        })
    }

    /// Whether the aggregate reads a field's value (all but `count`).
    pub fn needs_field(self) -> bool {
        self != Agg::Count
    }

    /// The aggregate's value given a window's event count and, for field
    /// aggregates, the field's summary.
    pub fn finish(self, count: u64, field: Option<&FieldSummary>) -> Option<f64> {
        let f = field.copied().unwrap_or_default();
        match self {
            Agg::Count => Some(count as f64),
            Agg::Sum => Some(f.sum as f64 / FIXED_SCALE),
            Agg::Mean => (f.present > 0).then(|| f.sum as f64 / FIXED_SCALE / f.present as f64),
            Agg::Max => (f.present > 0).then_some(f.max),
            Agg::Min => (f.present > 0).then_some(f.min),
            Agg::Variance => f.variance(),
            Agg::Std => f.variance().map(f64::sqrt),
        }
    }
}

/// What a window knows about one field: how many events have it, their fixed-point
/// sum, and their extremes (meaningful only when `present > 0`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldSummary {
    pub present: u64,
    pub sum: i128,
    /// Sum of the values' squares, see [`square_fixed`].
    pub sum_sq: i128,
    pub max: f64,
    pub min: f64,
}

impl Default for FieldSummary {
    fn default() -> Self {
        FieldSummary { present: 0, sum: 0, sum_sq: 0, max: f64::NEG_INFINITY, min: f64::INFINITY }
    }
}

impl FieldSummary {
    /// Adds another summary (of disjoint events).
    pub fn merge(&mut self, o: &FieldSummary) {
        self.present += o.present;
        self.sum += o.sum;
        self.sum_sq = self.sum_sq.wrapping_add(o.sum_sq);
        self.max = self.max.max(o.max);
        self.min = self.min.min(o.min);
    }

    /// Removes one event's value added before (NaN = absent): counts and sums
    /// only, exactly; `min` and `max` are left as they were.
    pub fn remove_counted(&mut self, v: f64) {
        if !v.is_nan() {
            self.present -= 1;
            self.sum -= to_fixed(v);
            self.sum_sq = self.sum_sq.wrapping_sub(square_fixed(v));
        }
    }

    /// Adds one event's value (NaN = absent).
    pub fn add(&mut self, v: f64) {
        if !v.is_nan() {
            self.present += 1;
            self.sum += to_fixed(v);
            self.sum_sq = self.sum_sq.wrapping_add(square_fixed(v));
            self.max = self.max.max(v);
            self.min = self.min.min(v);
        }
    }
}

impl FieldSummary {
    /// Sample variance from the exact sums: (sum_sq - sum^2 / n) / (n - 1), never
    /// below zero; `None` below two values.
    pub fn variance(&self) -> Option<f64> {
        if self.present < 2 {
            return None;
        }
        let n = self.present as f64;
        let (sum, sum_sq) = (self.sum as f64 / FIXED_SCALE, self.sum_sq as f64 / FIXED_SCALE);
        Some(((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_rounding_is_round() {
        let mut cases = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.4999999999999996,
            0.49999999999999994,
            4503599627370495.5,
            -4503599627370495.5,
            9.0e18,
            -9.0e18,
            8.99e18,
            1e30,
            -1e30,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            cases.push(v);
            cases.push((x % 2_000_000_001) as f64 / 1000.0 - 1e6); // money-like
        }
        for v in cases {
            assert_eq!(round_to_i128(v), v.round() as i128, "{v:e}");
        }
    }

    #[test]
    fn aggregates_skip_absent_values() {
        let mut f = FieldSummary::default();
        for v in [1.0, f64::NAN, 3.0] {
            f.add(v);
        }
        assert_eq!(Agg::Count.finish(3, Some(&f)), Some(3.0));
        assert_eq!(Agg::Sum.finish(3, Some(&f)), Some(4.0));
        assert_eq!(Agg::Mean.finish(3, Some(&f)), Some(2.0));
        assert_eq!(Agg::Max.finish(3, Some(&f)), Some(3.0));
        assert_eq!(Agg::Min.finish(3, Some(&f)), Some(1.0));
        assert_eq!(Agg::Variance.finish(3, Some(&f)), Some(2.0));
        assert_eq!(Agg::Std.finish(3, Some(&f)), Some(2.0f64.sqrt()));
        let mut one = FieldSummary::default();
        one.add(5.0);
        assert_eq!(Agg::Variance.finish(1, Some(&one)), None);
        let empty = FieldSummary::default();
        assert_eq!(Agg::Mean.finish(0, Some(&empty)), None);
        assert_eq!(Agg::Sum.finish(0, Some(&empty)).map(f64::to_bits), Some(0.0f64.to_bits()));
    }

    #[test]
    fn fixed_point_sums_cancel_exactly() {
        let xs = [0.1, 0.2, 1e9 + 0.3, 12.34];
        let total: i128 = xs.iter().map(|x| to_fixed(*x)).sum();
        let back = total - to_fixed(1e9 + 0.3) - to_fixed(0.1);
        assert_eq!(back, to_fixed(0.2) + to_fixed(12.34));
        assert_eq!(back as f64 / FIXED_SCALE, 12.54);
    }
}
