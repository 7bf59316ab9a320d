//! Exactly-once output across crashes, with the broker in its own process
//! (`vigil broker`). The job runs with `--exactly-once` and checkpoints, and is
//! killed with SIGKILL at random moments and at crash points (before and after the
//! checkpoint rename, before the transaction commit, between the offsets sent to
//! the transaction and its commit, after the commit), restarting each time. Then, from the topics and the job's transaction log:
//! - no accepted input is missing: the committed view has every input offset;
//! - the committed view holds exactly one record per input, with the same values
//!   as an uninterrupted run;
//! - every other record (from transactions that never committed; MockCluster does
//!   not hide them from read_committed consumers, so the log tells them apart) is
//!   identical to the uninterrupted run's record for the same input.
//!
//! And the same against Apache Kafka (`scripts/kafka.sh`), where Kafka itself
//! is the judge: a `read_committed` consumer sees exactly one output per input,
//! equal to the uninterrupted run's, though the topics hold aborted records;
//! and the job's consumer group has committed the input's end offsets.

mod common;

#[path = "support/real_kafka.rs"]
mod real_kafka;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{job_file, KillOnDrop};
use vigil::checkpoint::txlog;
use vigil::kafka::read::{read_topic, read_topic_committed};
use vigil::kafka::KafkaOptions;

const EVENTS: u64 = 1_000_000;

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

/// An output record's input (partition, offset) and what it says.
fn output_value(payload: &[u8], is_dlq: bool) -> ((u64, i64), String) {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    let key = (v["source_partition"].as_u64().unwrap(), v["source_offset"].as_i64().unwrap());
    let value = if is_dlq { format!("dlq|{}", v["reason"]) } else { format!("scores|{} {}", v["score"], v["features"]) };
    (key, value)
}

/// Every output record of a run: (partition, offset) -> [(run, epoch, value)].
fn outputs(kafka: &KafkaOptions, run: &str) -> HashMap<(u64, i64), Vec<(String, u64, String)>> {
    let mut out: HashMap<(u64, i64), Vec<(String, u64, String)>> = HashMap::new();
    for (topic, is_dlq) in [(format!("scores_{run}"), false), (format!("dlq_{run}"), true)] {
        for r in read_topic(kafka, &topic, Duration::from_secs(300)).unwrap() {
            let (key, value) = output_value(r.payload.as_deref().unwrap(), is_dlq);
            let run_id = r.header("vigil-run").expect("every output has a vigil-run header").to_owned();
            let epoch = r.header("vigil-epoch").expect("every output has a vigil-epoch header").parse().unwrap();
            out.entry(key).or_default().push((run_id, epoch, value));
        }
    }
    out
}

const TOPICS: [&str; 5] = ["transactions:32", "scores_ref:64", "dlq_ref:4", "scores_eo:64", "dlq_eo:4"];

#[test]
fn crashes_leave_exactly_one_committed_output_per_input() {
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    let mut args = vec!["broker".to_string(), "--address-file".into(), addr_file.display().to_string()];
    for t in TOPICS {
        args.extend(["--topic".into(), t.into()]);
    }
    let _broker = KillOnDrop(vigil().args(&args).stdout(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Some(a) = std::fs::read_to_string(&addr_file).ok().filter(|a| !a.is_empty()) {
            break a;
        }
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    crash_and_check(&addr, dir.path());
}

#[test]
fn on_apache_kafka_read_committed_sees_exactly_one_output_per_input() {
    let dir = tempfile::tempdir().unwrap();
    let broker = real_kafka::RealKafka::start("exactly-once");
    for t in TOPICS {
        let (name, partitions) = t.split_once(':').unwrap();
        broker.create_topic(name, partitions.parse().unwrap());
    }
    let reference = crash_and_check(&broker.brokers, dir.path());
    let kafka = KafkaOptions::new(&broker.brokers);
    let mut committed: HashMap<(u64, i64), Vec<String>> = HashMap::new();
    for (topic, is_dlq) in [("scores_eo", false), ("dlq_eo", true)] {
        for r in read_topic_committed(&kafka, topic, Duration::from_secs(120)).unwrap() {
            let (key, value) = output_value(r.payload.as_deref().unwrap(), is_dlq);
            committed.entry(key).or_default().push(value);
        }
    }
    assert_eq!(committed.len(), reference.len(), "read_committed: inputs with an output");
    for (key, want) in &reference {
        assert_eq!(committed.get(key).map(Vec::as_slice), Some(std::slice::from_ref(&want[0].2)), "read_committed: the outputs of input {key:?}");
    }
    // the group's offsets as Kafka stores them: the input's end
    let consumer = kafka.admin_consumer("eo").unwrap();
    let stored = vigil::kafka::committed_offsets(&consumer, "transactions", 32).unwrap();
    let end = vigil::kafka::end_offsets(&consumer, "transactions", 32).unwrap();
    assert_eq!((0..32).map(|p| stored.get(&p).copied().unwrap_or(-1)).collect::<Vec<_>>(), end);
}

/// Publishes the input, runs the uninterrupted reference and the crashing
/// exactly-once job, checks the committed view through the transaction log,
/// and returns the reference's outputs.
fn crash_and_check(addr: &str, dir: &std::path::Path) -> HashMap<(u64, i64), Vec<(String, u64, String)>> {
    let addr = addr.to_owned();
    let kafka = KafkaOptions::new(&addr);
    let gen = vigil()
        .args(["gen", "--brokers", &addr, "--events", &EVENTS.to_string(), "--labels-topic", "none", "--bad-ratio", "0.01", "--seed", "9"])
        .status()
        .unwrap();
    assert!(gen.success());

    let reference = vigil()
        .args(["run", &job_file(dir, "ref"), "--brokers", &addr, "--until-end", "--group-id", "ref", "--metrics-addr", "off", "-w", "2"])
        .status()
        .unwrap();
    assert!(reference.success());

    let job = job_file(dir, "eo");
    let checkpoints = dir.join("checkpoints");
    let run = |workers: &str, failpoint: Option<&str>| -> Child {
        let mut c = vigil();
        c.args(["run", &job, "--brokers", &addr, "--until-end", "--group-id", "eo", "--metrics-addr", "off", "--exactly-once", "-w", workers])
            .args(["--checkpoint-dir", checkpoints.to_str().unwrap(), "--checkpoint-interval", "200ms"])
            .stderr(std::fs::File::create(dir.join("last-run.log")).unwrap())
            .stdout(Stdio::null());
        if let Some(f) = failpoint {
            c.env("FAILPOINTS", f);
        }
        c.spawn().unwrap()
    };
    // Crash points: each fires on its first hit, aborting the process. (On a
    // later hit a point may never fire: a release build commits the whole
    // input within a few 200 ms checkpoints, and each run here resumes where
    // the last committed; on its first hit at most one epoch is committed per
    // run.) The SIGKILLs below hit runs that restore state mid-stream.
    for point in ["checkpoint-before-rename", "checkpoint-after-rename", "txn-before-commit", "txn-after-offsets", "txn-after-commit"] {
        let mut child = run("2", Some(&format!("{point}=return")));
        let status = child.wait().unwrap();
        let log = std::fs::read_to_string(dir.join("last-run.log")).unwrap_or_default();
        assert!(!status.success(), "the crash point {point} did not fire ({status}); the run's log:\n{log}");
        assert!(log.contains(&format!("crash point {point} reached")), "the run failed before reaching {point}:\n{log}");
    }
    // SIGKILL at random moments.
    let mut x = 12345u64;
    for i in 0..5 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(300 + (x >> 33) % 1500);
        let mut child = run(if i % 2 == 0 { "1" } else { "2" }, None);
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let last = run("2", None).wait().unwrap();
    assert!(last.success(), "the last run failed ({last}): {}", std::fs::read_to_string(dir.join("last-run.log")).unwrap_or_default());

    let log = txlog::read_entries(&checkpoints.join(txlog::FILE)).unwrap();
    assert!(log.iter().any(|e| e.state == "committed"));
    // Every decision is settled: crashes left some open, and restarts settled them.
    for e in log.iter().filter(|e| e.state == "committing") {
        assert!(log.iter().any(|s| s.state != "committing" && s.run == e.run && s.through == e.through), "open decision {e:?}");
    }

    let reference = outputs(&kafka, "ref");
    assert_eq!(reference.len(), EVENTS as usize);
    let crashed = outputs(&kafka, "eo");
    let (mut uncommitted, mut missing) = (0, Vec::new());
    for (key, want) in &reference {
        let want = &want[0].2;
        let got = crashed.get(key).map(Vec::as_slice).unwrap_or_default();
        let committed: Vec<_> = got.iter().filter(|(run, epoch, _)| txlog::is_committed(&log, run, *epoch)).collect();
        if committed.is_empty() {
            missing.push(*key);
            continue;
        }
        assert_eq!(committed.len(), 1, "input {key:?} has {} committed outputs", committed.len());
        assert_eq!(&committed[0].2, want, "input {key:?}: the committed output differs from the uninterrupted run");
        for (_, _, value) in got {
            assert_eq!(value, want, "input {key:?}: an uncommitted duplicate differs");
        }
        uncommitted += got.len() - 1;
    }
    missing.sort();
    assert!(missing.is_empty(), "{} inputs have no committed output, e.g. {:?}", missing.len(), &missing[..missing.len().min(10)]);
    assert_eq!(crashed.len(), reference.len(), "outputs for inputs that do not exist");
    assert!(uncommitted > 0, "the crashes left no uncommitted output: the test did not exercise recovery");
    println!(
        "{} inputs, {} committed transactions, {uncommitted} records of uncommitted transactions",
        reference.len(),
        log.iter().filter(|e| e.state == "committed").count()
    );
    reference
}

/// A zombie, on Apache Kafka: a second instance of the job with the same
/// transactional id (same job, group and process index: a pod rescheduled
/// while the old one still runs) fences the first. The first stops by itself,
/// with an error naming the fencing, and commits nothing more; the second goes
/// on, takes the input that arrives after it started, and stops cleanly on
/// SIGTERM. A `read_committed` consumer sees exactly one output per input, and
/// the group has committed the input's end.
#[test]
fn on_apache_kafka_a_zombie_instance_is_fenced_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let broker = real_kafka::RealKafka::start("zombie");
    for (t, p) in [("transactions", 8), ("scores_z", 8), ("dlq_z", 2)] {
        broker.create_topic(t, p);
    }
    let addr = broker.brokers.clone();
    let publish = |seed: &str| {
        let gen =
            vigil().args(["gen", "--brokers", &addr, "--events", "50000", "--labels-topic", "none", "--bad-ratio", "0.01", "--seed", seed]).status().unwrap();
        assert!(gen.success());
    };
    publish("4");
    let job = job_file(dir.path(), "z");
    let run = |name: &str| {
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        let mut c = vigil();
        c.args(["run", &job, "--brokers", &addr, "--exactly-once", "--group-id", "zg", "--checkpoint-interval", "200ms", "--metrics-addr", "off"])
            .arg("--checkpoint-dir")
            .arg(dir.path().join(name))
            .stdout(Stdio::null())
            .stderr(log);
        KillOnDrop(c.spawn().unwrap())
    };
    let kafka = KafkaOptions::new(&addr);
    let consumer = kafka.admin_consumer("zg").unwrap();
    let committed = || vigil::kafka::committed_offsets(&consumer, "transactions", 8).unwrap();
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut first = run("first");
    wait_for("the first instance committed", &|| committed().values().sum::<i64>() > 0);
    let mut second = run("second");
    // the first stops by itself once fenced
    let status = {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(s) = first.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the fenced instance did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    assert!(!status.success() && log.to_lowercase().contains("fenced"), "{status:?}\n{log}");
    // more input: the second takes it, alone
    publish("5");
    let end = vigil::kafka::end_offsets(&consumer, "transactions", 8).unwrap();
    wait_for("the second instance committed the end", &|| (0..8).all(|p| committed().get(&p) == Some(&end[p as usize])));
    let term = Command::new("kill").args(["-TERM", &second.0.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = second.0.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", std::fs::read_to_string(dir.path().join("second.log")).unwrap());

    let mut seen: HashMap<(u64, i64), usize> = HashMap::new();
    for (topic, is_dlq) in [("scores_z", false), ("dlq_z", true)] {
        for r in read_topic_committed(&kafka, topic, Duration::from_secs(120)).unwrap() {
            *seen.entry(output_value(r.payload.as_deref().unwrap(), is_dlq).0).or_default() += 1;
        }
    }
    assert_eq!(seen.len() as i64, end.iter().sum::<i64>(), "every input has a committed output");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "inputs with more than one committed output: {:?}", &twice[..twice.len().min(5)]);
    assert_eq!((0..8).map(|p| committed().get(&p).copied().unwrap_or(-1)).collect::<Vec<_>>(), end);
}
