//! The skeleton every keyed, checkpointed operator of a graph shares: events go
//! to their key's worker, are handed on in epoch order through an
//! [`EpochGate`], the operator's state is reported as of the end of each
//! checkpoint epoch, and its watermark is the least over every worker's marks.
//! What the operator does with an event, a watermark, the end of a batch and
//! the end of the input is a [`Gated`]'s.
//!
//! Outputs of an event leave in its epoch; outputs of the end of the input in
//! the last one, followed by a final mark.

use anyhow::Result;
use timely::dataflow::operators::generic::Operator;

use super::epochs::{EpochGate, Step};
use super::stream::{by_key, Mark, Msg, Rec, StateLink, Stream, Watermarks};

/// Outputs are handed on in batches of about this many messages.
const FLUSH_AT: usize = 1024;

/// One operator's work on one worker, without timely.
pub(crate) trait Gated: 'static {
    type In;
    type Out;
    /// An event of the input.
    fn event(&mut self, r: Rec<Self::In>, out: &mut Vec<Msg<Self::Out>>);
    /// The input's watermark moved to `watermark` (before the mark is sent on).
    fn watermark(&mut self, watermark: i64, out: &mut Vec<Msg<Self::Out>>) {
        let _ = (watermark, out);
    }
    /// After each batch of the input, with the input's watermark.
    fn batch_done(&mut self, watermark: i64, out: &mut Vec<Msg<Self::Out>>) {
        let _ = (watermark, out);
    }
    /// The input ended: what is final now.
    fn finish(&mut self, out: &mut Vec<Msg<Self::Out>>) {
        let _ = out;
    }
    /// The state, encoded for a checkpoint.
    fn snapshot(&self) -> Result<Vec<u8>>;
}

/// Builds `op` on `input` under `name` (claimed by the caller, state restored
/// into `op` by the caller); see the module docs.
pub(crate) fn gated<'s, I, G>(input: &Stream<'s, I>, name: &str, mut op: G) -> Stream<'s, G::Out>
where
    I: timely::ExchangeData + Clone,
    G: Gated<In = I>,
    G::Out: Clone + 'static,
{
    let link = StateLink::new(&input.shared, name);
    let start = input.shared.start_epoch();
    let (peers, me) = (input.scope().peers(), input.scope().index() as u32);
    let marked = input.broadcast_marks(&format!("Marks({name})"));
    let inner = marked.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<Msg<G::Out>>>, _, _, _>(by_key(), name, move |mut cap, _| {
        cap.downgrade(&start);
        // kept at the input frontier, for what the end of the input emits
        let mut end_cap = Some(cap);
        let mut gate = EpochGate::new(start);
        let mut ended_at = None;
        // the latest epoch handed on: what the end of the input emits goes no
        // earlier, so that downstream (in epoch order) sees it after every output
        let mut last_epoch = start;
        let mut marks = Watermarks::exchanged(peers);
        let mut batch: Vec<Msg<G::Out>> = Vec::new();
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                let epoch = cap.least().copied().unwrap_or_default();
                gate.push(epoch, || cap.delayed(&epoch, 0), data.drain(..));
            });
            let f = frontier.frontier().as_option().copied();
            gate.release(
                f,
                |e| link.is_checkpoint(e),
                |step| match step {
                    Step::Records(epoch, cap, msgs) => {
                        last_epoch = last_epoch.max(epoch);
                        for m in msgs {
                            if batch.len() >= FLUSH_AT {
                                // a small batch stays in the cache, and its
                                // buffer is not a fresh allocation of an epoch's size
                                output.session(cap).give_container(&mut batch);
                            }
                            match m {
                                Msg::Event(r) => op.event(r, &mut batch),
                                Msg::Mark(mark) => {
                                    if let Some(wm) = marks.observe(&mark) {
                                        op.watermark(wm, &mut batch);
                                        batch.push(Msg::Mark(Mark { watermark: wm, from: me, to: me }));
                                    }
                                }
                            }
                        }
                        op.batch_done(marks.current(), &mut batch);
                        output.session(cap).give_container(&mut batch);
                    }
                    Step::Snapshot(epoch) => link.report(epoch, || op.snapshot()),
                    Step::Ended(epoch) => ended_at = Some(epoch),
                },
            );
            match f {
                Some(f) => {
                    if let Some(c) = end_cap.as_mut().filter(|c| *c.time() < f) {
                        c.downgrade(&f);
                    }
                }
                None => {
                    if let Some(c) = end_cap.take() {
                        op.finish(&mut batch);
                        // the state after the end of the input: final for every later checkpoint
                        if let Some(e) = ended_at.take() {
                            link.report_last(e, || op.snapshot());
                        }
                        batch.push(Msg::Mark(Mark { watermark: i64::MAX, from: me, to: me }));
                        let at = (*c.time()).max(last_epoch);
                        output.session(&c.delayed(&at)).give_container(&mut batch);
                    }
                }
            }
        }
    });
    Stream::new(inner, input.shared.clone())
}
