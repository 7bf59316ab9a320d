//! The source operator, on the worker that owns the partitions: reads records,
//! decodes and validates them, admits them by event time (late ones and bad ones
//! to the dead-letter topic), follows the process's epoch clock and reports each
//! epoch's cut (the next offset and the clock of every partition) for checkpoints.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use timely::dataflow::operators::generic::operator::source as timely_source;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, Stream};

use super::WorkerContext;
use crate::checkpoint::{PartitionCut, Report};
use crate::decode::Decoder;
use crate::output::{encode_dlq, Topic};
use crate::source::{PollStatus, RecordSource};
use crate::types::{now_us, Event, Reason, Rejection};
use crate::watermark::{PartitionClock, SourceProgress, TimePolicy};

/// Records read per source activation.
const POLL_BATCH: usize = 1024;
/// How long an idle source waits before polling again; after a second without
/// records the wait grows to `IDLE_POLL_MAX` (an idle job costs ~nothing). A
/// source that wakes the worker itself when records arrive (Kafka) only needs
/// `IDLE_TICK`, to follow the epoch clock and report metrics.
const IDLE_POLL: Duration = Duration::from_millis(5);
const IDLE_POLL_MAX: Duration = Duration::from_millis(20);
const IDLE_TICK: Duration = Duration::from_millis(50);

pub(super) fn ingest<'s>(scope: Scope<'s, u64>, ctx: &Arc<WorkerContext>, source: Box<dyn RecordSource>) -> Stream<'s, u64, Vec<Event>> {
    let ctx = ctx.clone();
    let worker = scope.index();
    timely_source::<_, timely::container::CapacityContainerBuilder<Vec<Event>>, _, _>(scope, "Ingest", move |mut capability, info| {
        let activator = scope.activator_for(info.address.clone());
        let mut reader = Reader::new(&ctx, worker, source);
        let wakeup = scope.worker().sync_activator_for(info.address.to_vec());
        let woken = reader.source.set_wakeup(Box::new(move || {
            let _ = wakeup.activate();
        }));
        if let Some(g) = &reader.gate {
            // a source paused for the scorers' hold limit reads again when the
            // learner builds more
            let wake = scope.worker().sync_activator_for(info.address.to_vec());
            g.on_ready(Box::new(move || {
                let _ = wake.activate();
            }));
        }
        let start_epoch = ctx.start_epoch();
        if start_epoch > 0 {
            capability.downgrade(&start_epoch);
        }
        let mut cap = Some(capability);
        let mut last_record = Instant::now();

        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let now = Instant::now();
            let status = reader.read(*c.time(), now);
            if !reader.batch.is_empty() {
                output.session(&*c).give_iterator(reader.batch.drain(..));
            }
            let finished = status == PollStatus::Finished;
            reader.follow_clock(c, finished);
            if finished {
                // releases the capability and records the positions for the commit
                ctx.control.record_positions(reader.source.positions());
                cap = None;
                return;
            }
            reader.report_progress(now);
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

/// One worker's reading of its partitions: decoding, admission by event time,
/// rejections to the DLQ, the cuts of each epoch and progress reports.
struct Reader {
    ctx: Arc<WorkerContext>,
    worker: usize,
    source: Box<dyn RecordSource>,
    decoder: Decoder,
    policy: TimePolicy,
    topic: String,
    slot_of: HashMap<u32, usize>,
    /// Per owned partition (in `source.partitions()` order): its event-time clock.
    clocks: Vec<PartitionClock>,
    progress: SourceProgress,
    events_in: IntCounter,
    dlq: HashMap<Reason, IntCounter>,
    unknown: HashMap<String, IntCounter>,
    watermark_gauges: Vec<prometheus::Gauge>,
    last_report: Instant,
    /// The events of the last read, for the operator to send.
    batch: Vec<Event>,
    /// Event-time-consistent scoring: accepted events per step and the strict low
    /// watermark go to the gate; reading pauses while scorers hold too much.
    gate: Option<Arc<crate::model::gate::Gate>>,
    accepted: BTreeMap<i64, u64>,
    gate_low: i64,
}

impl Reader {
    fn new(ctx: &Arc<WorkerContext>, worker: usize, source: Box<dyn RecordSource>) -> Reader {
        let job = &ctx.job;
        let metrics = &ctx.metrics;
        let topic = source.topic().to_owned();
        let partitions = source.partitions().to_vec();
        let decoder = Decoder::new(job);
        decoder.count_expectations(metrics);
        Reader {
            ctx: ctx.clone(),
            worker,
            decoder,
            policy: TimePolicy { allowed_lateness_ms: job.source.allowed_lateness.as_millis() as i64, max_future_ms: job.source.max_future.as_millis() as i64 },
            slot_of: partitions.iter().enumerate().map(|(i, p)| (*p, i)).collect(),
            clocks: match &ctx.restored {
                Some(r) => partitions.iter().map(|p| r.clock(*p)).collect(),
                None => vec![PartitionClock::default(); partitions.len()],
            },
            progress: SourceProgress::new(partitions.len(), job.source.idle_timeout),
            events_in: metrics.events_in.with_label_values(&[&topic]),
            dlq: Reason::ALL.iter().map(|r| (*r, metrics.dlq.with_label_values(&[r.as_str()]))).collect(),
            unknown: HashMap::new(),
            watermark_gauges: partitions.iter().map(|p| metrics.watermark.with_label_values(&[&p.to_string()])).collect(),
            last_report: Instant::now(),
            batch: Vec::with_capacity(POLL_BATCH),
            gate: ctx.learner.as_ref().and_then(|l| l.gate.clone()),
            accepted: BTreeMap::new(),
            gate_low: i64::MIN,
            topic,
            source,
        }
    }

    /// Reads up to `POLL_BATCH` records into `batch` (accepted events) and the DLQ
    /// (the rest, tagged with `epoch`), unless the job stops or the gate pauses it.
    fn read(&mut self, epoch: u64, now: Instant) -> PollStatus {
        if self.ctx.control.shutdown_requested() {
            return PollStatus::Finished;
        }
        if self.gate.as_ref().is_some_and(|g| !g.may_read(self.gate_low)) {
            return PollStatus::Idle;
        }
        let consumed_us = now_us();
        let now_ms = (consumed_us / 1000) as i64;
        let Reader { ctx, source, decoder, policy, topic, slot_of, clocks, progress, dlq, unknown, batch, gate, accepted, .. } = self;
        let metrics = &ctx.metrics;
        let sink = &ctx.sink;
        let reject = |partition: u32, offset: i64, payload: Option<&[u8]>, r: Rejection| {
            dlq[&r.reason].inc();
            let key = format!("{topic}-{partition}-{offset}");
            sink.send(Topic::Dlq, key.as_bytes(), &encode_dlq(topic, partition, offset, payload, &r), epoch);
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
            match clocks[slot].admit(decoded.time_ms, now_ms, policy) {
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
            self.events_in.inc_by(n as u64);
        }
        status
    }

    /// Follows the epoch clock one epoch at a time, reporting each cut; at the end
    /// (`finished`), stops the clock so that every source ends in the same epoch,
    /// and reports the last cut.
    fn follow_clock(&mut self, cap: &mut Capability<u64>, finished: bool) {
        let target = if finished { self.ctx.epochs.freeze() } else { self.ctx.epochs.target() };
        while *cap.time() < target {
            self.ctx.report(Report::Cut { worker: self.worker, epoch: *cap.time(), partitions: self.cut() });
            let next = *cap.time() + 1;
            cap.downgrade(&next);
        }
        if finished {
            self.ctx.report(Report::Cut { worker: self.worker, epoch: *cap.time(), partitions: self.cut() });
            if let Some(g) = &self.gate {
                g.report_source(self.worker, i64::MAX, &mut self.accepted);
            }
        }
    }

    /// Where each owned partition stands: the next offset and its clock.
    fn cut(&self) -> Vec<PartitionCut> {
        self.source
            .positions()
            .into_iter()
            .zip(&self.clocks)
            .map(|((partition, next_offset), clock)| PartitionCut { partition, next_offset, clock: clock.clone() })
            .collect()
    }

    /// The gate's share (accepted counts, strict low watermark) and, every second,
    /// the source's metrics and watermarks.
    fn report_progress(&mut self, now: Instant) {
        let policy = &self.policy;
        if let Some(g) = &self.gate {
            self.gate_low = self.progress.strict_low(self.clocks.iter().map(|c| c.watermark(policy)), now);
            g.report_source(self.worker, self.gate_low, &mut self.accepted);
        }
        let low = self.progress.advance(self.clocks.iter().map(|c| c.watermark(policy)), now);
        if now.duration_since(self.last_report) >= Duration::from_secs(1) {
            self.last_report = now;
            self.source.report(&self.ctx.metrics);
            for (gauge, clock) in self.watermark_gauges.iter().zip(&self.clocks) {
                gauge.set(clock.watermark(policy).unwrap_or(0) as f64 / 1000.0);
            }
            self.ctx.metrics.source_progress.set(low as f64 / 1000.0);
        }
    }
}
