//! Every part in its own process, as a user runs them: `vigil broker`, `vigil gen`,
//! and `vigil run` stopped with SIGTERM, which must finish in-flight work, flush,
//! commit and exit 0. Checked from the topics: every input offset is scored or
//! dead-lettered exactly once, and a restart of the same group reads nothing again.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_ok, KillOnDrop};
use vigil::kafka::KafkaOptions;

fn vigil(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.args(args);
    c
}

#[test]
fn broker_gen_and_run_in_separate_processes_with_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    let broker = KillOnDrop(vigil(&["broker", "--address-file", addr_file.to_str().unwrap()]).stdout(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            if !a.is_empty() {
                break a;
            }
        }
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    };

    let gen = vigil(&["gen", "--brokers", &addr, "--events", "20000", "--bad-ratio", "0.02", "--seed", "5"]).spawn().unwrap();
    wait_ok(gen, "vigil gen", Duration::from_secs(120));

    let job = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fraud_job.toml");
    let run = vigil(&["run", job, "--brokers", &addr, "-w", "2", "--metrics-addr", "127.0.0.1:0", "--group-id", "cli"]).spawn().unwrap();
    // Wait until the job has caught up (its scores topic holds everything), then stop it.
    let kafka = KafkaOptions::new(&addr);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let report = vigil::accounting::check(&kafka, "transactions", "scores", "dlq", None).unwrap();
        if report.holds() {
            break;
        }
        assert!(Instant::now() < deadline, "the job did not catch up: {} missing", report.missing.len());
        std::thread::sleep(Duration::from_millis(500));
    }
    let pid = run.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    wait_ok(run, "vigil run after SIGTERM", Duration::from_secs(60));

    let report = vigil::accounting::check(&kafka, "transactions", "scores", "dlq", None).unwrap();
    assert!(report.holds(), "{report:?}");
    assert_eq!(report.inputs, 20_000);

    // The offsets were committed on the way out: a bounded rerun of the group reads nothing.
    let rerun = vigil(&["run", job, "--brokers", &addr, "--until-end", "--metrics-addr", "off", "--group-id", "cli"]).stderr(Stdio::piped()).spawn().unwrap();
    let out = rerun.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("read 0 records") && stderr.contains("scored 0 (to scores), dead-lettered 0"), "{stderr}");
    drop(broker);
}
