//! The offline log and point-in-time training data, end to end on the embedded
//! broker: the fraud job runs with a data directory, then `vigil features export`
//! (the binary) joins the labels topic to the log.
//! - identity: for every event id, the features in `scores`, the Parquet log row
//!   and the exported training row are the same values;
//! - oracle: DuckDB, over the raw input records (tests/oracle/pit_oracle.py, no
//!   vigil code), computes each labeled event's features as of that event and
//!   gives the same table, value for value, so no later event leaks in.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use base64::Engine;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::fraud_job;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::read::{read_topic, ReadRecord};
use vigil::metrics::Metrics;
use vigil::offline::export::{log_files, read_log_file};
use vigil::run::{run_job, RunOptions};
use vigil::types::Control;

const EVENTS: u64 = 30_000;

fn read_parquet(path: &Path) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// A feature value as `scores` writes it (null for none).
fn json_value(v: Option<f64>) -> serde_json::Value {
    v.map_or(serde_json::Value::Null, serde_json::Value::from)
}

fn f64_column(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let c = batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")).as_primitive::<Float64Type>();
    (0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i))).collect()
}

fn dump(path: &Path, records: &[ReadRecord], line: impl Fn(&ReadRecord) -> serde_json::Value) {
    let mut f = std::io::BufWriter::new(File::create(path).unwrap());
    for r in records {
        writeln!(f, "{}", line(r)).unwrap();
    }
}

#[test]
fn exported_training_rows_are_the_scored_features_and_match_an_independent_oracle() {
    let broker = EmbeddedBroker::start(1).unwrap();
    for (t, p) in [("transactions", 4), ("labels", 4), ("scores", 4), ("dlq", 2)] {
        broker.create_topic(t, p).unwrap();
    }
    let kafka = broker.kafka_options();
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: Some("labels".into()), logins_topic: None, events: EVENTS, rate: None };
    publish(&kafka, GenConfig { bad_ratio: 0.01, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never()).unwrap();

    let data = tempfile::tempdir().unwrap();
    let job = fraud_job();
    let names: Vec<String> = job.features.iter().map(|f| f.name().to_owned()).collect();
    let run = RunOptions { until_end: true, data_dir: Some(data.path().to_owned()), ..RunOptions::new(kafka.clone(), "offline", 2) };
    let summary = run_job(job, &run, Metrics::new(), Control::new(), Arc::new(Mutex::new(None))).unwrap();

    // scores: event id -> (key, event time, position, features)
    let scores = read_topic(&kafka, "scores", Duration::from_secs(60)).unwrap();
    let mut scored: HashMap<String, serde_json::Value> = HashMap::new();
    for r in &scores {
        let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        assert!(scored.insert(v["event_id"].as_str().unwrap().to_owned(), v).is_none(), "one score per event");
    }
    let offline = summary.offline.expect("the run logged features");
    assert_eq!(offline.rows, scored.len() as u64, "one offline row per scored event");

    // identity: every log row is its event's score record
    let files = log_files(&data.path().join("offline")).unwrap();
    assert_eq!(files.len() as u64, offline.files);
    let mut logged = 0;
    for file in &files {
        let rel = file.strip_prefix(data.path()).unwrap().to_string_lossy().into_owned();
        assert!(rel.starts_with("offline/date=") && rel.contains("/hour="), "hour partitions: {rel}");
        let rows = read_log_file(file, &names).unwrap();
        for i in 0..rows.len() {
            let id = rows.event_ids[i].as_deref().expect("the generator gives every event an id");
            let s = &scored[id];
            assert_eq!(s["key"], rows.keys[i].as_str());
            assert_eq!(s["event_time"], rows.times_ms[i]);
            assert_eq!((s["source_partition"].as_u64().unwrap() as u32, s["source_offset"].as_i64().unwrap()), (rows.partitions[i], rows.offsets[i]));
            for (name, column) in names.iter().zip(&rows.values) {
                assert_eq!(s["features"][name], json_value(column[i]), "{id} {name}");
            }
            logged += 1;
        }
    }
    assert_eq!(logged, scored.len());

    // the export, by the binary, from the labels topic
    let out = data.path().join("train.parquet");
    let export = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["features", "export", "--data-dir"])
        .arg(data.path())
        .args(["--labels", "labels", "--brokers", &broker.bootstrap_servers(), "--label-time", "label_ts", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&export.stdout).into_owned();
    assert!(export.status.success(), "export failed: {said} {}", String::from_utf8_lossy(&export.stderr));
    println!("{said}");

    let labels = read_topic(&kafka, "labels", Duration::from_secs(60)).unwrap();
    let mut label_of: HashMap<String, bool> = HashMap::new();
    for r in &labels {
        let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        label_of.insert(v["event_id"].as_str().unwrap().to_owned(), v["is_fraud"].as_bool().unwrap());
    }
    assert_eq!(labels.len() as u64, EVENTS, "one label per generated transaction");
    let train = read_parquet(&out);
    let expected_rows = label_of.keys().filter(|id| scored.contains_key(*id)).count();
    assert_eq!(train.num_rows(), expected_rows, "every labeled scored event, once");
    assert!(expected_rows < label_of.len(), "labels of dead-lettered events are not in the table");
    let ids = train.column_by_name("event_id").unwrap().as_string::<i32>();
    let train_labels = train.column_by_name("label").unwrap().as_boolean();
    let times = train.column_by_name("event_time").unwrap().as_primitive::<TimestampMillisecondType>();
    let columns: Vec<Vec<Option<f64>>> = names.iter().map(|n| f64_column(&train, n)).collect();
    for i in 0..train.num_rows() {
        let id = ids.value(i);
        let s = &scored[id];
        assert_eq!(train_labels.value(i), label_of[id]);
        assert_eq!(s["event_time"], times.value(i));
        for (name, column) in names.iter().zip(&columns) {
            assert_eq!(s["features"][name], json_value(column[i]), "training row of {id}: {name}");
        }
        if i > 0 {
            assert!((times.value(i - 1), ids.value(i - 1)) <= (times.value(i), id), "sorted by event time, then id");
        }
    }

    // the oracle, over the raw records
    let raw = read_topic(&kafka, "transactions", Duration::from_secs(60)).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    dump(
        &data.path().join("raw.jsonl"),
        &raw,
        |r| serde_json::json!({"partition": r.partition, "offset": r.offset, "payload_b64": b64.encode(r.payload.as_deref().unwrap_or_default())}),
    );
    let dlq: Vec<serde_json::Value> =
        read_topic(&kafka, "dlq", Duration::from_secs(60)).unwrap().iter().map(|r| serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap()).collect();
    assert_eq!(dlq.len() + scored.len(), raw.len(), "every input offset is scored or dead-lettered");
    let mut f = File::create(data.path().join("dlq.jsonl")).unwrap();
    for d in &dlq {
        writeln!(f, "{}", serde_json::json!({"partition": d["source_partition"], "offset": d["source_offset"]})).unwrap();
    }
    dump(&data.path().join("labels.jsonl"), &labels, |r| serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap());
    let oracle_out = data.path().join("oracle.parquet");
    let oracle = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/pit_oracle.py"))
        .args([data.path().join("raw.jsonl"), data.path().join("dlq.jsonl"), data.path().join("labels.jsonl"), oracle_out.clone()])
        .output()
        .expect("python3 runs (the test command installs duckdb)");
    assert!(oracle.status.success(), "the oracle failed: {}", String::from_utf8_lossy(&oracle.stderr));
    let expected = read_parquet(&oracle_out);
    assert_eq!(expected.num_rows(), train.num_rows());
    let oracle_ids = expected.column_by_name("event_id").unwrap().as_string::<i32>();
    let oracle_times = expected.column_by_name("event_time").unwrap().as_primitive::<Int64Type>();
    let oracle_labels = expected.column_by_name("label").unwrap().as_boolean();
    let oracle_label_times = expected.column_by_name("label_time").unwrap().as_primitive::<Int64Type>();
    let label_times = train.column_by_name("label_time").unwrap().as_primitive::<TimestampMillisecondType>();
    let mut compared = 0;
    for i in 0..train.num_rows() {
        assert_eq!(oracle_ids.value(i), ids.value(i), "row {i}");
        assert_eq!(oracle_times.value(i), times.value(i));
        assert_eq!(oracle_labels.value(i), train_labels.value(i));
        assert_eq!(oracle_label_times.value(i), label_times.value(i));
    }
    for (name, column) in names.iter().zip(&columns) {
        let want = f64_column(&expected, name);
        for i in 0..train.num_rows() {
            // bit for bit: sums are fixed point on both sides
            assert_eq!(want[i].map(f64::to_bits), column[i].map(f64::to_bits), "{name} of {}: oracle {:?}, export {:?}", ids.value(i), want[i], column[i]);
            compared += 1;
        }
    }
    assert_eq!(compared, names.len() * train.num_rows());
}
