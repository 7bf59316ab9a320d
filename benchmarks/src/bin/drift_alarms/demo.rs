//! The demo's own feature streams: the fraud job's features (without its learner)
//! over the generator's transactions, seeded, one worker, in offset order; the
//! monitor of `examples/fraud_online.toml` (reference: 20,000 values after the
//! first 20,000; windows of 20,000) evaluated every 10,000 values.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use vigil::demo::fraud_online_job;
use vigil::demo::record::demo_stream;
use vigil::metrics::Metrics;
use vigil::output::{MemorySink, Topic};
use vigil_operators::drift::feature::DriftThresholds;
use vigil_operators::drift::{Reference, Streak};

use crate::distribution::Monitor;
use crate::streams::Kind;

/// The watched values of the demo job: the numeric ones, then `country` (category ids).
pub const WATCHED: [&str; 6] = ["amount", "tx_count_1m", "amount_sum_1m", "amount_mean_1m", "amount_max_1m", "country"];
pub const WINDOW: usize = 20_000;
pub const EVERY: usize = 10_000;

/// Each watched value's stream, in event order.
pub fn streams(events: u64, seed: u64, drift_at: Option<u64>) -> Result<Vec<Vec<f64>>> {
    let mut job = fraud_online_job();
    job.model.online = None;
    job.monitor = None;
    let (payloads, _) = demo_stream(events, seed, drift_at);
    let topic: vigil::local::MemoryTopic = vec![Arc::new(payloads.iter().cloned().map(Some).collect())];
    let sink = MemorySink::new();
    vigil::local::run_local(&job, &topic, 1, sink.clone(), Metrics::new())?;
    let mut out = vec![Vec::new(); WATCHED.len()];
    let mut countries: HashMap<String, u32> = HashMap::new();
    for (t, _, payload) in sink.take() {
        if t != Topic::Scores {
            continue;
        }
        let score: serde_json::Value = serde_json::from_slice(&payload)?;
        let offset = score["source_offset"].as_u64().ok_or_else(|| anyhow!("score without offset"))? as usize;
        let raw: serde_json::Value = serde_json::from_slice(payloads.get(offset).ok_or_else(|| anyhow!("offset out of range"))?)?;
        out[0].push(raw["amount"].as_f64().unwrap_or(f64::NAN));
        for (j, name) in WATCHED[1..5].iter().enumerate() {
            out[j + 1].push(score["features"][*name].as_f64().unwrap_or(f64::NAN));
        }
        let next = countries.len() as u32;
        let id = *countries.entry(raw["country"].as_str().unwrap_or("_absent").to_owned()).or_insert(next);
        out[5].push(f64::from(id));
    }
    Ok(out)
}

/// Per watched value and method: evaluations, alarms and the position (events
/// after `from`) of the first alarm at or after `from`.
pub struct Watch {
    pub method: &'static str,
    pub evaluations: u64,
    pub alarms: u64,
    pub first_after: Option<u64>,
}

pub fn watch(values: &[f64], name: &'static str, from: usize) -> Vec<Watch> {
    let kind = if name == "country" { Kind::Categorical } else { Kind::Gaussian };
    let mut d = Monitor::with_reference(kind, Reference::First { skip: WINDOW as u64, events: WINDOW }, WINDOW);
    let th = DriftThresholds::default();
    let mut out: Vec<Watch> = Vec::new();
    let mut streaks: Vec<Streak> = Vec::new();
    for (i, &x) in values.iter().enumerate() {
        d.push(x);
        if (i + 1) % EVERY != 0 {
            continue;
        }
        let (findings, at) = d.evaluate(&th);
        streaks.resize(findings.len(), Streak::default());
        for (j, f) in findings.iter().enumerate() {
            if out.len() <= j {
                out.push(Watch { method: f.method, evaluations: 0, alarms: 0, first_after: None });
            }
            out[j].evaluations += 1;
            let was = streaks[j].drift();
            if streaks[j].update(f.drift, Some(at), 2) && !was {
                out[j].alarms += 1;
                if i >= from && out[j].first_after.is_none() {
                    out[j].first_after = Some((i - from) as u64);
                }
            }
        }
    }
    out
}
