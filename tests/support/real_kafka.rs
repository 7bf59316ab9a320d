//! A real Apache Kafka broker for a test: `scripts/kafka.sh` (Kafka 4.x from
//! Maven Central, one KRaft node on loopback) started in a directory of its
//! own on free ports, stopped and removed when the guard drops. A machine
//! without Java 17+ or Maven fails the test with the script's message.

use std::path::PathBuf;
use std::process::Command;

pub struct RealKafka {
    dir: PathBuf,
    pub brokers: String,
    /// The SASL_SSL listener's address (`start_secured`).
    #[allow(dead_code)]
    pub sasl_ssl: Option<String>,
}

#[path = "ports.rs"]
mod ports;
use ports::quiet_port as free_port;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh")
}

impl RealKafka {
    #[allow(dead_code)]
    pub fn start(name: &str) -> RealKafka {
        Self::launch(name, None)
    }

    /// A broker with a SASL_SSL listener besides PLAINTEXT: SCRAM-SHA-512 user
    /// `vigil` with `password`, TLS from a test CA ([`RealKafka::ca`]).
    #[allow(dead_code)]
    pub fn start_secured(name: &str, password: &str) -> RealKafka {
        Self::launch(name, Some(password))
    }

    /// The test CA's certificate (PEM) of a secured broker.
    #[allow(dead_code)]
    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    fn launch(name: &str, password: Option<&str>) -> RealKafka {
        let dir = std::env::temp_dir().join(format!("vigil-test-kafka-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (port, controller) = (free_port(), free_port());
        let mut cmd = Command::new(script());
        cmd.args(["start", "--dir"]).arg(&dir).args(["--port", &port.to_string(), "--controller-port", &controller.to_string()]);
        if let Some(p) = password {
            cmd.args(["--sasl-ssl-port", &free_port().to_string()]).env("VIGIL_KAFKA_SCRAM_PASSWORD", p);
        }
        let out = cmd.output().expect("running scripts/kafka.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "scripts/kafka.sh start failed:\n{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = stdout.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let brokers = lines.last().copied().unwrap_or_default().to_owned();
        let sasl_ssl = password.map(|_| lines[lines.len() - 2].to_owned());
        RealKafka { dir, brokers, sasl_ssl }
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
