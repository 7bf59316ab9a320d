//! Nexmark through Kafka: events published by `nexmark::kafka::publish` /
//! `vigil nexmark gen`, read back by a graph with the Nexmark decoder
//! (`source_decoded`), q0, q5 and q7 written to topics. Their records equal the
//! same queries' over the same events as values; a payload that is not an event
//! goes to `dlq` and is counted. On the embedded broker and on a real Apache
//! Kafka (`scripts/kafka.sh`: Kafka 4.x from Maven Central, one KRaft node,
//! topics never created on first use).

use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use vigil::demo::broker::EmbeddedBroker;
use vigil::graph::values_source::Values;
use vigil::graph::LocalRun;
use vigil::kafka::read::read_topic;
use vigil::kafka::{KafkaOptions, KafkaRun};
use vigil::nexmark::{kafka, queries, Event, Generator, GeneratorConfig};

#[path = "support/real_kafka.rs"]
mod real_kafka;
use real_kafka::RealKafka;

const EVENTS: usize = 6_000;
const PARTITIONS: usize = 3;
const QUERIES: [&str; 3] = ["q0", "q5", "q7"];

fn events() -> Vec<Event> {
    Generator::new(GeneratorConfig::default()).take(EVENTS).collect()
}

/// The queries over the events as values, partitioned as `publish` does.
fn expected() -> Vec<Vec<String>> {
    let mut parts: Vec<Vec<Event>> = vec![Vec::new(); PARTITIONS];
    for (i, e) in events().into_iter().enumerate() {
        parts[i % PARTITIONS].push(e);
    }
    let out = LocalRun::new(1)
        .values("nexmark", parts)
        .run(|g| {
            let events = g.source_values(Values::new("nexmark", Event::date_time));
            QUERIES.iter().try_for_each(|q| queries::sink_query(q, &events, q))
        })
        .unwrap();
    QUERIES.iter().map(|q| sorted(out.values(q))).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn topic_values(opts: &KafkaOptions, topic: &str) -> Vec<String> {
    let records = read_topic(opts, topic, Duration::from_secs(30)).unwrap();
    sorted(records.into_iter().map(|r| String::from_utf8(r.payload.unwrap_or_default()).unwrap()).collect())
}

/// Publishes the events and one bad record, runs q0, q5 and q7 on 2 workers,
/// and checks the accounting, the dead letter and every query's records.
fn queries_through(opts: &KafkaOptions, create_topic: &dyn Fn(&str, u32)) {
    create_topic("nexmark", PARTITIONS as u32);
    for t in QUERIES.iter().map(|q| format!("nexmark-{q}")).chain(["dlq".to_owned()]) {
        create_topic(&t, 2);
    }
    assert_eq!(kafka::publish(opts, "nexmark", PARTITIONS as u32, events().into_iter()).unwrap(), EVENTS as u64);
    // one record that is not an event, at the end of partition 1
    let producer: BaseProducer = opts.client_config().create().unwrap();
    producer.send(BaseRecord::<(), [u8]>::to("nexmark").partition(1).payload(br#"{"bid":{"auction":"one"}}"#)).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();

    let run = KafkaRun::new(opts.clone()).workers(2).until_end().epoch_interval(Duration::from_millis(20));
    let summary = run
        .run(|g| {
            let events = g.source_decoded(kafka::source("nexmark"), kafka::decode);
            QUERIES.iter().try_for_each(|q| queries::sink_query(q, &events, &format!("nexmark-{q}")))
        })
        .unwrap();

    let counts = &summary.sources["nexmark"];
    assert_eq!((counts.read, counts.accepted, counts.rejected_total()), (EVENTS as u64 + 1, EVENTS as u64, 1));
    let dlq = read_topic(opts, "dlq", Duration::from_secs(30)).unwrap();
    let dead: serde_json::Value = serde_json::from_slice(dlq[0].payload.as_deref().unwrap()).unwrap();
    assert_eq!((dlq.len(), dead["reason"].as_str(), dead["source_partition"].as_u64()), (1, Some("wrong_type"), Some(1)));

    for (q, want) in QUERIES.iter().zip(expected()) {
        assert!(!want.is_empty(), "{q} has results");
        assert_eq!(topic_values(opts, &format!("nexmark-{q}")), want, "{q}");
    }
}

#[test]
fn q0_q5_q7_through_the_embedded_broker_equal_the_queries_over_values() {
    let broker = EmbeddedBroker::start(1).unwrap();
    queries_through(&broker.kafka_options(), &|t, n| broker.create_topic(t, n as i32).unwrap());
}

#[test]
fn q0_q5_q7_through_apache_kafka_equal_the_queries_over_values() {
    let kafka = RealKafka::start("nexmark");
    queries_through(&KafkaOptions::new(&kafka.brokers), &|t, n| kafka.create_topic(t, n));
}

/// `vigil nexmark gen` then `vigil nexmark run --query q7 -w 2 --until-end` on
/// Apache Kafka: the commands create the topics they need.
#[test]
fn the_nexmark_commands_publish_and_run_a_query_on_apache_kafka() {
    let kafka = RealKafka::start("nexmark-cli");
    let vigil = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).args(["--brokers", &kafka.brokers]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "vigil {args:?} failed: {stderr}");
        stderr
    };
    let gen = vigil(&["nexmark", "gen", "--events", &EVENTS.to_string(), "--partitions", &PARTITIONS.to_string()]);
    assert!(gen.contains(&format!("published {EVENTS} events to nexmark ({PARTITIONS} partitions)")), "{gen}");
    let run = vigil(&["nexmark", "run", "--query", "q7", "-w", "2", "--until-end"]);
    assert!(run.contains(&format!("read {EVENTS}, accepted {EVENTS}")), "{run}");
    assert_eq!(topic_values(&KafkaOptions::new(&kafka.brokers), "nexmark-q7"), expected()[2]);
}
