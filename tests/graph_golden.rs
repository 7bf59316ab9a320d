//! Golden tests: a job (TOML) built as a graph (`vigil::graph::job::job_graph`)
//! gives the same records as the job's own pipeline, byte for byte: every score
//! (per key, in order), `features` record, closed window, join output and dead
//! letter. Inputs are seeded:
//! the fraud demo's transactions and an engagement feed, with malformed records,
//! gaps, disorder and late records, over several partitions; the graph runs with
//! one and two workers.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil::demo::generator::{GenConfig, Generator};
use vigil::gpu::DeviceChoice;
use vigil::graph::job::job_graph;
use vigil::graph::LocalRun;
use vigil::learner::{Consistency, LearnerSummary};
use vigil::metrics::Metrics;
use vigil::output::{MemorySink, Topic};
use vigil::spec::JobSpec;
use vigil::types::key_hash;

type Partitions = Vec<Vec<Option<Vec<u8>>>>;

/// What a run wrote: records per key (scores in offset order, windows sorted),
/// dead letters sorted. (A key's records are written in its partition's offset
/// order by both; `LocalRun` hands its sinks back sorted by epoch, key and time.)
#[derive(Debug, Default, PartialEq)]
struct Written {
    scores: BTreeMap<String, Vec<String>>,
    windows: BTreeMap<String, Vec<String>>,
    /// The `features` topic: values and tombstones (`null`), sorted per key.
    features: BTreeMap<String, Vec<String>>,
    /// The `joins` topic, sorted per key.
    joins: BTreeMap<String, Vec<String>>,
    /// The shadow topic (challengers' scores), sorted per key.
    shadow: BTreeMap<String, Vec<String>>,
    /// The drift topic's findings on labeled outcomes (concept drift and
    /// fairness: the learner's), as JSON, sorted.
    labeled: Vec<String>,
    dead: Vec<(String, u32, i64, String, String, u64)>,
}

impl Written {
    fn sorted(mut self) -> Self {
        let offset = |s: &String| serde_json::from_str::<serde_json::Value>(s).unwrap()["source_offset"].as_i64().unwrap();
        self.scores.values_mut().for_each(|v| v.sort_by_key(offset));
        self.windows.values_mut().for_each(|v| v.sort());
        self.features.values_mut().for_each(|v| v.sort());
        self.joins.values_mut().for_each(|v| v.sort());
        self.shadow.values_mut().for_each(|v| v.sort());
        self.labeled.sort();
        self
    }
}

fn job(path: &str) -> JobSpec {
    JobSpec::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A dead letter's detail without the wall clock it names (a timestamp too far
/// ahead is judged against `max(partition maximum, now)`).
fn steady(detail: &str) -> String {
    match detail.find(" ahead of ") {
        Some(i) => format!("{} ahead of (now)", &detail[..i]),
        None => detail.to_owned(),
    }
}

fn pipeline(job: &JobSpec, input: &Partitions, labels: &Partitions) -> (Written, Option<LearnerSummary>) {
    let sink = MemorySink::new();
    let topic = input.iter().map(|p| Arc::new(p.clone())).collect();
    let labels = labels.iter().map(|p| Arc::new(p.clone())).collect();
    let drift = vigil::monitor::MemoryDriftSink::new();
    let to = Some(drift.clone() as Arc<dyn vigil::monitor::DriftSink>);
    let (learned, _) = vigil::local::run_local_monitored(job, &topic, &labels, 1, sink.clone(), Metrics::new(), to).unwrap();
    let mut w = Written::default();
    for (topic, key, payload) in sink.take() {
        let key = String::from_utf8(key).unwrap();
        let text = String::from_utf8(payload).unwrap();
        match topic {
            Topic::Scores => w.scores.entry(key).or_default().push(text),
            Topic::Features if text.is_empty() => w.features.entry(key).or_default().push("null".into()),
            Topic::Features => w.features.entry(key).or_default().push(text),
            Topic::Joins => w.joins.entry(key).or_default().push(text),
            Topic::Windows => w.windows.entry(key).or_default().push(text),
            Topic::Shadow => w.shadow.entry(key).or_default().push(text),
            Topic::Dlq => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let s = |f: &str| v[f].as_str().unwrap().to_owned();
                let n = |f: &str| v[f].as_i64().unwrap();
                w.dead.push((s("source_topic"), n("source_partition") as u32, n("source_offset"), s("reason"), steady(&s("detail")), n("payload_len") as u64));
            }
        }
    }
    w.dead.sort();
    w.labeled = drift.records().iter().filter(|r| is_labeled(r)).map(|r| serde_json::to_string(r).unwrap()).collect();
    (w.sorted(), learned)
}

/// A finding on labeled outcomes (the learner's monitors).
fn is_labeled(r: &vigil::monitor::DriftRecord) -> bool {
    r.kind == "concept" || r.kind == "fairness"
}

fn graph(job: &JobSpec, input: &Partitions, labels: &Partitions, workers: usize) -> (Written, Option<LearnerSummary>) {
    let (job2, topic) = (job.clone(), job.source.topic.clone());
    let mut run = LocalRun::new(workers).epoch_records(997).topic_with_gaps(&topic, input.clone());
    if let Some(online) = &job.model.online {
        run = run.topic_with_gaps(&online.labels.topic, labels.clone());
    }
    let mut out = run.run(move |g| job_graph(g, &job2)).unwrap();
    let mut w = Written::default();
    for r in out.sink(&job.sinks.scores) {
        w.scores.entry(r.key.clone()).or_default().push(r.value.clone().unwrap());
    }
    if let Some(joins) = &job.sinks.joins {
        for r in out.sink(joins) {
            w.joins.entry(r.key.clone()).or_default().push(r.value.clone().unwrap());
        }
    }
    if let Some(features) = &job.sinks.features {
        for r in out.sink(features) {
            w.features.entry(r.key.clone()).or_default().push(r.value.clone().unwrap_or_else(|| "null".into()));
        }
    }
    if let Some(drift) = &job.sinks.drift {
        let records = out.values(drift).iter().map(|v| serde_json::from_str::<vigil::monitor::DriftRecord>(v).unwrap()).collect::<Vec<_>>();
        w.labeled = records.iter().filter(|r| is_labeled(r)).map(|r| serde_json::to_string(r).unwrap()).collect();
        if job.model.online.is_some() {
            // the stream's monitor re-scores the predictions with the current champion
            assert!(records.iter().any(|r| r.kind == "prediction"), "prediction drift findings, {workers} workers");
        }
    }
    if let Some(shadow) = &job.sinks.shadow {
        for r in out.sink(shadow) {
            w.shadow.entry(r.key.clone()).or_default().push(r.value.clone().unwrap());
        }
    }
    if let Some(windows) = &job.sinks.windows {
        for r in out.sink(windows) {
            w.windows.entry(r.key.clone()).or_default().push(r.value.clone().unwrap());
        }
    }
    w.dead = out
        .dead
        .iter()
        .map(|d| (d.topic.clone(), d.partition, d.offset, d.reason.to_owned(), steady(&d.detail), d.payload.as_ref().map_or(0, |p| p.len() as u64)))
        .collect();
    w.dead.sort();
    (w.sorted(), out.learners.pop_first().map(|(_, l)| l))
}

/// Payloads spread by key over `partitions`, with a gap (a record without a
/// payload) now and then and some records re-sent much later (late).
fn spread(records: Vec<(String, Vec<u8>)>, partitions: usize, seed: u64) -> Partitions {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out: Partitions = vec![Vec::new(); partitions];
    let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); partitions];
    for (key, payload) in records {
        let p = (key_hash(&key) % partitions as u64) as usize;
        if rng.gen_bool(0.002) {
            out[p].push(None);
        }
        if rng.gen_bool(0.003) && sent[p].len() > 2000 {
            let old = sent[p][sent[p].len() - 2000].clone();
            out[p].push(Some(old));
        }
        sent[p].push(payload.clone());
        out[p].push(Some(payload));
    }
    out
}

fn check(job: &JobSpec, input: &Partitions) -> Written {
    check_learning(job, input, &Vec::new()).0
}

/// [`check`] for a job with labels; also compares what the learners did.
fn check_learning(job: &JobSpec, input: &Partitions, labels: &Partitions) -> (Written, Option<LearnerSummary>) {
    let (expected, learned) = pipeline(job, input, labels);
    assert!(expected.scores.values().map(Vec::len).sum::<usize>() > 1000, "the input scores");
    for reason in ["late", "not_json", "empty"] {
        assert!(expected.dead.iter().any(|d| d.3 == reason), "the input has `{reason}` records");
    }
    for workers in [1, 2] {
        let (got, got_learned) = graph(job, input, labels, workers);
        assert_eq!(got_learned.as_ref().map(|l| &l.counts), learned.as_ref().map(|l| &l.counts), "learners, {workers} workers");
        assert_eq!(got.dead, expected.dead, "dead letters, {workers} workers");
        assert_eq!(got.windows, expected.windows, "closed windows, {workers} workers");
        assert_eq!(got.features, expected.features, "the features topic, {workers} workers");
        assert_eq!(got.joins, expected.joins, "the joins topic, {workers} workers");
        assert_eq!(got.shadow, expected.shadow, "the shadow topic, {workers} workers");
        assert_eq!(got.labeled, expected.labeled, "concept drift and fairness findings, {workers} workers");
        assert_eq!(got.scores.len(), expected.scores.len(), "keys scored, {workers} workers");
        for (key, scores) in &expected.scores {
            let mine = got.scores.get(key).map(Vec::as_slice).unwrap_or_default();
            for (i, (a, b)) in mine.iter().zip(scores).enumerate() {
                assert_eq!(a, b, "score {i} of {key}, {workers} workers");
            }
            assert_eq!(mine.len(), scores.len(), "scores of {key}, {workers} workers");
        }
    }
    (expected, learned)
}

#[test]
fn the_fraud_job_through_the_graph_writes_what_the_pipeline_writes() {
    let mut job = job("examples/fraud_job.toml");
    let mut generator = Generator::new(GenConfig { seed: 11, cards: 400, merchants: 40, bad_ratio: 0.02, ..GenConfig::default() });
    let records: Vec<_> = (0..12_000).map(|_| generator.next_transaction()).map(|g| (g.key, g.payload)).collect();
    let input = spread(records, 3, 1);
    // as written: features and score in one operator (`features_scored`)
    check(&job, &input);
    // with the `features` topic: the features operator's outputs, then the score
    job.sinks.features = Some("features".into());
    let written = check(&job, &input);
    assert!(written.dead.iter().any(|d| d.3 == "bad_timestamp"));
}

/// The offline log written by the graph (`sink_offline`, what `vigil run
/// --engine graph --data-dir` does) holds one row per scored event: the event's
/// key, id, time and source position and exactly the features of its `scores`
/// record, as the pipeline's log does (`tests/offline_training.rs`).
#[test]
fn the_offline_log_holds_each_scored_events_features() {
    use vigil::graph::job::{job_graph_with, JobIo};
    use vigil::offline::export::{log_files, read_log_file};
    use vigil::offline::log::{OfflineConfig, OfflineLog};

    let job = job("examples/fraud_job.toml");
    let names: Vec<String> = job.features.iter().map(|f| f.name().to_owned()).collect();
    let mut generator = Generator::new(GenConfig { seed: 5, cards: 300, merchants: 30, bad_ratio: 0.02, ..GenConfig::default() });
    let records: Vec<_> = (0..6_000).map(|_| generator.next_transaction()).map(|g| (g.key, g.payload)).collect();
    let input = spread(records, 3, 2);
    for workers in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        // small files: several flushes, several files per hour
        let cfg = OfflineConfig { flush_rows: 1_000, ..OfflineConfig::new(dir.path(), names.clone()) };
        let log = OfflineLog::start(cfg, None, Metrics::new()).unwrap();
        let io = JobIo { offline: Some(log.link.clone()), ..JobIo::default() };
        let j = job.clone();
        let out = LocalRun::new(workers).epoch_records(997).topic_with_gaps("transactions", input.clone()).run(move |g| job_graph_with(g, &j, &io)).unwrap();
        let summary = log.finish().unwrap();
        // each score record as the row it should be: (key, event id, time, partition, offset, features)
        type Row = (String, Option<String>, i64, u32, i64, Vec<Option<f64>>);
        let mut expected: Vec<Row> = out
            .values(&job.sinks.scores)
            .iter()
            .map(|text| {
                let v: serde_json::Value = serde_json::from_str(text).unwrap();
                let features = names.iter().map(|n| v["features"][n].as_f64()).collect();
                let id = v["event_id"].as_str().map(str::to_owned);
                (
                    v["key"].as_str().unwrap().to_owned(),
                    id,
                    v["event_time"].as_i64().unwrap(),
                    v["source_partition"].as_u64().unwrap() as u32,
                    v["source_offset"].as_i64().unwrap(),
                    features,
                )
            })
            .collect();
        let mut logged: Vec<Row> = Vec::new();
        let files = log_files(&dir.path().join("offline")).unwrap();
        assert_eq!(files.len() as u64, summary.files, "{workers} workers");
        assert!(files.len() > 3, "{workers} workers: several files ({})", files.len());
        for file in files {
            let rows = read_log_file(&file, &names).unwrap();
            for i in 0..rows.len() {
                let features = rows.values.iter().map(|c| c[i]).collect();
                logged.push((rows.keys[i].clone(), rows.event_ids[i].clone(), rows.times_ms[i], rows.partitions[i], rows.offsets[i], features));
            }
        }
        assert!(expected.len() > 5_000, "{workers} workers: the input scores");
        assert_eq!(summary.rows, expected.len() as u64, "{workers} workers: one row per score");
        let order = |a: &Row, b: &Row| (a.3, a.4).cmp(&(b.3, b.4));
        expected.sort_by(order);
        logged.sort_by(order);
        assert_eq!(logged, expected, "{workers} workers");
    }
}

/// Lookup features (`[[table]]`, `agg = "lookup"`) through the graph read the
/// tables as the pipeline does: the same scores, byte for byte, with tables that
/// saw overwrites, deletes and bad records (lookups by the event key and by a
/// string field).
#[test]
fn lookups_in_tables_score_as_in_the_pipeline() {
    use vigil::graph::job::{job_graph_with, JobIo};
    use vigil::table::SharedTable;

    let mut job = JobSpec::from_toml(&(std::fs::read_to_string("examples/fraud_job.toml").unwrap() + common::TABLE_LOOKUPS)).unwrap();
    // the lookups feed the model
    for (name, weight) in [("card_limit", 0.001), ("card_tier", 0.3), ("merchant_risk", 0.2)] {
        job.model.inputs.push(vigil::spec::ModelInput { name: name.into(), weight, transform: vigil_operators::Transform::Identity });
    }
    let bytes = |s: &str| Some(s.as_bytes().to_vec());
    let mut cards: Vec<(Option<Vec<u8>>, Option<Vec<u8>>)> = Vec::new();
    for i in 0..300 {
        let key = bytes(&format!("c-{i:06}"));
        cards.push((key.clone(), bytes(&format!(r#"{{"limit": {i}, "tier": {}}}"#, i % 3))));
        match i % 6 {
            0 => cards.push((key, None)),                                            // deleted
            1 => cards.push((key, bytes("oops"))),                                   // not JSON: skipped
            2 => cards.push((key, bytes(r#"{"limit": "high"}"#))),                   // wrong type: skipped
            3 => cards.push((key, bytes(&format!(r#"{{"limit": {}}}"#, 1000 + i)))), // overwritten, no tier
            _ => {}
        }
    }
    cards.push((None, bytes(r#"{"limit": 1}"#))); // no key: skipped
    let merchants: Vec<_> = (0..30).map(|i| (bytes(&format!("m-{i:05}")), bytes(&format!(r#"{{"risk": {}}}"#, i % 10)))).collect();
    let metrics = Metrics::new();
    let tables = vec![SharedTable::from_records(&job.tables[0], &cards, &metrics), SharedTable::from_records(&job.tables[1], &merchants[..20], &metrics)];
    assert_eq!(metrics.table_records.with_label_values(&["cards", "rejected"]).get(), 101, "50 not JSON, 50 of the wrong type, one without a key");

    let mut generator = Generator::new(GenConfig { seed: 3, cards: 400, merchants: 30, bad_ratio: 0.02, ..GenConfig::default() });
    let records: Vec<_> = (0..6_000).map(|_| generator.next_transaction()).map(|g| (g.key, g.payload)).collect();
    let input = spread(records, 3, 4);

    let sink = MemorySink::new();
    let topic = input.iter().map(|p| Arc::new(p.clone())).collect();
    vigil::local::run_local_with_tables(&job, &topic, tables.clone(), 1, sink.clone(), Metrics::new()).unwrap();
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (topic, key, payload) in sink.take() {
        if topic == Topic::Scores {
            expected.entry(String::from_utf8(key).unwrap()).or_default().push(String::from_utf8(payload).unwrap());
        }
    }
    let offset = |s: &String| serde_json::from_str::<serde_json::Value>(s).unwrap()["source_offset"].as_i64().unwrap();
    expected.values_mut().for_each(|v| v.sort_by_key(offset));
    // the lookups found rows, and missed where they should (deleted, unknown)
    let feature = |s: &String, f: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["features"][f].as_f64();
    let all: Vec<&String> = expected.values().flatten().collect();
    for f in ["card_limit", "card_tier", "merchant_risk"] {
        let found = all.iter().filter(|s| feature(s, f).is_some()).count();
        assert!(found > all.len() / 4 && found < all.len() * 9 / 10, "{f}: found for {found} of {} events", all.len());
    }
    assert!(all.iter().any(|s| feature(s, "card_limit").is_some_and(|v| v >= 1000.0)), "an overwritten row");

    for workers in [1, 2] {
        let (j, io) = (job.clone(), JobIo { tables: tables.clone(), ..JobIo::default() });
        let out = LocalRun::new(workers).epoch_records(997).topic_with_gaps("transactions", input.clone()).run(move |g| job_graph_with(g, &j, &io)).unwrap();
        let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in out.sink(&job.sinks.scores) {
            got.entry(r.key.clone()).or_default().push(r.value.clone().unwrap());
        }
        got.values_mut().for_each(|v| v.sort_by_key(offset));
        assert_eq!(got, expected, "{workers} workers");
    }
    // a job whose tables are not given is refused, naming the table
    let err = LocalRun::new(1).topic("transactions", vec![]).run(move |g| job_graph_with(g, &job, &JobIo::default())).unwrap_err();
    assert!(format!("{err:#}").contains("table `cards`"), "{err:#}");
}

#[test]
fn the_online_fraud_job_through_the_graph_scores_and_learns_as_the_pipeline_does() {
    let mut job = job("examples/fraud_online.toml");
    assert!(job.sinks.shadow.is_some());
    // concept drift and fairness on this short run (2.5 minutes of event time):
    // evaluated every 20 s, detectors from the 2,000th label, fairness gaps over
    // groups with 20 positives
    let monitor = job.monitor.as_mut().unwrap();
    monitor.spec.interval = std::time::Duration::from_secs(20);
    // predictions: the 2,000 scores before each window of 2,000, from the 4,000th on
    monitor.spec.prediction.reference = Some(vigil_operators::drift::Reference::Trailing { skip: 4_000 });
    monitor.spec.prediction.window = Some(2_000);
    monitor.spec.concept.grace = 2_000;
    monitor.spec.concept.detectors = vec!["adwin".into(), "ddm".into(), "page_hinkley".into()];
    monitor.spec.concept.adwin.min_window_length = 1_000;
    let fairness = monitor.spec.fairness.as_mut().unwrap();
    fairness.window.min_class = 20;
    fairness.window.min_group = 50;
    let online = job.model.online.as_mut().unwrap();
    online.runs_dir = None;
    online.device = DeviceChoice::Cpu;
    assert_eq!(online.consistency, Consistency::EventTime);
    let mut generator = Generator::new(GenConfig { seed: 3, cards: 500, merchants: 40, bad_ratio: 0.01, label_delay: 300, ..GenConfig::default() });
    let (mut records, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..15_000 {
        let g = generator.next_transaction();
        records.push((g.key, g.payload));
        labels.extend(generator.due_labels().into_iter().map(|l| Some(l.payload)));
    }
    labels.extend(generator.remaining_labels().into_iter().map(|l| Some(l.payload)));
    let (written, learned) = check_learning(&job, &spread(records, 3, 4), &vec![labels]);
    let counts = learned.unwrap().counts;
    let versions: std::collections::BTreeSet<String> = written
        .scores
        .values()
        .flatten()
        .map(|s| serde_json::from_str::<serde_json::Value>(s).unwrap()["model_version"].as_str().unwrap().to_owned())
        .collect();
    assert!(versions.len() > 3, "the model changes as it learns: {versions:?}");
    assert!(counts.joined > 10_000 && counts.trained > 10_000 && counts.selections > 0, "{counts:?}");
    let kinds = |kind: &str| written.labeled.iter().filter(|r| r.contains(&format!(r#""kind":"{kind}""#))).count();
    assert!(kinds("concept") > 10 && kinds("fairness") > 5, "concept and fairness findings: {:?}", written.labeled);
    // a detection, whose action (a selection round) the learner applied alike
    assert!(written.labeled.iter().any(|r| r.contains(r#""kind":"concept""#) && r.contains(r#""drift":true"#)), "{:?}", written.labeled);
    let shadow: Vec<&String> = written.shadow.values().flatten().collect();
    assert_eq!(shadow.len(), written.scores.values().map(Vec::len).sum::<usize>(), "a shadow record per score");
    assert!(shadow.iter().all(|s| s.contains(r#""challengers":[{"version""#)), "challengers in every shadow record");
}

/// An engagement feed: users viewing, liking and sharing videos, out of order
/// by up to 40 s, with malformed records.
fn feed(seed: u64, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let t0 = 1_764_000_000_000i64;
    (0..n)
        .map(|i| {
            let u = rng.gen_range(0..150);
            let user = format!("u{u}");
            let time = t0 + i as i64 * 2_000 - rng.gen_range(0..40_000);
            let payload = match rng.gen_range(0..100) {
                0 => b"{\"user_id\": 5, broken".to_vec(),
                1 => format!(r#"{{"event_id":"e{i}","user_id":"{user}","ts":{time}}}"#).into_bytes(),
                r => {
                    let action = ["view", "view", "view", "like", "share"][r % 5];
                    let (views, likes, shares, points) = match action {
                        "view" => (1, 0, 0, 1),
                        "like" => (0, 1, 0, 4),
                        _ => (0, 0, 1, 8),
                    };
                    // each user watches a few videos (and likes what they watched)
                    let video = (u * 7 + rng.gen_range(0..3)) % 60;
                    let watch = rng.gen_range(0..300);
                    format!(
                        r#"{{"event_id":"e{i}","user_id":"{user}","ts":{time},"video_id":"v{video}","action":"{action}","views":{views},"likes":{likes},"shares":{shares},"points":{points},"watch_secs":{watch}}}"#
                    )
                    .into_bytes()
                }
            };
            (user, payload)
        })
        .collect()
}

#[test]
fn the_engagement_job_through_the_graph_writes_what_the_pipeline_writes() {
    let mut job = job("examples/engagement_users.toml");
    job.sinks.features = Some("user_features".into());
    let written = check(&job, &spread(feed(5, 12_000), 2, 2));
    assert!(written.windows.values().map(Vec::len).sum::<usize>() > 100, "days closed");
    let joins: Vec<&String> = written.joins.values().flatten().collect();
    assert!(joins.iter().filter(|j| j.contains(r#""matched":true"#)).count() > 100, "views liked");
    assert!(joins.iter().filter(|j| j.contains(r#""matched":false"#)).count() > 100, "views never liked");
}

/// A key idle past every feature's reach leaves the state (at the state's next
/// sweep, every 65,536 events of a worker): its `features` record is followed
/// by a tombstone; a key still active keeps its value. (Which sweep catches a
/// key depends on how partitions interleave, in the pipeline as in the graph:
/// the golden tests above compare the values, this test the tombstones.)
#[test]
fn an_idle_key_leaves_the_features_topic_with_a_tombstone() {
    let job = expiry_job();
    let t0 = 1_764_000_000_000i64;
    let mut events = vec![format!(r#"{{"k":"idle","ts":{t0},"x":1}}"#).into_bytes()];
    events.extend((1..70_000i64).map(|i| format!(r#"{{"k":"busy{}","ts":{},"x":1}}"#, i % 7, t0 + i * 100).into_bytes()));
    let out = LocalRun::new(1).topic("events", vec![events]).run(move |g| job_graph(g, &job)).unwrap();
    let of = |key: &str| out.sink("features").iter().filter(|r| r.key == key).map(|r| r.value.is_some()).collect::<Vec<_>>();
    assert_eq!(of("idle"), vec![true, false], "a value, then a tombstone");
    for k in 0..7 {
        assert!(of(&format!("busy{k}")).iter().all(|v| *v), "busy{k} is never deleted");
    }
}

#[test]
fn the_feature_store_ends_as_the_features_topic_does() {
    let job = expiry_job();
    // 400 keys, then past every feature's reach (1 min) 100 of them, for longer than the
    // state's TTL sweep (every 65,536 events a worker sees): the other 300 leave the state. In time
    // order per key, so that a key's last `features` record is also its latest in time
    // (how `LocalRun` orders a sink within an epoch).
    let t0 = 1_764_000_000_000i64;
    let event = |k: i64, ts: i64| Some(format!(r#"{{"k":"k{k}","ts":{ts},"x":{}}}"#, k % 5).into_bytes());
    let mut input: Partitions = vec![Vec::new(); 3];
    for i in 0..4_000i64 {
        input[(i % 400 % 3) as usize].push(event(i % 400, t0 + i * 10));
    }
    for i in 0..140_000i64 {
        input[(i % 100 % 3) as usize].push(event(i % 100, t0 + 600_000 + i * 10));
    }
    input[1].push(Some(b"not json".to_vec()));
    for workers in [1, 2] {
        let store = vigil::store::FeatureStore::new(job.features.iter().map(|f| f.name().to_owned()).collect());
        let (s, j) = (store.clone(), job.clone());
        let out = LocalRun::new(workers)
            .topic_with_gaps("events", input.clone())
            .run(move |g| {
                let all = g.source(vigil::graph::Source::from_spec(j.source.clone())).features_all("features", vigil::graph::Features::of_job(&j)?);
                all.sink_features("features");
                all.sink_store(&s);
                Ok(())
            })
            .unwrap();
        // the features topic's last record per key (a key's records are in order)
        let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
        for r in out.sink("features") {
            last.insert(r.key.clone(), r.value.clone());
        }
        let gone = last.values().filter(|v| v.is_none()).count();
        assert_eq!((last.len(), gone), (400, 300), "{workers} workers: keys, and keys that left");
        assert_eq!(store.len(), 100, "{workers} workers: live keys");
        // the same record (numbers as f64: the topic's and the store's encoders differ)
        let numbers = |v: serde_json::Value| -> (String, i64, Vec<(String, Option<f64>)>) {
            let features = v["features"].as_object().unwrap().iter().map(|(k, x)| (k.clone(), x.as_f64())).collect();
            (v["key"].as_str().unwrap().to_owned(), v["event_time"].as_i64().unwrap(), features)
        };
        for (key, value) in &last {
            let expected = value.as_ref().map(|v| numbers(serde_json::from_str(v).unwrap()));
            assert_eq!(store.record(key).map(numbers), expected, "{workers} workers: key {key}");
        }
    }
}

/// A small job whose keys leave the state a minute after their last event.
fn expiry_job() -> JobSpec {
    JobSpec::from_toml(
        r#"
[job]
name = "expiry"
[source]
topic = "events"
key = "k"
event_time = "ts"
[source.schema]
x = "f64"
[[feature]]
name = "n_1m"
agg = "count"
window = "1m"
[[feature]]
name = "since_prev"
agg = "time_since_prev"
ttl = "1m"
[model]
name = "m"
version = "1"
bias = 0.5
[model.weights]
n_1m = { weight = 1.0, transform = "identity" }
[sinks]
scores = "scores"
dlq = "dlq"
features = "features"
"#,
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
}
