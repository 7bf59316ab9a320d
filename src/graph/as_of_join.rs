//! The stream-table join, as of event time: `stream.join_as_of(name, &table,
//! value)` pairs each event with its key's value in a table (a compacted topic:
//! the latest value per key, `None` deletes) as of the event's time: the latest
//! table update of the key at or before it.
//!
//! Both streams go to the worker owning each key; there a
//! [`vigil_operators::as_of_join::AsOfJoin`] answers an event once the table's
//! watermark is above the event's time (no update at or before it can still
//! come), so the answer does not depend on how the two topics interleave, on
//! the worker count or on a restore. An event therefore waits for the table's
//! watermark: a table topic that is quiet holds events back until its partitions
//! count as idle (the source's idle timeout). The table keeps only the versions a
//! waiting or future event can still need.
//!
//! This is Flink's temporal join against a versioned table. For a join against
//! the table's latest value whatever the event's time (a lookup), read the
//! table into a view ([`super::Stream::upsert_table`]) and join views.
//!
//! ```
//! use vigil::graph::{LocalRun, Source};
//! use vigil::spec::FieldType;
//! let t = 1_700_000_000_000i64;
//! let tx = |card: &str, s: i64| format!(r#"{{"card":"{card}","ts":{}}}"#, t + s * 1000).into_bytes();
//! let home = |card: &str, s: i64, country: &str| format!(r#"{{"card":"{card}","ts":{},"country":"{country}"}}"#, t + s * 1000).into_bytes();
//! let out = LocalRun::new(2)
//!     .topic("tx", vec![vec![tx("c1", 5), tx("c2", 6), tx("c1", 20)]])
//!     .topic("homes", vec![vec![home("c1", 0, "FR"), home("c3", 1, "IT"), home("c1", 10, "DE")]])
//!     .run(|g| {
//!         let tx = g.source(Source::json("tx").key("card"));
//!         let homes = g.source(Source::json("homes").key("card").field("country", FieldType::Str));
//!         tx.join_as_of("home_as_of_tx", &homes, |r| r.value.str("country").map(str::to_owned))
//!             .map(|(_, home)| home.unwrap_or_else(|| "unknown".into()))
//!             .sink("tx_home");
//!         Ok(())
//!     })
//!     .unwrap();
//! // c1 at 5 s lived in FR, at 20 s in DE; c2 has no home
//! let got: Vec<(&str, Option<&str>)> = out.sink("tx_home").iter().map(|r| (r.key.as_str(), r.value.as_deref())).collect();
//! assert_eq!(got, vec![("c1", Some(r#""FR""#)), ("c1", Some(r#""DE""#)), ("c2", Some(r#""unknown""#))]);
//! ```

use timely::dataflow::operators::generic::Operator;
use vigil_operators::as_of_join::AsOfJoin;

use super::epochs::{EpochGate, Step};
use super::stream::{by_key, moved, Mark, Msg, Rec, StateLink, Stream, Watermarks};
use crate::types::key_hash;

/// A record of either input.
enum Either<L, R> {
    Stream(Msg<L>),
    Table(Msg<R>),
}

impl<'s, L: timely::ExchangeData + Clone> Stream<'s, L> {
    /// Each event with its key's value in `table` as of the event's time;
    /// `value` reads a table record's new value (`None`: a delete). See the module docs.
    pub fn join_as_of<R, V>(&self, name: &str, table: &Stream<'s, R>, value: impl Fn(&Rec<R>) -> Option<V> + 'static) -> Stream<'s, (L, Option<V>)>
    where
        R: timely::ExchangeData + Clone,
        V: timely::ExchangeData + Clone,
    {
        self.shared.claim(name, 1);
        let link = StateLink::new(&self.shared, name);
        let start = self.shared.start_epoch();
        let peers = self.scope().peers();
        let me = self.scope().index() as u32;
        let mut join = AsOfJoin::<Rec<L>, V>::new();
        let shared = self.shared.clone();
        self.shared.restore_each(name, "join", |snap: AsOfJoin<Rec<L>, V>| join.absorb(snap, |k| shared.owns(key_hash(k))));
        let stream_in = self.broadcast_marks(&format!("Marks({name} stream)"));
        let table_in = table.broadcast_marks(&format!("Marks({name} table)"));
        let inner = stream_in.binary_frontier::<_, timely::container::CapacityContainerBuilder<Vec<Msg<(L, Option<V>)>>>, _, _, _, _>(
            table_in,
            by_key(),
            by_key(),
            name,
            move |_, _| {
                let (mut sw, mut tw) = (Watermarks::exchanged(peers), Watermarks::exchanged(peers));
                let mut low = i64::MIN;
                let mut gate = EpochGate::new(start);
                let mut answered = Vec::new();
                let mut batch: Vec<Msg<(L, Option<V>)>> = Vec::new();
                move |(left, lf), (right, rf), output| {
                    left.for_each(|cap, data| {
                        let epoch = cap.least().copied().unwrap_or_default();
                        gate.push(epoch, || cap.delayed(&epoch, 0), data.drain(..).map(Either::Stream));
                    });
                    right.for_each(|cap, data| {
                        let epoch = cap.least().copied().unwrap_or_default();
                        gate.push(epoch, || cap.delayed(&epoch, 0), data.drain(..).map(Either::Table));
                    });
                    let frontier = [lf.frontier().as_option().copied(), rf.frontier().as_option().copied()].into_iter().flatten().min();
                    gate.release(
                        frontier,
                        |e| link.is_checkpoint(e),
                        |step| match step {
                            Step::Records(_, cap, msgs) => {
                                for m in msgs {
                                    match m {
                                        Either::Stream(Msg::Event(r)) => join.event(&r.key.clone(), r.time_ms, r, &mut answered),
                                        Either::Table(Msg::Event(r)) => join.table(&r.key, r.time_ms, value(&r)),
                                        Either::Stream(Msg::Mark(mark)) => {
                                            if let Some(wm) = sw.observe(&mark) {
                                                join.stream_watermark(wm);
                                            }
                                        }
                                        Either::Table(Msg::Mark(mark)) => {
                                            if let Some(wm) = tw.observe(&mark) {
                                                join.table_watermark(wm, &mut answered);
                                            }
                                        }
                                    }
                                }
                                for (_, _, r, v) in answered.drain(..) {
                                    let Rec { key, time_ms, origin, offset, watermark, value } = r;
                                    batch.push(Msg::Event(Rec { key, time_ms, origin, offset, watermark, value: (value, v) }));
                                }
                                if let Some(wm) = moved(&mut low, &sw, &tw) {
                                    batch.push(Msg::Mark(Mark { watermark: wm, from: me, to: me }));
                                }
                                output.session(cap).give_container(&mut batch);
                            }
                            Step::Snapshot(epoch) => link.report(epoch, || bincode::serialize(&join).map_err(Into::into)),
                            Step::Ended(epoch) => link.report_last(epoch, || bincode::serialize(&join).map_err(Into::into)),
                        },
                    );
                }
            },
        );
        Stream::new(inner, self.shared.clone())
    }
}
