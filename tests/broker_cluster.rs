//! Broker faults on a three-broker Apache Kafka cluster (`scripts/kafka.sh
//! cluster`: KRaft, every topic replicated three times, `min.insync.replicas`
//! 2), with the fraud job running exactly-once while a paced generator feeds
//! it:
//! - the leader of an input partition is SIGKILLed under load and restarted;
//! - then every broker is stopped for 30 s and started again.
//!
//! The job never exits by itself; once the input ends its consumer group has
//! committed the input's end (the lag recovered), it stops cleanly on SIGTERM,
//! and a `read_committed` consumer sees exactly one output per input offset,
//! equal to an uninterrupted run's over the same topic on the healed cluster.

mod common;

#[path = "support/kafka_cluster.rs"]
mod kafka_cluster;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{job_file, KillOnDrop};
use vigil::kafka::read::read_topic_committed;
use vigil::kafka::txn_watch::EXIT_STALLED;
use vigil::kafka::KafkaOptions;

const PARTITIONS: u32 = 8;
/// Paced at `RATE`: ~20 s of load for the faults to fall into.
const EVENTS: u64 = 300_000;
const RATE: u64 = 15_000;
/// How long every broker stays down.
const OUTAGE: Duration = Duration::from_secs(30);

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

/// The committed outputs of a run: input (partition, offset) -> its outputs.
fn committed_outputs(kafka: &KafkaOptions, run: &str) -> HashMap<(u64, i64), Vec<String>> {
    let mut out: HashMap<(u64, i64), Vec<String>> = HashMap::new();
    for (topic, is_dlq) in [(format!("scores_{run}"), false), (format!("dlq_{run}"), true)] {
        for r in read_topic_committed(kafka, &topic, Duration::from_secs(180)).unwrap() {
            let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            let key = (v["source_partition"].as_u64().unwrap(), v["source_offset"].as_i64().unwrap());
            let value = if is_dlq { format!("dlq|{}", v["reason"]) } else { format!("scores|{} {}", v["score"], v["features"]) };
            out.entry(key).or_default().push(value);
        }
    }
    out
}

/// The last lines of the job's log.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Where the job's threads are (gdb, where the machine has it): what a stall
/// waits on.
fn stacks(pid: u32) -> String {
    let Ok(out) = Command::new("gdb").args(["-p", &pid.to_string(), "-batch", "-ex", "thread apply all bt 30"]).output() else { return "(no gdb)".into() };
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().filter(|l| l.starts_with("Thread") || l.contains("vigil") || l.contains("rd_kafka") || l.contains("rdkafka")).collect::<Vec<_>>().join("\n")
}

/// The job under a supervisor, as Kubernetes or systemd would run it: an exit
/// with `EXIT_STALLED` (a transactional call that librdkafka never returned
/// from; see `vigil::kafka::txn_watch`) is restarted; any other exit fails the
/// test.
struct Supervised {
    child: KillOnDrop,
    spawn: Box<dyn Fn() -> Child>,
    log: std::path::PathBuf,
    restarts: u32,
}

impl Supervised {
    fn new(log: &Path, spawn: Box<dyn Fn() -> Child>) -> Supervised {
        Supervised { child: KillOnDrop(spawn()), spawn, log: log.to_owned(), restarts: 0 }
    }

    /// Restarts a stalled job; panics on any other exit.
    fn check(&mut self, what: &str) {
        if let Some(status) = self.child.0.try_wait().unwrap() {
            assert_eq!(status.code(), Some(EXIT_STALLED), "the job exited ({status}) while waiting until {what}:\n{}", tail(&self.log));
            assert!(std::fs::read_to_string(&self.log).unwrap().contains("has not returned"), "{}", tail(&self.log));
            println!("the job exited with {EXIT_STALLED} (a stalled transactional call); restarting it");
            self.restarts += 1;
            assert!(self.restarts <= 3, "the job stalled {} times", self.restarts);
            self.child = KillOnDrop((self.spawn)());
        }
    }

    /// Waits until `done`, at most `limit`, failing with `what` and the job's
    /// log.
    fn wait_for(&mut self, what: &str, limit: Duration, done: &dyn Fn() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            self.check(what);
            assert!(Instant::now() < deadline, "timed out waiting until {what}:\n{}\nthe job's threads:\n{}", tail(&self.log), stacks(self.child.0.id()));
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn on_three_brokers_the_job_rides_out_a_leader_kill_and_a_full_outage() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = kafka_cluster::KafkaCluster::start("faults");
    for (t, p) in [("transactions", PARTITIONS), ("scores_c", PARTITIONS), ("dlq_c", 2), ("scores_ref", PARTITIONS), ("dlq_ref", 2)] {
        cluster.create_topic(t, p);
    }
    let addr = cluster.bootstrap.clone();
    let kafka = KafkaOptions::new(&addr);
    let consumer = kafka.admin_consumer("cg").unwrap();
    let committed = || match vigil::kafka::committed_offsets(&consumer, "transactions", PARTITIONS) {
        Ok(c) => {
            println!("committed {}", c.values().sum::<i64>());
            c
        }
        Err(e) => {
            println!("reading the group's offsets: {e:#}");
            HashMap::new()
        }
    };

    let job_log = dir.path().join("job.log");
    let (file, checkpoints, spawn_addr, spawn_log) = (job_file(dir.path(), "c"), dir.path().join("checkpoints"), addr.clone(), job_log.clone());
    let mut job = Supervised::new(
        &job_log,
        Box::new(move || {
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&spawn_log).unwrap();
            vigil()
                .args(["run", &file, "--brokers", &spawn_addr, "--exactly-once", "--group-id", "cg", "--metrics-addr", "off", "-w", "2"])
                .args(["--checkpoint-interval", "200ms", "--checkpoint-dir"])
                .arg(&checkpoints)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        }),
    );
    let gen_log = dir.path().join("gen.log");
    let mut gen = KillOnDrop(
        vigil()
            .args(["gen", "--brokers", &addr, "--events", &EVENTS.to_string(), "--rate", &RATE.to_string()])
            .args(["--labels-topic", "none", "--bad-ratio", "0.01", "--seed", "21"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&gen_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || tail(&job_log);
    job.wait_for("the job committed its first transaction", Duration::from_secs(120), &|| committed().values().sum::<i64>() > 0);

    // 1. the leader of an input partition dies under load, and comes back
    let leader = cluster.leader(&consumer, "transactions", 0);
    let before = committed().values().sum::<i64>();
    cluster.kill_node(leader);
    let t = Instant::now();
    // the job goes on with the two others: a new leader, the ISR still at 2
    // (a stalled commit ends the job 90 s after it began, and the supervisor restarts it)
    job.wait_for("the job committed past the dead leader", Duration::from_secs(240), &|| committed().values().sum::<i64>() > before + 20_000);
    println!("leader {leader} killed; the job committed {} more records in {:?}", committed().values().sum::<i64>() - before, t.elapsed());
    cluster.start_node(leader);

    // 2. every broker down, for OUTAGE
    cluster.stop_all();
    let down = Instant::now();
    while down.elapsed() < OUTAGE {
        job.check("every broker was down");
        std::thread::sleep(Duration::from_millis(500));
    }
    cluster.start_all();
    println!("every broker was down for {:?}", down.elapsed());

    // the input ends; the lag recovers: the group commits the input's end
    let status = gen.0.wait().unwrap();
    assert!(status.success(), "the generator failed: {}", std::fs::read_to_string(&gen_log).unwrap_or_default());
    // the client's metadata catches up with the restarted cluster within seconds
    let end = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match vigil::kafka::end_offsets(&consumer, "transactions", PARTITIONS) {
                Ok(end) => break end,
                Err(e) if Instant::now() < deadline => println!("reading the input's end: {e:#}"),
                Err(e) => panic!("reading the input's end: {e:#}"),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    assert!(end.iter().sum::<i64>() >= EVENTS as i64, "the input holds {} records", end.iter().sum::<i64>());
    job.wait_for("the group committed the input's end", Duration::from_secs(300), &|| {
        let c = committed();
        (0..PARTITIONS).all(|p| c.get(&p) == Some(&end[p as usize]))
    });
    let term = Command::new("kill").args(["-TERM", &job.child.0.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = job.child.0.wait().unwrap();
    println!("restarts after a stalled transactional call: {}", job.restarts);
    // the final commit may stall as any other (seen once after the outage: the
    // group's coordinator cached from before it); that exit is the watchdog's
    // or fail on a broker connection not yet back (a transactional error that is
    // not fatal): the same exit, its transaction aborted and redone at a restart
    let stalled_at_stop =
        status.code() == Some(EXIT_STALLED) && (tail(&job_log).contains("has not returned") || tail(&job_log).contains("the final commit of the stop failed"));
    println!("the final commit stalled: {stalled_at_stop}");
    assert!(status.success() || stalled_at_stop, "the job did not stop cleanly ({status}):\n{}", log());
    assert!(!std::fs::read_to_string(&job_log).unwrap().contains("panicked"), "{}", log());

    // the same topic, read by an uninterrupted run on the healed cluster
    let reference = vigil()
        .args(["run", &job_file(dir.path(), "ref"), "--brokers", &addr, "--until-end", "--group-id", "ref", "--metrics-addr", "off", "-w", "2"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(reference.success());
    let want = committed_outputs(&kafka, "ref");
    assert_eq!(want.len() as i64, end.iter().sum::<i64>(), "the uninterrupted run: one output per input");
    let got = committed_outputs(&kafka, "c");
    let mut wrong = Vec::new();
    for (key, w) in &want {
        if got.get(key).map(Vec::as_slice) != Some(std::slice::from_ref(&w[0])) {
            wrong.push((*key, got.get(key).cloned().unwrap_or_default()));
        }
    }
    wrong.sort();
    assert!(
        wrong.is_empty(),
        "{} inputs without exactly one committed output equal to the uninterrupted run's, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(got.len(), want.len(), "outputs for inputs that do not exist");
}
