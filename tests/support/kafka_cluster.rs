//! Three real Apache Kafka brokers for a fault test: `scripts/kafka.sh
//! cluster` (Kafka 4.x from Maven Central, three combined KRaft nodes on
//! loopback, replication factor 3, `min.insync.replicas` 2) in a directory of
//! the test's own on free ports; single nodes or all of them stopped and
//! started again; stopped and removed when the guard drops. A machine without
//! Java 17+ or Maven fails the test with the script's message.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

#[path = "ports.rs"]
mod ports;

pub struct KafkaCluster {
    dir: PathBuf,
    brokers: Vec<u16>,
    controllers: Vec<u16>,
    /// The three brokers' bootstrap list.
    pub bootstrap: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh")
}

impl KafkaCluster {
    /// Starts the three nodes (bounded by the script's readiness wait).
    pub fn start(name: &str) -> KafkaCluster {
        let dir = std::env::temp_dir().join(format!("vigil-test-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let brokers: Vec<u16> = (0..3).map(|_| ports::quiet_port()).collect();
        let controllers: Vec<u16> = (0..3).map(|_| ports::quiet_port()).collect();
        let bootstrap = brokers.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let cluster = KafkaCluster { dir, brokers, controllers, bootstrap };
        cluster.script(&["cluster", "start"]);
        cluster
    }

    fn script(&self, args: &[&str]) -> Output {
        let join = |p: &[u16]| p.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
        let out = Command::new(script())
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .env("VIGIL_KAFKA_CLUSTER_BROKER_PORTS", join(&self.brokers))
            .env("VIGIL_KAFKA_CLUSTER_CONTROLLER_PORTS", join(&self.controllers))
            .output()
            .expect("running scripts/kafka.sh");
        assert!(out.status.success(), "scripts/kafka.sh {args:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Creates a topic replicated on all three nodes.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(script()).args(["topic", "--brokers", &self.bootstrap, "create", name, &partitions.to_string(), "3"]).output().unwrap();
        assert!(out.status.success(), "creating {name}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// SIGKILLs node `n` (1-3).
    pub fn kill_node(&self, n: u32) {
        self.script(&["cluster", "stop-node", &n.to_string(), "--kill"]);
    }

    /// Starts node `n` again, on its data (bounded wait until it serves).
    pub fn start_node(&self, n: u32) {
        self.script(&["cluster", "start-node", &n.to_string()]);
    }

    /// Stops every node (SIGTERM, bounded wait, then SIGKILL), keeping the data.
    pub fn stop_all(&self) {
        self.script(&["cluster", "stop"]);
    }

    /// Starts every node again on its data.
    pub fn start_all(&self) {
        self.script(&["cluster", "start"]);
    }

    /// The node id (1-3) leading `topic`'s `partition`, as the cluster's
    /// metadata says.
    pub fn leader(&self, consumer: &BaseConsumer, topic: &str, partition: i32) -> u32 {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(30)).expect("the cluster's metadata");
        let t = md.topics().iter().find(|t| t.name() == topic).expect("the topic in the metadata");
        let p = t.partitions().iter().find(|p| p.id() == partition).expect("the partition in the metadata");
        p.leader() as u32
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["cluster", "stop", "--clean", "--dir"])
            .arg(&self.dir)
            .env("VIGIL_KAFKA_CLUSTER_BROKER_PORTS", self.brokers.iter().map(u16::to_string).collect::<Vec<_>>().join(" "))
            .env("VIGIL_KAFKA_CLUSTER_CONTROLLER_PORTS", self.controllers.iter().map(u16::to_string).collect::<Vec<_>>().join(" "))
            .output();
    }
}
