//! Where the interval joins' output goes: each matched pair and each unmatched
//! left event as one record of the `joins` topic (keyed by the entity key), with
//! per-join counters and a gauge of what the joins hold.

use prometheus::{IntCounter, IntGauge};
use vigil_operators::{JoinState, Joined};

use crate::metrics::Metrics;
use crate::output::{encode_join, OutputSink, Topic};
use crate::spec::JobSpec;

/// Encodes and sends join output; one per scoring operator.
pub struct JoinEmitter {
    names: Vec<String>,
    /// The numeric fields, by name, carried on each side.
    fields: Vec<String>,
    matched: Vec<IntCounter>,
    unmatched: Vec<IntCounter>,
    buffered: Vec<IntGauge>,
    buf: Vec<u8>,
}

impl JoinEmitter {
    pub fn new(job: &JobSpec, metrics: &Metrics) -> Self {
        let names: Vec<String> = job.joins.iter().map(|j| j.name.clone()).collect();
        JoinEmitter {
            fields: job.numeric_fields().iter().map(|f| f.name.clone()).collect(),
            matched: names.iter().map(|n| metrics.join_outputs.with_label_values(&[n, "matched"])).collect(),
            unmatched: names.iter().map(|n| metrics.join_outputs.with_label_values(&[n, "unmatched"])).collect(),
            buffered: names.iter().map(|n| metrics.join_buffered.with_label_values(&[n])).collect(),
            names,
            buf: Vec::with_capacity(512),
        }
    }

    /// Sends (and empties) `joined`, tagged with `epoch`.
    pub fn send(&mut self, sink: &dyn OutputSink, joined: &mut Vec<Joined>, epoch: u64) {
        for j in joined.drain(..) {
            encode_join(&mut self.buf, &self.names[j.join], &j.key, &j.left, j.right.as_ref(), &self.fields);
            sink.send(Topic::Joins, j.key.as_bytes(), &self.buf, epoch);
            if j.right.is_some() { &self.matched[j.join] } else { &self.unmatched[j.join] }.inc();
        }
    }

    /// Adds this worker's change in buffered events to the gauges (several
    /// workers share them).
    pub fn report(&self, joins: &JoinState, reported: &mut Vec<i64>) {
        reported.resize(self.buffered.len(), 0);
        for (j, (gauge, last)) in self.buffered.iter().zip(reported.iter_mut()).enumerate() {
            let now = joins.buffered_of(j) as i64;
            gauge.add(now - *last);
            *last = now;
        }
    }
}
