//! Aggregate functions evaluated over the events of one key's window.
//!
//! Every aggregate is evaluated over the window's entries in event-time order (ties
//! in arrival order), so the floating-point result is a pure function of the window's
//! contents: the same on one worker or many, live or replayed.

use serde::{Deserialize, Serialize};

/// An aggregate over one numeric field of the events in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agg {
    /// Number of events in the window (the field is ignored).
    Count,
    /// Sum of the field over events where it is present.
    Sum,
    /// Mean of the field over events where it is present; null when none.
    Mean,
    /// Maximum of the field; null when no event has it.
    Max,
    /// Minimum of the field; null when no event has it.
    Min,
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
            _ => return None,
        })
    }

    /// Whether the aggregate reads a field's value (all but `count`).
    pub fn needs_field(self) -> bool {
        self != Agg::Count
    }

    /// Evaluates the aggregate over `values` (one per event, NaN for an absent field),
    /// in the given order. `count` is the number of events, present field or not.
    pub fn evaluate(self, values: impl Iterator<Item = f64>) -> Option<f64> {
        match self {
            Agg::Count => Some(values.count() as f64),
            // fold from +0.0: an empty sum is 0, not the -0.0 of `Iterator::sum`
            Agg::Sum => Some(values.filter(|v| !v.is_nan()).fold(0.0, |a, v| a + v)),
            Agg::Mean => {
                let (mut n, mut sum) = (0u64, 0.0f64);
                for v in values.filter(|v| !v.is_nan()) {
                    n += 1;
                    sum += v;
                }
                (n > 0).then(|| sum / n as f64)
            }
            Agg::Max => values.filter(|v| !v.is_nan()).reduce(f64::max),
            Agg::Min => values.filter(|v| !v.is_nan()).reduce(f64::min),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_skip_absent_values() {
        let vals = [1.0, f64::NAN, 3.0];
        assert_eq!(Agg::Count.evaluate(vals.iter().copied()), Some(3.0));
        assert_eq!(Agg::Sum.evaluate(vals.iter().copied()), Some(4.0));
        assert_eq!(Agg::Mean.evaluate(vals.iter().copied()), Some(2.0));
        assert_eq!(Agg::Max.evaluate(vals.iter().copied()), Some(3.0));
        assert_eq!(Agg::Min.evaluate(vals.iter().copied()), Some(1.0));
        assert_eq!(Agg::Mean.evaluate(std::iter::empty()), None);
        assert_eq!(Agg::Sum.evaluate(std::iter::empty()), Some(0.0));
    }
}
