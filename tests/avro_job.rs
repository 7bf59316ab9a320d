//! The fraud job reading Avro scores exactly what it scores reading JSON.
//!
//! The demo's transactions (with its malformed, late and out-of-range records)
//! are re-encoded as Avro datums of one writer schema, record for record at the
//! same offsets: each record the JSON decoder accepts becomes a datum (its time,
//! an integer, a float or an RFC 3339 string, in a union of the three), each it
//! rejects keeps its bytes. The job (`examples/fraud_job.toml`, pipeline and
//! graph) then runs once on each topic: the scores are equal byte for byte, the
//! dead letters sit at the same offsets with the same reasons where the record
//! was decodable, and the Avro job rejects every record the JSON job could not
//! decode.

use std::collections::BTreeMap;
use std::sync::Arc;

use apache_avro::types::Value;
use apache_avro::Schema;
use vigil::decode::Decoder;
use vigil::demo::generator::{GenConfig, Generator};
use vigil::graph::job::job_graph;
use vigil::graph::LocalRun;
use vigil::metrics::Metrics;
use vigil::output::{MemorySink, Topic};
use vigil::spec::{AvroSchemas, JobSpec, SourceFormat};
use vigil::types::key_hash;

const WRITER: &str = r#"{"type": "record", "name": "Transaction", "namespace": "demo", "fields": [
  {"name": "event_id", "type": ["null", "string"]},
  {"name": "card_id", "type": "string"},
  {"name": "ts", "type": ["long", "double", "string"]},
  {"name": "amount", "type": "double"},
  {"name": "merchant", "type": "string"},
  {"name": "country", "type": "string"},
  {"name": "device", "type": ["null", "string"], "default": null},
  {"name": "age_band", "type": ["null", "string"], "default": null}]}"#;

type Partitions = Vec<Vec<Option<Vec<u8>>>>;

fn json_input() -> Partitions {
    let mut generator = Generator::new(GenConfig { seed: 23, cards: 300, merchants: 30, bad_ratio: 0.03, ..GenConfig::default() });
    let mut parts: Partitions = vec![Vec::new(); 3];
    for i in 0..9_000 {
        let g = generator.next_transaction();
        let p = (key_hash(&g.key) % 3) as usize;
        if i % 997 == 0 {
            parts[p].push(None);
        }
        parts[p].push(Some(g.payload));
    }
    parts
}

/// A JSON payload the JSON decoder accepts, as an Avro datum of [`WRITER`].
fn to_avro(schema: &Schema, payload: &[u8]) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    let text = |name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_owned);
    let optional = |name: &str| match text(name) {
        Some(s) => Value::Union(1, Box::new(Value::String(s))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let ts = match &v["ts"] {
        serde_json::Value::String(s) => Value::Union(2, Box::new(Value::String(s.clone()))),
        n if n.is_i64() => Value::Union(0, Box::new(Value::Long(n.as_i64().unwrap()))),
        n => Value::Union(1, Box::new(Value::Double(n.as_f64().unwrap()))),
    };
    let record = Value::Record(vec![
        ("event_id".into(), optional("event_id")),
        ("card_id".into(), Value::String(text("card_id").unwrap())),
        ("ts".into(), ts),
        ("amount".into(), Value::Double(v["amount"].as_f64().unwrap())),
        ("merchant".into(), Value::String(text("merchant").unwrap())),
        ("country".into(), Value::String(text("country").unwrap())),
        ("device".into(), optional("device")),
        ("age_band".into(), optional("age_band")),
    ]);
    #[allow(deprecated)]
    apache_avro::to_avro_datum(schema, record).unwrap()
}

/// Scores per key in offset order, and dead letters by (partition, offset).
#[derive(Debug, PartialEq)]
struct Written {
    scores: BTreeMap<String, Vec<String>>,
    dead: BTreeMap<(u32, i64), String>,
}

fn pipeline(job: &JobSpec, input: &Partitions) -> Written {
    let sink = MemorySink::new();
    let topic = input.iter().map(|p| Arc::new(p.clone())).collect();
    vigil::local::run_local(job, &topic, 1, sink.clone(), Metrics::new()).unwrap();
    let mut w = Written { scores: BTreeMap::new(), dead: BTreeMap::new() };
    for (topic, key, payload) in sink.take() {
        let text = String::from_utf8(payload).unwrap();
        match topic {
            Topic::Scores => w.scores.entry(String::from_utf8(key).unwrap()).or_default().push(text),
            Topic::Dlq => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                w.dead.insert((v["source_partition"].as_u64().unwrap() as u32, v["source_offset"].as_i64().unwrap()), v["reason"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }
    w
}

fn graph(job: &JobSpec, input: &Partitions) -> Written {
    let job2 = job.clone();
    let out = LocalRun::new(2).epoch_records(500).topic_with_gaps(&job.source.topic, input.clone()).run(move |g| job_graph(g, &job2)).unwrap();
    let mut w = Written { scores: BTreeMap::new(), dead: BTreeMap::new() };
    for r in out.sink(&job.sinks.scores) {
        w.scores.entry(r.key.clone()).or_default().push(r.value.clone().unwrap());
    }
    for d in &out.dead {
        w.dead.insert((d.partition, d.offset), d.reason.to_owned());
    }
    w
}

#[test]
fn the_fraud_job_scores_avro_as_it_scores_json() {
    let json_job = JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_job.toml").unwrap()).unwrap();
    let mut avro_job = json_job.clone();
    avro_job.source.format = SourceFormat::Avro(AvroSchemas::Fixed { schema: WRITER.into() });
    vigil::decode::avro::check_fixed_schema(&avro_job.source).unwrap();

    let schema = Schema::parse_str(WRITER).unwrap();
    let json = json_input();
    let decoder = Decoder::new(&json_job);
    let mut undecodable = Vec::new();
    let avro: Partitions = json
        .iter()
        .enumerate()
        .map(|(p, part)| {
            part.iter()
                .enumerate()
                .map(|(offset, payload)| {
                    let bytes = payload.as_ref()?;
                    Some(match decoder.decode(Some(bytes), &mut |_| {}) {
                        Ok(_) => to_avro(&schema, bytes),
                        Err(_) => {
                            undecodable.push((p as u32, offset as i64));
                            bytes.clone()
                        }
                    })
                })
                .collect()
        })
        .collect();
    assert!(undecodable.len() > 50, "{} malformed records", undecodable.len());

    for run in [pipeline, graph] {
        let from_json = run(&json_job, &json);
        let from_avro = run(&avro_job, &avro);
        assert!(from_json.scores.values().map(Vec::len).sum::<usize>() > 8_000);
        assert_eq!(from_avro.scores, from_json.scores, "the scores");
        let mut expected = from_json.dead.clone();
        for at in &undecodable {
            let reason = from_avro.dead.get(at).unwrap_or_else(|| panic!("{at:?}: the Avro job accepted a record JSON could not decode"));
            expected.insert(*at, reason.clone());
        }
        assert_eq!(from_avro.dead, expected, "dead letters");
        let late = from_avro.dead.values().filter(|r| *r == "late").count();
        let time = from_avro.dead.values().filter(|r| *r == "bad_timestamp").count();
        assert!(late > 0 && time > 0, "late and bad timestamps reach the Avro job's clock: {late}, {time}");
    }
}
