//! The learner's main loop, one step per function: predictions in, labels in,
//! the periodic work (or event-time builds), checkpoint requests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::{event_time, LearnerSummary, Service, COMMIT_LABELS_EVERY};
use crate::learner::checkpoint::CheckpointRequest;
use crate::learner::label_health::LabelHealth;
use crate::learner::labels::{decode_label, label_time};
use crate::learner::pending::Pending;
use crate::source::{PollStatus, RecordSource};

/// A decoded label: (partition, offset, (event id hash, label) or why not).
type DecodedLabel = (u32, i64, Result<(u64, bool), &'static str>);

/// Buffers reused by every read of the labels, and the labels' health.
struct LabelReading {
    health: LabelHealth,
    batch: Vec<DecodedLabel>,
    times: Vec<Option<i64>>,
}

impl Service {
    /// The learner's loop: predictions from the scorers, labels from their topic,
    /// training, selection and publication, checkpoint requests; until the job
    /// finishes and everything in flight is settled.
    pub(super) fn run(
        mut self,
        rx: Receiver<Vec<Pending>>,
        requests: Option<Receiver<CheckpointRequest>>,
        mut labels: Box<dyn RecordSource>,
        finish: &AtomicBool,
    ) -> Result<LearnerSummary> {
        let mut scorers_gone = false;
        let mut quiet_polls = 0;
        let mut last_gauges = Instant::now();
        let mut last_commit = Instant::now();
        let mut reading = LabelReading { health: LabelHealth::new(&self.spec.labels), batch: Vec::new(), times: Vec::new() };
        if self.gate_et.is_some() {
            let lateness = self.spec.labels.lateness.as_millis() as i64;
            self.label_clock_et = Some(event_time::LabelClock::new(labels.partitions(), lateness, self.spec.labels.idle));
        }
        loop {
            let finishing = finish.load(Ordering::SeqCst);
            let mut got = if scorers_gone { 0 } else { self.receive(&rx, finishing, &mut scorers_gone) };
            let status = self.read_labels(&mut *labels, &mut reading);
            if let Some(gate) = self.gate_et.clone() {
                if status == PollStatus::Finished {
                    self.label_clock_et.as_mut().map(|c| c.ended = true);
                }
                self.advance_event_time(&gate, false)?;
            } else {
                self.expire();
                self.orphan_early(finishing);
                self.periodic(false)?;
            }
            if let Some(requests) = &requests {
                got += self.answer_checkpoints(requests, &rx, &*labels)?;
            }
            if last_gauges.elapsed() >= Duration::from_secs(1) {
                last_gauges = Instant::now();
                self.gauges();
            }
            if last_commit.elapsed() >= COMMIT_LABELS_EVERY {
                last_commit = Instant::now();
                commit_labels(&mut *labels);
            }
            let quiet = got == 0 && !matches!(status, PollStatus::Records(_));
            if finishing {
                quiet_polls = if quiet { quiet_polls + 1 } else { 0 };
                if quiet_polls >= 3 {
                    break;
                }
                if status == PollStatus::Idle {
                    std::thread::sleep(Duration::from_millis(20));
                }
            } else if quiet && !self.gate_et.as_ref().is_some_and(|g| g.held() > 0) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        commit_labels(&mut *labels);
        if let Some(gate) = self.gate_et.clone() {
            self.advance_event_time(&gate, true)?;
        }
        self.end()
    }

    /// Predictions from the scorers: waits briefly for a batch, then takes every
    /// batch already sent. Returns how many predictions came.
    fn receive(&mut self, rx: &Receiver<Vec<Pending>>, finishing: bool, scorers_gone: &mut bool) -> usize {
        // scorers holding events wait for this thread: answer quickly then
        let waited_on = self.gate_et.as_ref().is_some_and(|g| g.held() > 0);
        let wait = match (finishing, waited_on) {
            (true, _) => Duration::ZERO,
            (false, true) => Duration::from_micros(100),
            (false, false) => Duration::from_millis(2),
        };
        let mut got = 0;
        match rx.recv_timeout(wait) {
            Ok(p) => {
                got += p.len();
                self.admit_all(p);
                while let Ok(p) = rx.try_recv() {
                    got += p.len();
                    self.admit_all(p);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => *scorers_gone = true,
        }
        got
    }

    /// Reads labels (unless event-time learning has enough ahead) and joins,
    /// queues or counts each.
    fn read_labels(&mut self, labels: &mut dyn RecordSource, r: &mut LabelReading) -> PollStatus {
        let read = self.label_clock_et.as_mut().is_none_or(|c| c.wants_more());
        let (id_field, label_field) = (&self.spec.labels.id, &self.spec.labels.field);
        let time_field = self.spec.labels.time.as_deref().filter(|_| self.gate_et.is_some());
        let LabelReading { health, batch, times } = r;
        let status = if !read {
            PollStatus::Idle
        } else {
            labels.poll(4096, &mut |rec| {
                let mut decoded = decode_label(rec.payload, id_field, label_field);
                let time = match (time_field, &decoded) {
                    (Some(f), Ok(_)) => label_time(rec.payload, f).map_err(|r| decoded = Err(r)).ok(),
                    _ => None,
                };
                health.note(rec.payload, &decoded);
                batch.push((rec.partition, rec.offset, decoded));
                times.push(time);
            })
        };
        self.summary.counts.labels_read += batch.len() as u64;
        let delay_ms = self.spec.labels.delay.as_millis() as i64;
        for ((partition, offset, decoded), time) in batch.drain(..).zip(times.drain(..)) {
            match decoded {
                Ok((id, label)) => match time {
                    Some(t) => self.queue_label(id, label, partition, t.saturating_add(delay_ms)),
                    None => self.on_label(id, label, partition),
                },
                Err(reason) => {
                    self.summary.counts.malformed += 1;
                    self.metrics.model.labels.with_label_values(&["malformed"]).inc();
                    tracing::debug!(partition, offset, reason, "malformed label");
                }
            }
        }
        if let Some(warning) = health.check(&self.summary.counts, Instant::now()) {
            tracing::warn!("{warning}");
        }
        status
    }

    /// Answers the checkpoint coordinator's requests with the learner's state.
    /// Returns how many predictions were drained first.
    fn answer_checkpoints(&mut self, requests: &Receiver<CheckpointRequest>, rx: &Receiver<Vec<Pending>>, labels: &dyn RecordSource) -> Result<usize> {
        let mut got = 0;
        while let Ok(req) = requests.try_recv() {
            // every prediction of the requested epochs was sent before the
            // workers reported passing them: drain the channel first
            while let Ok(p) = rx.try_recv() {
                got += p.len();
                self.admit_all(p);
            }
            let state = self.checkpoint(req.epoch, labels.positions()).map_err(|e| format!("{e:#}"));
            let failed = state.is_err();
            let _ = req.reply.send(state);
            if failed {
                bail!("the learner could not write its part of checkpoint {}", req.epoch);
            }
        }
        Ok(got)
    }
}

/// Labels read are committed: a restarted job does not read them again (the
/// predictions they would join did not survive the restart). Failures are logged;
/// the next commit retries.
fn commit_labels(labels: &mut dyn RecordSource) {
    if let Err(e) = labels.commit() {
        tracing::warn!(error = %e, "committing label positions");
    }
}
