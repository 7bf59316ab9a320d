//! `vigil broker` as a user runs it: its default topics include `drift`, and
//! Ctrl-C (SIGINT) or SIGTERM stops it at once, without the job's shutdown message.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::KillOnDrop;

fn stops_promptly_on(signal: &str) {
    let mut broker = KillOnDrop(Command::new(env!("CARGO_BIN_EXE_vigil")).args(["broker"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    let mut stdout = BufReader::new(broker.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("vigil broker: listening at "), "{first}");
    for t in ["transactions:8", "labels:8", "scores:8", "dlq:4", "drift:1"] {
        assert!(first.contains(t), "default topic {t} missing: {first}");
    }
    // the handlers are installed before the first line
    let sent = Instant::now();
    assert!(Command::new("kill").args([signal, &broker.0.id().to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(s) = broker.0.try_wait().unwrap() {
            break s;
        }
        assert!(sent.elapsed() < Duration::from_secs(5), "the broker did not stop after {signal}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = sent.elapsed();
    assert!(status.success(), "exited with {status}");
    assert!(took < Duration::from_secs(1), "took {took:?} to stop");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    broker.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!stderr.contains("stopping") && !rest.contains("flushing"), "the job's shutdown message: {stderr}{rest}");
    assert_eq!(rest.trim(), "vigil broker: stopped");
}

#[test]
fn the_broker_stops_at_once_on_ctrl_c() {
    stops_promptly_on("-INT");
}

#[test]
fn the_broker_stops_at_once_on_sigterm() {
    stops_promptly_on("-TERM");
}
