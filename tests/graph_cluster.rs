//! The fraud graph (`examples/fraud_detection.rs`: two topics, a user operator,
//! an interval join, features, a model trained online from late labels with
//! event-time consistency, a differential view) as one job of three processes
//! (a timely cluster on loopback, one worker each) against the same graph in
//! one process: every process's learner replica ends with the same champion,
//! label counts and quality as the single process's learner, and every output
//! topic holds the same records: each score with the same model version and
//! value, the same alerts and dead letters (but for a detail that names the wall
//! clock), the same final view.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::read::read_topic;

#[path = "support/children.rs"]
mod children;
#[path = "support/ports.rs"]
mod ports;
use children::{newest_manifest, OutputOf};

/// The example's binary, built by `cargo test` beside this test.
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|d| d.parent()).unwrap().join("examples").join("fraud_detection");
    assert!(path.exists(), "{} is missing: build the examples (cargo test builds them)", path.display());
    path
}

fn broker_with_input(events: usize) -> EmbeddedBroker {
    let broker = EmbeddedBroker::start(1).unwrap();
    for (topic, partitions) in
        [("transactions", 4), ("logins", 2), ("labels", 2), ("scores", 4), ("card_testing", 2), ("takeover_alerts", 2), ("merchant_risk", 2), ("dlq", 1)]
    {
        broker.create_topic(topic, partitions).unwrap();
    }
    let opts = PublishOptions {
        topic: "transactions".into(),
        labels_topic: Some("labels".into()),
        logins_topic: Some("logins".into()),
        events: events as u64,
        rate: None,
    };
    let config = GenConfig { bad_ratio: 0.01, cards: 2_000, seed: 17, ..GenConfig::default() };
    publish(&broker.kafka_options(), config, &opts, &PublishProgress::default(), &never()).unwrap();
    broker
}

/// Runs the example as `n` processes (one worker each; `n` = 1: alone) to the
/// end of its topics; returns each process's learner line.
fn run(broker: &EmbeddedBroker, n: usize) -> Vec<String> {
    let hosts = ports::loopback_hosts(n);
    let children: Vec<_> = (0..n)
        .map(|i| {
            let mut c = Command::new(example_binary());
            c.args(["--brokers", &broker.bootstrap_servers(), "--workers", "1"]).env("RUST_LOG", "warn");
            if n > 1 {
                c.args(["--hosts", &hosts.join(","), "--process", &i.to_string()]);
            }
            c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    // a stalled cluster fails the test instead of hanging it
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut children = children;
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        if std::time::Instant::now() > deadline {
            children.iter_mut().for_each(|c| drop(c.kill()));
            panic!("{n} processes did not finish within 600 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    children
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let out = c.wait_with_output().unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "process {i} of {n} failed:\n{text}");
            text.lines().find(|l| l.starts_with("fraud-lr-online:")).unwrap_or_else(|| panic!("no learner line:\n{text}")).to_owned()
        })
        .collect()
}

/// Every output: the records of each stream topic (as a multiset), and the
/// upsert topic's last value per key.
fn outputs(broker: &EmbeddedBroker) -> (BTreeMap<&'static str, Vec<String>>, BTreeMap<String, Option<String>>) {
    let opts = broker.kafka_options();
    let mut streams = BTreeMap::new();
    for topic in ["scores", "card_testing", "takeover_alerts", "dlq"] {
        let mut v: Vec<String> =
            read_topic(&opts, topic, Duration::from_secs(5)).unwrap().into_iter().map(|r| String::from_utf8(r.payload.unwrap_or_default()).unwrap()).collect();
        if topic == "dlq" {
            // a dead letter's detail may name the wall clock ("more than 1 h ahead of NOW")
            for d in v.iter_mut() {
                let mut j: serde_json::Value = serde_json::from_str(d).unwrap();
                j.as_object_mut().unwrap().remove("detail");
                *d = j.to_string();
            }
        }
        v.sort();
        streams.insert(topic, v);
    }
    let mut last = BTreeMap::new();
    for r in read_topic(&opts, "merchant_risk", Duration::from_secs(5)).unwrap() {
        last.insert(String::from_utf8(r.key.unwrap_or_default()).unwrap(), r.payload.map(|p| String::from_utf8(p).unwrap()));
    }
    (streams, last)
}

#[test]
fn three_processes_learn_and_score_as_one_process_does() {
    const EVENTS: usize = 20_000;
    let alone = broker_with_input(EVENTS);
    let learner = run(&alone, 1);
    let (want, want_view) = outputs(&alone);

    let cluster = broker_with_input(EVENTS);
    let replicas = run(&cluster, 3);
    let (got, got_view) = outputs(&cluster);

    for (i, line) in replicas.iter().enumerate() {
        assert_eq!(line, &learner[0], "process {i}'s learner replica against the single process's learner");
    }
    assert!(learner[0].contains(" trained") && !learner[0].contains(" 0 labels joined"), "{}", learner[0]);
    let versions: BTreeSet<String> =
        want["scores"].iter().filter_map(|s| serde_json::from_str::<serde_json::Value>(s).ok()?["model_version"].as_str().map(str::to_owned)).collect();
    assert!(versions.len() > 3, "the model changed during the run: {versions:?}");
    for (topic, records) in &want {
        assert_eq!(got[topic].len(), records.len(), "{topic}: as many records");
        let (a, b): (BTreeSet<&String>, BTreeSet<&String>) = (records.iter().collect(), got[topic].iter().collect());
        let only: Vec<_> = a.symmetric_difference(&b).take(4).collect();
        assert!(got[topic] == *records, "{topic}: the same records; some of either run only: {only:#?}");
    }
    assert!(want["scores"].len() > EVENTS / 2 && !want["takeover_alerts"].is_empty());
    assert_eq!(got_view, want_view, "the upsert topic");
}

/// `vigil run` of the demo's online, monitored TOML job on the graph
/// (`examples/fraud_online.toml`: features, a model trained online with
/// event-time consistency, feature, prediction and concept drift, fairness) as
/// three processes (`-n 3`) against one: the same scores, shadow scores and
/// drift records, record for record, over a stream that drifts.
#[test]
fn the_monitored_online_job_in_three_processes_writes_what_one_process_writes() {
    const EVENTS: u64 = 90_000;
    let run = |n: usize| {
        let broker = EmbeddedBroker::start(1).unwrap();
        // the embedded broker keeps about 5 MB per partition: room for every output
        for (topic, partitions) in [("transactions", 4), ("labels", 2), ("scores", 16), ("scores_shadow", 16), ("dlq", 1), ("drift", 1)] {
            broker.create_topic(topic, partitions).unwrap();
        }
        let opts = PublishOptions { topic: "transactions".into(), labels_topic: Some("labels".into()), logins_topic: None, events: EVENTS, rate: None };
        let config = GenConfig { bad_ratio: 0.01, cards: 5_000, seed: 23, drift_at: Some(55_000), ..GenConfig::default() };
        publish(&broker.kafka_options(), config, &opts, &PublishProgress::default(), &never()).unwrap();
        let hosts = ports::loopback_hosts(n);
        let dir = tempfile::tempdir().unwrap();
        let hostfile = dir.path().join("hosts.txt");
        std::fs::write(&hostfile, hosts.join("\n")).unwrap();
        let job = std::fs::canonicalize("examples/fraud_online.toml").unwrap();
        let children: Vec<_> = (0..n)
            .map(|i| {
                // each process in a folder of its own (its experiment log)
                let cwd = dir.path().join(format!("p{i}"));
                std::fs::create_dir_all(&cwd).unwrap();
                let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
                c.args(["run", job.to_str().unwrap(), "--engine", "graph", "--brokers", &broker.bootstrap_servers(), "--until-end"])
                    .args(["--metrics-addr", "off", "-w", "1"])
                    .current_dir(&cwd);
                if n > 1 {
                    c.args(["-n", &n.to_string(), "-p", &i.to_string(), "--hostfile", hostfile.to_str().unwrap()]);
                }
                c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        for (i, c) in children.into_iter().enumerate() {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "process {i} of {n}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut topics = BTreeMap::new();
        for topic in ["scores", "scores_shadow", "drift"] {
            let mut v: Vec<String> = read_topic(&broker.kafka_options(), topic, Duration::from_secs(5))
                .unwrap()
                .into_iter()
                .map(|r| String::from_utf8(r.payload.unwrap_or_default()).unwrap())
                .collect();
            v.sort();
            topics.insert(topic, v);
        }
        topics
    };
    let alone = run(1);
    let cluster = run(3);
    assert!(alone["scores"].len() as u64 > EVENTS * 9 / 10);
    let drifted = alone["drift"].iter().filter(|r| r.contains(r#""drift":true"#)).count();
    assert!(drifted > 0, "the stream drifts: {:#?}", &alone["drift"][..alone["drift"].len().min(5)]);
    for (topic, want) in &alone {
        let (a, b): (BTreeSet<&String>, BTreeSet<&String>) = (want.iter().collect(), cluster[topic].iter().collect());
        let only: Vec<_> = a.symmetric_difference(&b).take(4).collect();
        assert!(cluster[topic] == *want, "{topic}: {} against {} records; some of either run only: {only:#?}", cluster[topic].len(), want.len());
    }
}

/// A number after `label ` in `line` (`labels read 120,` -> 120).
fn count(line: &str, label: &str) -> u64 {
    let at = line.find(&format!("{label} ")).unwrap_or_else(|| panic!("no `{label}` in {line}")) + label.len() + 1;
    line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// An online job's learner in the checkpoints of a cluster: `vigil run` of the
/// demo's online TOML job on the graph as two processes with checkpoints,
/// paced, SIGKILLed once a checkpoint is written mid-stream (a supervisor then
/// restarts the job), resumed in one process. Both processes' learner replicas
/// are in the checkpoint (every scorer's predictions of its epochs reached every
/// replica, across processes, before the replica was asked); the resumed
/// learner goes on from process 0's state, reading the labels again from its
/// saved positions; across the kill every label is read once and ends in one
/// outcome, and nothing is trained twice.
#[test]
fn an_online_job_of_two_processes_checkpoints_its_learner_and_resumes_in_one() {
    const EVENTS: u64 = 24_000;
    let broker = EmbeddedBroker::start(1).unwrap();
    for (topic, partitions) in [("transactions", 4), ("labels", 2), ("scores", 8), ("scores_shadow", 8), ("dlq", 1), ("drift", 1)] {
        broker.create_topic(topic, partitions).unwrap();
    }
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: Some("labels".into()), logins_topic: None, events: EVENTS, rate: None };
    let config = GenConfig { bad_ratio: 0.01, cards: 3_000, seed: 29, ..GenConfig::default() };
    publish(&broker.kafka_options(), config, &opts, &PublishProgress::default(), &never()).unwrap();
    let labels = read_topic(&broker.kafka_options(), "labels", Duration::from_secs(10)).unwrap().len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("checkpoints");
    let hostfile = dir.path().join("hosts.txt");
    std::fs::write(&hostfile, ports::loopback_hosts(2).join("\n")).unwrap();
    let job = std::fs::canonicalize("examples/fraud_online.toml").unwrap();
    let vigil = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
        c.args(["run", job.to_str().unwrap(), "--engine", "graph", "--brokers", &broker.bootstrap_servers(), "--metrics-addr", "off", "-w", "1"])
            .args(["--checkpoint-dir", ck.to_str().unwrap(), "--checkpoint-interval", "1s", "--max-records-per-epoch", "1500"])
            .args(extra)
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    // two processes, live, until a checkpoint is written
    let mut cluster: Vec<_> = (0..2).map(|i| vigil(&["-n", "2", "-p", &i.to_string(), "--hostfile", hostfile.to_str().unwrap()])).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while newest_manifest(&ck).is_none_or(|e| e < 1) {
        for (i, p) in cluster.iter_mut().enumerate() {
            if p.try_wait().unwrap().is_some() {
                let out = p.wait_with_output_ref();
                panic!("process {i} ended before a checkpoint:\n{out}");
            }
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint within 120 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    for p in cluster.iter_mut() {
        p.kill().unwrap(); // SIGKILL
        p.wait().unwrap();
    }
    let epoch = newest_manifest(&ck).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(ck.join(format!("epoch-{epoch}.json"))).unwrap()).unwrap();
    assert_eq!(manifest["learners"]["fraud-lr-online"], vigil::learner::checkpoint::FORMAT, "{manifest}");
    for p in 0..2 {
        let file = ck.join(format!("epoch-{epoch}/learner-fraud-lr-online.p{p}"));
        let c = vigil::learner::checkpoint::LearnerCheckpoint::decode(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(c.epoch, epoch, "process {p}'s replica");
        assert!(c.pending.iter().all(|p| p.epoch <= epoch) && c.trained_through.is_none_or(|t| t <= epoch));
    }

    // one process resumes from the two processes' checkpoint, to the end
    let out = vigil(&["--until-end"]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let read = stderr.lines().find_map(|l| l.trim().strip_prefix("transactions: read ")?.split(',').next()?.parse::<u64>().ok()).unwrap_or(0);
    assert!(read > 0 && read < EVENTS, "the resumed process read on from the checkpoint's offsets: {read} of {EVENTS}\n{stderr}");
    let learner = stderr.lines().find(|l| l.contains("learner fraud-lr-online:")).unwrap_or_else(|| panic!("no learner line:\n{stderr}"));
    assert!(learner.contains(&format!("resumed from checkpoint {epoch}")), "{learner}");
    let n = |label: &str| count(learner, label);
    assert_eq!(n("labels read"), labels, "every label read once across the kill: {learner}");
    assert_eq!(n("joined") + n("expired") + n("orphan") + n("sampled out") + n("malformed"), labels, "{learner}");
    assert_eq!(n("trained") + n("held at end"), n("joined") + n("timed out"), "each sample trained once: {learner}");
}
