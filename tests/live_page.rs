//! The job's HTTP face against a running demo (the real binary): the live page at
//! `/` loads in a real headless browser (Debian's chromium), polls
//! `/api/metrics`, and draws charts that hold data points; `promtool check
//! metrics` accepts the live `/metrics`; and the Prometheus rules and their unit
//! tests in `deploy/prometheus` pass `promtool`. The test command installs
//! chromium and prometheus: these tests fail, not skip, without them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/http_get.rs"]
mod http_get;
#[path = "support/ports.rs"]
mod ports;
use ports::quiet_port as free_port;

/// A plain HTTP/1.0 GET; the body.
fn get(addr: &str, path: &str) -> String {
    let (code, body) = http_get::get(addr, path);
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `vigil demo` with drift and bad records, serving HTTP on `addr`; returns
/// once the dashboard line is printed.
fn start_demo(addr: &str, runs: &Path) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["demo", "--events", "600000", "--rate", "20000", "--drift-at", "100000", "--bad-ratio", "0.01", "--device", "cpu", "--linger", "60"])
        .args(["--metrics-addr", addr, "--runs-dir"])
        .arg(runs)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the vigil binary starts");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let demo = Demo(child);
    for line in lines.by_ref() {
        if line.expect("utf-8 output").contains("dashboard: http://") {
            break;
        }
    }
    // keep draining stdout so that the demo never blocks on a full pipe
    std::thread::spawn(move || lines.for_each(drop));
    demo
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("`{name}` is not installed: the test command (.ci/test) installs it");
}

/// Runs `cmd`, killing it after `limit`; its status and stdout.
fn run_with_deadline(mut cmd: Command, limit: Duration, stdout_file: &Path) -> std::process::ExitStatus {
    let out = std::fs::File::create(stdout_file).expect("output file");
    let mut child = cmd.stdout(out).stderr(Stdio::null()).spawn().expect("the tool starts");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn attribute(tag: &str, name: &str) -> Option<u64> {
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    tag[at..].split('"').next()?.parse().ok()
}

/// `data-points` of every `<svg class="chart" id="chart-...">` in the DOM.
fn chart_points(dom: &str) -> Vec<(String, u64)> {
    dom.match_indices("<svg")
        .filter_map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>')?];
            let id = tag.split("id=\"chart-").nth(1)?.split('"').next()?.to_owned();
            Some((id, attribute(tag, "data-points")?))
        })
        .collect()
}

#[test]
fn live_page_draws_data_and_promtool_accepts_the_metrics() {
    let work = std::env::temp_dir().join(format!("vigil-live-page-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let _demo = start_demo(&addr, &work.join("runs"));

    // let the demo run past its first drift evaluations and labeled intervals
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let api: serde_json::Value = serde_json::from_str(&get(&addr, "/api/metrics")).expect("JSON");
        let has = |name: &str| api["metrics"][name].as_array().is_some_and(|a| !a.is_empty());
        // the drift chart draws feature findings: wait for one (concept and
        // fairness values can come first)
        let feature_drift = api["metrics"]["vigil_drift_value"].as_array().is_some_and(|a| a.iter().any(|s| s.to_string().contains("\"feature\"")));
        if feature_drift && has("vigil_fairness_gap") && has("vigil_model_variant_roc_auc") {
            break;
        }
        assert!(Instant::now() < deadline, "no drift, fairness and AUC metrics after 90 s: {api}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // promtool's linter accepts the live exposition
    let metrics = get(&addr, "/metrics");
    let mut check = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    check.stdin.take().expect("stdin").write_all(metrics.as_bytes()).expect("metrics to promtool");
    let out = check.wait_with_output().expect("promtool ends");
    assert!(out.status.success(), "promtool check metrics: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // the page in a real browser: virtual time lets it poll 8 times for real
    let (dom_file, png) = (work.join("dom.html"), work.join("dashboard.png"));
    let mut chromium = Command::new(tool("chromium"));
    chromium
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000", "--window-size=1280,1700"])
        .arg(format!("--screenshot={}", png.display()))
        .arg("--dump-dom")
        .arg(format!("http://{addr}/"));
    let status = run_with_deadline(chromium, Duration::from_secs(90), &dom_file);
    assert!(status.success(), "chromium failed: {status}");
    let dom = std::fs::read_to_string(&dom_file).expect("the DOM dump");
    let body = &dom[dom.find("<body").expect("a body")..];
    let polls = attribute(&body[..body.find('>').expect("body tag")], "data-polls").expect("data-polls on <body>");
    assert!(polls >= 5, "only {polls} polls of /api/metrics completed");
    let charts = chart_points(&dom);
    let points = |id: &str| charts.iter().find(|(c, _)| c == id).map(|c| c.1).unwrap_or_else(|| panic!("no chart `{id}` in {charts:?}"));
    for id in ["throughput", "lag", "dlq", "drift", "auc", "fairness"] {
        assert!(points(id) > 0, "chart `{id}` has no data points: {charts:?}");
    }
    let shot = std::fs::read(&png).expect("the screenshot");
    assert!(shot.starts_with(b"\x89PNG") && shot.len() > 10_000, "a PNG screenshot ({} bytes)", shot.len());
    // kept for people: target/live-page.png
    let _ = std::fs::copy(&png, Path::new(env!("CARGO_MANIFEST_DIR")).join("target/live-page.png"));
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn prometheus_rules_and_their_unit_tests_pass_promtool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    for args in [vec!["check", "rules", "alerts.yml"], vec!["test", "rules", "alerts_test.yml"], vec!["check", "config", "prometheus.yml"]] {
        let out = Command::new(tool("promtool")).args(&args).current_dir(&dir).output().expect("promtool runs");
        assert!(out.status.success(), "promtool {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
}
