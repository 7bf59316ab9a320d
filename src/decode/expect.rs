//! A source's data-quality expectations ([`crate::spec::Expectation`]) compiled
//! for the decoder: the JSON and the Avro readers judge each declared field's
//! value as they read it, and [`Expectations::settle`] decides once the record
//! is otherwise valid. A record with a malformed field keeps that reason; a
//! valid one failing a `dlq` expectation becomes `expectation` (the first
//! failing one, in the record's field order, named in the detail, and only it
//! counted); `warn` failures of a decoded record are counted. The verdict is
//! part of decoding: a record later found late (its time against the
//! watermark) keeps its `warn` counts. The counts go to
//! `vigil_expectation_failures_total{topic,expectation,mode}` once the decoder
//! is given the metrics.
//!
//! ```
//! use vigil::decode::Decoder;
//! use vigil::graph::Source;
//! use vigil::spec::{Expectation, FieldType};
//! use vigil::types::Reason;
//!
//! let source = Source::json("t").key("card").field("amount", FieldType::F64).expect(Expectation::range("positive", "amount", 0.0, 1e6));
//! let decoder = Decoder::for_source(source.spec(), &[]);
//! let ok = decoder.decode(Some(br#"{"card":"c","ts":1700000000000,"amount":5}"#), &mut |_| {});
//! let bad = decoder.decode(Some(br#"{"card":"c","ts":1700000000000,"amount":-5}"#), &mut |_| {}).unwrap_err();
//! assert!(ok.is_ok());
//! assert_eq!(bad.reason, Reason::Expectation);
//! assert_eq!(bad.detail, "expectation `positive`: `amount` is -5, outside [0, 1000000]");
//! ```

use std::collections::HashSet;
use std::sync::OnceLock;

use prometheus::IntCounter;

use crate::metrics::Metrics;
use crate::spec::{Check, ExpectMode, SourceSpec};
use crate::types::{Reason, Rejection};

enum Compiled {
    Range(f64, f64),
    OneOf(HashSet<String>),
    Regex(regex::Regex),
    MaxLength(usize),
}

struct One {
    name: String,
    field: String,
    check: Compiled,
    mode: ExpectMode,
}

/// The compiled expectations of one source.
pub(crate) struct Expectations {
    all: Vec<One>,
    /// Per declared field (schema index): its expectations' indices.
    by_field: Vec<Vec<usize>>,
    /// Per expectation: its failure counter.
    counters: OnceLock<Vec<IntCounter>>,
    topic: String,
}

/// What one record's values did to the expectations so far.
#[derive(Default)]
pub(crate) struct Judged {
    /// The first `dlq` failure: the expectation and the detail.
    dlq: Option<String>,
    dlq_index: Option<usize>,
    warned: Vec<usize>,
}

impl Expectations {
    /// `None` for a source without expectations (the readers then judge nothing).
    pub(crate) fn new(s: &SourceSpec) -> Option<Expectations> {
        // window-level ones are judged on the stream (`graph::quality`)
        if s.expectations.len() == s.window_expectations().count() {
            return None;
        }
        let mut by_field = vec![Vec::new(); s.fields.len()];
        let mut all = Vec::new();
        for e in s.expectations.iter().filter(|e| !e.check.is_window()) {
            let Some(field) = s.fields.iter().position(|f| f.name == e.field) else {
                // `check_expectations` refuses these when the job or graph is built
                tracing::error!(expectation = %e.name, field = %e.field, "an expectation names an undeclared field; it is not checked");
                continue;
            };
            let check = match &e.check {
                Check::Range { min, max } => Compiled::Range(*min, *max),
                Check::OneOf(values) => Compiled::OneOf(values.iter().cloned().collect()),
                Check::MaxLength(n) => Compiled::MaxLength(*n),
                Check::Regex(p) => match regex::Regex::new(p) {
                    Ok(r) => Compiled::Regex(r),
                    Err(err) => {
                        tracing::error!(expectation = %e.name, error = %err, "an expectation's regex does not compile; it is not checked");
                        continue;
                    }
                },
                _ => continue,
            };
            by_field[field].push(all.len());
            all.push(One { name: e.name.clone(), field: e.field.clone(), check, mode: e.mode });
        }
        Some(Expectations { all, by_field, counters: OnceLock::new(), topic: s.topic.clone() })
    }

    /// Counts failures in `metrics` from now on.
    pub(crate) fn count_with(&self, metrics: &Metrics) {
        let _ = self.counters.set(self.all.iter().map(|e| metrics.expectation_failures.with_label_values(&[&self.topic, &e.name, e.mode.as_str()])).collect());
    }

    /// Judges the numeric value `v` of declared field `field`.
    pub(crate) fn number(&self, field: usize, v: f64, judged: &mut Judged) {
        for &i in self.by_field.get(field).into_iter().flatten() {
            let e = &self.all[i];
            if let Compiled::Range(min, max) = e.check {
                if !(min..=max).contains(&v) {
                    fail(e, i, judged, || format!("`{}` is {v}, outside [{min}, {max}]", e.field));
                }
            }
        }
    }

    /// Judges the string value `s` of declared field `field`.
    pub(crate) fn text(&self, field: usize, s: &str, judged: &mut Judged) {
        for &i in self.by_field.get(field).into_iter().flatten() {
            let e = &self.all[i];
            let failed = match &e.check {
                Compiled::OneOf(set) => !set.contains(s),
                Compiled::Regex(r) => !r.is_match(s),
                Compiled::MaxLength(n) => s.chars().count() > *n,
                Compiled::Range(..) => false,
            };
            if failed {
                fail(e, i, judged, || {
                    let shown: String = s.chars().take(40).collect();
                    let what = match &e.check {
                        Compiled::OneOf(_) => "not one of the allowed values".to_owned(),
                        Compiled::Regex(r) => format!("not matched by /{}/", r.as_str()),
                        Compiled::MaxLength(n) => format!("{} characters, over {n}", s.chars().count()),
                        Compiled::Range(..) => String::new(),
                    };
                    format!("`{}` is {shown:?}{}: {what}", e.field, if shown.len() < s.len() { "..." } else { "" })
                });
            }
        }
    }

    /// The verdict on a record whose fields are otherwise valid: the first
    /// `dlq` failure rejects it; `warn` failures are counted.
    /// A rejected record counts its `dlq` failure only.
    pub(crate) fn settle(&self, judged: Judged) -> Result<(), Rejection> {
        let counters = self.counters.get();
        let count = |i: usize| {
            if let Some(c) = counters.and_then(|c| c.get(i)) {
                c.inc();
            }
        };
        match (judged.dlq, judged.dlq_index) {
            (Some(detail), Some(i)) => {
                count(i);
                Err(Rejection::new(Reason::Expectation, detail))
            }
            _ => {
                judged.warned.iter().for_each(|i| count(*i));
                Ok(())
            }
        }
    }
}

fn fail(e: &One, i: usize, judged: &mut Judged, detail: impl FnOnce() -> String) {
    match e.mode {
        ExpectMode::Warn => judged.warned.push(i),
        ExpectMode::Dlq if judged.dlq.is_none() => {
            judged.dlq = Some(format!("expectation `{}`: {}", e.name, detail()));
            judged.dlq_index = Some(i);
        }
        ExpectMode::Dlq => {}
    }
}
