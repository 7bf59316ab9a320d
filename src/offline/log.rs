//! The offline log's writer: a thread that receives the workers' rows and writes
//! them as Parquet files partitioned by the hour of event time.
//!
//! Workers never touch the disk: each scoring activation sends its rows over a
//! bounded channel (a full channel blocks the worker: backpressure, not loss).
//! The writer buffers rows per hour and writes every buffered hour as one file at
//! least every `flush_interval`, when `flush_rows` are buffered, and at the end.
//! A file is written under a hidden temporary name, synced and renamed into place,
//! so a reader never sees half a file. Rows are tied into the job's checkpoints:
//! each batch counts as an in-flight output of its epoch until its file is on
//! disk, so input offsets are never committed ahead of their offline rows (a crash
//! loses nothing; the rows after the last commit are logged again on replay,
//! identical when the state was restored from a checkpoint: `export` keeps the
//! first row per event id).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::rows::{schema, OfflineRows};
use crate::delivery::InFlight;
use crate::metrics::Metrics;

const HOUR_MS: i64 = 3_600_000;
/// Batches in flight between the workers and the writer.
const CHANNEL_BATCHES: usize = 256;

/// Where and how often the log is written.
#[derive(Clone, Debug)]
pub struct OfflineConfig {
    /// The job's data directory; files go under `DIR/offline/`.
    pub data_dir: PathBuf,
    pub features: Vec<String>,
    pub flush_interval: Duration,
    pub flush_rows: usize,
}

impl OfflineConfig {
    pub fn new(data_dir: &Path, features: Vec<String>) -> Self {
        OfflineConfig { data_dir: data_dir.to_owned(), features, flush_interval: Duration::from_secs(2), flush_rows: 500_000 }
    }
}

/// The directory holding the log under a data directory.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("offline")
}

enum Message {
    Rows(OfflineRows),
    Finish,
}

/// A worker's end of the log.
#[derive(Clone)]
pub struct OfflineLink {
    tx: SyncSender<Message>,
    inflight: Option<Arc<InFlight>>,
    features: Arc<[String]>,
}

impl OfflineLink {
    /// An empty batch for this job's features.
    pub fn rows(&self) -> OfflineRows {
        OfflineRows::new(self.features.len())
    }

    /// The names of the logged features, in column order.
    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// Hands a batch to the writer; its epoch stays open until the batch is on disk.
    pub fn send(&self, rows: OfflineRows) {
        let epoch = rows.epoch;
        if let Some(f) = &self.inflight {
            f.sent(epoch);
        }
        if self.tx.send(Message::Rows(rows)).is_err() {
            // the writer is gone (it failed): the epoch must never commit
            if let Some(f) = &self.inflight {
                f.settled(epoch, false);
            }
        }
    }
}

/// What the writer did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OfflineSummary {
    pub rows: u64,
    pub files: u64,
}

/// The running writer.
pub struct OfflineLog {
    pub link: OfflineLink,
    thread: JoinHandle<Result<OfflineSummary>>,
}

impl OfflineLog {
    /// Starts the writer. `inflight` ties the rows to the job's checkpoints.
    pub fn start(cfg: OfflineConfig, inflight: Option<Arc<InFlight>>, metrics: Arc<Metrics>) -> Result<OfflineLog> {
        let dir = log_dir(&cfg.data_dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating the offline log directory {}", dir.display()))?;
        let (tx, rx) = sync_channel(CHANNEL_BATCHES);
        let link = OfflineLink { tx, inflight: inflight.clone(), features: cfg.features.clone().into() };
        // Names sort in writing order across runs: start time (ms, fixed width), pid.
        let tag = format!("{:012x}-{:x}", crate::types::now_us() / 1000, std::process::id());
        let writer = Writer { schema: schema(&cfg.features), dir, tag, seq: 0, inflight, metrics, summary: OfflineSummary::default() };
        let thread = std::thread::Builder::new().name("vigil-offline".into()).spawn(move || writer.run(rx, &cfg))?;
        Ok(OfflineLog { link, thread })
    }

    /// Writes what is buffered and stops the writer.
    pub fn finish(self) -> Result<OfflineSummary> {
        let _ = self.link.tx.send(Message::Finish);
        self.thread.join().map_err(|_| anyhow!("the offline log writer panicked"))?
    }
}

struct Writer {
    schema: SchemaRef,
    dir: PathBuf,
    tag: String,
    seq: u64,
    inflight: Option<Arc<InFlight>>,
    metrics: Arc<Metrics>,
    summary: OfflineSummary,
}

/// Rows waiting for the next flush: per hour, and the epochs of the batches they came in.
#[derive(Default)]
struct Buffer {
    hours: BTreeMap<i64, OfflineRows>,
    epochs: Vec<u64>,
    rows: usize,
    since: Option<Instant>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Message>, cfg: &OfflineConfig) -> Result<OfflineSummary> {
        let mut buffer = Buffer::default();
        loop {
            let wait = buffer.since.map_or(Duration::from_secs(3600), |s| cfg.flush_interval.saturating_sub(s.elapsed()));
            let message = rx.recv_timeout(wait);
            let finish = matches!(message, Ok(Message::Finish) | Err(RecvTimeoutError::Disconnected));
            if let Ok(Message::Rows(rows)) = message {
                buffer.add(rows, cfg.features.len());
            }
            let due = buffer.since.is_some_and(|s| s.elapsed() >= cfg.flush_interval) || buffer.rows >= cfg.flush_rows;
            if finish || due {
                if let Err(e) = self.flush(&mut buffer) {
                    self.metrics.offline_errors.inc();
                    tracing::error!(error = %e, "cannot write the offline log: offsets after the last commit will not be committed");
                    return Err(e);
                }
            }
            if finish {
                return Ok(self.summary);
            }
        }
    }

    /// Writes one file per buffered hour, then settles the batches' epochs.
    fn flush(&mut self, buffer: &mut Buffer) -> Result<()> {
        let hours = std::mem::take(&mut buffer.hours);
        let epochs = std::mem::take(&mut buffer.epochs);
        let outcome = hours.iter().try_for_each(|(hour, rows)| self.write_file(*hour, rows));
        for epoch in epochs {
            if let Some(f) = &self.inflight {
                f.settled(epoch, outcome.is_ok());
            }
        }
        *buffer = Buffer::default();
        outcome
    }

    fn write_file(&mut self, hour: i64, rows: &OfflineRows) -> Result<()> {
        let dir = self.dir.join(hour_partition(hour));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        self.seq += 1;
        let name = format!("part-{}-{:08}.parquet", self.tag, self.seq);
        let (tmp, path) = (dir.join(format!(".{name}.tmp")), dir.join(&name));
        let batch = rows.to_batch(&self.schema)?;
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let mut writer = ArrowWriter::try_new(file, self.schema.clone(), Some(props))?;
        writer.write(&batch)?;
        let file = writer.into_inner()?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("publishing {}", path.display()))?;
        self.summary.rows += rows.len() as u64;
        self.summary.files += 1;
        self.metrics.offline_rows.inc_by(rows.len() as u64);
        self.metrics.offline_files.inc();
        Ok(())
    }
}

impl Buffer {
    fn add(&mut self, rows: OfflineRows, features: usize) {
        self.since.get_or_insert_with(Instant::now);
        self.epochs.push(rows.epoch);
        self.rows += rows.len();
        let first_hour = rows.times_ms.first().map(|t| t.div_euclid(HOUR_MS));
        if rows.times_ms.iter().all(|t| Some(t.div_euclid(HOUR_MS)) == first_hour) {
            // the usual case: a whole batch in one hour
            if let Some(h) = first_hour {
                let slot = self.hours.entry(h).or_insert_with(|| OfflineRows::new(features));
                append(slot, rows);
            }
            return;
        }
        for i in 0..rows.len() {
            let h = rows.times_ms[i].div_euclid(HOUR_MS);
            self.hours.entry(h).or_insert_with(|| OfflineRows::new(features)).push_row_of(&rows, i);
        }
    }
}

fn append(into: &mut OfflineRows, mut rows: OfflineRows) {
    if into.is_empty() {
        rows.epoch = into.epoch;
        *into = rows;
        return;
    }
    into.keys.append(&mut rows.keys);
    into.event_ids.append(&mut rows.event_ids);
    into.times_ms.append(&mut rows.times_ms);
    into.partitions.append(&mut rows.partitions);
    into.offsets.append(&mut rows.offsets);
    for (c, mut from) in into.values.iter_mut().zip(rows.values) {
        c.append(&mut from);
    }
}

/// `date=YYYY-MM-DD/hour=HH` for an hour since the Unix epoch (Hive partitioning).
pub fn hour_partition(hour: i64) -> PathBuf {
    let start = chrono::DateTime::from_timestamp_millis(hour * HOUR_MS).unwrap_or_default();
    PathBuf::from(start.format("date=%Y-%m-%d").to_string()).join(start.format("hour=%H").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_partitions_are_hive_style_utc() {
        // 2026-11-27T10:59:59.999Z and the next millisecond
        let t = 1_795_777_199_999i64;
        assert_eq!(hour_partition(t.div_euclid(HOUR_MS)), PathBuf::from("date=2026-11-27/hour=10"));
        assert_eq!(hour_partition((t + 1).div_euclid(HOUR_MS)), PathBuf::from("date=2026-11-27/hour=11"));
    }

    #[test]
    fn batches_split_by_hour_and_epochs_settle_after_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let inflight = Arc::new(InFlight::default());
        let mut cfg = OfflineConfig::new(dir.path(), vec!["f".into()]);
        cfg.flush_interval = Duration::from_secs(3600);
        let log = OfflineLog::start(cfg, Some(inflight.clone()), Metrics::new()).unwrap();
        let mut rows = log.link.rows();
        rows.epoch = 3;
        let t = 1_795_777_199_999i64;
        rows.push("a", Some("e1"), t, 0, 10, &[Some(1.5)]);
        rows.push("b", None, t + 1, 1, 11, &[Some(f64::NAN)]);
        log.link.send(rows);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!inflight.delivered_through(3, 3), "buffered rows keep their epoch open");
        let summary = log.finish().unwrap();
        assert_eq!(summary, OfflineSummary { rows: 2, files: 2 });
        assert!(inflight.delivered_through(3, 3) && !inflight.failed());
        let files: Vec<_> = walk(&log_dir(dir.path()));
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files[0].to_string_lossy().contains("date=2026-11-27/hour=10/part-"));
        assert!(files[1].to_string_lossy().contains("date=2026-11-27/hour=11/part-"));
        let read = crate::offline::export::read_log_file(&files[1], &["f".to_string()]).unwrap();
        assert_eq!(read.keys, vec!["b".to_string()]);
        assert_eq!(read.values, vec![vec![None]], "non-finite values are null");
        assert_eq!(read.event_ids, vec![None]);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        crate::offline::export::log_files(dir).unwrap()
    }
}
