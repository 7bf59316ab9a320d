//! `vigil replay`: a job driven deterministically from files. The events file and
//! the labels file (JSON lines, one record per line, in publishing order) are read
//! as in-memory topics and the job runs in event-time consistency
//! (`model::gate`): every event is scored by the model trained on exactly the
//! labels revealed before its step, so a replay serves what a live run over the
//! same records served, at any speed and with any number of workers.
//!
//! ```no_run
//! let job = vigil::spec::JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_online.toml")?)?;
//! let opts = vigil::replay_files::ReplayOptions { partitions: 4, ..vigil::replay_files::ReplayOptions::new("events.jsonl", "labels.jsonl") };
//! let report = vigil::replay_files::replay(job, &opts)?;
//! println!("{}", report.text);
//! # anyhow::Ok(())
//! ```

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::learner::Consistency;
use crate::local::{run_local_monitored, MemoryTopic};
use crate::metrics::Metrics;
use crate::output::{MemorySink, Topic};
use crate::spec::JobSpec;

#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub events: PathBuf,
    pub labels: PathBuf,
    /// Overrides the job's `labels.delay` (when a label counts as revealed, after its time).
    pub label_delay: Option<Duration>,
    /// Overrides the job's `labels.time` field.
    pub label_time: Option<String>,
    /// Events are split over this many partitions by key (as a keyed topic is).
    pub partitions: usize,
    pub workers: usize,
    /// Scores (JSON lines) go here; dead letters beside it (`.dlq.jsonl`).
    pub out: Option<PathBuf>,
}

impl ReplayOptions {
    pub fn new(events: impl Into<PathBuf>, labels: impl Into<PathBuf>) -> ReplayOptions {
        ReplayOptions { events: events.into(), labels: labels.into(), label_delay: None, label_time: None, partitions: 1, workers: 1, out: None }
    }
}

/// What a replay did.
pub struct ReplayReport {
    pub scored: u64,
    pub dead_letters: u64,
    /// The end-of-run summary, as `vigil run` prints it.
    pub text: String,
}

/// Reads a JSON-lines file into records (empty lines skipped).
fn read_lines(path: &Path) -> Result<Vec<Vec<u8>>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::with_capacity(1 << 20, file).split(b'\n') {
        let mut line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        // every line goes to the decoder as a record: it rejects what is not one
        if !line.is_empty() {
            out.push(line);
        }
    }
    Ok(out)
}

/// The partition of a record: a hash of its key field (records whose key cannot
/// be read go to partition 0, where the decoder dead-letters them).
fn partition_of(payload: &[u8], key_field: &str, partitions: usize) -> usize {
    let key = serde_json::from_slice::<serde_json::Value>(payload).ok().and_then(|v| match v.get(key_field) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    key.map_or(0, |k| (crate::types::key_hash(&k) % partitions.max(1) as u64) as usize)
}

/// Runs `job` over the files; see the module docs.
pub fn replay(mut job: JobSpec, opts: &ReplayOptions) -> Result<ReplayReport> {
    let Some(online) = job.model.online.as_mut() else {
        bail!("`vigil replay` replays online learning: the job has no [model.online]");
    };
    if let Some(t) = &opts.label_time {
        online.labels.time = Some(t.clone());
    }
    if let Some(d) = opts.label_delay {
        online.labels.delay = d;
    }
    online.consistency = Consistency::EventTime;
    online.runs_dir = None;
    online.check()?;
    let events = read_lines(&opts.events)?;
    let labels = read_lines(&opts.labels)?;
    let parts = opts.partitions.max(1);
    let mut topic: Vec<Vec<Option<Vec<u8>>>> = vec![Vec::new(); parts];
    for e in events {
        topic[partition_of(&e, &job.source.key_field, parts)].push(Some(e));
    }
    let topic: MemoryTopic = topic.into_iter().map(Arc::new).collect();
    let labels: MemoryTopic = vec![Arc::new(labels.into_iter().map(Some).collect())];
    let sink = MemorySink::new();
    let metrics = Metrics::new();
    let (learned, monitored) = run_local_monitored(&job, &topic, &labels, opts.workers.max(1), sink.clone(), metrics.clone(), None)?;
    let records = sink.take();
    let scored = records.iter().filter(|(t, _, _)| *t == Topic::Scores).count() as u64;
    let dead_letters = records.iter().filter(|(t, _, _)| *t == Topic::Dlq).count() as u64;
    if let Some(out) = &opts.out {
        write_topic(out, &records, Topic::Scores)?;
        write_topic(&out.with_extension("dlq.jsonl"), &records, Topic::Dlq)?;
    }
    let summary = crate::run::RunSummary { learner: learned, monitor: monitored, ..Default::default() };
    let text = crate::summary::run_summary(&summary, &metrics, &job).replacen("vigil run summary", "vigil replay summary", 1);
    Ok(ReplayReport { scored, dead_letters, text })
}

fn write_topic(path: &Path, records: &[(Topic, Vec<u8>, Vec<u8>)], topic: Topic) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::new(file);
    for (_, _, payload) in records.iter().filter(|(t, _, _)| *t == topic) {
        w.write_all(payload)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}
