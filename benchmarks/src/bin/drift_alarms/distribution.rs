//! Feature and prediction drift at the defaults (`DriftThresholds::default()`,
//! patience 2 over a fresh window): false alarms per 1,000 evaluations on
//! drift-free streams, and delays on shifted Gaussian streams. Each replicate
//! pins its own reference (the first `w` values), then evaluates every `w / 2`
//! values, as a job evaluates every interval over half-overlapping windows.

use vigil_operators::drift::feature::{DriftThresholds, Finding};
use vigil_operators::drift::rate::RateShift;
use vigil_operators::drift::stats::ks_critical;
use vigil_operators::drift::{CategoricalDrift, Evidence, NumericDrift, Reference, Streak};

use crate::streams::{Gen, Kind, Shift};

/// Evaluations per replicate (each replicate has its own reference).
pub const PER_REPLICATE: usize = 20;
/// Patience of the job's default.
const PATIENCE: u32 = 2;

/// The monitor a kind of stream gets.
pub enum Monitor {
    Numeric(NumericDrift),
    Categorical(CategoricalDrift),
    Rate(RateShift),
}

impl Monitor {
    pub fn new(kind: Kind, w: usize) -> Monitor {
        Monitor::with_reference(kind, Reference::First { skip: 0, events: w }, w)
    }

    pub fn with_reference(kind: Kind, reference: Reference, w: usize) -> Monitor {
        match kind {
            Kind::Categorical => Monitor::Categorical(CategoricalDrift::new(reference, w)),
            Kind::Bernoulli | Kind::BurstyBernoulli => Monitor::Rate(RateShift::new(reference, w)),
            _ => Monitor::Numeric(NumericDrift::new(reference, w)),
        }
    }

    pub fn push(&mut self, x: f64) {
        match self {
            Monitor::Numeric(d) => d.push(0, x),
            Monitor::Categorical(d) => d.push_id(0, x as u32),
            Monitor::Rate(d) => d.push(0, x > 0.5),
        }
    }

    /// The findings and where the current window ends.
    pub fn evaluate(&mut self, th: &DriftThresholds) -> (Vec<Finding>, Evidence) {
        let (findings, (seen, window)) = match self {
            Monitor::Numeric(d) => (d.evaluate(th, 1).map(|f| f.to_vec()), d.progress()),
            Monitor::Categorical(d) => (d.evaluate(th).map(|f| f.to_vec()), d.progress()),
            Monitor::Rate(d) => (d.evaluate(th).map(|(f, _)| vec![f]), d.progress()),
        };
        (findings.unwrap_or_default(), Evidence { seen, window })
    }
}

/// The old rule (before effect sizes): PSI 0.25, Wasserstein 0.1, KS at p < 0.05,
/// the positive rate's z test at 0.05, JS 0.1; patience 2 evaluations in a row.
fn old_threshold(f: &Finding, w: usize) -> f64 {
    match f.method {
        "psi" => 0.25,
        "wasserstein" | "js" => 0.1,
        "ks" => ks_critical(0.05, w, w),
        _ => 1.959964, // the positive rate: the z test at 0.05 (compared on z)
    }
}

/// Counts per method over the drift-free evaluations of one kind and window.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub methods: Vec<&'static str>,
    pub evaluations: u64,
    pub crossings: Vec<u64>,
    pub alarms: Vec<u64>,
    pub old_alarms: Vec<u64>,
    /// Evaluations where any method's alarm started.
    pub any: u64,
    pub old_any: u64,
}

pub fn false_alarms(kind: Kind, w: usize, evaluations: usize, seed: u64) -> Tally {
    let th = DriftThresholds::default();
    let mut t = Tally::default();
    let replicates = evaluations.div_ceil(PER_REPLICATE);
    for r in 0..replicates {
        let mut gen = Gen::new(kind, seed.wrapping_mul(1_000_003).wrapping_add(r as u64 * 7919 + w as u64));
        let mut d = Monitor::new(kind, w);
        (0..2 * w).for_each(|_| d.push(gen.next()));
        let (mut streaks, mut old_runs): (Vec<Streak>, Vec<u32>) = (Vec::new(), Vec::new());
        for _ in 0..PER_REPLICATE {
            let (findings, at) = d.evaluate(&th);
            if t.methods.is_empty() {
                t.methods = findings.iter().map(|f| f.method).collect();
                let n = t.methods.len();
                (t.crossings, t.alarms, t.old_alarms) = (vec![0; n], vec![0; n], vec![0; n]);
            }
            streaks.resize(findings.len(), Streak::default());
            old_runs.resize(findings.len(), 0);
            let (mut any, mut old_any) = (false, false);
            for (i, f) in findings.iter().enumerate() {
                t.crossings[i] += f.drift as u64;
                let was = streaks[i].drift();
                if streaks[i].update(f.drift, Some(at), PATIENCE) && !was {
                    t.alarms[i] += 1;
                    any = true;
                }
                // Cohen's h over its standard error is the old test's z (independent values)
                let old_value = if f.method == "rate_h" { f.value / (2.0 / w as f64).sqrt() } else { f.value };
                old_runs[i] = if old_value > old_threshold(f, w) { old_runs[i] + 1 } else { 0 };
                if old_runs[i] == PATIENCE {
                    t.old_alarms[i] += 1;
                    old_any = true;
                }
            }
            t.any += any as u64;
            t.old_any += old_any as u64;
            t.evaluations += 1;
            (0..w / 2).for_each(|_| d.push(gen.next()));
        }
    }
    t
}

/// Delays (values after the shift) of each method's first alarm, `None` when
/// not flagged within `horizon` windows; and of the first alarm of any method.
#[derive(Clone, Debug, Default)]
pub struct Delays {
    pub methods: Vec<&'static str>,
    pub per_method: Vec<Vec<Option<u64>>>,
    pub any: Vec<Option<u64>>,
    /// Alarms before the shift (should be none).
    pub early: u64,
}

pub fn delays(w: usize, shift: Shift, runs: usize, horizon: usize, seed: u64) -> Delays {
    let th = DriftThresholds::default();
    let mut out = Delays::default();
    for r in 0..runs {
        let mut gen = Gen::new(Kind::Gaussian, seed.wrapping_mul(31).wrapping_add(r as u64 * 104_729 + w as u64));
        let mut d = Monitor::new(Kind::Gaussian, w);
        // reference, then one drift-free window; the shift starts at value 2w
        (0..2 * w).for_each(|_| d.push(gen.next()));
        let start = 2 * w as u64;
        let mut streaks: Vec<Streak> = Vec::new();
        let mut first: Vec<Option<u64>> = Vec::new();
        let mut any = None;
        for _ in 0..2 * horizon + 1 {
            let (findings, at) = d.evaluate(&th);
            if out.methods.is_empty() {
                out.methods = findings.iter().map(|f| f.method).collect();
                out.per_method = vec![Vec::new(); findings.len()];
            }
            streaks.resize(findings.len(), Streak::default());
            first.resize(findings.len(), None);
            for (i, f) in findings.iter().enumerate() {
                if streaks[i].update(f.drift, Some(at), PATIENCE) && first[i].is_none() {
                    if at.seen <= start {
                        out.early += 1;
                    }
                    first[i] = Some(at.seen.saturating_sub(start));
                    any = any.or(first[i]);
                }
            }
            (0..w / 2).for_each(|_| d.push(shift.apply(gen.next())));
        }
        for (i, f) in first.into_iter().enumerate() {
            out.per_method[i].push(f);
        }
        out.any.push(any);
    }
    out
}

/// Median of the detected delays and the share detected.
pub fn summary(delays: &[Option<u64>]) -> (Option<u64>, f64) {
    let mut found: Vec<u64> = delays.iter().flatten().copied().collect();
    found.sort_unstable();
    let share = found.len() as f64 / delays.len().max(1) as f64;
    (found.get(found.len() / 2).copied().filter(|_| share >= 0.5), share)
}
