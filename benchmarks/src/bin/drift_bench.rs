//! `drift-bench`: vigil's concept-drift detectors against River's on identical
//! error streams with known drift points.
//!
//! Streams (`benchmarks/drift_river.py generate`): the 0/1 error stream of a River
//! GaussianNB learning test-then-train on SEA with abrupt concept switches, on
//! Agrawal with a gradual drift (`ConceptDriftStream`, position and width), and on
//! drift-free streams of the same length; plus the demo's own stream: the online
//! learner's champion replayed deterministically (`learner::replay`) over the
//! demo's transactions with and without `--drift-at`, one error (decision at 0.5
//! versus label) per labeled event. River's ADWIN, DDM and PageHinkley (defaults)
//! and vigil's (the same parameters) run over the same bytes; the program records
//! detection positions, whether they are equal, delay, missed drifts, false alarms
//! and updates/s, and vigil's demo configuration (grace, rising errors only) on the demo
//! streams.
//!
//! Run: `cargo run --release -p vigil-benchmarks --bin drift-bench`

#[path = "../report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use serde_json::Value;
use vigil::demo::fraud_online_job;
use vigil::demo::record::{demo_stream, record_stream};
use vigil::gpu::DeviceChoice;
use vigil::learner::replay::replay;
use vigil_operators::drift::{detections, Adwin, AdwinConfig, ChangeDetector, Ddm, DdmConfig, Direction, PageHinkley, PageHinkleyConfig};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Items per synthetic stream.
    #[arg(long, default_value_t = 100_000)]
    length: usize,
    /// Events of each demo stream.
    #[arg(long, default_value_t = 300_000)]
    demo_events: u64,
    #[arg(long, default_value_t = 100_000)]
    demo_drift_at: u64,
    /// Timing repeats (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    #[arg(long, default_value = "target/drift-streams")]
    dir: PathBuf,
    #[arg(long, default_value = "benchmarks/RESULTS.md")]
    out: String,
}

/// One error stream and what is known about it.
struct Stream {
    name: String,
    values: Vec<f64>,
    drift_points: Vec<usize>,
    width: usize,
    river: Value,
}

fn python(args: &[&str]) -> Result<String> {
    let out =
        Command::new("python3").arg("benchmarks/drift_river.py").args(args).output().context("running python3 (River: `python3 -m pip install river`)")?;
    if !out.status.success() {
        bail!("drift_river.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn read_errors(path: &Path) -> Result<Vec<f64>> {
    Ok(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?.into_iter().map(f64::from).collect())
}

/// The demo's error streams: the replayed champion's decision against each label
/// (0/1), and the share of variants in error (what the job's monitor watches).
fn demo_errors(events: u64, seed: u64, drift_at: Option<u64>) -> Result<(Vec<u8>, Vec<f64>, Option<usize>)> {
    let mut job = fraud_online_job();
    let online = job.model.online.as_mut().expect("the demo trains online");
    online.device = DeviceChoice::Cpu;
    online.runs_dir = None;
    let (payloads, labels) = demo_stream(events, seed, drift_at);
    let stream = record_stream(&job, payloads, &labels)?;
    let run = replay(job.model.online.clone().expect("online"), &stream, 2_000, 256)?;
    let (mut errors, mut shares, mut drift_index) = (Vec::new(), Vec::new(), None);
    for (i, (e, served)) in stream.iter().zip(&run.served).enumerate() {
        if let Some(label) = e.label {
            shares.push(run.population_error[i] as f64);
            // the event index of the drift, mapped to the labeled events' order
            if drift_at.is_some_and(|d| i as u64 >= d - 1) && drift_index.is_none() {
                drift_index = Some(errors.len());
            }
            errors.push(((*served >= 0.5) != label) as u8);
        }
    }
    Ok((errors, shares, drift_index))
}

/// River's defaults, timed with the concrete type (static dispatch, as a program
/// using the operator library calls it).
fn run_default(name: &str, values: &[f64], repeats: usize) -> (Vec<usize>, f64) {
    match name {
        "adwin" => run_vigil(&|| Adwin::new(AdwinConfig::default()), values, repeats),
        "ddm" => run_vigil(&|| Ddm::new(DdmConfig::default()), values, repeats),
        _ => run_vigil(&|| PageHinkley::new(PageHinkleyConfig::default()), values, repeats),
    }
}

/// Detections and the median updates/s over `repeats` fresh runs.
fn run_vigil<D: ChangeDetector>(make: &dyn Fn() -> D, values: &[f64], repeats: usize) -> (Vec<usize>, f64) {
    let found = detections(&mut make(), values.iter().copied());
    let mut rates: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let mut d = make();
            let start = Instant::now();
            let mut n = 0u64;
            for &x in values {
                n += d.update(std::hint::black_box(x)) as u64;
            }
            std::hint::black_box(n);
            values.len() as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    (found, rates[rates.len() / 2])
}

/// Per drift point: the delay of the first detection in [point - width/2, next point);
/// detections before the first such range (or any, without drift) are false alarms.
struct Scored {
    delays: Vec<Option<usize>>,
    false_alarms: usize,
}

fn score(found: &[usize], points: &[usize], width: usize) -> Scored {
    let start = |p: usize| p.saturating_sub(width / 2);
    let mut delays = Vec::new();
    for (i, &p) in points.iter().enumerate() {
        let end = points.get(i + 1).map_or(usize::MAX, |q| start(*q));
        delays.push(found.iter().find(|&&f| f >= start(p) && f < end).map(|&f| f.saturating_sub(p)));
    }
    let first = points.first().map_or(usize::MAX, |p| start(*p));
    Scored { delays, false_alarms: found.iter().filter(|&&f| f < first).count() }
}

fn fmt_delays(s: &Scored) -> String {
    if s.delays.is_empty() {
        return "-".into();
    }
    s.delays.iter().map(|d| d.map_or("missed".into(), |d| d.to_string())).collect::<Vec<_>>().join(", ")
}

fn fmt_positions(v: &[usize]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let shown: Vec<String> = v.iter().take(8).map(|p| p.to_string()).collect();
    if v.len() > 8 {
        format!("{} (+{} more)", shown.join(", "), v.len() - 8)
    } else {
        shown.join(", ")
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let dir = args.dir.to_str().ok_or_else(|| anyhow!("the stream directory must be UTF-8"))?;

    let t = Instant::now();
    python(&["generate", "--out", dir, "--seed", &args.seed.to_string(), "--length", &args.length.to_string()])?;
    eprintln!("synthetic streams and River's detections in {:.0} s", t.elapsed().as_secs_f64());

    let mut streams = Vec::new();
    for name in ["sea_abrupt", "sea_stable", "agrawal_gradual", "agrawal_stable"] {
        let meta: Value = serde_json::from_str(&std::fs::read_to_string(args.dir.join(format!("{name}.json")))?)?;
        let points = meta["drift_points"].as_array().map(|a| a.iter().filter_map(|v| v.as_u64().map(|v| v as usize)).collect()).unwrap_or_default();
        streams.push(Stream {
            name: name.into(),
            values: read_errors(&args.dir.join(format!("{name}.errors")))?,
            drift_points: points,
            width: meta["drift_width"].as_u64().unwrap_or(1) as usize,
            river: meta["river"]["detectors"].clone(),
        });
    }

    let t = Instant::now();
    let mut demo = Vec::new();
    let mut demo_shares = Vec::new();
    for (name, drift) in [("demo_drift", Some(args.demo_drift_at)), ("demo_stable", None)] {
        let (errors, shares, drift_index) = demo_errors(args.demo_events, args.seed, drift)?;
        let path = args.dir.join(format!("{name}.errors"));
        std::fs::write(&path, &errors)?;
        demo_shares.push(shares);
        demo.push((name, path, errors, drift_index));
    }
    eprintln!("demo error streams (replayed learner) in {:.0} s", t.elapsed().as_secs_f64());
    let paths: Vec<&str> = demo.iter().map(|d| d.1.to_str().expect("utf-8 path")).collect();
    let river: Value = serde_json::from_str(&python(&[&["detect"], paths.as_slice()].concat())?)?;
    for (i, (name, _, errors, drift_index)) in demo.into_iter().enumerate() {
        streams.push(Stream {
            name: name.into(),
            values: errors.iter().map(|e| *e as f64).collect(),
            drift_points: drift_index.into_iter().collect(),
            width: 1,
            river: river["files"][i]["detectors"].clone(),
        });
    }

    let mut rows = Vec::new();
    let mut all_equal = true;
    let mut ratios: Vec<(String, f64)> = Vec::new();
    for s in &streams {
        for det in ["adwin", "ddm", "page_hinkley"] {
            let river_found: Vec<usize> =
                s.river[det]["detections"].as_array().map(|a| a.iter().filter_map(|v| v.as_u64().map(|v| v as usize)).collect()).unwrap_or_default();
            let river_rate = s.river[det]["updates_per_s"].as_f64().unwrap_or(f64::NAN);
            let (found, rate) = run_default(det, &s.values, args.repeats);
            let equal = found == river_found;
            all_equal &= equal;
            ratios.push((det.to_owned(), rate / river_rate));
            let (sv, sr) = (score(&found, &s.drift_points, s.width), score(&river_found, &s.drift_points, s.width));
            rows.push(format!(
                "| {} | {} | {} | {} | {} / {} | {} / {} | {:.1}M | {:.2}M | {:.0}x |",
                s.name,
                det,
                fmt_positions(&found),
                if equal { "yes".to_owned() } else { format!("no (River: {})", fmt_positions(&river_found)) },
                fmt_delays(&sv),
                fmt_delays(&sr),
                sv.false_alarms,
                sr.false_alarms,
                rate / 1e6,
                river_rate / 1e6,
                rate / river_rate,
            ));
        }
    }

    // the demo job's configuration (examples/fraud_online.toml): the share of
    // variants in error, after a grace of 10,000 labels, ADWIN at delta 1e-7 with
    // sub-windows of at least 10,000 labels, rising errors only
    let mut demo_rows = Vec::new();
    let grace = 10_000;
    for (s, shares) in streams.iter().filter(|s| s.name.starts_with("demo")).zip(&demo_shares) {
        let make = || Adwin::new(AdwinConfig { delta: 1e-7, min_window_length: 10_000, direction: Direction::Up, ..Default::default() });
        let (found, _) = run_vigil(&make, &shares[grace..], 1);
        let found: Vec<usize> = found.into_iter().map(|i| i + grace).collect();
        let sc = score(&found, &s.drift_points, 1);
        demo_rows.push(format!(
            "| {} | adwin (delta 1e-7, min window 10000, up) on the variants' error share | {} | {} | {} |",
            s.name,
            fmt_positions(&found),
            fmt_delays(&sc),
            sc.false_alarms
        ));
    }

    let median_ratio = |det: &str| {
        let mut r: Vec<f64> = ratios.iter().filter(|(d, _)| d == det).map(|(_, r)| *r).filter(|r| r.is_finite()).collect();
        r.sort_by(f64::total_cmp);
        r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let heading = "## Concept-drift detectors vs River (ADWIN, DDM, Page-Hinkley)";
    let section = format!(
        "{heading} (measured {})\n\n\
         Machine: {}. Command: `cargo run --release -p vigil-benchmarks --bin drift-bench -- --seed {} --length {} --demo-events {} --demo-drift-at {}`.\n\n\
         Error streams (1 = misclassified): River 0.26.1 GaussianNB learning test-then-train on SEA (abrupt concept switches at N/4, N/2, 3N/4), \
         on Agrawal (gradual drift: `ConceptDriftStream` position N/2, width N/10) and on drift-free streams of the same length \
         (`benchmarks/drift_river.py`); and the demo stream: vigil's online champion replayed over the demo's transactions, one error per labeled event, \
         with the demo's concept drift at event {} (error index given as the drift point) and without. \
         Both sides use River's default parameters (ADWIN delta 0.002, clock 32; DDM warm start 30, 2/3 sigma; Page-Hinkley delta 0.005, threshold 50, alpha 0.9999, both directions) \
         and River's reset after a detection. Delay: from each drift point (for the gradual drift, from its centre) to the first detection in \
         [point - width/2, next point); false alarms: detections before the first drift (all of them on drift-free streams). \
         Updates/s: the whole stream through one detector, median of {} runs (vigil) and of 3 (River, timed in Python around `update`).\n\n\
         | stream | detector | vigil detections | same as River | delay vigil / River | false alarms vigil / River | vigil upd/s | River upd/s | ratio |\n\
         |---|---|---|---|---|---|---|---|---|\n{}\n\n\
         Detection positions identical to River's on every stream and detector: **{}**. Median throughput ratio vigil/River: ADWIN {:.0}x, DDM {:.0}x, Page-Hinkley {:.0}x \
         (River 0.26's ADWIN is itself Rust behind Python; its DDM and Page-Hinkley are Python).\n\n\
         The demo job's own setting (`examples/fraud_online.toml`): the share of variants in error per labeled event (champion swaps move the served error; \
         every variant errs more under a new concept), detectors from label {grace} on, ADWIN at delta 1e-7 with sub-windows of at least 10,000 labels, rising errors only. \
         Fraud errors come in bursts (a card tester's run is missed a few times before the 1-minute counts catch it), which River's defaults on 0/1 errors \
         take for changes now and then (see `demo_stable` above). Through Kafka the same setting is exercised by `tests/drift_monitoring.rs`:\n\n\
         | stream | detector | detections (label index) | delay | false alarms |\n|---|---|---|---|---|\n{}\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        report::machine(),
        args.seed,
        args.length,
        args.demo_events,
        args.demo_drift_at,
        args.demo_drift_at,
        args.repeats,
        rows.join("\n"),
        if all_equal { "yes" } else { "no (see the table)" },
        median_ratio("adwin"),
        median_ratio("ddm"),
        median_ratio("page_hinkley"),
        demo_rows.join("\n"),
    );
    println!("{section}");
    report::write_section(&args.out, heading, &section)?;
    monitor_cost(&args)?;
    Ok(())
}

/// The feature- and prediction-drift monitor's own cost, on the monitor thread:
/// the demo job's `[monitor]` (5 numeric values, 1 categorical, windows of
/// 20,000, an evaluation per minute of event time = 12,000 events at the demo's
/// rate), fed by batches of 256 scored events, against a plain loop that only
/// copies the same values into ring buffers.
fn monitor_cost(args: &Args) -> Result<()> {
    use vigil::monitor::distribution::{DistributionMonitors, Observations};
    use vigil::monitor::{DriftEmitter, MemoryDriftSink};
    let job = fraud_online_job();
    let m = job.monitor.clone().expect("the demo job is monitored");
    let (f, n) = (m.numeric.len(), 1_200_000usize);
    let batches: Vec<Observations> = (0..n / 256)
        .map(|b| {
            let mut o = Observations::default();
            for i in 0..256 {
                let k = (b * 256 + i) as u64;
                let u = (vigil_operators::learn::SplitMix(k).next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                o.time_ms.push((k * 5) as i64);
                o.numeric.extend((0..f).map(|j| (u * (j + 1) as f64 * 7.0).exp()));
                o.categorical.push((k % 12) as u32);
                o.score.push(u as f32);
            }
            o
        })
        .collect();
    let mut rates = Vec::new();
    let mut evaluations = 0;
    for _ in 0..args.repeats.max(1) {
        let sink = MemoryDriftSink::new();
        let emitter = DriftEmitter::new(Some(sink.clone() as std::sync::Arc<dyn vigil::monitor::DriftSink>), vigil::metrics::Metrics::new(), 2);
        let mut monitors = DistributionMonitors::new(&m, emitter, None);
        let start = Instant::now();
        for b in &batches {
            monitors.observe(b);
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
        evaluations = sink.records().iter().map(|r| r.ts).collect::<std::collections::BTreeSet<_>>().len();
    }
    rates.sort_by(f64::total_cmp);
    let rate = rates[rates.len() / 2];
    // the plain loop: the same values into fixed rings, nothing evaluated
    let mut rings: Vec<std::collections::VecDeque<f64>> = vec![std::collections::VecDeque::with_capacity(20_001); f + 2];
    let start = Instant::now();
    for b in &batches {
        for i in 0..b.len() {
            for (j, r) in rings.iter_mut().enumerate() {
                let v = if j < f {
                    b.numeric[i * f + j]
                } else if j == f {
                    b.categorical[i] as f64
                } else {
                    b.score[i] as f64
                };
                r.push_back(v);
                if r.len() > 20_000 {
                    r.pop_front();
                }
            }
        }
    }
    std::hint::black_box(&rings);
    let plain = n as f64 / start.elapsed().as_secs_f64();
    let heading = "## Drift monitor cost (feature and prediction drift)";
    let section = format!(
        "{heading} (measured {})\n\nMachine: {}. Command: `cargo run --release -p vigil-benchmarks --bin drift-bench`.\n\n\
         The demo job's `[monitor]` ({f} numeric values, 1 categorical, the served score and positive rate; windows of 20,000; one evaluation per minute of event time, \
         {evaluations} evaluations over {n} synthetic events at the demo's 200 events/s of event time), fed batches of 256 events on one thread (the monitor thread), \
         median of {} runs: **{:.2}M events/s** ({:.2} us per event, evaluations included). Upper limit, a plain loop copying the same values into rings of 20,000: \
         {:.1}M events/s. The job's scorers only append the watched values to a batch and send it over a channel; at the demo's ~60-80K events/s end to end \
         (bound by the embedded broker) the monitor thread is busy {:.0}% of the time.\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        report::machine(),
        args.repeats,
        rate / 1e6,
        1e6 / rate,
        plain / 1e6,
        100.0 * 80_000.0 / rate,
    );
    println!("{section}");
    report::write_section(&args.out, heading, &section)
}
