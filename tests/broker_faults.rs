//! Broker faults, with the broker in its own process (`vigil broker
//! --control-stdin`): while the job runs, the broker gets slow (added round-trip
//! time), then goes down, then refuses produce requests for a while. The job
//! stalls without crashing, says so in `vigil_kafka_errors_total`, resumes when the
//! broker is back, and loses nothing: the accounting invariant holds from the topics.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::KillOnDrop;
use vigil::demo::fraud_job;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::KafkaOptions;
use vigil::metrics::Metrics;
use vigil::run::{run_job, RunOptions};
use vigil::types::Control;

const EVENTS: u64 = 300_000;

/// Sends a fault command to the broker process and waits for its answer.
fn command(stdin: &mut ChildStdin, answers: &mpsc::Receiver<String>, line: &str) {
    writeln!(stdin, "{line}").unwrap();
    let answer = answers.recv_timeout(Duration::from_secs(10)).expect("the broker answers");
    assert!(answer.contains("ok"), "{line}: {answer}");
}

#[test]
fn the_job_rides_out_a_slow_then_dead_then_refusing_broker() {
    let mut broker = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["broker", "--control-stdin", "--topic", "transactions:16", "--topic", "scores:32", "--topic", "dlq:2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = broker.stdin.take().unwrap();
    let stdout = broker.stdout.take().unwrap();
    let _broker = KillOnDrop(broker);
    let (tx, answers) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = answers.recv_timeout(Duration::from_secs(30)).expect("the broker starts");
    let addr = first.split("listening at ").nth(1).and_then(|r| r.split(' ').next()).expect("the broker prints its address").to_owned();

    let kafka = KafkaOptions::new(&addr);
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events: EVENTS, rate: None };
    publish(&kafka, GenConfig { bad_ratio: 0.01, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never()).unwrap();

    let metrics = Metrics::new();
    let control = Control::new();
    let job = {
        let run = RunOptions { until_end: true, checkpoint_interval: Duration::from_millis(200), ..RunOptions::new(kafka.clone(), "faults", 1) };
        let (metrics, control) = (metrics.clone(), control.clone());
        std::thread::spawn(move || run_job(fraud_job(), &run, metrics, control, Arc::new(Mutex::new(None))))
    };
    let progress = || metrics.scores_out.get() + metrics.dlq_total();
    let wait_for = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while progress() < n {
            assert!(Instant::now() < deadline, "stuck at {} of {n}", progress());
            std::thread::sleep(Duration::from_millis(5));
        }
    };

    wait_for(2_000);
    command(&mut stdin, &answers, "rtt 1 300");
    std::thread::sleep(Duration::from_secs(1));
    command(&mut stdin, &answers, "rtt 1 0");

    let before_down = progress();
    command(&mut stdin, &answers, "down 1");
    std::thread::sleep(Duration::from_secs(3));
    let during_down = progress();
    command(&mut stdin, &answers, "up 1");
    assert!(during_down < EVENTS, "the job finished before the broker went down");

    wait_for(during_down + 1_000);
    command(&mut stdin, &answers, "produce-errors 20");
    wait_for(EVENTS);

    let summary = job.join().unwrap().expect("the job survives the faults");
    assert_eq!(summary.committed.iter().map(|c| c.1).sum::<i64>(), EVENTS as i64);
    let errors = metrics.kafka_errors.with_label_values(&["consumer"]).get() + metrics.kafka_errors.with_label_values(&["producer"]).get();
    assert!(errors > 0, "the outage is visible in the metrics");
    assert_eq!(metrics.producer_errors.get(), 0, "librdkafka retried every output");
    let report = vigil::accounting::check(&kafka, "transactions", "scores", "dlq", None).unwrap();
    assert!(report.holds(), "{report:?}");
    assert_eq!(report.inputs, EVENTS);
    println!("progress before the outage {before_down}, during it {during_down}; {errors} Kafka errors counted");
}
