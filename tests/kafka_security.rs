//! `vigil run` against Apache Kafka's SASL_SSL listener (SCRAM-SHA-512 over
//! TLS, a test CA made by `scripts/kafka.sh start --sasl-ssl-port`): the job
//! reads and writes through it with the password from the environment, which
//! never shows in its output; a wrong password stops the job with a message
//! that says authentication failed, instead of a hang.

use std::process::{Command, Output};
use std::time::Duration;

use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::KafkaOptions;

#[path = "support/real_kafka.rs"]
mod real_kafka;
use real_kafka::RealKafka;

const PASSWORD: &str = "vigil-Test-Pass-7731";

/// `vigil run` of the fraud job through the SASL_SSL listener to the end of its input.
fn run(broker: &RealKafka, password: &str, group: &str) -> Output {
    let job = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fraud_job.toml");
    let ca = broker.ca();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("run")
        .arg(&job)
        .args(["--brokers", broker.sasl_ssl.as_deref().unwrap(), "--until-end", "--metrics-addr", "off", "--group-id", group])
        .args(["-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=vigil"])
        .args(["-X", "sasl.password=env:KAFKA_PASSWORD", "-X", &format!("ssl.ca.location={}", ca.display())])
        .env("KAFKA_PASSWORD", password)
        // everything vigil logs, to catch a leak
        .env("RUST_LOG", "debug");
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    // a stuck job fails the test instead of hanging it (and only that job: the
    // watchdog stands down once it ended)
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let ended = ended.clone();
        std::thread::spawn(move || {
            for _ in 0..2400 {
                std::thread::sleep(Duration::from_millis(100));
                if ended.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
            }
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        })
    };
    let out = child.wait_with_output().unwrap();
    ended.store(true, std::sync::atomic::Ordering::SeqCst);
    watchdog.join().unwrap();
    out
}

#[test]
fn a_job_reads_and_writes_through_sasl_ssl_and_never_shows_the_password() {
    let broker = RealKafka::start_secured("security", PASSWORD);
    for (t, p) in [("transactions", 4), ("scores", 4), ("dlq", 2)] {
        broker.create_topic(t, p);
    }
    let plain = KafkaOptions::new(&broker.brokers);
    let events = 3_000;
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events, rate: None };
    publish(&plain, GenConfig { bad_ratio: 0.02, seed: 3, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never()).unwrap();

    let out = run(&broker, PASSWORD, "secure");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "vigil run over SASL_SSL failed:\n{text}");
    assert!(!text.contains(PASSWORD), "the password shows in vigil's output");

    // every input offset scored or dead-lettered, read back over PLAINTEXT
    let report = vigil::accounting::check(&plain, "transactions", "scores", "dlq", None).unwrap();
    assert!(report.holds(), "{report:?}");
    assert_eq!(report.inputs, events);
    assert!(report.scored > 2_500 && report.dead_lettered > 0, "{report:?}");

    let out = run(&broker, "not-the-password", "refused");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a wrong password must stop the job:\n{text}");
    assert!(text.contains("uthentication failed"), "the failure must say authentication failed:\n{text}");
    assert!(!text.contains("not-the-password"), "the password shows in vigil's output");
}
