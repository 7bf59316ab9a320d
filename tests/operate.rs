//! Operating a job: the orchestrator's probes (`/healthz`, `/readyz`) follow a
//! job on Kafka through start, a stuck operator and shutdown; `--start-at` and
//! `--until` (offsets for times, on Apache Kafka from `scripts/kafka.sh`: the
//! embedded broker cannot look offsets up by time) make a job score exactly
//! the records stamped in `[start, until)`, on the pipeline and on the graph.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::fraud_job;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::graph::Source;
use vigil::http::Probes;
use vigil::kafka::read::{read_topic, ReadRecord};
use vigil::kafka::{KafkaOptions, KafkaRun};
use vigil::metrics::Metrics;
use vigil::run::{run_job, RunOptions};
use vigil::types::Control;

#[path = "support/http_get.rs"]
mod http_get;
#[path = "support/real_kafka.rs"]
mod real_kafka;
use real_kafka::RealKafka;

/// A plain HTTP/1.0 GET: the status code and the body.
fn get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let (code, body) = http_get::get(addr, path);
    (code, serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}")))
}

/// Polls `path` until `want` holds of the answer; the answer.
fn until(addr: &str, path: &str, what: &str, want: impl Fn(u16, &serde_json::Value) -> bool) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = get(addr, path);
        if want(code, &body) {
            return (code, body);
        }
        assert!(Instant::now() < deadline, "{path} never {what}; last: {code} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn produce(kafka: &KafkaOptions, topic: &str, from: usize, n: usize) {
    let producer: BaseProducer = kafka.client_config().create().unwrap();
    for i in from..from + n {
        let payload = format!(r#"{{"card":"c{}","n":{i},"ts":{}}}"#, i % 7, 1_700_000_000_000i64 + i as i64);
        producer.send(BaseRecord::<str, str>::to(topic).partition((i % 2) as i32).payload(&payload)).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

#[test]
fn the_probes_follow_a_job_through_start_a_stuck_operator_and_shutdown() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let kafka = broker.kafka_options();
    broker.create_topic("in", 2).unwrap();
    broker.create_topic("out", 2).unwrap();
    broker.create_topic("dlq", 1).unwrap();
    produce(&kafka, "in", 0, 200);

    let run = KafkaRun::new(kafka.clone()).workers(2).epoch_interval(Duration::from_millis(50));
    let control = run.control();
    let probes = Probes { control: control.clone(), stall: Duration::from_secs(2), max_lag: 1_000 };
    let addr = vigil::http::serve_probed("127.0.0.1:0".parse().unwrap(), run.metrics(), None, Some(probes)).unwrap().to_string();

    // before the job starts: alive (nothing to be stuck), not ready
    let (code, body) = get(&addr, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["workers_ready"], 0);
    assert_eq!(get(&addr, "/healthz").0, 200);

    // record 300 makes its worker sleep 10 s inside the operator, once asked
    let stick = Arc::new(AtomicBool::new(false));
    let job = {
        let stick = stick.clone();
        std::thread::spawn(move || {
            run.run(move |g| {
                let stick = stick.clone();
                g.source(Source::json("in").key("card").field("n", vigil::spec::FieldType::F64))
                    .map(move |r| {
                        let n = r.f64("n").unwrap_or(0.0);
                        if n == 300.0 && stick.swap(false, Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_secs(10));
                        }
                        format!("{n}")
                    })
                    .sink("out");
                Ok(())
            })
        })
    };
    // ready once both workers built their dataflow and the lag is measured under the limit
    let (_, ready) = until(&addr, "/readyz", "turned ready", |c, _| c == 200);
    assert_eq!((ready["workers_ready"].as_u64(), ready["workers_expected"].as_u64(), ready["partitions"].as_u64()), (Some(2), Some(2), Some(2)), "{ready}");
    assert!(ready["lag"].as_i64().is_some_and(|l| l <= 1_000), "{ready}");
    until(&addr, "/healthz", "answered live", |c, _| c == 200);

    // a stuck operator: /healthz names the worker, then recovers
    stick.store(true, Ordering::SeqCst);
    produce(&kafka, "in", 300, 1);
    let (_, sick) = until(&addr, "/healthz", "failed", |c, _| c == 503);
    assert_eq!(sick["live"], false);
    assert!(sick["stalled"].as_array().is_some_and(|s| !s.is_empty()), "{sick}");
    until(&addr, "/healthz", "recovered", |c, _| c == 200);

    // shutdown: not ready while draining, and alive once the workers ended
    control.request_shutdown();
    let (code, body) = get(&addr, "/readyz");
    assert_eq!(code, 503);
    assert!(body["reasons"].as_array().unwrap().iter().any(|r| r == "the job is stopping"), "{body}");
    job.join().unwrap().unwrap();
    let (code, body) = get(&addr, "/healthz");
    assert_eq!(code, 200, "ended workers do not count: {body}");
}

/// Every record of `topic` with its Kafka timestamp, after checking that the
/// timestamps never go back within a partition (one producer stamps them).
fn stamped(kafka: &KafkaOptions, topic: &str) -> Vec<ReadRecord> {
    let mut records = read_topic(kafka, topic, Duration::from_secs(60)).unwrap();
    records.sort_by_key(|r| (r.partition, r.offset));
    for w in records.windows(2) {
        if w[0].partition == w[1].partition {
            assert!(w[0].timestamp <= w[1].timestamp, "timestamps go back in partition {}", w[0].partition);
        }
    }
    records
}

/// `(partition, offset)` of every output record, from its `source_*` fields.
fn origins(kafka: &KafkaOptions, topic: &str) -> Vec<(u32, i64)> {
    let mut v: Vec<(u32, i64)> = read_topic(kafka, topic, Duration::from_secs(60))
        .unwrap()
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            (v["source_partition"].as_u64().unwrap() as u32, v["source_offset"].as_i64().unwrap())
        })
        .collect();
    v.sort();
    v
}

/// The records read are exactly those expected; else the first few of each difference.
fn same(expected: &BTreeSet<(u32, i64)>, got: &BTreeSet<(u32, i64)>, engine: &str) {
    let missing: Vec<_> = expected.difference(got).take(5).collect();
    let extra: Vec<_> = got.difference(expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{engine} read other records than those stamped in [start, until): {} expected, {} read; missing {missing:?}..., extra {extra:?}...",
        expected.len(),
        got.len()
    );
}

#[test]
fn start_at_and_until_score_exactly_the_records_stamped_between_them() {
    let broker = RealKafka::start("operate");
    let kafka = KafkaOptions::new(&broker.brokers);
    for (t, p) in [("transactions", 4), ("labels", 4), ("scores", 4), ("dlq", 2), ("scores_graph", 4), ("dlq_graph", 2)] {
        broker.create_topic(t, p);
    }
    let gen = GenConfig { bad_ratio: 0.03, seed: 5, ..GenConfig::default() };
    let events = 6_000;
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events, rate: Some(20_000.0) };
    publish(&kafka, gen, &opts, &PublishProgress::default(), &never()).unwrap();

    let input = stamped(&kafka, "transactions");
    assert_eq!(input.len(), events as usize);
    let mut times: Vec<i64> = input.iter().map(|r| r.timestamp.unwrap()).collect();
    times.sort();
    let (from, to) = (times[times.len() / 3], times[2 * times.len() / 3]);
    assert!(from < to);
    let expected: BTreeSet<(u32, i64)> = input.iter().filter(|r| (from..to).contains(&r.timestamp.unwrap())).map(|r| (r.partition, r.offset)).collect();
    assert!(expected.len() > 1_000 && expected.len() < 3_000, "{}", expected.len());

    // the pipeline
    let run = RunOptions { start_at: Some(from), until: Some(to), ..RunOptions::new(kafka.clone(), "backfill", 2) };
    run_job(fraud_job(), &run, Metrics::new(), Control::new(), Arc::new(Mutex::new(None))).unwrap();
    let (scored, dead) = (origins(&kafka, "scores"), origins(&kafka, "dlq"));
    assert!(!scored.is_empty() && !dead.is_empty(), "{} scored, {} dead letters", scored.len(), dead.len());
    let seen: Vec<(u32, i64)> = scored.iter().chain(&dead).copied().collect();
    let unique: BTreeSet<(u32, i64)> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a record was scored or dead-lettered twice");
    same(&expected, &unique, "the pipeline");

    // the graph, the same job
    let mut job = fraud_job();
    job.sinks.scores = "scores_graph".into();
    job.sinks.dlq = "dlq_graph".into();
    let run = KafkaRun::new(kafka.clone()).workers(2).group("backfill-graph").dlq_topic("dlq_graph").start_at(from).until(to);
    run.run(move |g| vigil::graph::job::job_graph(g, &job)).unwrap();
    let (scored, dead) = (origins(&kafka, "scores_graph"), origins(&kafka, "dlq_graph"));
    let seen: Vec<(u32, i64)> = scored.iter().chain(&dead).copied().collect();
    let unique: BTreeSet<(u32, i64)> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a record was scored or dead-lettered twice on the graph");
    same(&expected, &unique, "the graph");
}
