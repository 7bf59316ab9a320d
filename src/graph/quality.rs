//! Window-level data-quality expectations on a source's stream: not-null rate,
//! duplicates, freshness and volume per tumbling event-time window, as `quality`
//! findings (the drift topic's records) and Prometheus series.
//!
//! A source declaring window-level expectations ([`crate::spec::Expectation`]:
//! `not_null_rate`, `unique`, `freshness`, `volume`) gets this operator when the
//! graph reads it; [`super::GraphBuilder::quality`] is the stream of its
//! findings, for `sink_drift`. Every worker counts its share of each window as
//! records pass (arrival time for freshness is the worker's wall clock, read
//! once per batch); one judge on worker 0 merges the counts and judges a window
//! once the stream's watermark (the least over every worker) passes its end
//! (`crate::monitor::quality`). Findings update
//! `vigil_drift_value`/`vigil_drift_threshold`/`vigil_drift_active` with
//! `kind="quality"`, and a window failing after one that passed counts in
//! `vigil_drift_alarms_total` and is logged. The windows are not in checkpoints:
//! after a restore they start over (the first window is then partial).
//!
//! ```
//! use std::time::Duration;
//! use vigil::graph::{LocalRun, Source};
//! use vigil::spec::{Expectation, FieldType};
//!
//! let t0 = 1_700_000_000_000i64;
//! // one record a second for a minute, then nothing for 3 minutes, then one more;
//! // every fourth record without a merchant
//! let mut tx: Vec<Vec<u8>> = (0..60)
//!     .map(|i| match i % 4 {
//!         0 => format!(r#"{{"card":"c","ts":{}}}"#, t0 + i * 1000),
//!         _ => format!(r#"{{"card":"c","ts":{},"merchant":"m"}}"#, t0 + i * 1000),
//!     }.into_bytes())
//!     .collect();
//! tx.push(format!(r#"{{"card":"c","ts":{}}}"#, t0 + 240_000).into_bytes());
//! let source = Source::json("tx")
//!     .key("card")
//!     .optional("merchant", FieldType::Str)
//!     .expect(Expectation::not_null_rate("has_merchant", "merchant", 0.9))
//!     .expect(Expectation::volume("per_minute", 10, 1000));
//! let out = LocalRun::new(2)
//!     .topic("tx", vec![tx])
//!     .run(move |g| {
//!         g.source(source.clone());
//!         g.quality("tx").expect("declared").sink_drift("drift");
//!         Ok(())
//!     })
//!     .unwrap();
//! let failed: Vec<String> = out.values("drift").into_iter().filter(|r| r.contains(r#""drift":true"#)).collect();
//! // 75% of records carry a merchant (below 90%) in the windows with records; the
//! // empty minutes fail `volume`
//! assert!(failed.iter().any(|r| r.contains(r#""method":"not_null_rate""#) && r.contains(r#""value":0.75"#)));
//! assert!(failed.iter().any(|r| r.contains(r#""method":"volume""#) && r.contains(r#""value":0.0"#)));
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;

use super::keyed::Origin;
use super::stream::{Mark, Msg, Rec, Stream, Watermarks};
use super::Record;
use crate::monitor::quality::{window_ms, window_start, Counts, WindowJudge};
use crate::monitor::{DriftEmitter, DriftRecord, MemoryDriftSink};
use crate::spec::{Check, Expectation, FieldType, SourceSpec};
use crate::types::{key_hash, now_us};

/// Where an expectation reads its value.
#[derive(Clone, Debug)]
enum Field {
    None,
    Key,
    EventId,
    Numeric(String),
    Text(String),
}

impl Field {
    fn of(e: &Expectation, s: &SourceSpec) -> Field {
        if e.field.is_empty() {
            return Field::None;
        }
        if e.field == s.key_field {
            return Field::Key;
        }
        if s.event_id_field.as_deref() == Some(e.field.as_str()) {
            return Field::EventId;
        }
        match s.fields.iter().find(|f| f.name == e.field).map(|f| f.ty) {
            Some(FieldType::Str) => Field::Text(e.field.clone()),
            _ => Field::Numeric(e.field.clone()),
        }
    }

    /// The value's hash, `None` when absent or null.
    fn hash(&self, r: &Rec<Record>) -> Option<u64> {
        match self {
            Field::None => None,
            Field::Key => Some(key_hash(&r.key)),
            Field::EventId => r.value.event_id().map(key_hash),
            Field::Text(n) => r.value.str(n).map(key_hash),
            // -0.0 and 0.0 are one value
            Field::Numeric(n) => r.value.f64(n).map(|v| mix((v + 0.0).to_bits())),
        }
    }
}

/// One worker's counts since its last batch, or its watermark.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Part {
    Counts(Vec<(u32, i64, Counts)>),
    Mark(Mark),
}

impl<'s> Stream<'s, Record> {
    /// The findings of `source`'s window-level expectations over this stream
    /// (the source's own); see the module docs.
    pub(crate) fn quality(&self, name: &str, source: &SourceSpec) -> Stream<'s, DriftRecord> {
        self.shared.claim_unsaved(name);
        let expectations: Vec<Expectation> = source.window_expectations().cloned().collect();
        let me = self.scope().index() as u32;
        let peers = self.scope().peers();
        let counted = self.counted(&format!("Count({name})"), &expectations, source, me);
        let sink = MemoryDriftSink::new();
        let emitter = DriftEmitter::new(Some(sink.clone()), self.shared.collector.metrics(), 1);
        let mut judge = WindowJudge::new(expectations);
        let name = name.to_owned();
        let inner = counted.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<Msg<DriftRecord>>>, _, _, _>(
            Exchange::new(|_: &Part| 0),
            &name.clone(),
            move |cap, _| {
                let mut cap = Some(cap);
                let mut marks = Watermarks::exchanged(peers);
                let mut out: Vec<Msg<DriftRecord>> = Vec::new();
                let mut dropped = 0;
                move |(input, frontier), output| {
                    let mut moved = None;
                    input.for_each(|_, data| {
                        for part in data.drain(..) {
                            match part {
                                Part::Counts(counts) => counts.iter().for_each(|(e, start, c)| judge.add(*e as usize, *start, c)),
                                Part::Mark(mark) => moved = marks.observe(&mark).or(moved),
                            }
                        }
                    });
                    if judge.dropped > dropped {
                        // a partition idle past its timeout came back with records of judged windows
                        tracing::warn!(operator = %name, records = judge.dropped - dropped, "records of windows already judged are not counted");
                        dropped = judge.dropped;
                    }
                    let Some(c) = cap.as_mut() else { return };
                    let report = |found: Vec<crate::monitor::quality::Finding>, wm: i64, out: &mut Vec<Msg<DriftRecord>>| {
                        found.iter().for_each(|f| emitter.finding(&f.record()));
                        for r in sink.take() {
                            let key = format!("{}/{}", r.kind, r.name);
                            out.push(Msg::Event(Rec { key, time_ms: r.ts, origin: Origin { source: 0, partition: 0 }, offset: -1, watermark: wm, value: r }));
                        }
                        out.push(Msg::Mark(Mark { watermark: wm, from: me, to: me }));
                    };
                    if let Some(wm) = moved {
                        report(judge.close_before(wm), wm, &mut out);
                    }
                    match frontier.frontier().as_option().copied() {
                        Some(f) => {
                            if *c.time() < f {
                                c.downgrade(&f);
                            }
                            output.session(&*c).give_container(&mut out);
                        }
                        None => {
                            report(judge.finish(), i64::MAX, &mut out);
                            output.session(&*c).give_container(&mut out);
                            cap = None;
                        }
                    }
                }
            },
        );
        Stream::new(inner, self.shared.clone())
    }

    /// Each worker's counts per window, a batch per input batch, and its marks.
    fn counted(&self, name: &str, expectations: &[Expectation], source: &SourceSpec, me: u32) -> timely::dataflow::Stream<'s, u64, Vec<Part>> {
        let fields: Vec<Field> = expectations.iter().map(|e| Field::of(e, source)).collect();
        let lens: Vec<i64> = expectations.iter().map(window_ms).collect();
        let checks: Vec<Check> = expectations.iter().map(|e| e.check.clone()).collect();
        self.inner.clone().unary::<timely::container::CapacityContainerBuilder<Vec<Part>>, _, _, _>(Pipeline, name, move |_, _| {
            move |input, output| {
                input.for_each(|time, data| {
                    let now_ms = (now_us() / 1000) as i64;
                    let mut session = output.session(&time);
                    let mut counts: BTreeMap<(u32, i64), Counts> = BTreeMap::new();
                    for m in data.drain(..) {
                        match m {
                            Msg::Event(r) => {
                                for (i, check) in checks.iter().enumerate() {
                                    let c = counts.entry((i as u32, window_start(r.time_ms, lens[i]))).or_default();
                                    c.records += 1;
                                    match check {
                                        Check::NotNullRate { .. } => c.hits += fields[i].present(&r) as u64,
                                        Check::Freshness { max_lag, .. } => c.hits += (now_ms.saturating_sub(r.time_ms) > lag_ms(max_lag)) as u64,
                                        Check::Unique { .. } => c.ids.extend(fields[i].hash(&r)),
                                        _ => {}
                                    }
                                }
                            }
                            Msg::Mark(mark) => {
                                if !counts.is_empty() {
                                    session.give(Part::Counts(std::mem::take(&mut counts).into_iter().map(|((e, s), c)| (e, s, c)).collect()));
                                }
                                session.give(Part::Mark(Mark { watermark: mark.watermark, from: me, to: 0 }));
                            }
                        }
                    }
                    if !counts.is_empty() {
                        session.give(Part::Counts(counts.into_iter().map(|((e, s), c)| (e, s, c)).collect()));
                    }
                });
            }
        })
    }
}

/// A lag in milliseconds, saturating (a lag past i64's range never passes).
fn lag_ms(d: &std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// SplitMix64's finalizer: a number's bits spread over the hash.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Field {
    /// Whether the record carries the field (present and not null).
    fn present(&self, r: &Rec<Record>) -> bool {
        match self {
            Field::None => false,
            Field::Key => true,
            Field::EventId => r.value.event_id().is_some(),
            Field::Text(n) => r.value.str(n).is_some(),
            Field::Numeric(n) => r.value.f64(n).is_some(),
        }
    }
}
