//! The RESULTS.md section: one table per measurement.

use std::fmt::Write;

use anyhow::Result;
use vigil::monitor::spec::ConceptSpec;
use vigil_operators::drift::feature::DriftThresholds;

use crate::concept::{false_alarm_rate, settings, step};
use crate::distribution::{delays, false_alarms, summary, PER_REPLICATE};
use crate::streams::{Kind, Shift};
use crate::{demo, report, Args};

const WINDOWS: [usize; 3] = [1_000, 5_000, 20_000];

fn per_1000(n: u64, of: u64) -> String {
    format!("{:.2}", n as f64 * 1000.0 / of.max(1) as f64)
}

pub fn header(args: &Args) -> String {
    let th = DriftThresholds::default();
    let c = ConceptSpec::default();
    format!(
        "## Drift monitors: false alarms and detection delays at the defaults (measured {})\n\n\
         Machine: {}. Command: `cargo run --release -p vigil-benchmarks --bin drift-alarms -- --seed {} --evaluations {} --delay-runs {} --demo-seeds {} --demo-events {} --demo-drift-at {} --concept-runs {} --labels {}` (seeded, one thread).\n\n\
         Defaults measured: effect sizes for samples above {} values (PSI {}, Wasserstein/sd {}, KS D {}, JS {}, positive rate Cohen's h {}), each raised to its noise floor at {} for the samples' effective sizes; KS and the positive-rate z test at p < {} for smaller samples; a finding is drift once past its threshold at 2 evaluations in a row spanning a fresh window. \
         Concept: grace {} labels, ADWIN delta {} ({}), DDM warm start {} and drift at {} sigma, Page-Hinkley delta {}, threshold {} ({}).\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        report::machine(),
        args.seed,
        args.evaluations,
        args.delay_runs,
        args.demo_seeds,
        args.demo_events,
        args.demo_drift_at,
        args.concept_runs,
        args.labels,
        th.p_value_max,
        th.psi,
        th.wasserstein,
        th.ks,
        th.js,
        th.rate,
        th.noise_alpha,
        th.ks_alpha,
        c.grace,
        c.adwin.delta,
        if c.adwin.direction == vigil_operators::drift::Direction::Up { "rising only" } else { "both directions" },
        c.ddm.warm_start,
        c.ddm.drift_threshold,
        c.page_hinkley.delta,
        c.page_hinkley.threshold,
        format!("{:?}", c.page_hinkley.mode).to_lowercase(),
    )
}

pub fn distribution_false_alarms(args: &Args) -> String {
    let mut s = format!(
        "### Feature and prediction drift: false alarms per 1,000 evaluations on drift-free streams\n\n\
         Each replicate pins its reference (the first w values), then is evaluated {PER_REPLICATE} times, every w/2 values (half-overlapping windows); {} evaluations per stream and window. \
         Crossings: evaluations past the threshold; alarms: starts of drift (what pages an operator). Old rule: PSI 0.25, Wasserstein 0.1, KS and z test at p < 0.05, patience 2 evaluations in a row.\n\n\
         | stream | window | method | crossings /1000 | alarms /1000 | old rule alarms /1000 |\n|---|---|---|---|---|---|\n",
        args.evaluations
    );
    let mut worst = 0.0f64;
    for kind in Kind::ALL {
        for w in WINDOWS {
            let t = false_alarms(kind, w, args.evaluations, args.seed);
            for (i, m) in t.methods.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "| {} | {w} | {m} | {} | {} | {} |",
                    kind.name(),
                    per_1000(t.crossings[i], t.evaluations),
                    per_1000(t.alarms[i], t.evaluations),
                    per_1000(t.old_alarms[i], t.evaluations)
                );
                worst = worst.max(t.alarms[i] as f64 * 1000.0 / t.evaluations.max(1) as f64);
            }
            let _ = writeln!(s, "| {} | {w} | any | | {} | {} |", kind.name(), per_1000(t.any, t.evaluations), per_1000(t.old_any, t.evaluations));
        }
    }
    let _ = writeln!(s, "\nHighest alarm rate of any method on any drift-free stream: **{worst:.2} per 1,000 evaluations**.\n");
    s
}

fn delay_cell(d: &[Option<u64>]) -> String {
    match summary(d) {
        (Some(m), share) => format!("{m} ({:.0}%)", share * 100.0),
        (None, share) => format!("- ({:.0}%)", share * 100.0),
    }
}

pub fn distribution_delays(args: &Args) -> String {
    let horizon = 20;
    let mut s = format!(
        "### Feature drift: detection delay on shifted Gaussian streams\n\n\
         Reference: the first w values; the shift starts at value 2w; evaluations every w/2 values. Median delay in values after the shift over {} runs (share of runs detected within {horizon} windows). \
         A mean shift of d sd moves the Wasserstein/sd by d and KS D by 2 Phi(d/2) - 1 (0.04 at 0.1 sd, 0.10 at 0.25): shifts below the effect thresholds are not drift by design.\n\n\
         | shift | window | psi | ks | wasserstein | any | alarms before the shift |\n|---|---|---|---|---|---|---|\n",
        args.delay_runs
    );
    for shift in [Shift::Mean(0.1), Shift::Mean(0.25), Shift::Mean(0.5), Shift::Scale(1.5)] {
        for w in WINDOWS {
            let d = delays(w, shift, args.delay_runs, horizon, args.seed);
            let cells: Vec<String> = d.per_method.iter().map(|m| delay_cell(m)).collect();
            let _ = writeln!(s, "| {} | {w} | {} | {} | {} | {} | {} |", shift.name(), cells[0], cells[1], cells[2], delay_cell(&d.any), d.early);
        }
    }
    s.push('\n');
    s
}

pub fn demo(args: &Args) -> Result<String> {
    let mut s = format!(
        "### The demo's feature streams\n\n\
         The fraud job's features over the generator's transactions (seeds 1-{}, {} events each), the monitor of `examples/fraud_online.toml` (reference: values 20,000-40,000; windows of 20,000), evaluated every {} values. Drifted: `--drift-at {}` (amounts x1.5); delay: events after the drift to the first alarm (median over seeds, and how many seeds flagged it).\n\n\
         | value | method | drift-free: evaluations | drift-free: alarms | drifted: alarms before the drift | drifted: delay (seeds flagged) |\n|---|---|---|---|---|---|\n",
        args.demo_seeds,
        args.demo_events,
        demo::EVERY,
        args.demo_drift_at
    );
    let mut rows: Vec<(String, &str, u64, u64, u64, Vec<Option<u64>>)> = Vec::new();
    for seed in 1..=args.demo_seeds {
        let steady = demo::streams(args.demo_events, seed, None)?;
        let drifted = demo::streams(args.demo_events, seed, Some(args.demo_drift_at))?;
        for (j, name) in demo::WATCHED.iter().enumerate() {
            let quiet = demo::watch(&steady[j], name, usize::MAX);
            let loud = demo::watch(&drifted[j], name, args.demo_drift_at as usize);
            for (q, l) in quiet.iter().zip(&loud) {
                let early = l.alarms - u64::from(l.first_after.is_some());
                match rows.iter_mut().find(|r| r.0 == *name && r.1 == q.method) {
                    Some(r) => {
                        r.2 += q.evaluations;
                        r.3 += q.alarms;
                        r.4 += early;
                        r.5.push(l.first_after);
                    }
                    None => rows.push((name.to_string(), q.method, q.evaluations, q.alarms, early, vec![l.first_after])),
                }
            }
        }
    }
    for (name, method, evals, alarms, early, delays) in rows {
        let flagged = delays.iter().flatten().count();
        let (median, _) = summary(&delays);
        let _ =
            writeln!(s, "| {name} | {method} | {evals} | {alarms} | {early} | {} ({flagged}/{}) |", median.map_or("-".into(), |m| m.to_string()), delays.len());
    }
    s.push('\n');
    Ok(s)
}

pub fn concept(args: &Args) -> String {
    let mut s = format!(
        "### Concept drift: ADWIN, DDM and Page-Hinkley on Bernoulli error streams\n\n\
         Stationary: {} streams of {} labels per error rate; false alarms per 100,000 labels watched (the job's detectors start after its grace). Steps: the error rate moves at label 20,000; median delay in labels over {} runs (share detected within 50,000 labels; alarms before the step in brackets).\n\n\
         | detector | setting | p 0.02 | p 0.1 | p 0.3 | 0.02 -> 0.04 | 0.1 -> 0.15 | 0.1 -> 0.2 | 0.3 -> 0.4 | 0.2 -> 0.1 (better) |\n|---|---|---|---|---|---|---|---|---|---|\n",
        args.concept_runs, args.labels, args.concept_runs
    );
    for setting in settings() {
        let mut cells: Vec<String> = Vec::new();
        for p in [0.02, 0.1, 0.3] {
            let (n, rate) = false_alarm_rate(&setting, p, args.concept_runs, args.labels, args.seed);
            cells.push(format!("{rate:.2} ({n})"));
        }
        for (p, q) in [(0.02, 0.04), (0.1, 0.15), (0.1, 0.2), (0.3, 0.4), (0.2, 0.1)] {
            let (d, early) = step(&setting, p, q, 20_000, 50_000, args.concept_runs, args.seed);
            cells.push(format!("{} [{early}]", delay_cell(&d)));
        }
        let _ = writeln!(s, "| {} | {} | {} |", setting.method, setting.label, cells.join(" | "));
    }
    s.push('\n');
    s
}
