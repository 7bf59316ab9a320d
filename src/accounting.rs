//! The accounting invariant, checked from the topics themselves: every input offset
//! below the committed position ends as exactly one record in `scores` or in `dlq`
//! (joined on source partition and offset).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::consumer::Consumer;

use crate::kafka::read::read_topic;
use crate::kafka::KafkaOptions;

/// What the topics say.
#[derive(Debug, Default)]
pub struct AccountingReport {
    /// Input offsets checked (below the committed positions).
    pub inputs: u64,
    pub scored: u64,
    pub dead_lettered: u64,
    pub dlq_by_reason: BTreeMap<String, u64>,
    /// Input offsets with no output record.
    pub missing: Vec<(u32, i64)>,
    /// Input offsets with more than one output record.
    pub duplicated: Vec<(u32, i64)>,
    /// Output records that name no checked input offset.
    pub unexpected: u64,
}

impl AccountingReport {
    pub fn holds(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.unexpected == 0
    }
}

/// Reads `scores` and `dlq` and joins them with the input offsets `[0, positions[p])`.
/// With `positions = None`, the whole input topic is checked.
pub fn check(kafka: &KafkaOptions, input: &str, scores: &str, dlq: &str, positions: Option<&[(u32, i64)]>) -> Result<AccountingReport> {
    let timeout = Duration::from_secs(120);
    let admin = kafka.admin_consumer("vigil-accounting")?;
    let n = crate::kafka::partition_count(&admin, input, timeout)?;
    let ends: HashMap<u32, i64> = match positions {
        Some(p) => p.iter().copied().collect(),
        None => crate::kafka::end_offsets(&admin, input, n)?.into_iter().enumerate().map(|(p, e)| (p as u32, e)).collect(),
    };
    // Offsets below the low watermark were removed by retention: not checkable.
    let mut starts = HashMap::new();
    for p in 0..n {
        let (low, _) = admin.fetch_watermarks(input, p as i32, Duration::from_secs(10))?;
        starts.insert(p, low);
    }
    let mut seen: HashMap<(u32, i64), u32> = HashMap::new();
    let mut report = AccountingReport::default();
    for (topic, is_dlq) in [(scores, false), (dlq, true)] {
        for rec in read_topic(kafka, topic, timeout)? {
            let v: serde_json::Value =
                serde_json::from_slice(rec.payload.as_deref().unwrap_or_default()).with_context(|| format!("{topic} holds a record that is not JSON"))?;
            let (Some(p), Some(o)) = (v["source_partition"].as_u64(), v["source_offset"].as_i64()) else {
                report.unexpected += 1;
                continue;
            };
            let p = p as u32;
            if o < starts.get(&p).copied().unwrap_or(0) || o >= ends.get(&p).copied().unwrap_or(0) {
                report.unexpected += 1;
                continue;
            }
            *seen.entry((p, o)).or_default() += 1;
            if is_dlq {
                report.dead_lettered += 1;
                *report.dlq_by_reason.entry(v["reason"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
            } else {
                report.scored += 1;
            }
        }
    }
    let mut parts: Vec<_> = ends.into_iter().collect();
    parts.sort();
    for (p, end) in parts {
        for o in starts.get(&p).copied().unwrap_or(0)..end {
            report.inputs += 1;
            match seen.get(&(p, o)) {
                None => report.missing.push((p, o)),
                Some(1) => {}
                Some(_) => report.duplicated.push((p, o)),
            }
        }
    }
    Ok(report)
}
