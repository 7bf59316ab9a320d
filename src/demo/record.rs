//! Recorded streams for the learner's deterministic replay
//! (`crate::learner::replay`): the demo's generated transactions and labels, and
//! what the fixed-weight pipeline scores them with.

use std::sync::Arc;

use anyhow::{anyhow, Result};

use crate::learner::replay::ReplayEvent;
use crate::metrics::Metrics;

/// Records a stream for replays: runs `job`'s features (without its learner) over
/// `payloads` (one partition, in order) and returns each scored event with the
/// model inputs the job's scorers compute (transformed, NaN when missing) and its
/// label from `labels` (by event id). Dead-lettered records are left out, as in
/// the job.
pub fn record_stream(job: &crate::spec::JobSpec, payloads: Vec<Vec<u8>>, labels: &std::collections::HashMap<String, bool>) -> Result<Vec<ReplayEvent>> {
    use crate::output::{MemorySink, Topic};
    use crate::spec::InputSource;
    let mut fixed = job.clone();
    fixed.model.online = None;
    let topic: crate::local::MemoryTopic = vec![Arc::new(payloads.iter().cloned().map(Some).collect())];
    let sink = MemorySink::new();
    crate::local::run_local(&fixed, &topic, 1, sink.clone(), Metrics::new())?;
    let numeric: Vec<String> = job.numeric_fields().iter().map(|f| f.name.clone()).collect();
    let inputs = job.model_inputs();
    let mut out = Vec::new();
    for (t, _, payload) in sink.take() {
        if t != Topic::Scores {
            continue;
        }
        let score: serde_json::Value = serde_json::from_slice(&payload)?;
        let offset = score["source_offset"].as_u64().ok_or_else(|| anyhow!("score without offset"))? as usize;
        let raw: serde_json::Value = serde_json::from_slice(&payloads[offset])?;
        let id = score["event_id"].as_str().unwrap_or_default().to_owned();
        let x = inputs
            .iter()
            .zip(&job.model.inputs)
            .map(|(source, input)| {
                let value = match *source {
                    InputSource::Feature(f) => score["features"][job.features[f].name()].as_f64(),
                    InputSource::Field(n) => raw[&numeric[n]].as_f64(),
                };
                value.map_or(f32::NAN, |v| input.transform.apply(v) as f32)
            })
            .collect();
        out.push(ReplayEvent {
            id: crate::types::key_hash(&id),
            key: crate::types::key_hash(score["key"].as_str().unwrap_or_default()),
            time_ms: score["event_time"].as_i64().unwrap_or_default(),
            x,
            label: labels.get(&id).copied(),
        });
    }
    Ok(out)
}

/// The demo stream: payloads in order and every event's label.
pub fn demo_stream(events: u64, seed: u64, drift_at: Option<u64>) -> (Vec<Vec<u8>>, std::collections::HashMap<String, bool>) {
    use crate::demo::generator::{GenConfig, Generator};
    let mut gen = Generator::new(GenConfig { seed, drift_at, bad_ratio: 0.0, ..GenConfig::default() });
    let mut payloads = Vec::with_capacity(events as usize);
    let mut labels = std::collections::HashMap::new();
    let mut add = |l: crate::demo::generator::Generated| {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&l.payload) {
            if let (Some(id), Some(y)) = (v["event_id"].as_str(), v["is_fraud"].as_bool()) {
                labels.insert(id.to_owned(), y);
            }
        }
    };
    for _ in 0..events {
        payloads.push(gen.next_transaction().payload);
        gen.due_labels().into_iter().for_each(&mut add);
    }
    gen.remaining_labels().into_iter().for_each(&mut add);
    (payloads, labels)
}
