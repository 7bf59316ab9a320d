//! The source operator of a connected run (Kafka: [`crate::kafka::KafkaRun`]):
//! one reader per worker for its share of a topic's partitions, the same
//! decoding and admission as every source (`source::Admission`), epochs
//! from the connector's clock, and this worker's watermark (the least of its
//! active partitions') as marks.
//!
//! The reader never blocks the worker: zero-timeout polls, and the reader wakes
//! the worker when records arrive after an empty poll (librdkafka does).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::operators::generic::operator::source as timely_source;

use super::checkpoint::Part;
use super::connector::Connector;
use super::source::MakeValue;
use super::source::{Admission, Source};
use super::stream::{Mark, Msg, Stream};
use super::GraphBuilder;
use crate::source::PollStatus;
use crate::types::now_us;

/// Records read per activation.
const POLL_BATCH: usize = 1024;

pub(super) fn connector_source<'s, V: Clone + 'static>(
    g: &mut GraphBuilder<'s>,
    index: u32,
    source: Source,
    io: Arc<dyn Connector>,
    make: MakeValue<V>,
) -> Stream<'s, V> {
    let scope = g.scope;
    let (worker, peers) = (scope.index(), scope.peers());
    let collector = g.shared.collector.clone();
    let topic = source.topic().to_owned();
    let idle_after = source.spec().idle_timeout;
    let mut admission = Admission::new(index, &source, make);
    admission.count_expectations(&io.metrics());
    let checkpoints = g.shared.checkpoints().cloned();
    let restored = checkpoints.as_ref().and_then(|c| c.restored.clone());
    let start_epoch = g.shared.start_epoch();
    let reader = io.topic(&topic).and_then(|range| {
        let owned: Vec<u32> = (0..range.partitions).filter(|p| (*p as usize + index as usize) % peers == worker).collect();
        let mut start = range.start.clone();
        for p in &owned {
            if let Some(cut) = restored.as_ref().and_then(|r| r.positions.get(&(topic.clone(), *p))) {
                start[*p as usize] = cut.next_offset;
                admission.restore_clock(*p, cut.clock.clone());
            }
        }
        io.reader(&topic, owned, &start, range.end.clone())
    });
    let mut reader = match reader {
        Ok(r) => {
            io.control().health().worker(worker).assign(r.partitions().len());
            Some(r)
        }
        Err(e) => {
            g.shared.errors.borrow_mut().push(format!("source `{topic}`: {e:#}"));
            None
        }
    };
    let me = worker as u32;
    let inner = timely_source::<_, timely::container::CapacityContainerBuilder<Vec<Msg<V>>>, _, _>(scope, &format!("Source({topic})"), move |mut cap, info| {
        cap.downgrade(&start_epoch);
        let activator = scope.activator_for(info.address.clone());
        let wake = scope.worker().sync_activator_for(info.address.to_vec());
        let woken = reader.as_mut().is_some_and(|r| {
            r.set_wakeup(Box::new(move || {
                let _ = wake.activate();
            }))
        });
        let mut cap = Some(cap);
        let started = Instant::now();
        let mut last_record: HashMap<u32, Instant> = HashMap::new();
        let mut mark = i64::MIN;
        let mut in_epoch = 0usize;
        let metrics = io.metrics();
        let mut last_lag = started;
        // a poll's records leave as one batch
        let mut batch: Vec<Msg<V>> = Vec::new();
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let now = Instant::now();
            let now_ms = (now_us() / 1000) as i64;
            // pacing: at most `per_epoch` records of this share per epoch
            let room = io.per_epoch().map_or(POLL_BATCH, |n| n.saturating_sub(in_epoch).min(POLL_BATCH));
            let status = match reader.as_mut() {
                Some(_) if room == 0 => PollStatus::Idle,
                Some(r) => r.poll(room, &mut |rec| {
                    last_record.insert(rec.partition, now);
                    if let Some(m) = admission.take(rec.partition, rec.offset, rec.payload, now_ms) {
                        batch.push(m);
                    }
                }),
                None => PollStatus::Finished,
            };
            if let PollStatus::Records(n) = status {
                in_epoch += n;
            }
            let finished = status == PollStatus::Finished || io.control().shutdown_requested();
            let owned = reader.as_ref().map(|r| r.partitions()).unwrap_or_default();
            let active = |p: &&u32| now.duration_since(last_record.get(p).copied().unwrap_or(started)) < idle_after;
            let low = if finished { i64::MAX } else { owned.iter().filter(active).map(|p| admission.watermark(*p)).min().unwrap_or(mark) };
            if low > mark {
                mark = low;
                batch.push(Msg::Mark(Mark { watermark: mark, from: me, to: me }));
            }
            output.session(&*c).give_container(&mut batch);
            admission.report(&collector, *c.time());
            if now.duration_since(last_lag) >= Duration::from_secs(1) {
                last_lag = now;
                if let Some(r) = reader.as_mut() {
                    r.report(&metrics);
                }
            }
            let epoch = *c.time();
            let target = if finished { epoch + 1 } else { io.clock().target().max(epoch) };
            if let Some(ck) = &checkpoints {
                // the positions now are those after every epoch this source leaves
                let cut = |admission: &Admission<V>| {
                    reader.as_ref().map(|r| r.positions()).unwrap_or_default().into_iter().map(|(p, next)| admission.cut(p, next)).collect::<Vec<_>>()
                };
                for e in (epoch..target).filter(|e| finished || ck.is_checkpoint(*e)) {
                    let last = finished && e + 1 == target;
                    if last || ck.is_checkpoint(e) {
                        ck.send(Part::Cut { worker, topic: topic.clone(), epoch: e, partitions: cut(&admission), last });
                    }
                }
            }
            if finished {
                cap = None;
                return;
            }
            if target > epoch {
                c.downgrade(&target);
                in_epoch = 0;
            }
            match status {
                PollStatus::Records(_) => activator.activate(),
                _ if woken => activator.activate_after(Duration::from_millis(50)),
                _ => activator.activate_after(Duration::from_millis(10)),
            }
        }
    });
    Stream::new(inner, g.shared.clone())
}
