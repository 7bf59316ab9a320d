//! An online model's learner in a graph's checkpoints: a graph that scores with
//! a model trained online from late labels runs in memory with checkpoints,
//! crashes dead after an epoch, and restarts from its newest checkpoint (with
//! the same or another number of workers). Every saved learner state is behind
//! or at its checkpoint's epoch (the sealing rule); across the crash every label
//! is read once, each ends in exactly one outcome, every labeled prediction
//! joins (those restored too), nothing is trained twice, and every event is
//! scored, those after the checkpoint by the restarted run. A checkpoint whose
//! online models differ from the graph's is refused by name.

use std::collections::BTreeSet;
use std::time::Duration;

use vigil::graph::{GraphBuilder, LocalRun, OnlineModel, Outputs, Source};
use vigil::learner::checkpoint::LearnerCheckpoint;
use vigil::learner::{LabelSpec, LearnerSummary};
use vigil::spec::FieldType;
use vigil_operators::Transform;

const EVENTS: i64 = 6_000;
/// Records per partition per epoch.
const EPOCH_RECORDS: usize = 50;
const EVERY: u64 = 4;
const T0: i64 = 1_700_000_000_000;

/// Transactions in two partitions (big amounts are fraud), and their labels,
/// known 2 s after the event, in one.
fn topics() -> (Vec<Vec<Vec<u8>>>, Vec<Vec<Vec<u8>>>) {
    let mut tx = vec![Vec::new(), Vec::new()];
    let mut labels = Vec::new();
    for i in 0..EVENTS {
        let fraud = i % 5 == 0;
        let amount = if fraud { 700 + i % 300 } else { 5 + i % 40 };
        tx[(i % 2) as usize].push(format!(r#"{{"id":"e{i}","card":"c{}","ts":{},"amount":{amount}}}"#, i % 97, T0 + i * 10).into_bytes());
        labels.push(format!(r#"{{"id":"e{i}","y":{fraud},"at":{}}}"#, T0 + i * 10 + 2_000).into_bytes());
    }
    (tx, vec![labels])
}

fn graph(g: &mut GraphBuilder<'_>) -> anyhow::Result<()> {
    let labels = LabelSpec::new("labels", "id", "y", Duration::from_secs(600), None).revealed_at("at", Duration::from_secs(1));
    let model = OnlineModel::logistic("fraud", labels).input("amount", Transform::Log1p).configure(|s| {
        s.variants = 2;
        s.device = vigil::gpu::DeviceChoice::Cpu;
        s.runs_dir = None;
    });
    g.source(Source::json("tx").key("card").event_id("id").field("amount", FieldType::F64)).score_online(model).sink_scores("scores");
    Ok(())
}

fn run(workers: usize, dir: &std::path::Path, crash_after: Option<u64>) -> Outputs {
    let (tx, labels) = topics();
    let mut r = LocalRun::new(workers).epoch_records(EPOCH_RECORDS).topic("tx", tx).topic("labels", labels).checkpoints(dir, EVERY);
    if let Some(c) = crash_after {
        r = r.crash_after_epoch(c);
    }
    r.run(graph).unwrap()
}

/// The event ids of the scores written in epochs `keep` admits.
fn scored(out: &Outputs, keep: impl Fn(u64) -> bool) -> Vec<String> {
    out.sink("scores")
        .iter()
        .filter(|r| keep(r.epoch))
        .map(|r| serde_json::from_str::<serde_json::Value>(r.value.as_deref().unwrap()).unwrap()["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every label ends in one outcome, and every joined or timed-out prediction
/// is trained on once or still waits for its epoch's seal.
fn assert_accounted(l: &LearnerSummary) {
    let c = &l.counts;
    assert_eq!(c.labels_read, EVENTS as u64, "every label read once in all: {l:?}");
    assert_eq!(c.joined + c.expired + c.orphan + c.sampled_out + c.malformed, c.labels_read, "{l:?}");
    assert_eq!(c.joined, EVENTS as u64, "every label joins its prediction: {l:?}");
    assert_eq!(c.trained + l.held_at_end, c.joined + c.timed_out, "trained once each: {l:?}");
}

/// The learner states of the checkpoints kept in `dir`: each behind or at its epoch.
fn check_saved_states(dir: &std::path::Path) -> usize {
    let mut seen = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(epoch) = name.strip_prefix("epoch-").and_then(|n| n.strip_suffix(".json")).and_then(|n| n.parse::<u64>().ok()) else { continue };
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(&name)).unwrap()).unwrap();
        assert_eq!(manifest["learners"]["fraud"], vigil::learner::checkpoint::FORMAT, "{manifest}");
        let c = LearnerCheckpoint::decode(&std::fs::read(dir.join(format!("epoch-{epoch}/learner-fraud.p0"))).unwrap()).unwrap();
        assert_eq!(c.epoch, epoch);
        assert!(c.trained_through.is_none_or(|t| t <= epoch), "trained on epoch {:?} in checkpoint {epoch}", c.trained_through);
        assert!(c.pending.iter().chain(c.held.iter().map(|h| &h.0)).all(|p| p.epoch <= epoch), "a prediction of a later epoch in checkpoint {epoch}");
        assert_eq!(c.label_positions.iter().map(|p| p.1 as u64).sum::<u64>(), c.counts.labels_read, "labels read are the positions saved");
        assert!(c.counts.trained > 0 || epoch < 2 * EVERY, "checkpoint {epoch} trained nothing: {:?}", c.counts);
        seen += 1;
    }
    seen
}

fn crash_and_restore(before: usize, after: usize, crash_at: u64) {
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = run(1, whole_dir.path(), None);
    assert_accounted(&whole.learners["fraud"]);
    assert!(check_saved_states(whole_dir.path()) > 0);

    let dir = tempfile::tempdir().unwrap();
    let crashed = run(before, dir.path(), Some(crash_at));
    let restored = *crashed.checkpoints.last().expect("a checkpoint before the crash");
    assert!(restored <= crash_at && restored % EVERY == EVERY - 1, "checkpoint {restored}, crash after {crash_at}");
    assert!(check_saved_states(dir.path()) > 0);
    let saved = LearnerCheckpoint::decode(&std::fs::read(dir.path().join(format!("epoch-{restored}/learner-fraud.p0"))).unwrap()).unwrap();

    let resumed = run(after, dir.path(), None);
    let l = &resumed.learners["fraud"];
    assert_eq!(l.restored_epoch, Some(restored));
    assert!(l.counts.trained >= saved.counts.trained, "the counts go on from the checkpoint's");
    assert_accounted(l);
    // every event is scored: up to the checkpoint by the crashed run, the rest
    // (each once) by the restarted one
    let mut all: Vec<String> = scored(&crashed, |e| e <= restored);
    let again = scored(&resumed, |_| true);
    assert_eq!(again.len() as i64, EVENTS - (restored as i64 + 1) * 2 * EPOCH_RECORDS as i64, "the restarted run scores the epochs after {restored}");
    all.extend(again);
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (EVENTS as usize, EVENTS as usize), "each event scored once across the crash");
}

#[test]
fn a_restored_learner_goes_on_without_losing_or_repeating_a_label() {
    crash_and_restore(1, 1, 22);
}

#[test]
fn a_learner_checkpointed_with_two_workers_restores_into_one() {
    crash_and_restore(2, 1, 17);
}

#[test]
fn a_learner_checkpointed_with_one_worker_restores_into_three() {
    crash_and_restore(1, 3, 30);
}

#[test]
fn a_checkpoint_whose_online_models_differ_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = run(1, dir.path(), Some(9));
    assert!(!crashed.checkpoints.is_empty());
    let (tx, labels) = topics();
    let err = LocalRun::new(1)
        .epoch_records(EPOCH_RECORDS)
        .topic("tx", tx)
        .topic("labels", labels)
        .checkpoints(dir.path(), EVERY)
        .run(|g| {
            g.source(Source::json("tx").key("card").event_id("id").field("amount", FieldType::F64)).filter(|_| true).sink("plain");
            Ok(())
        })
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("online models are [\"fraud\"], this graph's are []"), "{msg}");
}

/// The coordinator asks a learner for its state once every worker's scorer of
/// the model has passed the epoch: one scorer per worker, so a graph with
/// checkpoints that scores one online model twice is refused.
#[test]
fn a_model_scored_twice_in_a_graph_with_checkpoints_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, labels) = topics();
    let err = LocalRun::new(1)
        .topic("tx", tx)
        .topic("labels", labels)
        .checkpoints(dir.path(), EVERY)
        .run(|g| {
            let labels = LabelSpec::new("labels", "id", "y", Duration::from_secs(600), None);
            let model = OnlineModel::logistic("fraud", labels).input("amount", Transform::Log1p).configure(|s| s.device = vigil::gpu::DeviceChoice::Cpu);
            let tx = g.source(Source::json("tx").key("card").event_id("id").field("amount", FieldType::F64));
            tx.score_online(model.clone()).sink_scores("a");
            tx.filter(|_| true).score_online(model).sink_scores("b");
            Ok(())
        })
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("online model `fraud` is scored twice in a graph with checkpoints"), "{msg}");
}
