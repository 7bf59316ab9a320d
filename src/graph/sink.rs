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
use super::stream::{Msg, Stream};

impl<'s, T: Clone + Serialize + 'static> Stream<'s, T> {
    /// Writes every event to the output named `name`.
    pub fn sink(&self, name: &str) {
        let collector = self.shared.collector.clone();
        let name = name.to_owned();
        let mut batch = Vec::new();
        self.inner.clone().sink(Pipeline, &format!("Sink({name})"), move |(input, _frontier)| {
            input.for_each(|time, data| {
                for m in data.drain(..) {
                    if let Msg::Event(r) = m {
                        // serde_json fails only on maps with non-string keys or failing Serialize impls
                        let value = serde_json::to_string(&r.value).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
                        batch.push(SinkRecord { epoch: time.least().copied().unwrap_or_default(), key: r.key, time_ms: r.time_ms, value: Some(value) });
                    }
                }
            });
            if !batch.is_empty() {
                collector.write(&name, &mut batch);
            }
        });
    }
}
