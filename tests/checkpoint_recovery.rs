//! Crash recovery from checkpoints: a job killed with SIGKILL at random moments and
//! restarted each time (sometimes with another number of workers) ends with every
//! input offset scored or dead-lettered, and every output record, duplicates
//! included, identical to the output of an uninterrupted run. That holds only if
//! the restored feature state, partition clocks and offsets are exactly right.
//! The job also runs an interval join (a card's next transaction within a minute,
//! left outer): its output after the crashes, duplicates aside, is the same set
//! of records, so the join's buffered events and timers were restored too.
//! (At-least-once: duplicates are expected; exactly-once output is future work.)

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::job_file;
use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::read::read_topic;
use vigil::kafka::KafkaOptions;

const EVENTS: u64 = 300_000;

/// (partition, offset) -> every output for it, as "topic|score features" or "dlq|reason".
fn outputs(kafka: &KafkaOptions, run: &str) -> HashMap<(u64, i64), Vec<String>> {
    let mut out: HashMap<(u64, i64), Vec<String>> = HashMap::new();
    for (topic, is_dlq) in [(format!("scores_{run}"), false), (format!("dlq_{run}"), true)] {
        for r in read_topic(kafka, &topic, Duration::from_secs(120)).unwrap() {
            let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            let key = (v["source_partition"].as_u64().unwrap(), v["source_offset"].as_i64().unwrap());
            let value = if is_dlq { format!("dlq|{}", v["reason"]) } else { format!("scores|{} {}", v["score"], v["features"]) };
            out.entry(key).or_default().push(value);
        }
    }
    out
}

/// The demo's job plus an interval join to `joins_<run>`: every transaction with
/// the card's transactions 1 ms to 1 minute later, or alone if there is none.
fn job_with_join(dir: &std::path::Path, run: &str) -> String {
    let path = job_file(dir, run);
    let text = std::fs::read_to_string(&path).unwrap().replace("[sinks]\n", &format!("[sinks]\njoins = \"joins_{run}\"\n"));
    let join = "\n[[join]]\nname = \"next_within_1m\"\nbetween = [\"1ms\", \"1m\"]\nunmatched = true\n";
    std::fs::write(&path, text + join).unwrap();
    path
}

/// Every distinct record of a run's `joins` topic, and how many records it held.
fn join_records(kafka: &KafkaOptions, run: &str) -> (std::collections::BTreeSet<String>, usize) {
    let records = read_topic(kafka, &format!("joins_{run}"), Duration::from_secs(120)).unwrap();
    let n = records.len();
    (records.into_iter().map(|r| String::from_utf8(r.payload.unwrap()).unwrap()).collect(), n)
}

/// A small deterministic generator of kill delays.
fn delays(seed: u64, n: usize) -> Vec<Duration> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            Duration::from_millis((x >> 33) % 200)
        })
        .collect()
}

#[test]
fn killed_and_restarted_jobs_match_an_uninterrupted_run() {
    let broker = EmbeddedBroker::start(1).unwrap();
    broker.create_topic("transactions", 8).unwrap();
    // MockCluster keeps at most 5 MB per partition and drops the oldest beyond
    // that: spread the outputs (with their duplicates) over enough partitions.
    for run in ["ref", "crash"] {
        broker.create_topic(&format!("scores_{run}"), 48).unwrap();
        broker.create_topic(&format!("dlq_{run}"), 4).unwrap();
        broker.create_topic(&format!("joins_{run}"), 48).unwrap();
    }
    let addr = broker.bootstrap_servers();
    let kafka = KafkaOptions::new(&addr);
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events: EVENTS, rate: None };
    publish(&kafka, GenConfig { bad_ratio: 0.01, seed: 21, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let vigil = env!("CARGO_BIN_EXE_vigil");
    let reference = Command::new(vigil)
        .args(["run", &job_with_join(dir.path(), "ref"), "--brokers", &addr, "--until-end", "--group-id", "ref", "--metrics-addr", "off"])
        .status()
        .unwrap();
    assert!(reference.success());

    let job = job_with_join(dir.path(), "crash");
    let checkpoints = dir.path().join("checkpoints");
    let args = |workers: &str| -> Vec<String> {
        [
            "run",
            &job,
            "--brokers",
            &addr,
            "--until-end",
            "--group-id",
            "crash",
            "--metrics-addr",
            "off",
            "-w",
            workers,
            "--checkpoint-dir",
            checkpoints.to_str().unwrap(),
            "--checkpoint-interval",
            "100ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let admin = kafka.admin_consumer("crash").unwrap();
    let committed = || vigil::kafka::committed_offsets(&admin, "transactions", 8).unwrap().values().sum::<i64>();
    let mut kills = 0;
    let mut restores = 0;
    for (i, delay) in delays(7, 5).into_iter().enumerate() {
        let mut child = Command::new(vigil).args(args(if i % 2 == 0 { "2" } else { "1" })).stderr(Stdio::piped()).spawn().unwrap();
        // Kill only after this run has committed a checkpoint of its own (so that
        // the next run has something new to restore), at a random moment after it.
        let before = committed();
        let mut finished = false;
        let mut since: Option<Instant> = None;
        while since.is_none_or(|t| t.elapsed() < delay) {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            if since.is_none() && committed() > before {
                since = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if finished {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        kills += 1;
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("run {i} killed {delay:?} after its first commit:\n{stderr}");
        restores += stderr.contains("restoring checkpoint") as u32;
    }
    let last = Command::new(vigil).args(args("1")).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&last.stderr);
    println!("last run:\n{stderr}");
    assert!(last.status.success(), "{stderr}");
    restores += stderr.contains("restoring checkpoint") as u32;
    assert!(kills >= 3, "the job finished before it could be killed enough ({kills} kills)");
    assert!(restores >= 2, "only {restores} runs restored a checkpoint");

    let reference = outputs(&kafka, "ref");
    let crashed = outputs(&kafka, "crash");
    assert_eq!(reference.len(), EVENTS as usize);
    assert!(reference.values().all(|v| v.len() == 1));
    let mut missing: Vec<_> = reference.keys().filter(|k| !crashed.contains_key(k)).copied().collect();
    missing.sort();
    assert!(missing.is_empty(), "{} inputs have no output after the crashes, e.g. {:?}", missing.len(), &missing[..missing.len().min(20)]);
    let mut duplicates = 0;
    for (key, want) in &reference {
        let got = crashed.get(key).unwrap_or_else(|| panic!("input {key:?} has no output after the crashes"));
        for g in got {
            assert_eq!(g, &want[0], "input {key:?}: an output differs from the uninterrupted run");
        }
        duplicates += got.len() - 1;
    }
    assert_eq!(crashed.len(), reference.len(), "outputs for offsets that do not exist");
    let (joins_ref, n_ref) = join_records(&kafka, "ref");
    let (joins_crash, n_crash) = join_records(&kafka, "crash");
    assert_eq!(joins_ref.len(), n_ref, "the uninterrupted run writes each join record once");
    assert!(n_ref > EVENTS as usize / 2, "{n_ref} join records");
    let lost: Vec<&String> = joins_ref.difference(&joins_crash).take(3).collect();
    let extra: Vec<&String> = joins_crash.difference(&joins_ref).take(3).collect();
    assert!(lost.is_empty() && extra.is_empty(), "join output differs after the crashes: missing {lost:?}, unexpected {extra:?}");
    println!("join records: {n_ref} in the uninterrupted run, {n_crash} after the crashes (duplicates: at-least-once)");
    // Checkpoints were kept to the last few.
    let manifests: BTreeMap<_, _> = std::fs::read_dir(&checkpoints).unwrap().filter_map(|e| e.ok()).map(|e| (e.file_name(), ())).collect();
    let count = manifests.keys().filter(|n| n.to_string_lossy().starts_with("manifest-")).count();
    assert!((1..=3).contains(&count), "{count} manifests kept");
    println!("{kills} kills, {restores} restores, {duplicates} duplicate outputs (at-least-once)");
}
