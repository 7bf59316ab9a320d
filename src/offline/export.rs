//! `vigil features export`: a point-in-time-correct training table from the
//! offline log and a set of labels.
//!
//! Each label names an event by its id; its training row is the offline log's row
//! for that event: the features the event was scored with, as of the event itself
//! (its key's earlier events in offset order, and itself), so nothing that happened
//! after the event can leak in, however late the label arrived. When the log holds
//! an event twice (its epoch was replayed after a restart), the row written first
//! is used. A label seen twice is taken in its last version (a chargeback reversed).
//! Labels are untrusted input: malformed ones are counted by reason and skipped;
//! labels whose event is not in the log (rejected to the DLQ, or older than the
//! log) are counted as unmatched.
//!
//! Output columns: `event_id`, `key`, `event_time`, `label` (bool), `label_time`
//! (with `--label-time`), then the features in the log's order; rows sorted by
//! event time, then event id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema, TimeUnit, TimestampMillisecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::log::log_dir;
use super::rows::{OfflineRows, FIXED_COLUMNS};
use crate::learner::labels::parse_label;

/// Where labels come from.
#[derive(Clone, Debug)]
pub enum LabelInput {
    /// A file of JSON lines, one label record per line.
    File(PathBuf),
    /// Label records read elsewhere (`vigil features export --brokers` reads a
    /// topic from its beginning to its current end): `source` names them in
    /// errors, a `None` payload is a tombstone (skipped).
    Records { source: String, payloads: Vec<Option<Vec<u8>>> },
}

/// How label records are read.
#[derive(Clone, Debug)]
pub struct LabelFields {
    pub id: String,
    pub label: String,
    /// A time field copied to `label_time` (epoch ms or RFC 3339).
    pub time: Option<String>,
}

impl Default for LabelFields {
    fn default() -> Self {
        LabelFields { id: "event_id".into(), label: "is_fraud".into(), time: None }
    }
}

/// What an export read and wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportSummary {
    pub log_files: usize,
    pub log_rows: u64,
    /// Log rows of a labeled event already seen (replayed epochs).
    pub duplicate_rows: u64,
    pub labels: u64,
    /// Malformed label records, by reason.
    pub malformed: BTreeMap<String, u64>,
    /// Labels that replaced an earlier label of the same event.
    pub relabeled: u64,
    /// Rows written: labeled events found in the log.
    pub rows: u64,
    /// Labeled events not in the log.
    pub unmatched: u64,
    pub features: Vec<String>,
}

struct Label {
    value: bool,
    time_ms: Option<i64>,
}

/// Builds the training table at `out` from the log under `data_dir`.
pub fn export(data_dir: &Path, labels: &LabelInput, fields: &LabelFields, out: &Path) -> Result<ExportSummary> {
    let mut summary = ExportSummary::default();
    let wanted = read_labels(labels, fields, &mut summary)?;
    let files = log_files(&log_dir(data_dir))?;
    if files.is_empty() {
        bail!("no offline log under {} (run the job with --data-dir {})", log_dir(data_dir).display(), data_dir.display());
    }
    summary.log_files = files.len();
    let features = feature_names(&files[0])?;
    let mut found = OfflineRows::new(features.len());
    let mut seen: HashSet<String> = HashSet::with_capacity(wanted.len());
    for file in &files {
        let names = feature_names(file)?;
        if names != features {
            bail!("{} has features {names:?}, {} has {features:?}: the log mixes jobs; export one job's data directory", file.display(), files[0].display());
        }
        let rows = read_log_file(file, &features)?;
        summary.log_rows += rows.len() as u64;
        for (i, id) in rows.event_ids.iter().enumerate() {
            match id {
                Some(id) if wanted.contains_key(id) => {
                    if seen.insert(id.clone()) {
                        found.push_row_of(&rows, i);
                    } else {
                        summary.duplicate_rows += 1;
                    }
                }
                _ => {}
            }
        }
    }
    summary.rows = found.len() as u64;
    summary.unmatched = wanted.len() as u64 - summary.rows;
    summary.features = features.clone();
    write_table(&found, &wanted, fields.time.is_some(), &features, out)?;
    Ok(summary)
}

fn read_labels(input: &LabelInput, fields: &LabelFields, summary: &mut ExportSummary) -> Result<HashMap<String, Label>> {
    let mut labels = HashMap::new();
    let mut take = |payload: Option<&[u8]>| {
        summary.labels += 1;
        match parse_label(payload, &fields.id, &fields.label, fields.time.as_deref()) {
            Ok((id, value, time_ms)) => {
                if labels.insert(id, Label { value, time_ms }).is_some() {
                    summary.relabeled += 1;
                }
            }
            Err(reason) => *summary.malformed.entry(reason.to_owned()).or_default() += 1,
        }
    };
    match input {
        LabelInput::File(path) => {
            let text = std::fs::read(path).with_context(|| format!("reading labels from {}", path.display()))?;
            for line in text.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
                take(Some(line));
            }
        }
        LabelInput::Records { payloads, .. } => {
            for p in payloads {
                take(p.as_deref());
            }
        }
    }
    Ok(labels)
}

/// Every published log file under `dir`, in writing order (by file name: start
/// time of the writing run, then sequence number).
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                walk(&path, out)?;
            } else if name.starts_with("part-") && name.ends_with(".parquet") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    if dir.exists() {
        walk(dir, &mut files)?;
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// The feature columns of a log file (every column after the fixed ones).
fn feature_names(file: &Path) -> Result<Vec<String>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(file)?).with_context(|| format!("reading {}", file.display()))?;
    let schema = builder.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if names.len() < FIXED_COLUMNS.len() || names[..FIXED_COLUMNS.len()] != FIXED_COLUMNS {
        bail!("{} is not an offline log file (columns {names:?})", file.display());
    }
    Ok(names[FIXED_COLUMNS.len()..].to_vec())
}

/// Reads one log file back into rows (the features named, in that order).
pub fn read_log_file(file: &Path, features: &[String]) -> Result<OfflineRows> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(file)?).with_context(|| format!("reading {}", file.display()))?.build()?;
    let mut rows = OfflineRows::new(features.len());
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {}", file.display()))?;
        let column = |name: &str| batch.column_by_name(name).with_context(|| format!("{} has no column `{name}`", file.display()));
        let keys = column("key")?.as_string_opt::<i32>().context("`key` is not utf8")?;
        let ids = column("event_id")?.as_string_opt::<i32>().context("`event_id` is not utf8")?;
        let times = column("event_time")?.as_primitive_opt::<TimestampMillisecondType>().context("`event_time` is not a ms timestamp")?;
        let partitions = column("source_partition")?.as_primitive_opt::<Int32Type>().context("`source_partition` is not int32")?;
        let offsets = column("source_offset")?.as_primitive_opt::<Int64Type>().context("`source_offset` is not int64")?;
        let values: Vec<&Float64Array> =
            features.iter().map(|f| column(f)?.as_primitive_opt::<Float64Type>().with_context(|| format!("`{f}` is not float64"))).collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            rows.keys.push(keys.value(i).to_owned());
            rows.event_ids.push(ids.is_valid(i).then(|| ids.value(i).to_owned()));
            rows.times_ms.push(times.value(i));
            rows.partitions.push(partitions.value(i) as u32);
            rows.offsets.push(offsets.value(i));
            for (c, v) in rows.values.iter_mut().zip(&values) {
                c.push(v.is_valid(i).then(|| v.value(i)));
            }
        }
    }
    Ok(rows)
}

fn write_table(found: &OfflineRows, labels: &HashMap<String, Label>, with_time: bool, features: &[String], out: &Path) -> Result<()> {
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by(|a, b| (found.times_ms[*a], &found.event_ids[*a]).cmp(&(found.times_ms[*b], &found.event_ids[*b])));
    let label_of = |i: &usize| &labels[found.event_ids[*i].as_deref().expect("matched rows have an id")];
    let mut fields = vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("event_time", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("label", DataType::Boolean, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(order.iter().map(|i| found.event_ids[*i].as_deref().unwrap_or_default()))),
        Arc::new(StringArray::from_iter_values(order.iter().map(|i| &found.keys[*i]))),
        Arc::new(TimestampMillisecondArray::from_iter_values(order.iter().map(|i| found.times_ms[*i])).with_timezone("UTC")),
        Arc::new(BooleanArray::from_iter(order.iter().map(|i| Some(label_of(i).value)))),
    ];
    if with_time {
        fields.push(Field::new("label_time", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true));
        columns.push(Arc::new(TimestampMillisecondArray::from_iter(order.iter().map(|i| label_of(i).time_ms)).with_timezone("UTC")));
    }
    for (name, values) in features.iter().zip(&found.values) {
        fields.push(Field::new(name, DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from_iter(order.iter().map(|i| values[*i]))));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let tmp = out.with_extension("parquet.tmp");
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
    writer.write(&batch)?;
    writer.into_inner()?.sync_all()?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::offline::log::{OfflineConfig, OfflineLog};

    fn log(dir: &Path, batches: &[&[(&str, Option<&str>, i64, Option<f64>)]]) {
        for batch in batches {
            // one writer per batch: several runs, written in order
            let log = OfflineLog::start(OfflineConfig::new(dir, vec!["n".into()]), None, Metrics::new()).unwrap();
            let mut rows = log.link.rows();
            for (i, (key, id, t, v)) in batch.iter().enumerate() {
                rows.push(key, *id, *t, 0, i as i64, &[*v]);
            }
            log.link.send(rows);
            log.finish().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2)); // distinct run tags
        }
    }

    #[test]
    fn labels_join_their_events_first_logged_row_and_bad_labels_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        log(
            dir.path(),
            &[&[("a", Some("e1"), 5_000, Some(1.0)), ("b", Some("e2"), 4_000, None), ("c", None, 4_500, Some(3.0))], &[("a", Some("e1"), 5_000, Some(9.0))]],
        );
        let labels = dir.path().join("labels.jsonl");
        std::fs::write(
            &labels,
            concat!(
                "{\"event_id\":\"e1\",\"is_fraud\":false,\"t\":10}\n",
                "{\"event_id\":\"e2\",\"is_fraud\":1,\"t\":11}\n",
                "not json\n",
                "{\"event_id\":\"e9\",\"is_fraud\":true}\n",
                "\n",
                "{\"event_id\":\"e1\",\"is_fraud\":true,\"t\":12}\n",
                "{\"is_fraud\":true}\n"
            ),
        )
        .unwrap();
        let out = dir.path().join("train.parquet");
        let fields = LabelFields { time: Some("t".into()), ..LabelFields::default() };
        let s = export(dir.path(), &LabelInput::File(labels), &fields, &out).unwrap();
        assert_eq!((s.log_files, s.log_rows, s.duplicate_rows), (2, 4, 1));
        assert_eq!((s.labels, s.relabeled, s.rows, s.unmatched), (6, 1, 2, 1));
        assert_eq!(s.malformed, BTreeMap::from([("not_json".to_string(), 1), ("missing_id".to_string(), 1)]));
        let batch = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap()).unwrap().build().unwrap().next().unwrap().unwrap();
        let names: Vec<_> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["event_id", "key", "event_time", "label", "label_time", "n"]);
        // sorted by event time: e2 (4_000) then e1 (5_000)
        let ids = batch.column(0).as_string::<i32>();
        assert_eq!((ids.value(0), ids.value(1)), ("e2", "e1"));
        let labels = batch.column(3).as_boolean();
        assert_eq!((labels.value(0), labels.value(1)), (true, true), "the last label of e1 wins");
        let n = batch.column(5).as_primitive::<Float64Type>();
        assert!(n.is_null(0));
        assert_eq!(n.value(1), 1.0, "the first logged row of e1, not the replayed one");
        assert_eq!(batch.column(4).as_primitive::<TimestampMillisecondType>().value(1), 12);
    }

    #[test]
    fn an_empty_data_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("l.jsonl");
        std::fs::write(&labels, "").unwrap();
        let e = export(dir.path(), &LabelInput::File(labels), &LabelFields::default(), &dir.path().join("o.parquet")).unwrap_err();
        assert!(e.to_string().contains("no offline log"), "{e}");
    }
}
