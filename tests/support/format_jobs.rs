//! The fraud job over one topic of the demo's transactions in two formats, for
//! the format tests: the generated input, and what the pipeline and the graph
//! write for it (scores per key, dead letters by offset).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use vigil::demo::generator::{GenConfig, Generator};
use vigil::graph::job::job_graph;
use vigil::graph::LocalRun;
use vigil::metrics::Metrics;
use vigil::output::{MemorySink, Topic};
use vigil::spec::JobSpec;
use vigil::types::key_hash;

pub type Partitions = Vec<Vec<Option<Vec<u8>>>>;

/// `input` in another format, record for record at the same offsets: each record
/// `job`'s JSON decoder accepts is re-encoded by `encode`; each it rejects keeps
/// its bytes and is listed as (partition, offset), with at least 50 such.
pub fn reencode(job: &JobSpec, input: &Partitions, encode: impl Fn(&[u8]) -> Vec<u8>) -> (Partitions, Vec<(u32, i64)>) {
    let decoder = vigil::decode::Decoder::new(job);
    let mut undecodable = Vec::new();
    let out = input
        .iter()
        .enumerate()
        .map(|(p, part)| {
            part.iter()
                .enumerate()
                .map(|(offset, payload)| {
                    let bytes = payload.as_ref()?;
                    Some(match decoder.decode(Some(bytes), &mut |_| {}) {
                        Ok(_) => encode(bytes),
                        Err(_) => {
                            undecodable.push((p as u32, offset as i64));
                            bytes.clone()
                        }
                    })
                })
                .collect()
        })
        .collect();
    assert!(undecodable.len() > 50, "{} malformed records", undecodable.len());
    (out, undecodable)
}

/// 9,000 generated transactions of `seed` (3 % malformed) over 3 partitions by
/// key, with a record without payload every 997.
pub fn json_input(seed: u64) -> Partitions {
    let mut generator = Generator::new(GenConfig { seed, cards: 300, merchants: 30, bad_ratio: 0.03, ..GenConfig::default() });
    let mut parts: Partitions = vec![Vec::new(); 3];
    for i in 0..9_000 {
        let g = generator.next_transaction();
        let p = (key_hash(&g.key) % 3) as usize;
        if i % 997 == 0 {
            parts[p].push(None);
        }
        parts[p].push(Some(g.payload));
    }
    parts
}

/// Scores per key in offset order, and dead letters by (partition, offset).
#[derive(Debug, PartialEq)]
pub struct Written {
    pub scores: BTreeMap<String, Vec<String>>,
    pub dead: BTreeMap<(u32, i64), String>,
}

pub fn pipeline(job: &JobSpec, input: &Partitions) -> Written {
    let sink = MemorySink::new();
    let topic = input.iter().map(|p| Arc::new(p.clone())).collect();
    vigil::local::run_local(job, &topic, 1, sink.clone(), Metrics::new()).unwrap();
    let mut w = Written { scores: BTreeMap::new(), dead: BTreeMap::new() };
    for (topic, key, payload) in sink.take() {
        let text = String::from_utf8(payload).unwrap();
        match topic {
            Topic::Scores => w.scores.entry(String::from_utf8(key).unwrap()).or_default().push(text),
            Topic::Dlq => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                w.dead.insert((v["source_partition"].as_u64().unwrap() as u32, v["source_offset"].as_i64().unwrap()), v["reason"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }
    w
}

pub fn graph(job: &JobSpec, input: &Partitions) -> Written {
    let job2 = job.clone();
    let out = LocalRun::new(2).epoch_records(500).topic_with_gaps(&job.source.topic, input.clone()).run(move |g| job_graph(g, &job2)).unwrap();
    let mut w = Written { scores: BTreeMap::new(), dead: BTreeMap::new() };
    for r in out.sink(&job.sinks.scores) {
        w.scores.entry(r.key.clone()).or_default().push(r.value.clone().unwrap());
    }
    for d in &out.dead {
        w.dead.insert((d.partition, d.offset), d.reason.to_owned());
    }
    w
}
