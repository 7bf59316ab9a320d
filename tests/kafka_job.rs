//! Real jobs against a Kafka-protocol broker (rdkafka's MockCluster, and the
//! job-vs-oracle test also against Apache Kafka from `scripts/kafka.sh`):
//! produce input, run the job, and check everything from the output topics
//! themselves.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{compare, observed, oracle, OracleFeature, OracleJob};
use vigil::demo::broker::EmbeddedBroker;

#[path = "support/real_kafka.rs"]
mod real_kafka;
use real_kafka::RealKafka;
use vigil::demo::fraud_job;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::read::read_topic;
use vigil::kafka::KafkaOptions;
use vigil::metrics::Metrics;
use vigil::run::{run_job, RunOptions};
use vigil::spec::JobSpec;
use vigil::types::Control;
use vigil_operators::FeatureDef;

fn oracle_job(job: &JobSpec) -> OracleJob {
    let features = job
        .features
        .iter()
        .map(|f| match f {
            FeatureDef::Window(w) => OracleFeature::Window {
                name: w.name.clone(),
                agg: match w.agg {
                    vigil_operators::Agg::Count => "count",
                    vigil_operators::Agg::Sum => "sum",
                    vigil_operators::Agg::Mean => "mean",
                    vigil_operators::Agg::Max => "max",
                    vigil_operators::Agg::Min => "min",
                    vigil_operators::Agg::Variance => "variance",
                    vigil_operators::Agg::Std => "std",
                },
                field: w.field.map(|_| "amount".to_string()),
                window_ms: w.window_ms,
            },
            FeatureDef::TimeSincePrev { name, ttl_ms } => OracleFeature::SincePrev { name: name.clone(), ttl_ms: *ttl_ms },
            FeatureDef::Decayed(d) => {
                OracleFeature::Decayed { name: d.name.clone(), kind: d.kind, field: d.field.map(|_| "amount".to_string()), half_life_ms: d.half_life_ms }
            }
            FeatureDef::PrevValue { name, ttl_ms, .. } => OracleFeature::PrevValue { name: name.clone(), field: "amount".into(), ttl_ms: *ttl_ms },
            FeatureDef::ApproxDistinct(_) | FeatureDef::Lookup(_) => unreachable!("the fraud job has no approximate distinct counts or lookups"),
            FeatureDef::Distinct(d) => OracleFeature::Distinct { name: d.name.clone(), field: job.strings[d.tag].clone(), window_ms: d.window_ms },
            FeatureDef::RatioToMean(r) => {
                OracleFeature::RatioToMean { name: r.name.clone(), field: "amount".into(), window_ms: r.window_ms, pane_ms: r.pane_ms }
            }
        })
        .collect();
    OracleJob {
        key: job.source.key_field.clone(),
        numeric: vec!["amount".into()],
        time: job.source.event_time_field.clone(),
        lateness_ms: job.source.allowed_lateness.as_millis() as i64,
        max_bytes: job.source.max_message_bytes,
        max_future_ms: job.source.max_future.as_millis() as i64,
        features,
    }
}

fn payloads(kafka: &KafkaOptions, topic: &str) -> Vec<serde_json::Value> {
    read_topic(kafka, topic, Duration::from_secs(60)).unwrap().into_iter().map(|r| serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap()).collect()
}

#[test]
fn a_job_scores_every_offset_once_with_the_oracles_features_and_commits() {
    let broker = EmbeddedBroker::start(1).unwrap();
    scores_every_offset_once(&KafkaOptions::new(&broker.bootstrap_servers()), &|t, p| broker.create_topic(t, p as i32).unwrap());
}

#[test]
fn on_apache_kafka_a_job_scores_every_offset_once_with_the_oracles_features_and_commits() {
    let broker = RealKafka::start("kafka-job");
    scores_every_offset_once(&KafkaOptions::new(&broker.brokers), &|t, p| broker.create_topic(t, p));
}

/// Publishes 30,000 transactions (3% malformed), runs the fraud job to the end
/// on 2 workers, and checks the accounting, every output against the oracle,
/// the scores against the model, and that a restart of the group reads nothing.
fn scores_every_offset_once(kafka: &KafkaOptions, create_topic: &dyn Fn(&str, u32)) {
    let job = fraud_job();
    assert!(job.source.fields.iter().filter(|f| f.ty.is_numeric()).count() == 1, "oracle mapping assumes one numeric field");
    for (t, p) in [("transactions", 8), ("labels", 8), ("scores", 8), ("dlq", 4)] {
        create_topic(t, p);
    }
    let kafka = kafka.clone();
    let gen = GenConfig { bad_ratio: 0.03, seed: 11, ..GenConfig::default() };
    let events = 30_000;
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events, rate: None };
    publish(&kafka, gen, &opts, &PublishProgress::default(), &never()).unwrap();

    let run = RunOptions { until_end: true, ..RunOptions::new(kafka.clone(), "it", 2) };
    let metrics = Metrics::new();
    let summary = run_job(job.clone(), &run, metrics.clone(), Control::new(), Arc::new(Mutex::new(None))).unwrap();
    assert_eq!(summary.committed.iter().map(|c| c.1).sum::<i64>(), events as i64);

    // The accounting invariant, from the topics.
    let report = vigil::accounting::check(&kafka, "transactions", "scores", "dlq", None).unwrap();
    assert!(report.holds(), "{report:?}");
    assert_eq!(report.inputs, events);
    assert!(report.dead_lettered > 500 && report.scored > 25_000, "{report:?}");

    // Every output equals the naive oracle's, computed from the input topic.
    let input = read_topic(&kafka, "transactions", Duration::from_secs(60)).unwrap();
    let mut partitions = vec![Vec::new(); 8];
    for r in &input {
        assert_eq!(r.offset as usize, partitions[r.partition as usize].len());
        partitions[r.partition as usize].push(r.payload.clone());
    }
    let now_ms = (vigil::types::now_us() / 1000) as i64;
    let expected = oracle(&oracle_job(&job), &partitions, now_ms);
    let scores = payloads(&kafka, "scores");
    let dlq = payloads(&kafka, "dlq");
    compare(&expected, &observed(&scores, &dlq)).unwrap();

    // Scores follow the model, on those features and the event's own amount.
    assert_eq!(input.len(), events as usize);
    let model = job.logistic_model();
    let inputs = job.model_inputs();
    for s in scores.iter().take(2_000) {
        let p = s["source_partition"].as_u64().unwrap() as usize;
        let o = s["source_offset"].as_i64().unwrap() as usize;
        let raw: serde_json::Value = serde_json::from_slice(partitions[p][o].as_deref().unwrap()).unwrap();
        let x: Vec<Option<f64>> = inputs
            .iter()
            .map(|i| match i {
                vigil::spec::InputSource::Feature(f) => s["features"][job.features[*f].name()].as_f64(),
                vigil::spec::InputSource::Field(_) => raw["amount"].as_f64(),
            })
            .collect();
        let want = model.score(&x);
        assert!((s["score"].as_f64().unwrap() - want).abs() < 1e-12);
        assert_eq!(s["model"], "fraud-lr");
        assert_eq!(s["event_id"], raw["event_id"]);
        assert_eq!(s["key"], raw["card_id"]);
    }
    // DLQ records are keyed by source position and carry the original bytes' hash.
    assert!(dlq.iter().all(|d| d["source_topic"] == "transactions" && d["payload_sha256"].as_str().unwrap().len() == 64));

    // A restart of the same group resumes from the committed offsets: nothing is re-read.
    let again = Metrics::new();
    run_job(job, &run, again.clone(), Control::new(), Arc::new(Mutex::new(None))).unwrap();
    assert_eq!(again.scores_out.get() + again.dlq_total(), 0);
}

#[test]
fn shutdown_stops_an_unbounded_job_and_commits_what_it_scored() {
    let job = fraud_job();
    let broker = EmbeddedBroker::start(1).unwrap();
    for (t, p) in [("transactions", 4), ("scores", 4), ("dlq", 1)] {
        broker.create_topic(t, p).unwrap();
    }
    let kafka = KafkaOptions::new(&broker.bootstrap_servers());
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events: 5_000, rate: None };
    publish(&kafka, GenConfig::default(), &opts, &PublishProgress::default(), &never()).unwrap();

    let control = Control::new();
    let metrics = Metrics::new();
    let run = RunOptions { until_end: false, ..RunOptions::new(kafka.clone(), "it2", 1) };
    let handle = {
        let (control, metrics, job, run) = (control.clone(), metrics.clone(), job.clone(), run.clone());
        std::thread::spawn(move || run_job(job, &run, metrics, control, Arc::new(Mutex::new(None))))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while metrics.scores_out.get() + metrics.dlq_total() < 5_000 {
        assert!(std::time::Instant::now() < deadline, "the job did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    control.request_shutdown();
    let summary = handle.join().unwrap().unwrap();
    assert_eq!(summary.committed.iter().map(|c| c.1).sum::<i64>(), 5_000);
    let report = vigil::accounting::check(&kafka, "transactions", "scores", "dlq", None).unwrap();
    assert!(report.holds(), "{report:?}");
}
