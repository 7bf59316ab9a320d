//! The online learner's state in checkpoints: a job that trains is stopped midway
//! and restored; every label still ends in exactly one outcome, each scored event's
//! label joins its prediction (also across the restart), nothing is trained twice
//! or lost, and no saved learner state is ahead of the input offsets it is saved
//! with.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil::checkpoint::format::{list_manifests, read_manifest};
use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::fraud_online_job;
use vigil::gpu::DeviceChoice;
use vigil::kafka::read::read_topic;
use vigil::learner::checkpoint::LearnerCheckpoint;
use vigil::metrics::Metrics;
use vigil::run::{run_job, RunOptions};
use vigil::types::Control;

#[path = "support/demo_topics.rs"]
mod demo_topics;

#[test]
fn a_restored_learner_continues_without_losing_or_repeating_a_label() {
    let mut job = fraud_online_job();
    {
        let o = job.model.online.as_mut().unwrap();
        o.device = DeviceChoice::Cpu;
        o.select_every = 2_000;
        o.min_labels = 500;
        o.window = 3_000;
        o.runs_dir = None;
    }
    let broker = EmbeddedBroker::start(1).unwrap();
    // the embedded broker keeps ~5 MB per partition: enough partitions for every record
    for (t, p) in [("transactions", 16), ("labels", 8), ("scores", 24), ("dlq", 2), ("scores_shadow", 32)] {
        broker.create_topic(t, p).unwrap();
    }
    let kafka = vigil::kafka::KafkaOptions::new(&broker.bootstrap_servers());
    let events = 100_000;
    // all transactions now; the labels of the first 10,000 now, the rest later (after
    // the first run stopped: they must join predictions restored from the checkpoint)
    let (transactions, labels_all) = demo_topics::transactions_and_labels(21, events);
    let producer = demo_topics::producer(&kafka);
    let produce = |topic: &str, records: &[vigil::demo::generator::Generated]| demo_topics::produce(&producer, topic, records);
    produce("transactions", &transactions);
    produce("labels", &labels_all[..10_000]);
    let dir = tempfile::tempdir().unwrap();
    let opts =
        RunOptions { checkpoint_dir: Some(dir.path().to_owned()), checkpoint_interval: Duration::from_millis(30), ..RunOptions::new(kafka.clone(), "ck", 2) };

    // first run: stopped once a fifth of the transactions are scored
    let metrics = Metrics::new();
    let control = Control::new();
    let watcher = {
        let (metrics, control) = (metrics.clone(), control.clone());
        std::thread::spawn(move || {
            while metrics.scores_out.get() < 20_000 {
                std::thread::sleep(Duration::from_millis(1));
            }
            control.request_shutdown();
        })
    };
    let first = run_job(job.clone(), &opts, metrics, control, Arc::new(Mutex::new(None))).unwrap();
    watcher.join().unwrap();
    let scored_first: i64 = first.committed.iter().map(|c| c.1).sum();
    assert!(scored_first > 0 && scored_first < events as i64, "the first run stopped midway ({scored_first} offsets)");
    assert!(first.checkpoints.checkpoints_written >= 2);

    // every kept checkpoint's learner state is behind or at its offsets
    let manifests = list_manifests(dir.path()).unwrap();
    assert!(!manifests.is_empty());
    for (epoch, path) in &manifests {
        let m = read_manifest(path).unwrap();
        let name = m.learner.expect("a training job's checkpoint holds the learner");
        let c = LearnerCheckpoint::decode(&std::fs::read(dir.path().join(name)).unwrap()).unwrap();
        assert_eq!(c.epoch, *epoch);
        assert!(c.trained_through.is_none_or(|t| t <= c.epoch), "trained on epoch {:?} in checkpoint {}", c.trained_through, c.epoch);
        assert!(c.pending.iter().all(|p| p.epoch <= c.epoch));
        assert!(c.held.iter().all(|(p, _)| p.epoch <= c.epoch));
        assert_eq!(c.label_positions.len(), 8);
    }

    // a crash after the next-to-last checkpoint: its manifest is the newest left and
    // the group's offsets are its offsets (the newest checkpoint was not committed)
    assert!(manifests.len() >= 2);
    std::fs::remove_file(&manifests[0].1).unwrap();
    let older = read_manifest(&manifests[1].1).unwrap();
    let admin = kafka.admin_consumer("ck").unwrap();
    let positions: Vec<(u32, i64)> = older.partitions.iter().map(|c| (c.partition, c.next_offset)).collect();
    vigil::kafka::commit_positions(&admin, "transactions", &positions).unwrap();

    // second run: restores that checkpoint, scores again what followed it, and
    // reads the labels published since
    produce("labels", &labels_all[10_000..]);
    let second = run_job(job, &RunOptions { until_end: true, ..opts }, Metrics::new(), Control::new(), Arc::new(Mutex::new(None))).unwrap();
    let restored = second.restored_epoch.expect("the second run restored a checkpoint");
    assert_eq!(restored, older.epoch);
    let l = second.learner.unwrap();
    assert_eq!(l.restored_epoch, Some(restored));

    let labels = read_topic(&kafka, "labels", Duration::from_secs(60)).unwrap();
    let scores = read_topic(&kafka, "scores", Duration::from_secs(60)).unwrap();
    // events after the restored checkpoint were dead-lettered twice (at least once)
    let dlq: HashSet<String> = read_topic(&kafka, "dlq", Duration::from_secs(60))
        .unwrap()
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            format!("{}/{}", v["source_partition"], v["source_offset"])
        })
        .collect();
    let scored: HashSet<String> = scores
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(r.payload.as_deref().unwrap()).unwrap()["event_id"].as_str().unwrap().to_owned())
        .collect();
    // the counts continue across the restart: every label was read once in all
    assert_eq!(l.counts.labels_read, labels.len() as u64, "{l:?}");
    assert_eq!(l.counts.joined + l.counts.expired + l.counts.orphan + l.counts.sampled_out + l.counts.malformed, l.counts.labels_read, "{l:?}");
    // the labels of events scored before the stop joined their restored predictions
    assert_eq!(l.counts.joined + l.counts.expired, scored.len() as u64, "{l:?}");
    assert_eq!(l.counts.orphan, dlq.len() as u64, "{l:?}");
    // every joined or timed-out prediction was trained on exactly once
    assert_eq!(l.held_at_end, 0);
    assert_eq!(l.counts.trained, l.counts.joined + l.counts.timed_out, "{l:?}");
}

/// The sealing rule on its own: samples change the model only once a checkpoint
/// covers their prediction's epoch; later ones are saved as labels to join again.
#[test]
fn checkpoints_hold_back_samples_of_unsealed_epochs() {
    use std::sync::mpsc::sync_channel;
    use vigil::learner::checkpoint::CheckpointRequest;
    use vigil::learner::service::{LabelSourceFactory, Resume};
    use vigil::learner::{LabelSpec, ModelNames, OnlineSpec, Pending};
    use vigil_operators::learn::ModelKind;

    let labels = LabelSpec::new("labels", "event_id", "is_fraud", Duration::from_secs(3600), None);
    let mut spec = OnlineSpec::new(ModelKind::Logistic, labels);
    spec.device = DeviceChoice::Cpu;
    spec.variants = 2;
    spec.batch = 1;
    let topic: vigil::local::MemoryTopic =
        vec![Arc::new((1..=4).map(|i| Some(format!(r#"{{"event_id":"e{i}","is_fraud":{}}}"#, i % 2 == 0).into_bytes())).collect())];
    let source: LabelSourceFactory =
        Box::new(move || Ok(Box::new(vigil::source::MemorySource::new("labels", &topic, 0, 1)) as Box<dyn vigil::source::RecordSource>));
    let names = ModelNames { job: "j".into(), model: "m".into(), inputs: vec!["a".into(), "b".into()] };
    let metrics = Metrics::new();
    let learner = vigil::learner::start(spec, names, metrics.clone(), source, Resume { checkpointing: true, ..Resume::default() }, None).unwrap();
    let pending = |i: u64, epoch: u64| Pending {
        id: vigil::types::key_hash(&format!("e{i}")),
        time_ms: 1_000 * i as i64,
        x: vec![i as f32, 1.0],
        preds: vec![0.5, 0.5],
        served: 0.5,
        arm: 0,
        version: 0,
        epoch,
        weight: 1.0,
        group: 0,
    };
    learner.link.tx.send(vec![pending(1, 0), pending(2, 0), pending(3, 1), pending(4, 2)]).unwrap();
    while metrics.model.label("joined") < 4 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let checkpoint = |epoch: u64| {
        let (reply, answer) = sync_channel(1);
        learner.checkpoints.as_ref().unwrap().send(CheckpointRequest { epoch, reply }).unwrap();
        LearnerCheckpoint::decode(&answer.recv().unwrap().unwrap()).unwrap()
    };
    let ids = |v: &[(u64, bool, u32)]| -> HashSet<u64> { v.iter().map(|e| e.0).collect() };
    let id = |i: u64| vigil::types::key_hash(&format!("e{i}"));

    // nothing is sealed before the first checkpoint: nothing trained
    let c0 = checkpoint(0);
    assert_eq!((c0.counts.trained, c0.trained_through), (0, None));
    assert_eq!(c0.held.iter().map(|h| h.0.id).collect::<HashSet<_>>(), HashSet::from([id(1), id(2)]));
    assert_eq!(ids(&c0.early), HashSet::from([id(3), id(4)]), "later epochs' labels wait to join again");
    assert_eq!(c0.counts.joined, 2, "and count as joined when they do");
    assert!(c0.model.opt.iter().step_by(4).all(|steps| *steps == 0.0), "the saved model took no step");

    // checkpoint 0 sealed epoch 0: its two samples trained since
    let c1 = checkpoint(1);
    assert_eq!((c1.counts.trained, c1.trained_through), (2, Some(0)));
    assert_eq!(c1.held.iter().map(|h| h.0.id).collect::<Vec<_>>(), vec![id(3)]);
    assert_eq!(ids(&c1.early), HashSet::from([id(4)]));
    assert_eq!(c1.counts.joined, 3);
    assert!(c1.model.opt.iter().step_by(4).all(|steps| *steps == 2.0), "two mini-batches of one");
    let summary = learner.finish().unwrap();
    assert_eq!(summary.held_at_end, 1, "epoch 2 was never sealed");
}
