//! The drift monitor on a graph (`vigil::graph::Monitor`): its findings equal
//! those of the monitor fed by hand with every scored event in event-time order
//! (`watched_order`), and are the same with one worker, two workers and two
//! processes, through `job_graph` (a TOML job's `[monitor]` and `drift` topic).
//! The input is the demo's seeded transactions with a drift at 5/8, over three
//! partitions, with malformed records.

use std::sync::{Arc, Mutex};

use vigil::demo::generator::{GenConfig, Generator};
use vigil::graph::job::job_graph;
use vigil::graph::monitor::watched_order;
use vigil::graph::{Features, LocalRun, Model, Monitor, Source};
use vigil::metrics::Metrics;
use vigil::monitor::distribution::DistributionMonitors;
use vigil::monitor::interner::Interner;
use vigil::monitor::{DriftEmitter, DriftRecord, MemoryDriftSink, Observations};
use vigil::spec::JobSpec;
use vigil::types::key_hash;

const MONITOR: &str = r#"
[monitor]
interval = "10s"
window = 2000
reference = { kind = "first", skip = 12000, events = 2000 }   # after the 1-minute features warm up
numeric = ["amount", "tx_count_1m", "amount_mean_1m"]
categorical = ["country"]
"#;

const EVENTS: u64 = 40_000;
const DRIFT_AT: u64 = 25_000;

fn job() -> JobSpec {
    let text = std::fs::read_to_string("examples/fraud_job.toml").unwrap();
    let mut job = JobSpec::from_toml(&format!("{text}\n{MONITOR}")).unwrap();
    job.sinks.drift = Some("drift".into());
    job
}

fn input() -> Vec<Vec<Vec<u8>>> {
    let mut generator = Generator::new(GenConfig { seed: 5, cards: 300, merchants: 30, bad_ratio: 0.01, drift_at: Some(DRIFT_AT), ..GenConfig::default() });
    let mut parts = vec![Vec::new(); 3];
    for _ in 0..EVENTS {
        let g = generator.next_transaction();
        parts[(key_hash(&g.key) % 3) as usize].push(g.payload);
    }
    parts
}

/// A watched event: time, numeric values, strings, score.
type Row = (i64, Vec<f64>, Vec<Option<String>>, f32);

/// Findings sorted by (time, kind, name, method): a run's sink is ordered per key only.
fn sorted(mut records: Vec<DriftRecord>) -> Vec<DriftRecord> {
    records.sort_by(|a, b| (a.ts, &a.kind, &a.name, &a.method).cmp(&(b.ts, &b.kind, &b.name, &b.method)));
    records
}

fn parse(values: Vec<String>) -> Vec<DriftRecord> {
    sorted(values.iter().map(|v| serde_json::from_str(v).unwrap()).collect())
}

/// Equal, or the first difference.
fn same(a: &[DriftRecord], b: &[DriftRecord], what: &str) {
    if let Some(i) = (0..a.len().max(b.len())).find(|i| a.get(*i) != b.get(*i)) {
        panic!("{what}: {} and {} findings, first difference at {i}: {:?} vs {:?}", a.len(), b.len(), a.get(i), b.get(i));
    }
}

/// The job's graph by hand, with every scored event's watched values kept.
fn by_hand(job: &JobSpec, input: &[Vec<Vec<u8>>]) -> (Vec<DriftRecord>, Vec<Row>) {
    let rows: Arc<Mutex<Vec<Row>>> = Arc::default();
    let (kept, job2) = (rows.clone(), job.clone());
    let out = LocalRun::new(1)
        .topic("transactions", input.to_vec())
        .run(move |g| {
            let m = job2.monitor.clone().unwrap();
            let (numeric, strings): (Vec<String>, Vec<String>) =
                (m.numeric.iter().map(|n| n.0.clone()).collect(), m.categorical.iter().map(|c| c.0.clone()).collect());
            let kept = kept.clone();
            let scored = g
                .source(Source::from_spec(job2.source.clone()).keep_strings(&job2.strings))
                .features_scored("features", Features::of_job(&job2)?, Model::of_job(&job2)?)
                .inspect(move |r| {
                    let record = &r.value.record;
                    let values = numeric.iter().map(|n| record.f64(n).unwrap_or(f64::NAN)).collect();
                    let strings = strings.iter().map(|s| record.str(s).map(str::to_owned)).collect();
                    kept.lock().unwrap().push((r.time_ms, values, strings, r.value.score as f32));
                });
            scored.monitor("monitor", Monitor::of_job(&job2)?).sink_drift("drift");
            Ok(())
        })
        .unwrap();
    let rows = std::mem::take(&mut *rows.lock().unwrap());
    (parse(out.values("drift")), rows)
}

/// The monitor fed by hand: every row in `watched_order`, then the last evaluation.
fn oracle(job: &JobSpec, mut rows: Vec<Row>) -> Vec<DriftRecord> {
    rows.sort_by(|a, b| watched_order((a.0, &a.1, &a.2, a.3), (b.0, &b.1, &b.2, b.3)));
    let m = job.monitor.clone().unwrap();
    let sink = MemoryDriftSink::new();
    let emitter = DriftEmitter::new(Some(sink.clone()), Metrics::new(), m.spec.patience);
    let mut monitors = DistributionMonitors::new(&m, emitter, None);
    let ids: Vec<Arc<Interner>> = m.categorical.iter().map(|_| Interner::new()).collect();
    let mut o = Observations::default();
    for (t, numeric, strings, score) in &rows {
        o.time_ms.push(*t);
        o.numeric.extend(numeric);
        o.categorical.extend(strings.iter().zip(&ids).map(|(s, i)| i.id(s.as_deref())));
        o.score.push(*score);
    }
    monitors.observe(&o);
    monitors.finish();
    sorted(sink.records())
}

#[test]
fn the_monitor_takes_events_in_event_time_order_at_any_worker_count() {
    let (job, input) = (job(), input());
    let (found, rows) = by_hand(&job, &input);
    assert!(rows.len() as u64 > EVENTS * 98 / 100, "scored: {}", rows.len());
    same(&found, &oracle(&job, rows), "the graph's monitor against the monitor fed by hand");
    // what the monitor found: evaluations every 10 s of event time, drift after the change only
    assert!(found.len() > 100, "findings: {}", found.len());
    let alarms: Vec<&DriftRecord> = found.iter().filter(|r| r.drift).collect();
    assert!(alarms.iter().any(|r| r.kind == "feature" && r.name == "amount"), "the amounts drift");
    let g = GenConfig::default();
    let drift_ms = g.start_ms + (DRIFT_AT as f64 / g.events_per_second * 1000.0) as i64;
    assert!(alarms.iter().all(|r| r.ts > drift_ms), "no alarm before the drift: {:?}", alarms.first());

    // the TOML job through the graph: the same findings with 1 and 2 workers, and 2 processes
    for (workers, processes) in [(1, 1), (2, 1), (1, 2)] {
        let j = job.clone();
        let out = LocalRun::new(workers).processes(processes).topic("transactions", input.clone()).run(move |g| job_graph(g, &j)).unwrap();
        same(&parse(out.values("drift")), &found, &format!("{workers} workers, {processes} processes"));
        assert!(out.dead.len() > 100, "malformed records are dead letters");
    }
}
