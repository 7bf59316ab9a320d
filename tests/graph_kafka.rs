//! A graph with two topics, a user operator with timers, an interval join and a
//! differential view, run on Kafka (the embedded Kafka-protocol broker) with 2
//! workers, against the same graph on the in-memory runner: the same sink
//! records, the same final state of the upsert topic, every rejected offset in
//! `dlq` with its reason, and the same per-topic accounting.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Result;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use vigil::demo::broker::EmbeddedBroker;
use vigil::graph::{GraphBuilder, LocalRun, Source};
use vigil::kafka::read::read_topic;
use vigil::kafka::{KafkaOptions, KafkaRun};
use vigil::spec::FieldType;

#[path = "support/children.rs"]
mod children;
#[path = "support/ports.rs"]
mod ports;
use children::{newest_manifest, OutputOf};
#[path = "support/real_kafka.rs"]
mod real_kafka;
#[path = "support/graph.rs"]
mod support;
use real_kafka::RealKafka;
use support::{card_topics, Sessions, Topics};

fn topics() -> (Vec<Vec<Vec<u8>>>, Vec<Vec<Vec<u8>>>) {
    card_topics(&Topics { seed: 11, events: 2_000, cards: 50, step_ms: 20, tx_partitions: 3, login_partitions: 2, garbage_every: 101 })
}

fn graph(g: &mut GraphBuilder<'_>) -> Result<()> {
    let source = |topic: &str| Source::json(topic).key("card").lateness(Duration::from_millis(200)).field("id", FieldType::Str);
    let tx = g.source(source("tx").field("merchant", FieldType::Str));
    let logins = g.source(source("logins"));
    tx.stateful("sessions", Sessions { gap_ms: 500 }).map(|(card, n)| format!("{card}:{n}")).sink("sessions");
    tx.interval_join("tx_after_login", &logins, Duration::from_millis(300), Duration::ZERO)
        .map(|(t, l)| format!("{}|{}", t.str("id").unwrap_or("?"), l.str("id").unwrap_or("?")))
        .sink("pairs");
    tx.view("tx_merchants", |r| r.value.str("merchant").unwrap_or("?").to_owned()).count().sink_upsert("per_merchant");
    Ok(())
}

fn produce(broker: &EmbeddedBroker, topic: &str, partitions: &[Vec<Vec<u8>>]) -> Result<()> {
    broker.create_topic(topic, partitions.len() as i32)?;
    let producer: BaseProducer = broker.kafka_options().client_config().create()?;
    for (p, records) in partitions.iter().enumerate() {
        for r in records {
            let mut rec = BaseRecord::<[u8], [u8]>::to(topic).partition(p as i32).payload(r);
            while let Err((e, back)) = producer.send(rec) {
                anyhow::ensure!(matches!(e, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)), "{e}");
                producer.poll(Duration::from_millis(10));
                rec = back;
            }
        }
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

fn payloads(broker: &EmbeddedBroker, topic: &str) -> Vec<String> {
    payloads_of(&broker.kafka_options(), topic)
}

fn payloads_of(kafka: &KafkaOptions, topic: &str) -> Vec<String> {
    let mut v: Vec<String> =
        read_topic(kafka, topic, Duration::from_secs(30)).unwrap().into_iter().map(|r| String::from_utf8(r.payload.unwrap_or_default()).unwrap()).collect();
    v.sort();
    v
}

#[test]
fn a_two_topic_graph_on_kafka_equals_the_in_memory_run() {
    let (tx, logins) = topics();
    let local = LocalRun::new(1).topic("tx", tx.clone()).topic("logins", logins.clone()).run(graph).unwrap();

    let broker = EmbeddedBroker::start(1).unwrap();
    produce(&broker, "tx", &tx).unwrap();
    produce(&broker, "logins", &logins).unwrap();
    for t in ["sessions", "pairs", "per_merchant", "dlq"] {
        broker.create_topic(t, 2).unwrap();
    }
    let run = KafkaRun::new(broker.kafka_options()).workers(2).until_end().epoch_interval(Duration::from_millis(20));
    let summary = run.run(graph).unwrap();

    // the same accounting per topic, and every rejection in dlq
    assert_eq!(summary.sources, local.sources);
    assert!(local.sources["tx"].rejected_total() > 0 && local.sources["logins"].rejected_total() > 0);
    let dlq: BTreeSet<(String, u64, i64, String)> = read_topic(&broker.kafka_options(), "dlq", Duration::from_secs(30))
        .unwrap()
        .into_iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.payload.unwrap_or_default()).unwrap();
            (
                v["source_topic"].as_str().unwrap().to_owned(),
                v["source_partition"].as_u64().unwrap(),
                v["source_offset"].as_i64().unwrap(),
                v["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, u64, i64, String)> =
        local.dead.iter().map(|d| (d.topic.clone(), d.partition as u64, d.offset, d.reason.to_owned())).collect();
    assert_eq!(dlq, expected);

    // streams: the same records
    assert_eq!(payloads(&broker, "sessions"), local.values("sessions"));
    assert_eq!(payloads(&broker, "pairs"), local.values("pairs"));
    assert!(local.values("pairs").len() > 100);

    // the upsert topic: its last record per key is the view's final value
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for r in read_topic(&broker.kafka_options(), "per_merchant", Duration::from_secs(30)).unwrap() {
        let key = String::from_utf8(r.key.unwrap_or_default()).unwrap();
        match r.payload {
            Some(p) => last.insert(key, String::from_utf8(p).unwrap()),
            None => last.remove(&key),
        };
    }
    let mut final_view: BTreeMap<String, String> = BTreeMap::new();
    for r in local.sink("per_merchant") {
        match &r.value {
            Some(v) => final_view.insert(r.key.clone(), v.clone()),
            None => final_view.remove(&r.key),
        };
    }
    assert_eq!(last, final_view);
    assert_eq!(summary.produced["pairs"] as usize, local.values("pairs").len());
}

/// The example graph's binary (`examples/two_topic_graph.rs`), built by `cargo
/// test` and `cargo build --all-targets` beside this test.
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().join("examples");
    let path = dir.join("two_topic_graph");
    assert!(path.exists(), "{} is missing: build the examples (cargo test builds them)", path.display());
    path
}

fn example(brokers: &str, args: &[&str], failpoint: Option<&str>) -> (std::process::ExitStatus, String) {
    let mut c = std::process::Command::new(example_binary());
    c.arg("--brokers").arg(brokers).args(args).env("RUST_LOG", "warn");
    if let Some(f) = failpoint {
        c.env("FAILPOINTS", f);
    }
    let out = c.output().unwrap();
    if !out.status.success() && failpoint.is_none() {
        panic!("the example failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every output topic's records: payloads per topic, and the upsert topic's
/// last value per key.
fn outputs(broker: &EmbeddedBroker) -> (BTreeMap<&'static str, Vec<String>>, BTreeMap<String, Option<String>>) {
    outputs_of(&broker.kafka_options())
}

fn outputs_of(kafka: &KafkaOptions) -> (BTreeMap<&'static str, Vec<String>>, BTreeMap<String, Option<String>>) {
    let mut streams = BTreeMap::new();
    for topic in ["bursts", "tx_after_login", "dlq"] {
        streams.insert(topic, payloads_of(kafka, topic));
    }
    let mut last = BTreeMap::new();
    for r in read_topic(kafka, "merchant_risk", Duration::from_secs(30)).unwrap() {
        last.insert(String::from_utf8(r.key.unwrap_or_default()).unwrap(), r.payload.map(|p| String::from_utf8(p).unwrap()));
    }
    last.retain(|_, v| v.is_some());
    (streams, last)
}

/// A resumed run's outputs against an uninterrupted run's: the upsert topic
/// ends the same, every stream topic holds the same records, each at least once.
fn assert_at_least_once(
    expected: &BTreeMap<&str, Vec<String>>,
    expected_view: &BTreeMap<String, Option<String>>,
    got: &BTreeMap<&str, Vec<String>>,
    got_view: &BTreeMap<String, Option<String>>,
) {
    assert_eq!(got_view, expected_view, "the upsert topic's final state");
    assert!(!expected_view.is_empty());
    for (topic, want) in expected {
        let (got_set, want_set): (BTreeSet<&String>, BTreeSet<&String>) = (got[topic].iter().collect(), want.iter().collect());
        assert_eq!(got_set, want_set, "{topic}: the same records");
        assert!(got[topic].len() >= want.len(), "{topic}: at least once");
    }
    assert!(expected["tx_after_login"].len() > 100 && expected["bursts"].len() > 100);
}

fn broker_with_input(events: usize) -> EmbeddedBroker {
    let broker = EmbeddedBroker::start(1).unwrap();
    for (topic, partitions) in [("transactions", 3), ("logins", 2), ("bursts", 2), ("tx_after_login", 2), ("merchant_risk", 2), ("dlq", 1)] {
        broker.create_topic(topic, partitions).unwrap();
    }
    example(&broker.bootstrap_servers(), &["--generate", &events.to_string()], None);
    broker
}

/// A process killed right after its first checkpoint (2 workers), then resumed
/// from it with 1 worker: every record an uninterrupted run writes is written
/// (at least once: those after the checkpoint may be written twice), nothing
/// else is, and the upsert topic ends as the uninterrupted run's.
#[test]
fn a_killed_graph_job_resumes_from_its_checkpoint_with_fewer_workers() {
    const EVENTS: usize = 6_000;
    let reference = broker_with_input(EVENTS);
    example(&reference.bootstrap_servers(), &["--workers", "2", "--until-end", "--epoch-ms", "20"], None);
    let (expected, expected_view) = outputs(&reference);

    let broker = broker_with_input(EVENTS);
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().to_str().unwrap();
    // paced, so that the first checkpoint (epoch 1) falls mid-stream: at most
    // 2 epochs x 2 workers x 500 transactions before it
    let args = ["--until-end", "--epoch-ms", "20", "--pace", "500", "--checkpoints", ck, "--every", "2"];
    let (status, _) = example(&broker.bootstrap_servers(), &[&["--workers", "2"][..], &args[..]].concat(), Some("graph-checkpoint-written=return"));
    assert!(!status.success(), "the first run must die at its first checkpoint");
    let manifests = std::fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json")).count();
    assert_eq!(manifests, 1, "one checkpoint was written before the crash");
    let (_, summary) = example(&broker.bootstrap_servers(), &[&["--workers", "1"][..], &args[..]].concat(), None);
    let read: u64 = summary.lines().find_map(|l| l.strip_prefix("transactions: read ")?.split(',').next()?.parse().ok()).unwrap();
    assert!(
        read >= (EVENTS - 2_000) as u64 && read < EVENTS as u64,
        "the resumed run reads on from the checkpoint: {read} of {EVENTS}+ transactions\n{summary}"
    );
    let (got, got_view) = outputs(&broker);

    assert_at_least_once(&expected, &expected_view, &got, &got_view);
}

/// `n` processes of the example graph as one timely cluster on loopback (one
/// worker each, `args` besides), the way a supervisor starts them.
fn start_cluster(brokers: &str, n: usize, args: &[&str]) -> Vec<std::process::Child> {
    let hosts = ports::loopback_hosts(n);
    (0..n)
        .map(|i| {
            std::process::Command::new(example_binary())
                .args(["--brokers", brokers, "--workers", "1", "--hosts", &hosts.join(","), "--process", &i.to_string()])
                .args(args)
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// Runs a cluster until a checkpoint newer than `after` is written, SIGKILLs
/// process `victim` mid-stream, then the others (a supervisor restarting the
/// whole job); returns the newest checkpoint once all are dead (process 0 may
/// publish a newer one than it saw before the kill, with markers the victim
/// wrote ahead of it, and prune older ones): the one the restart restores.
fn kill_after_checkpoint(brokers: &str, dir: &std::path::Path, n: usize, victim: usize, after: Option<u64>, args: &[&str]) -> u64 {
    let mut procs = start_cluster(brokers, n, args);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let newest = loop {
        match newest_manifest(dir) {
            Some(e) if Some(e) > after => break e,
            _ => {}
        }
        for (i, p) in procs.iter_mut().enumerate() {
            if let Some(status) = p.try_wait().unwrap() {
                let out = p.wait_with_output_ref();
                panic!("process {i} ended ({status}) before its cluster's checkpoint after {after:?}:\n{out}");
            }
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint after {after:?} within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(procs[victim].try_wait().unwrap().is_none(), "process {victim} must still be running when it is killed");
    procs[victim].kill().unwrap(); // SIGKILL
    procs[victim].wait().unwrap();
    // the others lose their peer; the supervisor restarts them all
    std::thread::sleep(Duration::from_millis(200));
    for p in procs.iter_mut() {
        let _ = p.kill();
        p.wait().unwrap();
    }
    let restored = newest_manifest(dir).unwrap();
    assert!(restored >= newest);
    restored
}

/// Three processes of one graph job (a timely cluster on loopback, one shared
/// checkpoint directory): process 1 is SIGKILLed mid-stream after a checkpoint
/// and the cluster restarted from it, as a supervisor would; then process 2 of
/// the restarted cluster is killed after a newer checkpoint, and that
/// three-process checkpoint resumes in two processes. The upsert topic (the
/// differential view) ends exactly as an uninterrupted single-process run's;
/// every other output of that run is written, at least once, and nothing else.
#[test]
fn a_three_process_graph_job_survives_a_sigkill_and_resumes_in_two_processes() {
    let broker = EmbeddedBroker::start(1).unwrap();
    three_processes_survive_a_sigkill(&broker.bootstrap_servers(), &|t, p| broker.create_topic(t, p as i32).unwrap());
}

/// The same on Apache Kafka (`scripts/kafka.sh`, one KRaft node).
#[test]
fn on_apache_kafka_a_three_process_graph_job_survives_a_sigkill_and_resumes_in_two_processes() {
    let broker = RealKafka::start("graph-cluster");
    three_processes_survive_a_sigkill(&broker.brokers, &|t, p| broker.create_topic(t, p));
}

fn three_processes_survive_a_sigkill(brokers: &str, create_topic: &dyn Fn(&str, u32)) {
    const EVENTS: usize = 12_000;
    // the uninterrupted single-process run, on an embedded broker of its own
    let reference = broker_with_input(EVENTS);
    example(&reference.bootstrap_servers(), &["--workers", "1", "--until-end", "--epoch-ms", "20"], None);
    let (expected, expected_view) = outputs(&reference);

    for (topic, partitions) in [("transactions", 3), ("logins", 2), ("bursts", 2), ("tx_after_login", 2), ("merchant_risk", 2), ("dlq", 1)] {
        create_topic(topic, partitions);
    }
    example(brokers, &["--generate", &EVENTS.to_string()], None);
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().to_str().unwrap();
    // paced: 3 processes x 100 transactions per 50 ms epoch, a checkpoint every 2 epochs
    let args = ["--until-end", "--epoch-ms", "50", "--pace", "100", "--checkpoints", ck, "--every", "2"];
    let first = kill_after_checkpoint(brokers, dir.path(), 3, 1, None, &args);
    let second = kill_after_checkpoint(brokers, dir.path(), 3, 2, Some(first), &args);
    assert!(second > first);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(format!("epoch-{second}.json"))).unwrap()).unwrap();
    assert_eq!(manifest["workers"], 3, "the checkpoint restored next was taken by 3 processes");

    let mut procs = start_cluster(brokers, 2, &args);
    let mut reads = Vec::new();
    for (i, p) in procs.iter_mut().enumerate() {
        let status = p.wait().unwrap();
        let out = p.wait_with_output_ref();
        assert!(status.success(), "process {i} of the resumed cluster failed:\n{out}");
        // a process whose partitions the checkpoint had read to the end reads
        // nothing and prints no count for the topic
        reads.push(out.lines().find_map(|l| l.strip_prefix("transactions: read ")?.split(',').next()?.parse::<u64>().ok()).unwrap_or(0));
    }
    let read: u64 = reads.iter().sum();
    eprintln!("resumed from checkpoint {second} (first {first}): transactions read per process {reads:?}");
    assert!(read > 0 && read < EVENTS as u64, "the two processes read on from the checkpoint: {reads:?} of {EVENTS}+ transactions");

    let (got, got_view) = outputs_of(&KafkaOptions::new(brokers));
    assert_at_least_once(&expected, &expected_view, &got, &got_view);
}

/// Every record of `topic`, by partition, in offset order (empty payloads kept).
fn by_partition(broker: &EmbeddedBroker, topic: &str, partitions: usize) -> Vec<Vec<Option<Vec<u8>>>> {
    let mut out = vec![Vec::new(); partitions];
    let mut records = read_topic(&broker.kafka_options(), topic, Duration::from_secs(5)).unwrap();
    records.sort_by_key(|r| (r.partition, r.offset));
    for r in records {
        out[r.partition as usize].push(r.payload);
    }
    out
}

/// `vigil run` of a TOML job with two sources and a join between the topics
/// (`examples/fraud_two_topics.toml`) runs it on the graph, on Kafka: what it
/// writes (scores, join pairs, dead letters) is what the same job writes in
/// memory over the topics' records; so does the job as a cluster of two
/// processes (`-n 2 -p I --hostfile F`).
#[test]
fn vigil_run_runs_a_two_topic_toml_job_on_the_graph() {
    // one process of 2 workers, then two processes of 1 worker
    two_topic_toml_job(&[vec!["-w", "2"]]);
    let hosts = ports::loopback_hosts(2);
    let hostfile = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(hostfile.path(), hosts.join("\n")).unwrap();
    let f = hostfile.path().to_str().unwrap();
    two_topic_toml_job(&[vec!["-n", "2", "-p", "0", "--hostfile", f], vec!["-n", "2", "-p", "1", "--hostfile", f]]);
}

/// Runs the two-topic TOML job as one process per argument list, on a broker
/// of its own, and checks its outputs against the in-memory run.
fn two_topic_toml_job(processes: &[Vec<&str>]) {
    use vigil::demo::generator::GenConfig;
    use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
    let broker = EmbeddedBroker::start(1).unwrap();
    for (topic, partitions) in [("transactions", 4), ("logins", 2), ("scores", 2), ("login_purchases", 2), ("dlq", 1)] {
        broker.create_topic(topic, partitions).unwrap();
    }
    let kafka = broker.kafka_options();
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: Some("logins".into()), events: 15_000, rate: None };
    publish(&kafka, GenConfig { bad_ratio: 0.01, cards: 1_500, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never()).unwrap();
    let children: Vec<_> = processes
        .iter()
        .map(|args| {
            std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
                .args(["run", "examples/fraud_two_topics.toml", "--brokers", &kafka.brokers, "--until-end", "--metrics-addr", "off"])
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in children {
        let run = run.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{stderr}");
        assert!(stderr.contains("(graph) stopped"), "{stderr}");
    }

    let job = vigil::spec::JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_two_topics.toml").unwrap()).unwrap();
    let memory = LocalRun::new(1)
        .topic_with_gaps("transactions", by_partition(&broker, "transactions", 4))
        .topic_with_gaps("logins", by_partition(&broker, "logins", 2))
        .run(move |g| vigil::graph::job::job_graph(g, &job))
        .unwrap();
    for sink in ["scores", "login_purchases"] {
        let mut expected = memory.values(sink);
        expected.sort();
        assert!(expected.len() > 100, "{sink}: {}", expected.len());
        assert_eq!(payloads(&broker, sink), expected, "{sink} ({processes:?})");
    }
    let rejected: u64 = memory.sources.values().map(|c| c.rejected_total()).sum();
    assert!(rejected > 100);
    assert_eq!(read_topic(&kafka, "dlq", Duration::from_secs(5)).unwrap().len() as u64, rejected, "every rejected record in dlq");
}

/// `vigil run --engine graph` of a single-topic TOML job writes what the
/// pipeline writes (`vigil run` without it): the same scores and dead letters,
/// byte for byte, from the same published input on two brokers.
#[test]
fn vigil_run_engine_graph_writes_what_the_pipeline_writes() {
    use vigil::demo::generator::GenConfig;
    use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
    let run = |engine: &str| {
        let broker = EmbeddedBroker::start(1).unwrap();
        for (topic, partitions) in [("transactions", 4), ("scores", 2), ("dlq", 1)] {
            broker.create_topic(topic, partitions).unwrap();
        }
        let kafka = broker.kafka_options();
        let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events: 10_000, rate: None };
        publish(&kafka, GenConfig { bad_ratio: 0.02, cards: 1_000, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never()).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["run", "examples/fraud_job.toml", "--brokers", &kafka.brokers, "--until-end", "--metrics-addr", "off", "-w", "2", "--engine", engine])
            .output()
            .unwrap();
        assert!(out.status.success(), "{engine}: {}", String::from_utf8_lossy(&out.stderr));
        let dlq: Vec<String> = payloads(&broker, "dlq")
            .into_iter()
            .map(|d| {
                // the wall clock a timestamp too far ahead is judged against differs between runs
                let mut v: serde_json::Value = serde_json::from_str(&d).unwrap();
                v["detail"] = v["detail"].as_str().map(|s| s.split(" ahead of ").next().unwrap_or(s).to_owned()).into();
                v.to_string()
            })
            .collect();
        (payloads(&broker, "scores"), dlq)
    };
    let (pipeline, graph) = (run("pipeline"), run("graph"));
    assert!(pipeline.0.len() > 9_000 && pipeline.1.len() > 100, "{} scores, {} dead letters", pipeline.0.len(), pipeline.1.len());
    assert_eq!(graph.0, pipeline.0, "scores");
    let mut dlq = (graph.1, pipeline.1);
    dlq.0.sort();
    dlq.1.sort();
    assert_eq!(dlq.0, dlq.1, "dead letters");
}

/// `vigil run` of a single-topic TOML job with window-level expectations runs
/// it on the graph by itself, and the `quality` records on its drift topic are
/// those of the same job in memory over the topic's records.
#[test]
fn vigil_run_writes_the_quality_records_of_window_level_expectations() {
    use vigil::demo::generator::GenConfig;
    use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
    let expect = r#"
[[source.expect]]
name = "device_present"
field = "device"
not_null_rate = 0.99
[[source.expect]]
name = "unique_events"
field = "event_id"
unique = true
window = "5m"
[[source.expect]]
name = "per_minute"
volume = [100, 100000]
"#;
    let text = std::fs::read_to_string("examples/fraud_job.toml").unwrap().replace("[sinks]\n", "[sinks]\ndrift = \"drift\"\n") + expect;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.toml");
    std::fs::write(&path, &text).unwrap();
    let broker = EmbeddedBroker::start(1).unwrap();
    for (topic, partitions) in [("transactions", 4), ("scores", 2), ("dlq", 1), ("drift", 1)] {
        broker.create_topic(topic, partitions).unwrap();
    }
    let kafka = broker.kafka_options();
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events: 20_000, rate: None };
    publish(&kafka, GenConfig { bad_ratio: 0.01, cards: 1_000, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never()).unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", path.to_str().unwrap(), "--brokers", &kafka.brokers, "--until-end", "--metrics-addr", "off", "-w", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("(graph) stopped"), "{stderr}");

    let job = vigil::spec::JobSpec::from_toml(&text).unwrap();
    let memory =
        LocalRun::new(1).topic_with_gaps("transactions", by_partition(&broker, "transactions", 4)).run(move |g| vigil::graph::job::job_graph(g, &job)).unwrap();
    let expected = memory.values("drift");
    assert!(expected.iter().all(|r| r.contains(r#""kind":"quality""#)));
    for name in ["device_present", "unique_events", "per_minute"] {
        assert!(expected.iter().any(|r| r.contains(&format!(r#""name":"{name}""#))), "{name}: {expected:?}");
    }
    assert_eq!(payloads(&broker, "drift"), expected);
}
