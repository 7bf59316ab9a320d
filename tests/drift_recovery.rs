//! The demo's online learner under concept drift, over 5 seeds (the learner's own
//! logic, replayed deterministically on the CPU twin; see `learner::replay`).
//!
//! At `--drift-at`, card testers slow down (20-60 s apart) and use larger amounts,
//! so the 1-minute features that caught them stop working. For every seed: before the
//! drift the champion beats a logistic regression fitted offline on the first
//! part of the stream; right after it, its rolling ROC-AUC drops; within
//! RECOVERY_EVENTS it is back within 0.02 of its pre-drift level; and over the
//! post-drift stretch it beats the frozen model. Over the seeds, the tuned
//! population beats a single untuned model.

use vigil::demo::fraud_online_job;
use vigil::demo::record::{demo_stream, record_stream};
use vigil::gpu::DeviceChoice;
use vigil::learner::replay::{offline_baseline, replay, window_quality};

const EVENTS: u64 = 300_000;
const DRIFT_AT: usize = 100_000;
const LABEL_DELAY: usize = 2_000;
const WINDOW: usize = 10_000;
/// The stated recovery bound (measured: 44,000-109,000 events on these seeds; the
/// new, slower card-testing bursts take that long to produce enough labeled
/// positives).
const RECOVERY_EVENTS: usize = 150_000;

#[test]
fn the_champion_beats_a_fixed_model_drops_at_the_drift_and_recovers() {
    let job = fraud_online_job();
    let mut spec = job.model.online.clone().unwrap();
    spec.device = DeviceChoice::Cpu;
    spec.runs_dir = None;
    let mut untuned = spec.clone();
    untuned.variants = 1;
    untuned.space.lr = vec![0.01];
    untuned.space.l2 = vec![0.0];
    untuned.space.pos_weight = vec![1.0];
    let (mut tuned_all, mut untuned_all) = (0.0, 0.0);
    for seed in 1..=5 {
        let (payloads, labels) = demo_stream(EVENTS, seed, Some(DRIFT_AT as u64));
        let events = record_stream(&job, payloads, &labels).unwrap();
        let n = events.len();
        let run = replay(spec.clone(), &events, LABEL_DELAY, 256).unwrap();
        let baseline = offline_baseline(&events, DRIFT_AT / 2).unwrap();
        let auc = |preds: &[f32], a: usize, b: usize| window_quality(preds, &events, a, b).0.unwrap();
        // the first scored event generated at or after the drift (late records are dead-lettered)
        let after_drift: std::collections::HashSet<u64> = (DRIFT_AT..DRIFT_AT + 200).map(|i| vigil::types::key_hash(&format!("e-{i}"))).collect();
        let drift = events.iter().position(|e| after_drift.contains(&e.id)).unwrap();

        let pre = auc(&run.served, drift - WINDOW, drift);
        let base_pre = auc(&baseline, drift - WINDOW, drift);
        assert!(pre > base_pre, "seed {seed}: champion {pre:.4} vs offline-fitted fixed model {base_pre:.4} before the drift");
        let post = auc(&run.served, drift, drift + WINDOW);
        assert!(post < pre - 0.1, "seed {seed}: no drop at the drift ({pre:.4} -> {post:.4})");
        let recovered = (drift + WINDOW..=n).step_by(1_000).find(|&end| auc(&run.served, end - WINDOW, end) >= pre - 0.02).map(|end| end - drift);
        assert!(recovered.is_some_and(|r| r <= RECOVERY_EVENTS), "seed {seed}: recovery after {recovered:?} events (pre {pre:.4})");
        let (after, base_after) = (auc(&run.served, drift, n), auc(&baseline, drift, n));
        assert!(after > base_after + 0.005, "seed {seed}: after the drift the champion {after:.4} vs the frozen model {base_after:.4}");

        let single = replay(untuned.clone(), &events, LABEL_DELAY, 256).unwrap();
        tuned_all += auc(&run.served, WINDOW, n) / 5.0;
        untuned_all += auc(&single.served, WINDOW, n) / 5.0;
        eprintln!("seed {seed}: pre {pre:.4} (fixed {base_pre:.4}), post {post:.4}, recovered after {recovered:?}, after {after:.4} (fixed {base_after:.4})");
    }
    assert!(tuned_all > untuned_all, "the tuned champion {tuned_all:.4} vs one untuned model {untuned_all:.4}");
}
