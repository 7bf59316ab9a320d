//! The demo as a newcomer runs it: `vigil demo --events 200000 --bad-ratio 0.01
//! --linger 10`. While it lingers, kcat (a Kafka client that is not vigil) reads
//! every record of `transactions`, `scores` and `dlq` from the printed address, and
//! every generated offset is in exactly one of `scores` and `dlq`. The demo's
//! /metrics answers, and the demo exits 0.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn kcat(addr: &str, topic: &str, format: &str) -> Vec<String> {
    let out = Command::new("kcat")
        .args(["-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", format])
        .output()
        .expect("kcat must be installed (the test command installs it)");
    assert!(out.status.success(), "kcat failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect()
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn the_demo_runs_and_kcat_reads_every_record() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["demo", "--events", "200000", "--bad-ratio", "0.01", "--linger", "10", "--metrics-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("demo: {line}");
            let _ = tx.send(line);
        }
    });
    let (mut addr, mut metrics) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the demo did not reach its linger phase");
        if let Some(a) = line.strip_prefix("vigil demo: embedded Kafka broker at ") {
            addr = Some(a.trim().to_owned());
        }
        if let Some(m) = line.trim().strip_prefix("metrics: http://") {
            metrics = Some(m.trim_end_matches("/metrics").to_owned());
        }
        if line.starts_with("broker stays up") {
            break;
        }
    }
    let addr = addr.expect("the demo printed its broker address");
    let metrics = metrics.expect("the demo printed its metrics address");

    let inputs = kcat(&addr, "transactions", "%p %o\n");
    assert_eq!(inputs.len(), 200_000);
    let mut seen: HashMap<(u64, i64), u32> = HashMap::new();
    let mut scored = 0;
    for topic in ["scores", "dlq"] {
        for line in kcat(&addr, topic, "%s\n") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            *seen.entry((v["source_partition"].as_u64().unwrap(), v["source_offset"].as_i64().unwrap())).or_default() += 1;
            if topic == "scores" {
                scored += 1;
                assert!(v["score"].as_f64().unwrap() >= 0.0 && v["features"]["tx_count_1h"].as_f64().unwrap() >= 1.0);
            } else {
                assert!(v["reason"].is_string() && v["payload_sha256"].is_string());
            }
        }
    }
    for line in &inputs {
        let (p, o) = line.split_once(' ').unwrap();
        let n = seen.remove(&(p.parse().unwrap(), o.parse().unwrap()));
        assert_eq!(n, Some(1), "offset {line} must be in exactly one of scores and dlq");
    }
    assert!(seen.is_empty(), "outputs for offsets that do not exist: {:?}", seen.keys().take(5).collect::<Vec<_>>());
    assert!(scored > 195_000 && scored < 200_000, "scored {scored}");

    // the drift topic: every record carries DESIGN.md's fields (whether anything
    // drifts is tests/drift_monitoring.rs's question, on a paced stream)
    let drift = kcat(&addr, "drift", "%s\n");
    assert!(drift.len() > 50, "{} drift records", drift.len());
    for line in &drift {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(["feature", "prediction", "concept", "fairness"].contains(&v["kind"].as_str().unwrap()), "{line}");
        assert!(v["ts"].is_i64() && v["name"].is_string() && v["method"].is_string() && v["value"].is_f64() && v["threshold"].is_f64(), "{line}");
        assert!(v["drift"].is_boolean(), "{line}");
    }

    let body = http_get(&metrics, "/metrics");
    assert!(body.contains(&format!("vigil_scores_out_total {scored}")), "{body}");
    assert!(body.contains("vigil_dlq_total{reason=\"late\"}"));

    let status = demo.wait().unwrap();
    assert!(status.success(), "the demo exited with {status}");
}
