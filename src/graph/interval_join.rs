//! The interval join between two streams (two topics): `left.interval_join(&right,
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
//!         views.interval_join(&clicks, Duration::ZERO, Duration::from_secs(600)).map(|_| 1).sink("clicked");
//!         Ok(())
//!     })
//!     .unwrap();
//! assert_eq!(out.sink("clicked").iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), vec!["v1"]);
//! ```

use std::time::Duration;

use timely::dataflow::operators::generic::Operator;
use vigil_operators::stream_join::{Pair, StreamJoin};

use super::stream::{by_key, Mark, Msg, Rec, Stream, Watermarks};

impl<'s, L: timely::ExchangeData + Clone> Stream<'s, L> {
    /// Pairs of this stream's events with `right`'s events of the same key whose
    /// time is from `before` before to `after` after theirs; see the module docs.
    pub fn interval_join<R: timely::ExchangeData + Clone>(&self, right: &Stream<'s, R>, before: Duration, after: Duration) -> Stream<'s, (L, R)> {
        let peers = self.scope().peers();
        let me = self.scope().index() as u32;
        let left_in = self.broadcast_marks("Marks(join left)");
        let right_in = right.broadcast_marks("Marks(join right)");
        let mut join = StreamJoin::<L, R>::new(before.as_millis() as i64, after.as_millis() as i64);
        let inner = left_in.binary::<_, timely::container::CapacityContainerBuilder<Vec<Msg<(L, R)>>>, _, _, _, _>(
            right_in,
            by_key(),
            by_key(),
            "IntervalJoin",
            move |_, _| {
                let (mut lw, mut rw) = (Watermarks::exchanged(peers), Watermarks::exchanged(peers));
                let mut low = i64::MIN;
                let mut pairs = Vec::new();
                // the pairs of one input batch, by epoch
                let mut found: Vec<(u64, Msg<(L, R)>)> = Vec::new();
                move |left, right, output| {
                    left.for_each(|cap, data| {
                        let epoch = cap.least().copied().unwrap_or_default();
                        for m in data.drain(..) {
                            match m {
                                Msg::Event(r) => {
                                    let envelope = r.with(());
                                    join.left_tagged(&r.key, r.time_ms, epoch, r.value, &mut pairs);
                                    envelop(&envelope, &mut pairs, &mut found);
                                }
                                Msg::Mark(mark) => {
                                    if let Some(wm) = lw.observe(&mark) {
                                        join.left_watermark(wm);
                                    }
                                }
                            }
                        }
                        send(&mut found, |e, msgs| output.session(&cap.delayed(&e, 0)).give_iterator(msgs));
                        if let Some(wm) = moved(&mut low, &lw, &rw) {
                            output.session(&cap).give(Msg::Mark(Mark { watermark: wm, from: me, to: me }));
                        }
                    });
                    right.for_each(|cap, data| {
                        let epoch = cap.least().copied().unwrap_or_default();
                        for m in data.drain(..) {
                            match m {
                                Msg::Event(r) => {
                                    let envelope = r.with(());
                                    join.right_tagged(&r.key, r.time_ms, epoch, r.value, &mut pairs);
                                    envelop(&envelope, &mut pairs, &mut found);
                                }
                                Msg::Mark(mark) => {
                                    if let Some(wm) = rw.observe(&mark) {
                                        join.right_watermark(wm);
                                    }
                                }
                            }
                        }
                        send(&mut found, |e, msgs| output.session(&cap.delayed(&e, 0)).give_iterator(msgs));
                        if let Some(wm) = moved(&mut low, &lw, &rw) {
                            output.session(&cap).give(Msg::Mark(Mark { watermark: wm, from: me, to: me }));
                        }
                    });
                }
            },
        );
        Stream::new(inner, self.shared.clone())
    }
}

/// The output's watermark (the lower of the two sides') if it moved.
fn moved(low: &mut i64, left: &Watermarks, right: &Watermarks) -> Option<i64> {
    let now = left.current().min(right.current());
    (now > *low).then(|| {
        *low = now;
        now
    })
}

/// Puts the pairs just found in their envelopes, each with the later of its two epochs.
fn envelop<L, R>(arrived: &Rec<()>, pairs: &mut Vec<Pair<L, R>>, found: &mut Vec<(u64, Msg<(L, R)>)>) {
    for p in pairs.drain(..) {
        let epoch = p.left_tag.max(p.right_tag);
        let time_ms = p.left_time.max(p.right_time);
        let rec = Rec { key: p.key, time_ms, origin: arrived.origin, offset: arrived.offset, watermark: arrived.watermark, value: (p.left, p.right) };
        found.push((epoch, Msg::Event(rec)));
    }
}

/// Sends a batch's pairs, one session per epoch.
fn send<L, R>(found: &mut Vec<(u64, Msg<(L, R)>)>, mut session: impl FnMut(u64, &mut dyn Iterator<Item = Msg<(L, R)>>)) {
    if found.is_empty() {
        return;
    }
    found.sort_by_key(|(e, _)| *e); // stable: arrival order within an epoch
    let mut rest = found.drain(..).peekable();
    while let Some(&(epoch, _)) = rest.peek() {
        let mut same = std::iter::from_fn(|| rest.next_if(|(e, _)| *e == epoch).map(|(_, m)| m));
        session(epoch, &mut same);
    }
}
