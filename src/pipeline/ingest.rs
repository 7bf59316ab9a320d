//! The source operator, on the worker that owns the partitions: reads records,
//! decodes and validates them, admits them by event time (late ones and bad ones
//! to the dead-letter topic), follows the process's epoch clock and reports each
//! epoch's cut (the next offset and the clock of every partition) for checkpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use timely::dataflow::operators::generic::operator::source as timely_source;
use timely::dataflow::{Scope, Stream};

use super::WorkerContext;
use crate::checkpoint::{PartitionCut, Report};
use crate::decode::Decoder;
use crate::output::{encode_dlq, Topic};
use crate::source::{PollStatus, RecordSource};
use crate::types::{now_us, Control, Event, Reason, Rejection};
use crate::watermark::{PartitionClock, SourceProgress, TimePolicy};

/// Records read per source activation.
const POLL_BATCH: usize = 4096;
/// How long an idle source waits before polling again; after a second without
/// records the wait grows to `IDLE_POLL_MAX` (an idle job costs ~nothing). A
/// source that wakes the worker itself when records arrive (Kafka) only needs
/// `IDLE_TICK`, to follow the epoch clock and report metrics.
const IDLE_POLL: Duration = Duration::from_millis(5);
const IDLE_POLL_MAX: Duration = Duration::from_millis(20);
const IDLE_TICK: Duration = Duration::from_millis(50);

pub(super) fn ingest<'s>(scope: Scope<'s, u64>, ctx: &Arc<WorkerContext>, mut source: Box<dyn RecordSource>) -> Stream<'s, u64, Vec<Event>> {
    let ctx = ctx.clone();
    let worker = scope.index();
    timely_source::<_, timely::container::CapacityContainerBuilder<Vec<Event>>, _, _>(scope, "Ingest", move |mut capability, info| {
        let activator = scope.activator_for(info.address.clone());
        let wakeup = scope.worker().sync_activator_for(info.address.to_vec());
        let woken = source.set_wakeup(Box::new(move || {
            let _ = wakeup.activate();
        }));
        let start_epoch = ctx.start_epoch();
        if start_epoch > 0 {
            capability.downgrade(&start_epoch);
        }
        let mut cap = Some(capability);
        let job = ctx.job.clone();
        let metrics = ctx.metrics.clone();
        let decoder = Decoder::new(&job);
        let policy =
            TimePolicy { allowed_lateness_ms: job.source.allowed_lateness.as_millis() as i64, max_future_ms: job.source.max_future.as_millis() as i64 };
        let topic = source.topic().to_owned();
        let partitions = source.partitions().to_vec();
        let slot_of: HashMap<u32, usize> = partitions.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let mut clocks: Vec<PartitionClock> = match &ctx.restored {
            Some(r) => partitions.iter().map(|p| r.clock(*p)).collect(),
            None => vec![PartitionClock::default(); partitions.len()],
        };
        let mut progress = SourceProgress::new(partitions.len(), job.source.idle_timeout);
        let events_in = metrics.events_in.with_label_values(&[&topic]);
        let dlq: HashMap<Reason, IntCounter> = Reason::ALL.iter().map(|r| (*r, metrics.dlq.with_label_values(&[r.as_str()]))).collect();
        let mut unknown: HashMap<String, IntCounter> = HashMap::new();
        let watermark_gauges: Vec<_> = partitions.iter().map(|p| metrics.watermark.with_label_values(&[&p.to_string()])).collect();
        let mut last_report = Instant::now();
        let mut last_record = Instant::now();
        let mut batch: Vec<Event> = Vec::with_capacity(POLL_BATCH);
        // event-time-consistent scoring: accepted events per step and the strict
        // low watermark go to the gate; reading pauses while scorers hold too much
        let gate = ctx.learner.as_ref().and_then(|l| l.gate.clone());
        if let Some(g) = &gate {
            let wake = scope.worker().sync_activator_for(info.address.to_vec());
            g.on_ready(Box::new(move || {
                let _ = wake.activate();
            }));
        }
        let mut accepted: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
        let mut gate_low = i64::MIN;

        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let epoch = *c.time();
            let stopping = ctx.control.shutdown_requested();
            let now = Instant::now();
            let status = if stopping {
                PollStatus::Finished
            } else if gate.as_ref().is_some_and(|g| !g.may_read(gate_low)) {
                PollStatus::Idle
            } else {
                let consumed_us = now_us();
                let now_ms = (consumed_us / 1000) as i64;
                let sink = &ctx.sink;
                let reject = |partition: u32, offset: i64, payload: Option<&[u8]>, r: Rejection| {
                    dlq[&r.reason].inc();
                    let key = format!("{topic}-{partition}-{offset}");
                    sink.send(Topic::Dlq, key.as_bytes(), &encode_dlq(&topic, partition, offset, payload, &r), epoch);
                };
                let status = source.poll(POLL_BATCH, &mut |rec| {
                    let Some(slot) = slot_of.get(&rec.partition).copied() else {
                        return;
                    }; // not ours: cannot happen with assign()
                    progress.touch(slot, now);
                    let mut note_unknown = |name: &str| match unknown.get(name) {
                        Some(counter) => counter.inc(),
                        None if unknown.len() < 1024 => {
                            let counter = metrics.unknown_field(name);
                            counter.inc();
                            unknown.insert(name.to_owned(), counter);
                        }
                        None => metrics.unknown_field(name).inc(),
                    };
                    let decoded = match decoder.decode(rec.payload, &mut note_unknown) {
                        Ok(d) => d,
                        Err(r) => return reject(rec.partition, rec.offset, rec.payload, r),
                    };
                    match clocks[slot].admit(decoded.time_ms, now_ms, &policy) {
                        Ok(watermark) => {
                            // counted for the gate (only events with an id reach the learner)
                            if let (Some(g), Some(_)) = (&gate, &decoded.event_id) {
                                *accepted.entry(g.step_of(decoded.time_ms)).or_default() += 1;
                            }
                            batch.push(Event {
                                key: decoded.key,
                                event_id: decoded.event_id,
                                time_ms: decoded.time_ms,
                                partition: rec.partition,
                                offset: rec.offset,
                                watermark,
                                numeric: decoded.numeric,
                                strings: decoded.strings,
                                consumed_us,
                            })
                        }
                        Err(r) => reject(rec.partition, rec.offset, rec.payload, r),
                    }
                });
                if let PollStatus::Records(n) = status {
                    events_in.inc_by(n as u64);
                }
                if !batch.is_empty() {
                    output.session(&*c).give_iterator(batch.drain(..));
                }
                status
            };

            // Follow the epoch clock one epoch at a time, reporting each cut; at the
            // end, stop the clock so that every source ends in the same epoch.
            let finished = status == PollStatus::Finished;
            let target = if finished { ctx.epochs.freeze() } else { ctx.epochs.target() };
            let cut = |clocks: &[PartitionClock]| -> Vec<PartitionCut> {
                source
                    .positions()
                    .into_iter()
                    .zip(clocks)
                    .map(|((partition, next_offset), clock)| PartitionCut { partition, next_offset, clock: clock.clone() })
                    .collect()
            };
            while *c.time() < target {
                ctx.report(Report::Cut { worker, epoch: *c.time(), partitions: cut(&clocks) });
                let next = *c.time() + 1;
                c.downgrade(&next);
            }
            if finished {
                ctx.report(Report::Cut { worker, epoch: *c.time(), partitions: cut(&clocks) });
                if let Some(g) = &gate {
                    g.report_source(worker, i64::MAX, &mut accepted);
                }
                finish(&mut cap, &*source, &ctx.control);
                return;
            }

            if let Some(g) = &gate {
                gate_low = progress.strict_low(clocks.iter().map(|c| c.watermark(&policy)), now);
                g.report_source(worker, gate_low, &mut accepted);
            }
            let low = progress.advance(clocks.iter().map(|c| c.watermark(&policy)), now);
            if now.duration_since(last_report) >= Duration::from_secs(1) {
                last_report = now;
                source.report(&metrics);
                for (gauge, clock) in watermark_gauges.iter().zip(&clocks) {
                    gauge.set(clock.watermark(&policy).unwrap_or(0) as f64 / 1000.0);
                }
                metrics.source_progress.set(low as f64 / 1000.0);
            }
            match status {
                PollStatus::Records(_) => {
                    last_record = now;
                    activator.activate()
                }
                PollStatus::Idle if woken => activator.activate_after(IDLE_TICK),
                PollStatus::Idle if now.duration_since(last_record) > Duration::from_secs(1) => activator.activate_after(IDLE_POLL_MAX),
                _ => activator.activate_after(IDLE_POLL),
            }
        }
    })
}

/// Releases the source's capability and records its positions for the commit.
fn finish(cap: &mut Option<timely::dataflow::operators::Capability<u64>>, source: &dyn RecordSource, control: &Control) {
    control.record_positions(source.positions());
    *cap = None;
}
