//! Exactly-once output of a job on the graph (`vigil run --engine graph
//! --exactly-once`), on Apache Kafka (`scripts/kafka.sh`), where Kafka itself
//! is the judge. The fraud job runs with checkpoints every second and is
//! stopped dead, again and again: at crash points (right after a checkpoint's
//! manifest, before its transaction commits; between the offsets sent to the
//! transaction and its commit; right after a commit) and by SIGKILL at random
//! moments, with 1 or 2 workers; then a last run reads to the end. Then:
//! - a `read_committed` consumer sees exactly one output (score or dead
//!   letter) per input record, equal to an uninterrupted run's;
//! - the topics also hold records of aborted transactions (the crashes did
//!   cut transactions short);
//! - the group's committed offsets, as Kafka stores them, are the input's end.
//!
//! And a zombie: a second instance with the same transactional id fences the
//! first while it is busy (paced, with outputs in flight), which stops by
//! itself with an error naming the fencing.
//!
//! And a cluster: three processes, each with its own transactional producer,
//! stopped dead at the crash points (process 0 right after a manifest, before
//! its commit, while the others may commit theirs: the next start must roll
//! its transaction forward from its log; process 2 just before its commit,
//! rolled forward by process 0 of a two-process restart), SIGKILLed, resumed
//! in two processes and in three again; the committed view equals an
//! uninterrupted single-process run's.

mod common;

#[path = "support/real_kafka.rs"]
mod real_kafka;

#[path = "support/ports.rs"]
mod ports;

#[path = "support/children.rs"]
mod children;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{job_file, KillOnDrop};
use vigil::kafka::read::{read_topic, read_topic_committed};
use vigil::kafka::KafkaOptions;

const EVENTS: u64 = 300_000;
const PARTITIONS: u32 = 8;

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

/// Every output of run `run` as a reader with `committed` isolation sees it:
/// input -> its outputs.
fn outputs(kafka: &KafkaOptions, run: &str, committed: bool) -> HashMap<(u64, i64), Vec<String>> {
    let mut out: HashMap<(u64, i64), Vec<String>> = HashMap::new();
    for (topic, is_dlq) in [(format!("scores_{run}"), false), (format!("dlq_{run}"), true)] {
        let records =
            if committed { read_topic_committed(kafka, &topic, Duration::from_secs(120)) } else { read_topic(kafka, &topic, Duration::from_secs(120)) };
        for r in records.unwrap() {
            let (key, value) = output_value(r.payload.as_deref().unwrap(), is_dlq);
            out.entry(key).or_default().push(value);
        }
    }
    out
}

fn publish(addr: &str, events: u64, seed: &str) {
    let gen = vigil()
        .args(["gen", "--brokers", addr, "--events", &events.to_string(), "--labels-topic", "none", "--bad-ratio", "0.01", "--seed", seed])
        .status()
        .unwrap();
    assert!(gen.success());
}

#[test]
fn on_apache_kafka_a_graph_job_killed_again_and_again_commits_each_output_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = real_kafka::RealKafka::start("graph-eo");
    for (t, p) in [("transactions", PARTITIONS), ("scores_ref", 8), ("dlq_ref", 2), ("scores_geo", 8), ("dlq_geo", 2)] {
        broker.create_topic(t, p);
    }
    let addr = broker.brokers.clone();
    let kafka = KafkaOptions::new(&addr);
    publish(&addr, EVENTS, "9");

    reference_run(dir.path(), &addr);

    let job = job_file(dir.path(), "geo");
    let checkpoints = dir.path().join("checkpoints");
    let log = dir.path().join("last-run.log");
    let run = |workers: &str, failpoint: Option<&str>| -> Child {
        let mut c = vigil();
        c.args(["run", &job, "--engine", "graph", "--brokers", &addr, "--until-end", "--group-id", "geo", "--metrics-addr", "off", "--exactly-once"])
            .args(["-w", workers, "--checkpoint-dir", checkpoints.to_str().unwrap(), "--checkpoint-interval", "1s"])
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null());
        if let Some(f) = failpoint {
            c.env("FAILPOINTS", f);
        }
        c.spawn().unwrap()
    };
    // Each crash point fires on its first hit: a run commits at most one
    // checkpoint before it dies, and the next resumes from the last commit.
    for (i, point) in ["graph-checkpoint-written", "graph-txn-after-offsets", "graph-txn-after-commit"].into_iter().enumerate() {
        let status = run(if i % 2 == 0 { "2" } else { "1" }, Some(&format!("{point}=return"))).wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!status.success(), "the crash point {point} did not fire ({status}); the run's log:\n{text}");
        assert!(text.contains(&format!("crash point {point} reached")), "the run failed before reaching {point}:\n{text}");
    }
    // SIGKILL at random moments
    let mut x = 777u64;
    for i in 0..4 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(1200 + (x >> 33) % 2000);
        let mut child = run(if i % 2 == 0 { "1" } else { "2" }, None);
        std::thread::sleep(delay);
        if let Some(status) = child.try_wait().unwrap() {
            // it read to the end before the kill: it must have ended cleanly
            assert!(status.success(), "a run ended by itself with {status}: {}", std::fs::read_to_string(&log).unwrap_or_default());
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let last = run("2", None).wait().unwrap();
    assert!(last.success(), "the last run failed ({last}): {}", std::fs::read_to_string(&log).unwrap_or_default());

    assert_committed_once(&kafka, EVENTS, "geo", "geo");
}

/// The job's uninterrupted single-process run, at-least-once, to `scores_ref`
/// and `dlq_ref` (group `gref`).
fn reference_run(dir: &std::path::Path, addr: &str) {
    let reference = vigil()
        .args(["run", &job_file(dir, "ref"), "--engine", "graph", "--brokers", addr, "--until-end", "--group-id", "gref", "--metrics-addr", "off"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(reference.success());
}

/// What a `read_committed` consumer sees of run `run` is the reference run's
/// outputs, one per input of the `events`; the topics also hold aborted
/// records; group `group`'s offsets, as Kafka stores them, are the input's end.
fn assert_committed_once(kafka: &KafkaOptions, events: u64, run: &str, group: &str) {
    let reference = outputs(kafka, "ref", false);
    assert_eq!(reference.len() as u64, events, "the uninterrupted run has one output per input");
    let committed = outputs(kafka, run, true);
    let mut missing = Vec::new();
    for (input, want) in &reference {
        match committed.get(input).map(Vec::as_slice) {
            None | Some([]) => missing.push(*input),
            Some(got) => assert_eq!(got, want.as_slice(), "read_committed: the outputs of input {input:?}"),
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "{} inputs have no committed output, e.g. {:?}", missing.len(), &missing[..missing.len().min(10)]);
    assert_eq!(committed.len(), reference.len(), "committed outputs for inputs that do not exist");
    let all: usize = outputs(kafka, run, false).values().map(Vec::len).sum();
    assert!(all > reference.len(), "the topics hold no record of an aborted transaction: the crashes cut nothing short");
    println!("{} inputs, each with one committed output; {} records of aborted transactions", reference.len(), all - reference.len());

    let consumer = kafka.admin_consumer(group).unwrap();
    let stored = vigil::kafka::committed_offsets(&consumer, "transactions", PARTITIONS).unwrap();
    let end = vigil::kafka::end_offsets(&consumer, "transactions", PARTITIONS).unwrap();
    assert_eq!((0..PARTITIONS).map(|p| stored.get(&p).copied().unwrap_or(-1)).collect::<Vec<_>>(), end, "group `{group}`'s offsets");
}

#[test]
fn on_apache_kafka_a_zombie_graph_instance_is_fenced_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let broker = real_kafka::RealKafka::start("graph-zombie");
    for (t, p) in [("transactions", PARTITIONS), ("scores_gz", 8), ("dlq_gz", 2)] {
        broker.create_topic(t, p);
    }
    let addr = broker.brokers.clone();
    publish(&addr, 150_000, "4");
    let job = job_file(dir.path(), "gz");
    let run = |name: &str| {
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        let mut c = vigil();
        // paced: ~20,000 records a second, so the first is mid-stream when fenced
        c.args(["run", &job, "--engine", "graph", "--brokers", &addr, "--exactly-once", "--group-id", "gzg", "--checkpoint-interval", "1s"])
            .args(["--max-records-per-epoch", "20000", "--metrics-addr", "off", "--checkpoint-dir"])
            .arg(dir.path().join("checkpoints"))
            .stdout(Stdio::null())
            .stderr(log);
        KillOnDrop(c.spawn().unwrap())
    };
    let kafka = KafkaOptions::new(&addr);
    let consumer = kafka.admin_consumer("gzg").unwrap();
    let committed = || vigil::kafka::committed_offsets(&consumer, "transactions", PARTITIONS).unwrap();
    let logs = || ["first", "second"].map(|n| std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap_or_default()).join("\n---\n");
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}; the instances' logs:\n{}", logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut first = run("first");
    wait_for("the first instance committed", &|| committed().values().sum::<i64>() > 0);
    let before = committed().values().sum::<i64>();
    assert!(before < 150_000, "the first instance was done before the second started: nothing in flight to fence");
    // a second instance on the same checkpoints, as a rescheduled pod would be
    let mut second = run("second");
    let status = {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(s) = first.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the fenced instance did not stop; the instances' logs:\n{}", logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    assert!(!status.success() && log.to_lowercase().contains("fenced"), "{status:?}\n{log}");
    publish(&addr, 20_000, "5");
    let end = vigil::kafka::end_offsets(&consumer, "transactions", PARTITIONS).unwrap();
    wait_for("the second instance committed the end", &|| (0..PARTITIONS).all(|p| committed().get(&p) == Some(&end[p as usize])));
    let term = Command::new("kill").args(["-TERM", &second.0.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = second.0.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", std::fs::read_to_string(dir.path().join("second.log")).unwrap());

    let seen = outputs(&kafka, "gz", true);
    assert_eq!(seen.len() as i64, end.iter().sum::<i64>(), "every input has a committed output");
    let twice: Vec<_> = seen.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(twice.is_empty(), "inputs with more than one committed output: {:?}", &twice[..twice.len().min(5)]);
}

/// One round of the cluster test: `n` processes of the fraud job on the graph
/// with exactly-once output (one worker each, a timely cluster on loopback,
/// one shared checkpoint directory), each logging to `round-R.pP.log`.
struct Cluster<'a> {
    dir: &'a std::path::Path,
    addr: &'a str,
    job: String,
}

impl Cluster<'_> {
    fn log(&self, round: usize, p: usize) -> std::path::PathBuf {
        self.dir.join(format!("round-{round}.p{p}.log"))
    }
    fn logs(&self, round: usize, n: usize) -> String {
        (0..n).map(|p| format!("--- process {p}:\n{}", std::fs::read_to_string(self.log(round, p)).unwrap_or_default())).collect::<Vec<_>>().join("\n")
    }
    /// Starts round `round`: `n` processes, `FAILPOINTS` set in one of them.
    fn start(&self, round: usize, n: usize, failpoint: Option<(usize, &str)>) -> Vec<KillOnDrop> {
        let hostfile = self.dir.join(format!("hosts-{round}"));
        std::fs::write(&hostfile, ports::loopback_hosts(n).join("\n")).unwrap();
        let checkpoints = self.dir.join("checkpoints");
        (0..n)
            .map(|p| {
                let mut c = vigil();
                c.args(["run", &self.job, "--engine", "graph", "--brokers", self.addr, "--until-end", "--group-id", "gc", "--metrics-addr", "off"])
                    .args(["--exactly-once", "-w", "1", "-n", &n.to_string(), "-p", &p.to_string(), "--hostfile", hostfile.to_str().unwrap()])
                    .args(["--checkpoint-dir", checkpoints.to_str().unwrap(), "--checkpoint-interval", "1s"])
                    // paced, 4,000 records a second per process, so that every round is cut short
                    .args(["--max-records-per-epoch", "4000"])
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(self.log(round, p)).unwrap());
                if let Some((_, f)) = failpoint.filter(|(at, _)| *at == p) {
                    c.env("FAILPOINTS", f);
                }
                KillOnDrop(c.spawn().unwrap())
            })
            .collect()
    }
    /// Waits until process `p` ends (at most 120 s), then stops the others
    /// as a supervisor restarting the whole job would; returns `p`'s status.
    fn stop_after(&self, mut procs: Vec<KillOnDrop>, p: usize, round: usize) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = procs[p].0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "process {p} of round {round} did not stop; the logs:\n{}", self.logs(round, procs.len()));
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(200));
        procs.clear();
        status
    }
}

/// `logs` say that process `p`'s transaction was rolled forward, with records.
fn assert_rolled_forward(logs: &str, p: usize, after: &str) {
    let records =
        logs.split(&format!("rolled forward: process {p}'s transaction")).nth(1).and_then(|t| t.split(" its ").nth(1)?.split(' ').next()?.parse::<u64>().ok());
    assert!(records.is_some_and(|n| n > 0), "the restart after {after} did not roll its transaction's records forward:\n{logs}");
}

#[test]
fn on_apache_kafka_a_cluster_killed_again_and_again_commits_each_output_once() {
    const CLUSTER_EVENTS: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let broker = real_kafka::RealKafka::start("graph-eo-cluster");
    for (t, p) in [("transactions", PARTITIONS), ("scores_ref", 8), ("dlq_ref", 2), ("scores_gc", 8), ("dlq_gc", 2)] {
        broker.create_topic(t, p);
    }
    let addr = broker.brokers.clone();
    let kafka = KafkaOptions::new(&addr);
    publish(&addr, CLUSTER_EVENTS, "11");
    reference_run(dir.path(), &addr);
    let cluster = Cluster { dir: dir.path(), addr: &addr, job: job_file(dir.path(), "gc") };

    // crash points, each in another process; the first (at the fourth
    // checkpoint, with outputs in every transaction) leaves process 0's
    // transaction uncommitted behind a published manifest
    let crash = |round: usize, n: usize, p: usize, point: &str, action: &str| {
        let status = cluster.stop_after(cluster.start(round, n, Some((p, &format!("{point}={action}")))), p, round);
        let text = cluster.logs(round, n);
        assert!(!status.success() && text.contains(&format!("crash point {point} reached")), "the crash point {point} did not fire ({status}):\n{text}");
    };
    crash(0, 3, 0, "graph-checkpoint-written", "3*off->return");
    crash(1, 3, 1, "graph-txn-after-commit", "return");
    assert_rolled_forward(&cluster.logs(1, 3), 0, "process 0 died between its manifest and its commit");
    // process 2 dies just before its third commit, behind a published manifest:
    // the next run has two processes, and process 0 rolls process 2's transaction forward
    crash(2, 3, 2, "graph-txn-before-commit", "2*off->return");
    // SIGKILLs at random moments after the round's first checkpoint (its
    // start, roll-forwards included, is done then), in two processes (a
    // three-process checkpoint resumed by two) and in three again
    let mut x = 4242u64;
    for (round, n) in [(3, 2), (4, 3)] {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let (delay, victim) = (Duration::from_millis(500 + (x >> 33) % 2500), (x >> 20) as usize % n);
        let before = children::newest_manifest(&dir.path().join("checkpoints"));
        let mut procs = cluster.start(round, n, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while children::newest_manifest(&dir.path().join("checkpoints")) <= before {
            assert!(Instant::now() < deadline, "round {round} wrote no checkpoint within 120 s:\n{}", cluster.logs(round, n));
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(delay);
        assert!(procs[victim].0.try_wait().unwrap().is_none(), "process {victim} of round {round} ended before its SIGKILL:\n{}", cluster.logs(round, n));
        procs[victim].0.kill().unwrap();
        cluster.stop_after(procs, victim, round);
    }
    assert_rolled_forward(&cluster.logs(3, 2), 2, "process 2 died between the manifest and its commit");
    crash(5, 3, 2, "graph-txn-after-offsets", "return");
    let last = cluster.start(6, 3, None);
    for (p, mut child) in last.into_iter().enumerate() {
        let status = child.0.wait().unwrap();
        assert!(status.success(), "process {p} of the last run failed ({status}):\n{}", cluster.logs(6, 3));
    }
    assert_committed_once(&kafka, CLUSTER_EVENTS, "gc", "gc");

    // the group's offsets gone (expired, deleted): a start refuses rather than
    // roll the last transactions forward again
    delete_group(&kafka, "gc");
    let out = vigil()
        .args(["run", &cluster.job, "--engine", "graph", "--brokers", &addr, "--until-end", "--group-id", "gc", "--metrics-addr", "off"])
        .args(["--exactly-once", "--checkpoint-dir", dir.path().join("checkpoints").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("offsets.retention.minutes"), "a start without the group's offsets: {}\n{text}", out.status);
}

/// Deletes consumer group `group` (its committed offsets with it).
fn delete_group(kafka: &KafkaOptions, group: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = kafka.client_config().create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deleted = runtime.block_on(admin.delete_groups(&[group], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))))).unwrap();
    assert!(deleted.iter().all(|r| r.is_ok()), "deleting group {group}: {deleted:?}");
}
