//! The interval join between two streams (two topics): `left.interval_join(name, &right,
//! before, after)` pairs each left event with every right event of the same key
//! whose time is within `[left.time - before, left.time + after]`.
//!
//! Both streams go to the worker owning each key; there a
//! [`vigil_operators::stream_join::StreamJoin`] emits each pair once, as soon as
//! the second of the two has arrived, and forgets an event once the other side's
//! watermark says nothing can match it any more. Each side has its own watermark
//! (the minimum over its workers' shares), so a slow topic holds back only the
//! expiry of the other side's events, never the output.
//!
//! A pair is `(left value, right value)`, keyed by the key, timed at the later of
//! the two event times, in the later of the two epochs: the set of pairs and their
//! epochs are the same at any worker count. Lateness is decided at each source: a
//! late event never reaches the join.
//!
//! ```
//! use std::time::Duration;
//! use vigil::graph::{LocalRun, Source};
//! let ev = |k: &str, ts: i64| format!(r#"{{"key":"{k}","ts":{}}}"#, 1_700_000_000_000 + ts).into_bytes();
//! let out = LocalRun::new(2)
//!     .topic("views", vec![vec![ev("v1", 0), ev("v2", 0)]])
//!     .topic("clicks", vec![vec![ev("v1", 30_000), ev("v2", 900_000)]])
//!     .run(|g| {
//!         let views = g.source(Source::json("views"));
//!         let clicks = g.source(Source::json("clicks"));
//!         // clicks up to 10 minutes after a view
//!         views.interval_join("click_after_view", &clicks, Duration::ZERO, Duration::from_secs(600)).map(|_| 1).sink("clicked");
//!         Ok(())
//!     })
//!     .unwrap();
//! assert_eq!(out.sink("clicked").iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), vec!["v1"]);
//! ```

use std::time::Duration;

use timely::dataflow::operators::generic::Operator;
use vigil_operators::stream_join::{JoinSnapshot, Pair, StreamJoin};

use super::epochs::{EpochGate, Step};
use super::stream::{by_key, moved, Mark, Msg, Rec, StateLink, Stream, Watermarks};
use crate::types::key_hash;

/// A record of either input, in the order the gate hands them on.
enum Either<L, R> {
    Left(Msg<L>),
    Right(Msg<R>),
}

impl<'s, L: timely::ExchangeData + Clone> Stream<'s, L> {
    /// Pairs of this stream's events with `right`'s events of the same key whose
    /// time is from `before` before to `after` after theirs; see the module docs.
    /// `name` keys the join's checkpointed state.
    pub fn interval_join<R: timely::ExchangeData + Clone>(&self, name: &str, right: &Stream<'s, R>, before: Duration, after: Duration) -> Stream<'s, (L, R)> {
        self.shared.claim(name, 1);
        let link = StateLink::new(&self.shared, name);
        let start = self.shared.start_epoch();
        let peers = self.scope().peers();
        let me = self.scope().index() as u32;
        let mut join = StreamJoin::<L, R>::new(before.as_millis() as i64, after.as_millis() as i64);
        let shared = self.shared.clone();
        self.shared.restore_each(name, "join", |snap: JoinSnapshot<L, R>| join.import(snap, |k| shared.owns(key_hash(k))));
        let left_in = self.broadcast_marks(&format!("Marks({name} left)"));
        let right_in = right.broadcast_marks(&format!("Marks({name} right)"));
        let inner = left_in.binary_frontier::<_, timely::container::CapacityContainerBuilder<Vec<Msg<(L, R)>>>, _, _, _, _>(
            right_in,
            by_key(),
            by_key(),
            name,
            move |_, _| {
                let (mut lw, mut rw) = (Watermarks::exchanged(peers), Watermarks::exchanged(peers));
                let mut low = i64::MIN;
                let mut gate = EpochGate::new(start);
                let mut pairs = Vec::new();
                let mut found: Vec<Msg<(L, R)>> = Vec::new();
                move |(left, lf), (right, rf), output| {
                    left.for_each(|cap, data| {
                        let epoch = cap.least().copied().unwrap_or_default();
                        gate.push(epoch, || cap.delayed(&epoch, 0), data.drain(..).map(Either::Left));
                    });
                    right.for_each(|cap, data| {
                        let epoch = cap.least().copied().unwrap_or_default();
                        gate.push(epoch, || cap.delayed(&epoch, 0), data.drain(..).map(Either::Right));
                    });
                    let frontier = [lf.frontier().as_option().copied(), rf.frontier().as_option().copied()].into_iter().flatten().min();
                    gate.release(
                        frontier,
                        |e| link.is_checkpoint(e),
                        |step| match step {
                            Step::Records(epoch, cap, msgs) => {
                                for m in msgs {
                                    match m {
                                        Either::Left(Msg::Event(r)) => {
                                            let envelope = r.with(());
                                            join.left_tagged(&r.key, r.time_ms, epoch, r.value, &mut pairs);
                                            envelop(&envelope, &mut pairs, &mut found);
                                        }
                                        Either::Right(Msg::Event(r)) => {
                                            let envelope = r.with(());
                                            join.right_tagged(&r.key, r.time_ms, epoch, r.value, &mut pairs);
                                            envelop(&envelope, &mut pairs, &mut found);
                                        }
                                        Either::Left(Msg::Mark(mark)) => {
                                            if let Some(wm) = lw.observe(&mark) {
                                                join.left_watermark(wm);
                                            }
                                        }
                                        Either::Right(Msg::Mark(mark)) => {
                                            if let Some(wm) = rw.observe(&mark) {
                                                join.right_watermark(wm);
                                            }
                                        }
                                    }
                                }
                                if let Some(wm) = moved(&mut low, &lw, &rw) {
                                    found.push(Msg::Mark(Mark { watermark: wm, from: me, to: me }));
                                }
                                output.session(cap).give_container(&mut found);
                            }
                            Step::Snapshot(epoch) => link.report(epoch, || bincode::serialize(&join.export()).map_err(Into::into)),
                            Step::Ended(epoch) => link.report_last(epoch, || bincode::serialize(&join.export()).map_err(Into::into)),
                        },
                    );
                }
            },
        );
        Stream::new(inner, self.shared.clone())
    }
}

/// Puts the pairs just found in their envelopes. Records are handed on in epoch
/// order, so a pair's epoch, the later of its two events', is the current one.
fn envelop<L, R>(arrived: &Rec<()>, pairs: &mut Vec<Pair<L, R>>, found: &mut Vec<Msg<(L, R)>>) {
    for p in pairs.drain(..) {
        let time_ms = p.left_time.max(p.right_time);
        found.push(Msg::Event(Rec {
            key: p.key,
            time_ms,
            origin: arrived.origin,
            offset: arrived.offset,
            watermark: arrived.watermark,
            value: (p.left, p.right),
        }));
    }
}
