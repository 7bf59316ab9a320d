//! Avro sources against a real Confluent-compatible Schema Registry (Apicurio
//! Registry, started by `scripts/registry.sh`): schema evolution while a job
//! runs, an incompatible writer, an unknown id, the registry down at start and
//! during a run. Nothing is lost: every record read is an event or a dead letter
//! with its reason.
#![allow(deprecated)] // apache-avro's one-call datum writer, plain enough for tests

#[path = "support/registry.rs"]
mod registry;

use std::time::{Duration, Instant};

use apache_avro::types::Value;
use apache_avro::{to_avro_datum, Schema};
use registry::{Cut, RealRegistry};
use vigil::decode::avro::{frame, Registry};
use vigil::decode::Decoder;
use vigil::graph::{LocalRun, Source};
use vigil::spec::{AvroSchemas, FieldType, RegistrySettings};

const T0: i64 = 1_700_000_000_000;

/// v1: what the job was written against.
const V1: &str = r#"{"type": "record", "name": "Tx", "namespace": "shop", "fields": [
  {"name": "id", "type": "string"}, {"name": "card", "type": "string"}, {"name": "ts", "type": "long"},
  {"name": "amount", "type": "double"}, {"name": "merchant", "type": "string"}]}"#;
/// v2 (backward compatible): adds an optional `count` (an `int`, read into the
/// job's `i64`) and a `channel` the job does not know.
const V2: &str = r#"{"type": "record", "name": "Tx", "namespace": "shop", "fields": [
  {"name": "id", "type": "string"}, {"name": "card", "type": "string"}, {"name": "ts", "type": "long"},
  {"name": "channel", "type": "string", "default": "web"},
  {"name": "amount", "type": "double"}, {"name": "merchant", "type": "string"},
  {"name": "count", "type": ["null", "int"], "default": null}]}"#;
/// v3 (backward compatible): drops `count` again.
const V3: &str = r#"{"type": "record", "name": "Tx", "namespace": "shop", "fields": [
  {"name": "id", "type": "string"}, {"name": "card", "type": "string"}, {"name": "ts", "type": "long"},
  {"name": "channel", "type": "string", "default": "web"},
  {"name": "amount", "type": "double"}, {"name": "merchant", "type": "string"}]}"#;
/// Incompatible: `amount` becomes a string. The registry refuses it under the
/// subject's BACKWARD rule; a producer writing to another subject gets it in.
const ROGUE: &str = r#"{"type": "record", "name": "Tx", "namespace": "shop", "fields": [
  {"name": "id", "type": "string"}, {"name": "card", "type": "string"}, {"name": "ts", "type": "long"},
  {"name": "amount", "type": "string"}, {"name": "merchant", "type": "string"}]}"#;

fn source(url: &str, max_wait: Duration) -> Source {
    Source::avro("tx", AvroSchemas::Registry(RegistrySettings::new(url).max_wait(max_wait)))
        .key("card")
        .event_time("ts")
        .event_id("id")
        .lateness(Duration::from_secs(3600))
        .field("amount", FieldType::F64)
        .optional("count", FieldType::I64)
        .field("merchant", FieldType::Str)
}

/// A record of `schema`: event `i` (count set where the schema has it).
fn record(schema: &str, id: u32, i: i64) -> Vec<u8> {
    let s = Schema::parse_str(schema).unwrap();
    let Schema::Record(r) = &s else { unreachable!() };
    let fields = r
        .fields
        .iter()
        .map(|f| {
            let v = match f.name.as_str() {
                "id" => Value::String(format!("e{i}")),
                "card" => Value::String(format!("c{}", i % 5)),
                "ts" => Value::Long(T0 + i * 1000),
                "channel" => Value::String("app".into()),
                "amount" if schema == ROGUE => Value::String(format!("{i}.50")),
                "amount" => Value::Double(i as f64 + 0.5),
                "merchant" => Value::String(format!("m{}", i % 3)),
                "count" => Value::Union(1, Box::new(Value::Int(i as i32))),
                other => panic!("{other}"),
            };
            (f.name.clone(), v)
        })
        .collect();
    frame(id, &to_avro_datum(&s, Value::Record(fields)).unwrap())
}

/// What the job writes for event `i` of a schema that has `count` or not.
fn expected(i: i64, has_count: bool) -> String {
    let count = if has_count { format!("{i}") } else { "-".into() };
    format!("e{i} {} {count} m{}", i as f64 + 0.5, i % 3)
}

fn describe(r: &vigil::graph::Record) -> String {
    let count = r.f64("count").map_or("-".into(), |c| format!("{c}"));
    format!("{} {} {count} {}", r.event_id().unwrap(), r.f64("amount").unwrap(), r.str("merchant").unwrap())
}

struct Ids {
    v1: u32,
    v2: u32,
    v3: u32,
    rogue: u32,
}

/// Registers the schemas as producers would: v1, v2, v3 under `tx-value` with
/// BACKWARD compatibility (the rogue schema is refused there), the rogue one
/// under another subject.
fn register(reg: &RealRegistry) -> Ids {
    let client = Registry::new(&RegistrySettings::new(&reg.url));
    let v1 = client.register("tx-value", V1).unwrap();
    reg.compatibility("tx-value", "BACKWARD");
    let v2 = client.register("tx-value", V2).unwrap();
    let v3 = client.register("tx-value", V3).unwrap();
    let refused = client.register("tx-value", ROGUE).unwrap_err();
    assert!(format!("{refused:#}").contains("HTTP 409"), "the registry enforces BACKWARD: {refused:#}");
    let rogue = client.register("tx-rogue-value", ROGUE).unwrap();
    let ids = Ids { v1, v2, v3, rogue };
    assert_eq!([ids.v1, ids.v2, ids.v3, ids.rogue].iter().collect::<std::collections::BTreeSet<_>>().len(), 4);
    ids
}

/// 3 partitions: v1 events, then v2, then v3 on each, rogue records and an
/// unknown id among them, and a record without the wire format's header.
fn input(ids: &Ids) -> (Vec<Vec<Vec<u8>>>, Vec<String>) {
    let mut parts = vec![Vec::new(); 3];
    let mut want = Vec::new();
    for i in 0..300i64 {
        let p = (i % 3) as usize;
        let (schema, id, has_count) = match i {
            0..100 => (V1, ids.v1, false),
            100..200 => (V2, ids.v2, true),
            _ => (V3, ids.v3, false),
        };
        parts[p].push(record(schema, id, i));
        want.push(expected(i, has_count));
        if i % 50 == 7 {
            parts[p].push(record(ROGUE, ids.rogue, 1000 + i));
        }
    }
    parts[0].push(record(V1, 9999, 5000)); // an id no one registered
    parts[1].push(b"{\"card\": \"c1\"}".to_vec()); // JSON on an Avro topic
    want.sort();
    (parts, want)
}

#[test]
fn a_job_reads_evolving_writer_schemas_and_dead_letters_incompatible_ones() {
    let reg = RealRegistry::start("evolution");
    let ids = register(&reg);
    let (parts, want) = input(&ids);
    let url = reg.url.clone();
    let out = LocalRun::new(2)
        .topic("tx", parts)
        .run(move |g| {
            g.source(source(&url, Duration::from_secs(30))).map(|r| describe(&r)).sink("read");
            Ok(())
        })
        .unwrap();
    let mut got: Vec<String> = out.sink("read").iter().map(|r| serde_json::from_str::<String>(r.value.as_ref().unwrap()).unwrap()).collect();
    got.sort();
    assert_eq!(got, want, "every event of v1, v2 and v3, with v2's count");
    let reasons: Vec<(&str, String)> = out.dead.iter().map(|d| (d.reason, d.detail.clone())).collect();
    let count = |reason: &str| reasons.iter().filter(|(r, _)| *r == reason).count();
    assert_eq!((count("schema_mismatch"), count("unknown_schema"), count("not_avro"), out.dead.len()), (6, 1, 1, 8), "{reasons:#?}");
    let mismatch = &reasons.iter().find(|(r, _)| *r == "schema_mismatch").unwrap().1;
    assert!(mismatch.contains(&format!("schema id {}", ids.rogue)) && mismatch.contains("`amount` is a string"), "{mismatch}");
    assert!(reasons.iter().any(|(r, d)| *r == "unknown_schema" && d.contains("no schema id 9999")), "{reasons:#?}");
    // nothing lost
    let counts = &out.sources["tx"];
    assert_eq!((counts.read, counts.accepted, counts.rejected_total()), (308, 300, 8));
    // the dead letters keep their bytes for a replay
    assert!(out.dead.iter().all(|d| d.payload.as_ref().is_some_and(|p| !p.is_empty())));
}

#[test]
fn a_registry_down_at_start_holds_the_job_back_without_losing_a_record() {
    let reg = RealRegistry::start("down-at-start");
    let ids = register(&reg);
    let (parts, want) = input(&ids);
    let cut = Cut::new(&reg);
    cut.set_down(true);
    let url = cut.url.clone();
    let job = std::thread::spawn(move || {
        let started = Instant::now();
        let out = LocalRun::new(1)
            .topic("tx", parts)
            .run(move |g| {
                g.source(source(&url, Duration::from_secs(120))).map(|r| describe(&r)).sink("read");
                Ok(())
            })
            .unwrap();
        (out, started.elapsed())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(!job.is_finished(), "the job waits for the registry");
    cut.set_down(false);
    let (out, took) = job.join().unwrap();
    let mut got: Vec<String> = out.sink("read").iter().map(|r| serde_json::from_str::<String>(r.value.as_ref().unwrap()).unwrap()).collect();
    got.sort();
    assert_eq!(got, want, "after waiting {took:?}");
    assert_eq!(out.dead.len(), 8, "the same dead letters as with the registry up");
}

#[test]
fn a_registry_down_during_a_run_delays_only_new_schemas_and_its_wait_is_bounded() {
    let reg = RealRegistry::start("down-during");
    let ids = register(&reg);
    let cut = Cut::new(&reg);
    let decoder = Decoder::for_source(source(&cut.url, Duration::from_secs(120)).spec(), &["merchant".to_owned()]);
    let decode = |d: &Decoder, bytes: &[u8]| d.decode(Some(bytes), &mut |_| {});
    assert_eq!(decode(&decoder, &record(V1, ids.v1, 1)).unwrap().event_id.as_deref(), Some("e1"));
    cut.set_down(true);
    // known schemas go on from memory, without asking the registry
    let asked = cut.attempts();
    assert_eq!(decode(&decoder, &record(V1, ids.v1, 2)).unwrap().event_id.as_deref(), Some("e2"));
    assert_eq!(cut.attempts(), asked, "a known schema id was fetched again");
    // a new schema waits for the registry and is then read
    let v2 = record(V2, ids.v2, 3);
    let waiting = std::thread::spawn(move || decoder.decode(Some(&v2), &mut |_| {}).map(|d| d.numeric));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!waiting.is_finished());
    cut.set_down(false);
    assert_eq!(waiting.join().unwrap().unwrap(), vec![3.5, 3.0]);
    // with the registry gone for longer than the source's wait: `unknown_schema`
    cut.set_down(true);
    let short = Decoder::for_source(source(&cut.url, Duration::from_secs(2)).spec(), &[]);
    let t = Instant::now();
    let r = decode(&short, &record(V1, ids.v1, 4)).unwrap_err();
    assert_eq!(r.reason, vigil::types::Reason::UnknownSchema);
    assert!(r.detail.contains("failed for") && t.elapsed() >= Duration::from_secs(2) && t.elapsed() < Duration::from_secs(20), "{r:?} after {:?}", t.elapsed());
}

/// The fraud job on a Kafka topic of Confluent-framed Avro (the demo's
/// transactions re-encoded at the same partitions and offsets, their schema in the
/// real registry): the same scores as the JSON job on the JSON topic, every offset
/// accounted for from the topics.
#[test]
fn the_fraud_job_on_kafka_reads_confluent_avro_as_it_reads_json() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::sync::{Arc, Mutex};
    use vigil::demo::avro::{transaction_datum, transaction_schema, TRANSACTION_SCHEMA};
    use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
    use vigil::kafka::read::read_topic;
    use vigil::run::{run_job, RunOptions};

    let reg = RealRegistry::start("kafka-job");
    let id = Registry::new(&RegistrySettings::new(&reg.url)).register("transactions_avro-value", TRANSACTION_SCHEMA).unwrap();
    let broker = vigil::demo::broker::EmbeddedBroker::start(1).unwrap();
    for (t, p) in [("transactions", 4), ("scores", 4), ("dlq", 1), ("transactions_avro", 4), ("scores_avro", 4), ("dlq_avro", 1)] {
        broker.create_topic(t, p).unwrap();
    }
    let kafka = broker.kafka_options();
    let gen = vigil::demo::generator::GenConfig { bad_ratio: 0.03, seed: 5, ..Default::default() };
    let events = 20_000u64;
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events, rate: None };
    publish(&kafka, gen, &opts, &PublishProgress::default(), &never()).unwrap();

    // the same records as Avro, partition for partition, offset for offset
    let json_job = vigil::demo::fraud_job();
    let decoder = Decoder::new(&json_job);
    let schema = transaction_schema();
    let producer: BaseProducer = kafka.client_config().set("queue.buffering.max.messages", "1000000").create().unwrap();
    let mut input = read_topic(&kafka, "transactions", Duration::from_secs(60)).unwrap();
    input.sort_by_key(|r| (r.partition, r.offset));
    for r in &input {
        let payload = r.payload.as_deref().unwrap_or_default();
        let avro = match decoder.decode(Some(payload), &mut |_| {}) {
            Ok(_) => frame(id, &transaction_datum(&schema, payload).unwrap()),
            Err(_) => payload.to_vec(),
        };
        let key = r.key.clone().unwrap_or_default();
        producer.send(BaseRecord::to("transactions_avro").partition(r.partition as i32).key(&key).payload(&avro)).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let mut avro_job = json_job.clone();
    avro_job.source.topic = "transactions_avro".into();
    avro_job.source.format = vigil::spec::SourceFormat::Avro(AvroSchemas::Registry(RegistrySettings::new(&reg.url)));
    avro_job.sinks.scores = "scores_avro".into();
    avro_job.sinks.dlq = "dlq_avro".into();
    for (job, group) in [(&json_job, "json"), (&avro_job, "avro")] {
        let run = RunOptions { until_end: true, ..RunOptions::new(kafka.clone(), group, 2) };
        run_job(job.clone(), &run, vigil::metrics::Metrics::new(), vigil::types::Control::new(), Arc::new(Mutex::new(None))).unwrap();
    }
    let report = vigil::accounting::check(&kafka, "transactions_avro", "scores_avro", "dlq_avro", None).unwrap();
    assert!(report.holds() && report.inputs == events && report.scored > 18_000, "{report:?}");
    let scores = |topic: &str| {
        let mut v: Vec<String> =
            read_topic(&kafka, topic, Duration::from_secs(60)).unwrap().into_iter().map(|r| String::from_utf8(r.payload.unwrap()).unwrap()).collect();
        v.sort();
        v
    };
    let (json_scores, avro_scores) = (scores("scores"), scores("scores_avro"));
    assert_eq!(avro_scores.len(), json_scores.len());
    assert!(avro_scores == json_scores, "the same score records");
}

#[test]
fn credentials_in_the_registry_url_never_reach_a_message() {
    let r = Registry::new(&RegistrySettings::new("http://key:s3cret@127.0.0.1:1/api").timeout(Duration::from_millis(200)).max_wait(Duration::from_millis(300)));
    assert_eq!(r.url(), "http://***@127.0.0.1:1/api");
    let e = r.schema(1).unwrap_err();
    assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
}

/// The demo's job writing `scores`, `features` and `drift` (a monitor on
/// amounts, counts and countries, its reference taken after the 1-minute
/// features warm up, as in tests/graph_monitor.rs), its outputs on topics prefixed `prefix`; Avro
/// outputs registered in `registry` when given.
fn job_with_outputs(prefix: &str, registry: Option<&str>) -> vigil::spec::JobSpec {
    let mut text = include_str!("../examples/fraud_job.toml").replace("scores = \"scores\"\ndlq = \"dlq\"", "");
    text.push_str(&format!("scores = \"{prefix}scores\"\ndlq = \"{prefix}dlq\"\nfeatures = \"{prefix}features\"\ndrift = \"{prefix}drift\"\n"));
    if let Some(url) = registry {
        text.push_str(&format!("format = \"avro\"\n[sinks.avro]\nregistry = \"{url}\"\n"));
    }
    text.push_str(
        "[monitor]\ninterval = \"10s\"\nwindow = 2000\nreference = { kind = \"first\", skip = 12000, events = 2000 }\n\
         numeric = [\"amount\", \"tx_count_1m\", \"amount_sum_1m\"]\ncategorical = [\"country\"]\n",
    );
    vigil::spec::JobSpec::from_toml(&text).unwrap()
}

/// An Avro value as the JSON contract writes it (records as objects, unions as
/// their branch, a non-finite double as `null`).
fn as_json(v: apache_avro::types::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(b),
        Value::Int(i) => J::from(i),
        Value::Long(i) | Value::TimestampMillis(i) => J::from(i),
        Value::Double(d) => serde_json::Number::from_f64(d).map_or(J::Null, J::Number),
        Value::String(s) => J::String(s),
        Value::Union(_, v) => as_json(*v),
        Value::Record(fields) => J::Object(fields.into_iter().map(|(k, v)| (k, as_json(v))).collect()),
        other => panic!("not in vigil's output schemas: {other:?}"),
    }
}

/// Every record of `topic`, keyed, as sorted `key value` lines: JSON values as
/// they are; Confluent-framed Avro values decoded with the schema their id names
/// in `registry` (fetched from it: what a consumer does), checked to be the
/// subject `<topic>-value`'s latest.
fn topic_lines(kafka: &vigil::kafka::KafkaOptions, topic: &str, registry: Option<&RealRegistry>) -> Vec<String> {
    let records = vigil::kafka::read::read_topic(kafka, topic, Duration::from_secs(60)).unwrap();
    let mut schemas = std::collections::HashMap::new();
    let mut lines: Vec<String> = records
        .into_iter()
        .map(|r| {
            let key = String::from_utf8(r.key.unwrap_or_default()).unwrap();
            let payload = r.payload.unwrap_or_default();
            if payload.is_empty() {
                return format!("{key} tombstone"); // a key's deletion stays one
            }
            let value: serde_json::Value = match registry {
                None => serde_json::from_slice(&payload).unwrap(),
                Some(reg) => {
                    assert_eq!(payload[0], 0, "the magic byte");
                    let id = u32::from_be_bytes(payload[1..5].try_into().unwrap());
                    let schema = schemas.entry(id).or_insert_with(|| {
                        let text = Registry::new(&RegistrySettings::new(&reg.url)).schema(id).unwrap();
                        Schema::parse_str(&text).unwrap()
                    });
                    let mut rest = &payload[5..];
                    let v = apache_avro::from_avro_datum(schema, &mut rest, None).unwrap();
                    assert!(rest.is_empty(), "one datum per record");
                    as_json(v)
                }
            };
            format!("{key} {value}")
        })
        .collect();
    if let Some(reg) = registry {
        let text = ureq::get(&format!("{}/subjects/{topic}-value/versions/latest", reg.url)).call().unwrap().body_mut().read_to_string().unwrap();
        let latest: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(schemas.keys().copied().collect::<Vec<u32>>(), vec![latest["id"].as_u64().unwrap() as u32], "{topic}: one schema, the subject's");
    }
    lines.sort();
    lines
}

/// `scores`, `features` and `drift` written as Confluent-framed Avro with the
/// schemas vigil registers (`[sinks] format = "avro"`), read back as a consumer
/// would (the schema fetched by the id in each record, decoded by apache-avro):
/// the same records as the JSON job's, on the pipeline and on the graph.
#[test]
fn the_fraud_job_writes_scores_features_and_drift_as_registered_avro() {
    use std::sync::{Arc, Mutex};
    use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
    use vigil::run::{run_job, RunOptions};

    let reg = RealRegistry::start("outputs");
    let broker = vigil::demo::broker::EmbeddedBroker::start(1).unwrap();
    broker.create_topic("transactions", 4).unwrap();
    for prefix in ["", "avro_", "g_", "g_avro_"] {
        for (t, p) in [("scores", 4), ("dlq", 1), ("features", 4), ("drift", 1)] {
            broker.create_topic(&format!("{prefix}{t}"), p).unwrap();
        }
    }
    let kafka = broker.kafka_options();
    let gen = vigil::demo::generator::GenConfig { bad_ratio: 0.02, seed: 11, drift_at: Some(25_000), ..Default::default() };
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events: 40_000, rate: None };
    publish(&kafka, gen, &opts, &PublishProgress::default(), &never()).unwrap();

    // the pipeline
    for (prefix, registry) in [("", None), ("avro_", Some(reg.url.as_str()))] {
        let run = RunOptions { until_end: true, ..RunOptions::new(kafka.clone(), &format!("p{prefix}"), 2) };
        run_job(job_with_outputs(prefix, registry), &run, vigil::metrics::Metrics::new(), vigil::types::Control::new(), Arc::new(Mutex::new(None))).unwrap();
    }
    for t in ["scores", "features"] {
        let (json, avro) = (topic_lines(&kafka, t, None), topic_lines(&kafka, &format!("avro_{t}"), Some(&reg)));
        assert!(json.len() > 39_000, "{t}: {}", json.len());
        assert!(avro == json, "{t}: the same records");
    }
    // the pipeline's monitor takes events as two workers score them, so when it
    // evaluates depends on their interleaving: its findings are checked to be the
    // drift contract's records, their values on the graph (below)
    let fields = ["drift", "kind", "method", "name", "threshold", "ts", "value"];
    for topic in ["drift", "avro_drift"] {
        let lines = topic_lines(&kafka, topic, (topic == "avro_drift").then_some(&reg));
        assert!(!lines.is_empty(), "{topic}");
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap();
            let record: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value).unwrap();
            assert_eq!(record.keys().map(String::as_str).collect::<Vec<_>>(), fields, "{topic}: {line}");
            assert_eq!(key, format!("{}/{}", record["kind"].as_str().unwrap(), record["name"].as_str().unwrap()));
        }
    }

    // the graph: its monitor takes events in event-time order, so drift too is equal
    for (prefix, registry) in [("g_", None), ("g_avro_", Some(reg.url.as_str()))] {
        let job = job_with_outputs(prefix, registry);
        let names: Vec<String> = job.features.iter().map(|f| f.name().to_owned()).collect();
        let mut run = vigil::kafka::KafkaRun::new(kafka.clone()).workers(2).group(&format!("g{prefix}")).dlq_topic(&job.sinks.dlq).until_end();
        if let Some(avro) = vigil::output::avro::AvroOutputs::register(&job.sinks, &names).unwrap() {
            run = run.avro_outputs(Arc::new(avro));
        }
        run.run(move |g| vigil::graph::job::job_graph(g, &job)).unwrap();
    }
    for t in ["scores", "features", "drift"] {
        let (json, avro) = (topic_lines(&kafka, &format!("g_{t}"), None), topic_lines(&kafka, &format!("g_avro_{t}"), Some(&reg)));
        assert!(!json.is_empty());
        assert!(avro == json, "{t} (graph): the same records");
        if t == "drift" {
            assert!(avro.len() >= 20 && avro.iter().any(|l| l.starts_with("feature/amount ") && l.contains("\"drift\":true")), "{avro:?}");
        }
    }
    assert_eq!(topic_lines(&kafka, "g_scores", None), topic_lines(&kafka, "scores", None), "the graph's scores are the pipeline's");
}
