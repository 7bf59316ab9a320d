//! Event-time-consistent online learning (`model::gate`): the same job over the
//! same events and labels serves identical scores whether its input is a burst
//! (a backfill: everything readable at once) or paced (records handed out over
//! wall time, each label 2,000 events after its event, as the demo's generator
//! publishes them), with one worker or two. The model still learns: scores move
//! away from the untrained 0.5 and many model versions serve.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::demo::generator::{GenConfig, Generator};
use vigil::learner::service::LabelSourceFactory;
use vigil::local::{run_local_sources, EventSources};
use vigil::metrics::Metrics;
use vigil::output::{MemorySink, Topic};
use vigil::source::{PacedSource, RecordSource};
use vigil::spec::JobSpec;

const EVENTS: usize = 40_000;
const PARTITIONS: usize = 4;

/// One generated record: which topic and partition, and its payload.
struct Record {
    label: bool,
    partition: usize,
    payload: Vec<u8>,
}

/// The demo's stream in publishing order: transactions, and each label after the
/// transaction 2,000 later.
fn stream() -> Vec<Record> {
    let mut g = Generator::new(GenConfig { seed: 11, bad_ratio: 0.005, ..GenConfig::default() });
    let mut out = Vec::new();
    for _ in 0..EVENTS {
        let t = g.next_transaction();
        let partition = (vigil::types::key_hash(&t.key) % PARTITIONS as u64) as usize;
        out.push(Record { label: false, partition, payload: t.payload });
        for l in g.due_labels() {
            out.push(Record { label: true, partition: 0, payload: l.payload });
        }
    }
    for l in g.remaining_labels() {
        out.push(Record { label: true, partition: 0, payload: l.payload });
    }
    out
}

fn job() -> JobSpec {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fraud_online.toml")).expect("the example job");
    let text = text.replace("runs_dir = \"runs\"", "").replace("consistency = \"event_time\"", "");
    let text = text.replace("[model.online]", "[model.online]\nconsistency = \"event_time\"");
    let job = JobSpec::from_toml(&text).expect("valid job");
    assert!(job.model.online.as_ref().is_some_and(|o| o.labels.time.is_some()), "the example's labels carry a time");
    job
}

/// Serves the stream (paced at `per_ms` records per ms, or as a burst) and returns
/// every event's (score, model version) by event id, and how many labels joined.
fn serve(records: &[Record], workers: usize, per_ms: Option<f64>) -> (HashMap<String, (f64, String)>, u64) {
    let mut events: Vec<Vec<(usize, Vec<u8>)>> = vec![Vec::new(); PARTITIONS];
    let mut labels: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match r.label {
            false => events[r.partition].push((i, r.payload.clone())),
            true => labels.push((i, r.payload.clone())),
        }
    }
    let events: Vec<Arc<Vec<(usize, Vec<u8>)>>> = events.into_iter().map(Arc::new).collect();
    let labels = vec![Arc::new(labels)];
    let clock = per_ms.map(|r| (Instant::now(), r));
    let sources: EventSources = Arc::new(move |index, peers| Box::new(PacedSource::new("transactions", &events, index, peers, clock)) as Box<dyn RecordSource>);
    let label_source: LabelSourceFactory = Box::new(move || Ok(Box::new(PacedSource::new("labels", &labels, 0, 1, clock)) as Box<dyn RecordSource>));
    let sink = MemorySink::new();
    let (learned, _) = run_local_sources(&job(), sources, label_source, workers, sink.clone(), Metrics::new(), None).expect("the job runs");
    let mut scores = HashMap::new();
    for (topic, _, payload) in sink.take() {
        if topic == Topic::Scores {
            let v: serde_json::Value = serde_json::from_slice(&payload).expect("scores are JSON");
            let id = v["event_id"].as_str().expect("an id").to_owned();
            let served = (v["score"].as_f64().expect("a score"), v["model_version"].as_str().unwrap_or_default().to_owned());
            assert!(scores.insert(id, served).is_none(), "each event is scored once");
        }
    }
    (scores, learned.expect("trained online").counts.joined)
}

#[test]
fn a_burst_and_a_paced_run_serve_the_same_scores() {
    let records = stream();
    let started = Instant::now();
    let (burst, joined) = serve(&records, 1, None);
    let burst_time = started.elapsed();
    assert!(burst.len() > EVENTS * 98 / 100, "{} scored", burst.len());
    assert!(joined > EVENTS as u64 * 9 / 10, "{joined} labels joined");
    let versions: std::collections::HashSet<&str> = burst.values().map(|(_, v)| v.as_str()).collect();
    assert!(versions.len() > 20, "the model moved: {} versions", versions.len());
    let untrained = burst.values().filter(|(s, _)| (*s - 0.5).abs() < 1e-9).count();
    assert!(untrained < burst.len() / 5, "{untrained} of {} scored by the untrained model", burst.len());

    // paced over about two seconds: scoring waits for the labels of its step
    let per_ms = records.len() as f64 / 2_000.0;
    for (workers, pace) in [(1, Some(per_ms)), (2, Some(per_ms)), (2, None)] {
        let (other, _) = serve(&records, workers, pace);
        assert_eq!(other.len(), burst.len(), "{workers} workers, paced {pace:?}");
        let differ: Vec<_> = burst.iter().filter(|(id, s)| other.get(*id) != Some(s)).take(5).map(|(id, s)| (id, s, other.get(id))).collect();
        assert!(differ.is_empty(), "{workers} workers, paced {pace:?}: scores differ, e.g. {differ:?}");
    }
    assert!(burst_time < Duration::from_secs(600));
}

/// `vigil replay` from files serves what the burst served, whatever its workers
/// and partitions.
#[test]
fn vigil_replay_from_files_serves_the_same_scores() {
    let records = stream();
    let (burst, _) = serve(&records, 1, None);
    let dir = std::env::temp_dir().join(format!("vigil-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let write = |name: &str, label: bool| {
        let path = dir.join(name);
        let mut text = Vec::new();
        for r in records.iter().filter(|r| r.label == label) {
            text.extend_from_slice(&r.payload);
            text.push(b'\n');
        }
        std::fs::write(&path, text).expect("write");
        path
    };
    let (events, labels) = (write("events.jsonl", false), write("labels.jsonl", true));
    let job = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fraud_online.toml");
    for (workers, partitions) in [("1", "1"), ("2", "3")] {
        let out = dir.join(format!("scores-{workers}.jsonl"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["replay", job, "--events"])
            .arg(&events)
            .arg("--labels")
            .arg(&labels)
            .args(["-w", workers, "--partitions", partitions, "--out"])
            .arg(&out)
            .current_dir(&dir)
            .status()
            .expect("vigil runs");
        assert!(status.success());
        let text = std::fs::read_to_string(&out).expect("scores written");
        let mut n = 0;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let id = v["event_id"].as_str().expect("id");
            let served = (v["score"].as_f64().expect("score"), v["model_version"].as_str().unwrap_or_default().to_owned());
            assert_eq!(burst.get(id), Some(&served), "event {id}, {workers} workers");
            n += 1;
        }
        assert_eq!(n, burst.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
