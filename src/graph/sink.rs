//! Sinks: where a stream leaves the graph, under a name the runner maps to an
//! output (a Kafka topic, or memory in [`super::LocalRun`]).
//!
//! Each event becomes one output record: its key, and its value as JSON. The
//! records of one key leave in the stream's order for that key; records of
//! different workers interleave.
//!
//! ```
//! use vigil::graph::{LocalRun, Source};
//! let out = LocalRun::new(1)
//!     .topic("clicks", vec![vec![br#"{"key":"u1","ts":1700000000000}"#.to_vec()]])
//!     .run(|g| {
//!         g.source(Source::json("clicks")).map(|_| "seen").sink("seen");
//!         Ok(())
//!     })
//!     .unwrap();
//! assert_eq!(out.sink("seen")[0].key, "u1");
//! assert_eq!(out.values("seen"), vec![r#""seen""#]);
//! ```

use serde::Serialize;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::run::SinkRecord;
use super::stream::{Msg, Rec, Stream};

/// What [`Stream::sink_with`]'s encoder made of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The buffer holds the record's value.
    Value,
    /// A record without a value (on a compacted topic, the key's deletion).
    Tombstone,
    /// No record for this event.
    Nothing,
}

impl<'s, T: Clone + Serialize + 'static> Stream<'s, T> {
    /// Writes every event to the output named `name`.
    pub fn sink(&self, name: &str) {
        self.sink_with(name, |r, buf| {
            // serde_json fails only on maps with non-string keys or failing Serialize impls
            if let Err(e) = serde_json::to_writer(&mut *buf, &r.value) {
                buf.clear();
                buf.extend_from_slice(format!("{{\"error\":{:?}}}", e.to_string()).as_bytes());
            }
            Written::Value
        })
    }
}

impl<'s, T: Clone + 'static> Stream<'s, T> {
    /// Writes every event to the output named `name`, as `encode` writes it
    /// (into a cleared buffer; valid UTF-8 expected), or a tombstone, or
    /// nothing, as it says: a contract of your own.
    pub fn sink_with(&self, name: &str, mut encode: impl FnMut(&Rec<T>, &mut Vec<u8>) -> Written + 'static) {
        let collector = self.shared.collector.clone();
        let name = name.to_owned();
        let mut batch = Vec::new();
        let mut buf = Vec::new();
        // a benchmark's run: records are encoded, counted and dropped
        let count_only = collector.count_only();
        let mut counted = 0;
        let progress = self.shared.sink_progress();
        self.inner.clone().sink(Pipeline, &format!("Sink({name})"), move |(input, frontier)| {
            input.for_each(|time, data| {
                for m in data.drain(..) {
                    if let Msg::Event(r) = m {
                        buf.clear();
                        let value = match encode(&r, &mut buf) {
                            Written::Nothing => continue,
                            _ if count_only => {
                                counted += 1;
                                continue;
                            }
                            Written::Value => Some(String::from_utf8_lossy(&buf).into_owned()),
                            Written::Tombstone => None,
                        };
                        batch.push(SinkRecord { epoch: time.least().copied().unwrap_or_default(), key: r.key, time_ms: r.time_ms, value });
                    }
                }
            });
            if !batch.is_empty() {
                collector.write(&name, &mut batch);
            }
            if counted > 0 {
                collector.count(&name, std::mem::take(&mut counted));
            }
            progress.passed(frontier.frontier().as_option().copied());
        });
    }
}
