//! Savepoints and upgrades (`vigil run --savepoint-on-stop`, `vigil savepoint`,
//! `vigil run --from-savepoint`): a job stopped with a savepoint and started
//! again as a changed job keeps the state of what did not change, by name.
//!
//! Checked against an uninterrupted run of the old job over the same records:
//! after the upgrade, every unchanged feature of every event has the value the
//! uninterrupted run gave it (its windows reach back before the savepoint, so
//! a feature that started empty would differ); an added feature is there, a
//! removed one is gone; a changed window is refused, naming it, unless
//! `--allow-state-reset` names it; the online model carries over when its inputs
//! still fit, else the run is refused, naming the model. A `vigil savepoint`
//! killed while it writes leaves no savepoint that a run would use, and the
//! next one is whole.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil::demo::broker::EmbeddedBroker;
use vigil::gpu::DeviceChoice;
use vigil::kafka::read::read_topic;
use vigil::kafka::KafkaOptions;
use vigil::metrics::Metrics;
use vigil::run::{run_job, RunOptions, RunSummary};
use vigil::spec::JobSpec;
use vigil::types::Control;

#[path = "support/demo_topics.rs"]
mod demo_topics;

const EVENTS: usize = 30_000;

/// The demo job trained online, with `edit` applied to its TOML, writing its
/// scores to `scores`.
fn job(edit: impl Fn(String) -> String, scores: &str) -> JobSpec {
    let text = edit(include_str!("../examples/fraud_online.toml").to_owned());
    let mut job = JobSpec::from_toml(&text).unwrap();
    job.sinks.scores = scores.to_owned();
    let o = job.model.online.as_mut().unwrap();
    o.device = DeviceChoice::Cpu;
    o.runs_dir = None;
    job
}

/// Scores of topic `topic` by (partition, offset): the features map.
fn features(kafka: &KafkaOptions, topic: &str) -> HashMap<(i64, i64), serde_json::Map<String, serde_json::Value>> {
    read_topic(kafka, topic, Duration::from_secs(60))
        .unwrap()
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            ((v["source_partition"].as_i64().unwrap(), v["source_offset"].as_i64().unwrap()), v["features"].as_object().unwrap().clone())
        })
        .collect()
}

fn run(job: &JobSpec, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    run_job(job.clone(), opts, Metrics::new(), Control::new(), Arc::new(Mutex::new(None)))
}

/// Options of a bounded run from `savepoint` with checkpoints in a new directory.
fn upgraded(base: &RunOptions, savepoint: &Path, reset: &[&str], dir: &Path) -> RunOptions {
    RunOptions {
        until_end: true,
        checkpoint_dir: Some(dir.to_owned()),
        from_savepoint: Some(savepoint.to_owned()),
        allow_state_reset: reset.iter().map(|s| s.to_string()).collect(),
        // a group per checkpoint directory: a restart finds its offsets
        group_id: dir.file_name().unwrap().to_string_lossy().into_owned(),
        ..base.clone_settings()
    }
}

trait CloneSettings {
    fn clone_settings(&self) -> RunOptions;
}

impl CloneSettings for RunOptions {
    fn clone_settings(&self) -> RunOptions {
        RunOptions { checkpoint_interval: self.checkpoint_interval, ..RunOptions::new(self.kafka.clone(), &self.group_id, 2) }
    }
}

#[test]
fn a_job_upgraded_from_a_savepoint_keeps_the_state_of_what_did_not_change() {
    let broker = EmbeddedBroker::start(1).unwrap();
    for (t, p) in [("transactions", 4), ("labels", 4), ("dlq", 2), ("scores_shadow", 8)] {
        broker.create_topic(t, p).unwrap();
    }
    for t in ["scores_a", "scores_ref", "scores_same", "scores_added", "scores_reset", "scores_model"] {
        broker.create_topic(t, 8).unwrap();
    }
    let kafka = KafkaOptions::new(&broker.bootstrap_servers());
    let (transactions, labels) = demo_topics::transactions_and_labels(5, EVENTS);
    let producer = demo_topics::producer(&kafka);
    let produce = |topic: &str, records: &[vigil::demo::generator::Generated]| demo_topics::produce(&producer, topic, records);
    let tmp = tempfile::tempdir().unwrap();
    let (ck, saved) = (tmp.path().join("ck-a"), tmp.path().join("savepoints"));
    let base = RunOptions { checkpoint_interval: Duration::from_millis(50), ..RunOptions::new(kafka.clone(), "sp", 2) };
    let old = |scores: &str| job(|t| t, scores);

    // the old job over the first half, stopped with a savepoint
    produce("transactions", &transactions[..EVENTS / 2]);
    produce("labels", &labels);
    let opts = RunOptions { until_end: true, checkpoint_dir: Some(ck.clone()), savepoint_on_stop: Some(saved.clone()), ..base.clone_settings() };
    let first = run(&old("scores_a"), &opts).unwrap();
    let savepoint = first.savepoint.clone().expect("a savepoint at the stop");
    assert!(savepoint.starts_with(&saved), "{}", savepoint.display());

    // the reference: the old job, uninterrupted, over everything
    produce("transactions", &transactions[EVENTS / 2..]);
    run(&old("scores_ref"), &RunOptions { until_end: true, group_id: "sp-ref".into(), ..base.clone_settings() }).unwrap();
    let reference = features(&kafka, "scores_ref");

    // unchanged: everything carries over, the model included
    let same = run(&old("scores_same"), &upgraded(&base, &saved, &[], &tmp.path().join("ck-same"))).unwrap();
    assert!(same.restored_epoch.is_some());
    assert_eq!(same.learner.as_ref().unwrap().restored_epoch, same.restored_epoch, "the model and its optimizer carried over");
    let after = features(&kafka, "scores_same");
    assert!(after.len() > EVENTS / 2 - EVENTS / 20, "{} scored after the savepoint", after.len());
    let before = features(&kafka, "scores_a");
    assert!(after.keys().all(|at| !before.contains_key(at)), "only what followed the savepoint");
    for (at, f) in &after {
        assert_eq!(Some(f), reference.get(at), "event {at:?}: features equal the uninterrupted run's");
    }

    // added (tx_count_10m) and removed (amount_sum_1h): the others keep their state
    let added = job(
        |t| {
            t.replace(
                "[[feature]]\nname = \"amount_sum_1h\"\nagg = \"sum\"\nfield = \"amount\"\nwindow = \"sliding 1h\"\n",
                "[[feature]]\nname = \"tx_count_10m\"\nagg = \"count\"\nwindow = \"sliding 10m\"\n",
            )
        },
        "scores_added",
    );
    assert!(added.features.iter().any(|f| f.name() == "tx_count_10m") && !added.features.iter().any(|f| f.name() == "amount_sum_1h"));
    let second = run(&added, &upgraded(&base, &savepoint, &[], &tmp.path().join("ck-added"))).unwrap();
    assert_eq!(second.learner.as_ref().unwrap().restored_epoch, second.restored_epoch, "the model's inputs still fit");
    let after = features(&kafka, "scores_added");
    assert_eq!(after.len(), features(&kafka, "scores_same").len());
    for (at, f) in &after {
        let want = &reference[at];
        for (name, v) in want.iter().filter(|(n, _)| *n != "amount_sum_1h") {
            assert_eq!(f.get(name), Some(v), "event {at:?}: kept `{name}`");
        }
        assert!(!f.contains_key("amount_sum_1h"), "removed");
        // the added 10-minute count reads the history the job kept (1 h)
        let (n10, n1h) = (f["tx_count_10m"].as_f64().unwrap(), want["tx_count_1h"].as_f64().unwrap());
        assert!(n10 >= want["tx_count_1m"].as_f64().unwrap() && n10 <= n1h, "event {at:?}: {n10} in [1m, 1h] counts");
    }

    // changed: a window's length; refused naming it, unless reset
    let changed = job(
        |t| {
            t.replacen(
                "name = \"tx_count_1m\"\nagg = \"count\"\nwindow = \"sliding 1m\"",
                "name = \"tx_count_1m\"\nagg = \"count\"\nwindow = \"sliding 5m\"",
                1,
            )
        },
        "scores_reset",
    );
    let err = run(&changed, &upgraded(&base, &saved, &[], &tmp.path().join("ck-refused"))).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("tx_count_1m") && text.contains("window length 60000 ms -> 300000 ms") && text.contains("--allow-state-reset tx_count_1m"), "{text}");
    let reset = run(&changed, &upgraded(&base, &saved, &["tx_count_1m"], &tmp.path().join("ck-reset"))).unwrap();
    assert!(reset.restored_epoch.is_some());
    for (at, f) in &features(&kafka, "scores_reset") {
        assert_eq!(f.get("tx_count_1h"), reference[at].get("tx_count_1h"), "event {at:?}: an unchanged feature beside a reset one");
    }
    let err = run(&changed, &upgraded(&base, &saved, &["tx_count_1m", "no_such"], &tmp.path().join("ck-typo"))).unwrap_err();
    assert!(format!("{err:#}").contains("no feature, join or model named `no_such`"), "{err:#}");

    // another key: refused (its per-key state is of other entities)
    let rekeyed = job(|t| t.replace("key = \"card_id\"", "key = \"account_id\""), "scores_reset");
    let err = run(&rekeyed, &upgraded(&base, &saved, &[], &tmp.path().join("ck-rekeyed"))).unwrap_err();
    assert!(format!("{err:#}").contains("keyed by `card_id`, this job's by `account_id`"), "{err:#}");

    // the model's inputs changed: refused naming the model, unless reset
    let fewer = job(|t| t.replace("amount_max_1m = { weight = 0.0, transform = \"log1p\" }\n", ""), "scores_model");
    let err = run(&fewer, &upgraded(&base, &saved, &[], &tmp.path().join("ck-model"))).unwrap_err();
    assert!(format!("{err:#}").contains("model `fraud-lr-online` changed (inputs"), "{err:#}");
    let fresh = run(&fewer, &upgraded(&base, &saved, &["fraud-lr-online"], &tmp.path().join("ck-model-reset"))).unwrap();
    assert!(fresh.restored_epoch.is_some());
    assert_eq!(fresh.learner.as_ref().unwrap().restored_epoch, None, "the model starts from its initial weights");

    // the upgraded job's own checkpoint wins over the savepoint on a restart,
    // and a checkpoint directory of the old job is refused
    let again = run(&old("scores_same"), &upgraded(&base, &saved, &[], &tmp.path().join("ck-same"))).unwrap();
    assert!(again.restored_epoch > same.restored_epoch, "{:?} after {:?}", again.restored_epoch, same.restored_epoch);
    let err = run(&added, &upgraded(&base, &saved, &[], &ck)).unwrap_err();
    assert!(format!("{err:#}").contains("needs a checkpoint directory of its own"), "{err:#}");

    // `vigil savepoint` killed while writing: nothing a run would use is left
    let vigil = env!("CARGO_BIN_EXE_vigil");
    let killed_dir = tmp.path().join("killed");
    let status = std::process::Command::new(vigil)
        .args(["savepoint", "--checkpoint-dir"])
        .arg(&ck)
        .arg("--dir")
        .arg(&killed_dir)
        .env("FAILPOINTS", "savepoint-copying=return")
        .status()
        .unwrap();
    assert!(!status.success(), "the crash point aborts");
    let left: Vec<String> = std::fs::read_dir(&killed_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(left.len() == 1 && left[0].starts_with(".tmp-savepoint-"), "{left:?}");
    let err = run(&old("scores_same"), &upgraded(&base, &killed_dir, &[], &tmp.path().join("ck-killed"))).unwrap_err();
    assert!(format!("{err:#}").contains("holds no whole savepoint"), "{err:#}");
    let out = std::process::Command::new(vigil).args(["savepoint", "--checkpoint-dir"]).arg(&ck).arg("--dir").arg(&killed_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let left: Vec<String> = std::fs::read_dir(&killed_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, vec![written.file_name().unwrap().to_string_lossy().into_owned()], "the partial copy is gone");
    let names = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&written), names(&savepoint), "the same checkpoint, whole");
}
