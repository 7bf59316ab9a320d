//! A real Apache Kafka broker for a test: `scripts/kafka.sh` (Kafka 4.x from
//! Maven Central, one KRaft node on loopback) started in a directory of its
//! own on free ports, stopped and removed when the guard drops. A machine
//! without Java 17+ or Maven fails the test with the script's message.

use std::path::PathBuf;
use std::process::Command;

pub struct RealKafka {
    dir: PathBuf,
    pub brokers: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh")
}

impl RealKafka {
    pub fn start(name: &str) -> RealKafka {
        let dir = std::env::temp_dir().join(format!("vigil-test-kafka-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (port, controller) = (free_port(), free_port());
        let out = Command::new(script())
            .args(["start", "--dir"])
            .arg(&dir)
            .args(["--port", &port.to_string(), "--controller-port", &controller.to_string()])
            .output()
            .expect("running scripts/kafka.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "scripts/kafka.sh start failed:\n{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
        let brokers = stdout.lines().last().unwrap_or_default().trim().to_owned();
        RealKafka { dir, brokers }
    }

    /// Creates a topic with Kafka's own tool.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(script()).args(["topic", "--brokers", &self.brokers, "create", name, &partitions.to_string()]).output().unwrap();
        assert!(out.status.success(), "creating {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for RealKafka {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["stop", "--clean", "--dir"]).arg(&self.dir).output();
    }
}
