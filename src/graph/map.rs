//! User closures on a stream: `map`, `filter`, `flat_map`, `key_by`, `inspect`.
//!
//! They run on the worker that holds the event, in the stream's order, and keep
//! each event's envelope (event time, origin, offset): a mapped event is as late or
//! on time as the one it came from, and watermarks pass through unchanged.
//! `key_by` only sets the key; the operators that group by key (keyed operators,
//! joins, views, upsert sinks) send each event to its key's worker themselves.
//!
//! ```
//! use vigil::graph::{LocalRun, Source};
//! use vigil::spec::FieldType;
//! let tx = |card: &str, ts: i64, amount: f64| format!(r#"{{"card":"{card}","ts":{ts},"amount":{amount}}}"#).into_bytes();
//! let t0 = 1_700_000_000_000;
//! let out = LocalRun::new(2)
//!     .topic("tx", vec![vec![tx("a", t0, 5.0), tx("b", t0 + 1, 500.0), tx("a", t0 + 2, 900.0)]])
//!     .run(|g| {
//!         g.source(Source::json("tx").key("card").field("amount", FieldType::F64))
//!             .filter(|r| r.f64("amount").unwrap_or(0.0) > 100.0)
//!             .map(|r| (r.f64("amount").unwrap_or(0.0) * 100.0) as i64)
//!             .sink("big_cents");
//!         Ok(())
//!     })
//!     .unwrap();
//! assert_eq!(out.values("big_cents"), vec!["50000", "90000"]);
//! ```

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::stream::{Msg, Rec, Stream};

impl<'s, T: Clone + 'static> Stream<'s, T> {
    /// The events for which `keep` holds.
    pub fn filter(&self, keep: impl Fn(&T) -> bool + 'static) -> Stream<'s, T> {
        self.each("Filter", move |r, out| {
            if keep(&r.value) {
                out.push(Msg::Event(r))
            }
        })
    }

    /// Each event's value through `f`.
    pub fn map<U: Clone + 'static>(&self, f: impl Fn(T) -> U + 'static) -> Stream<'s, U> {
        self.each("Map", move |r, out| {
            let Rec { key, time_ms, origin, offset, watermark, value } = r;
            out.push(Msg::Event(Rec { key, time_ms, origin, offset, watermark, value: f(value) }))
        })
    }

    /// Zero or more values per event, each with the event's envelope.
    pub fn flat_map<U: Clone + 'static, I: IntoIterator<Item = U>>(&self, f: impl Fn(T) -> I + 'static) -> Stream<'s, U> {
        self.each("FlatMap", move |r, out| {
            let envelope = r.with(());
            for value in f(r.value) {
                out.push(Msg::Event(envelope.with(value)));
            }
        })
    }

    /// Sets each event's key (e.g. re-keys transactions by merchant).
    pub fn key_by(&self, key: impl Fn(&T) -> String + 'static) -> Stream<'s, T> {
        self.each("KeyBy", move |mut r, out| {
            r.key = key(&r.value);
            out.push(Msg::Event(r))
        })
    }

    /// Calls `f` on every event with its envelope (logging, metrics).
    pub fn inspect(&self, f: impl Fn(&Rec<T>) + 'static) -> Stream<'s, T> {
        self.each("Inspect", move |r, out| {
            f(&r);
            out.push(Msg::Event(r))
        })
    }

    /// A pipeline operator that hands each event to `f` and passes marks on.
    pub(crate) fn each<U: Clone + 'static>(&self, name: &str, mut f: impl FnMut(Rec<T>, &mut Vec<Msg<U>>) + 'static) -> Stream<'s, U> {
        let mut buffer = Vec::new();
        let inner = self.inner.clone().unary::<timely::container::CapacityContainerBuilder<Vec<Msg<U>>>, _, _, _>(Pipeline, name, move |_, _| {
            move |input, output| {
                input.for_each(|time, data| {
                    for m in data.drain(..) {
                        match m {
                            Msg::Event(r) => f(r, &mut buffer),
                            Msg::Mark(mark) => buffer.push(Msg::Mark(mark)),
                        }
                    }
                    output.session(&time).give_container(&mut buffer);
                });
            }
        });
        Stream::new(inner, self.shared.clone())
    }
}
