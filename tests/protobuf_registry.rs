//! Confluent-framed Protobuf sources against a real Confluent-compatible Schema
//! Registry (Apicurio Registry, started by `scripts/registry.sh`, which checks
//! Protobuf compatibility itself): writer files that evolve while a job runs,
//! with the message named by its indexes (a second top-level message, a nested
//! one); an incompatible writer, an unknown id, a header that is not Confluent's,
//! indexes naming no message; the registry down at start. Nothing is lost: every
//! record read is an event or a dead letter with its reason. And the fraud job
//! scores framed messages exactly as it scores JSON.

#[path = "support/registry.rs"]
mod registry;

#[path = "support/format_jobs.rs"]
mod format_jobs;

use std::time::{Duration, Instant};

use prost_reflect::prost::Message;
use prost_reflect::{DynamicMessage, Value};
use registry::{Cut, RealRegistry};
use vigil::decode::protobuf::frame;
use vigil::decode::registry::{Registry, SchemaType};
use vigil::decode::Decoder;
use vigil::graph::{LocalRun, Source};
use vigil::spec::{FieldType, JobSpec, ProtoDefinition, ProtobufSchema, RegistrySettings, SourceFormat};
use vigil::types::Reason;

const T0: i64 = 1_700_000_000_000;

/// v1: what the job was written against.
const V1: &str = r#"syntax = "proto3";
package shop;
message Tx { string id = 1; string card = 2; int64 ts = 3; double amount = 4; string merchant = 5; }
"#;
/// v2 (backward compatible): a `Header` message first (records of `Tx` now name
/// index [1]), `Tx` adds a `channel` the job does not know and an optional `count`
/// (an `int32`, read into the job's `i64`).
const V2: &str = r#"syntax = "proto3";
package shop;
message Header { string origin = 1; }
message Tx {
  string id = 1; string card = 2; int64 ts = 3; double amount = 4; string merchant = 5;
  string channel = 6; optional int32 count = 7;
}
"#;
/// v3 (backward compatible): drops `count` again.
const V3: &str = r#"syntax = "proto3";
package shop;
message Header { string origin = 1; }
message Tx {
  string id = 1; string card = 2; int64 ts = 3; double amount = 4; string merchant = 5;
  string channel = 6; reserved 7;
}
"#;
/// Incompatible: v3 with `amount` a string. The registry refuses it under the
/// subject's BACKWARD rule; a producer writing to another subject gets it in.
const ROGUE: &str = r#"syntax = "proto3";
package shop;
message Header { string origin = 1; }
message Tx {
  string id = 1; string card = 2; int64 ts = 3; string amount = 4; string merchant = 5;
  string channel = 6; reserved 7;
}
"#;
/// The job's fields in a nested message (`shop.Batch.Tx`, indexes [0, 0], as
/// Confluent's Java serializer counts: the compiler's entry type for the map
/// declared before it is not a message of the text).
const NESTED: &str = r#"syntax = "proto3";
package shop;
message Batch {
  map<string, string> attrs = 2;
  message Tx { string id = 1; string card = 2; int64 ts = 3; double amount = 4; string merchant = 5; }
  repeated Tx items = 1;
}
"#;

fn source(url: &str, max_wait: Duration, message: Option<&str>) -> Source {
    Source::protobuf("tx", ProtobufSchema::from_registry(RegistrySettings::new(url).max_wait(max_wait), message))
        .key("card")
        .event_time("ts")
        .event_id("id")
        .lateness(Duration::from_secs(3600))
        .field("amount", FieldType::F64)
        .optional("count", FieldType::I64)
        .field("merchant", FieldType::Str)
}

/// Message `name` of `proto`, event `i`, framed with schema `id` and indexes `path`.
fn record(proto: &str, name: &str, id: u32, path: &[u32], i: i64) -> Vec<u8> {
    let desc = vigil::decode::protobuf::message(&ProtobufSchema::from_text(proto, Some(name))).unwrap();
    let mut m = DynamicMessage::new(desc.clone());
    for f in desc.fields() {
        let v = match f.name() {
            "id" => Value::String(format!("e{i}")),
            "card" => Value::String(format!("c{}", i % 5)),
            "ts" => Value::I64(T0 + i * 1000),
            "channel" => Value::String("app".into()),
            "amount" if proto == ROGUE => Value::String(format!("{i}.50")),
            "amount" => Value::F64(i as f64 + 0.5),
            "merchant" => Value::String(format!("m{}", i % 3)),
            "count" => Value::I32(i as i32),
            other => panic!("{other}"),
        };
        m.set_field(&f, v);
    }
    frame(id, path, &m.encode_to_vec())
}

/// What the job writes for event `i` of a writer that has `count` or not.
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
    nested: u32,
}

/// Registers the files as producers would: v1, v2, v3 under `tx-value` with
/// BACKWARD compatibility (the rogue file is refused there), the rogue and the
/// nested ones under other subjects.
fn register(reg: &RealRegistry) -> Ids {
    let client = Registry::new(&RegistrySettings::new(&reg.url));
    let put = |subject: &str, proto: &str| client.register_as(subject, proto, SchemaType::Protobuf);
    let v1 = put("tx-value", V1).unwrap();
    reg.compatibility("tx-value", "BACKWARD");
    let v2 = put("tx-value", V2).unwrap();
    // Apicurio 2.1.5's Protobuf checker fails with HTTP 500 (a null pointer in
    // its comparison) on a removed field, which Protobuf's rules allow: v3 is
    // registered with the check off
    reg.compatibility("tx-value", "NONE");
    let v3 = put("tx-value", V3).unwrap();
    reg.compatibility("tx-value", "BACKWARD");
    let refused = put("tx-value", ROGUE).unwrap_err();
    assert!(format!("{refused:#}").contains("HTTP 409"), "the registry enforces BACKWARD on Protobuf: {refused:#}");
    let ids = Ids { v1, v2, v3, rogue: put("tx-rogue-value", ROGUE).unwrap(), nested: put("batch-value", NESTED).unwrap() };
    assert_eq!([ids.v1, ids.v2, ids.v3, ids.rogue, ids.nested].iter().collect::<std::collections::BTreeSet<_>>().len(), 5);
    ids
}

/// 3 partitions: v1 events, then v2 (index [1]), then v3, and nested messages
/// ([0, 0]) among v3's; rogue records, an unknown id, JSON, and indexes naming
/// no message among them.
fn input(ids: &Ids) -> (Vec<Vec<Vec<u8>>>, Vec<String>) {
    let mut parts = vec![Vec::new(); 3];
    let mut want = Vec::new();
    for i in 0..300i64 {
        let p = (i % 3) as usize;
        let (proto, name, id, path, has_count) = match i {
            0..100 => (V1, "shop.Tx", ids.v1, &[0u32][..], false),
            100..200 => (V2, "shop.Tx", ids.v2, &[1][..], true),
            _ if i % 4 == 0 => (NESTED, "shop.Batch.Tx", ids.nested, &[0, 0][..], false),
            _ => (V3, "shop.Tx", ids.v3, &[1][..], false),
        };
        parts[p].push(record(proto, name, id, path, i));
        want.push(expected(i, has_count));
        if i % 50 == 7 {
            parts[p].push(record(ROGUE, "shop.Tx", ids.rogue, &[1], 1000 + i));
        }
    }
    parts[0].push(record(V1, "shop.Tx", 9999, &[0], 5000)); // an id no one registered
    parts[1].push(b"{\"card\": \"c1\"}".to_vec()); // JSON on a Protobuf topic
    parts[2].push(record(V1, "shop.Tx", ids.v1, &[1], 5001)); // v1 has one message
    want.sort();
    (parts, want)
}

#[test]
fn a_job_reads_evolving_writer_files_by_message_index_and_dead_letters_the_rest() {
    let reg = RealRegistry::start("protobuf-evolution");
    let ids = register(&reg);
    let (parts, want) = input(&ids);
    let url = reg.url.clone();
    let out = LocalRun::new(2)
        .topic("tx", parts)
        .run(move |g| {
            g.source(source(&url, Duration::from_secs(30), None)).map(|r| describe(&r)).sink("read");
            Ok(())
        })
        .unwrap();
    let mut got: Vec<String> = out.sink("read").iter().map(|r| serde_json::from_str::<String>(r.value.as_ref().unwrap()).unwrap()).collect();
    got.sort();
    assert_eq!(got, want, "every event of v1, v2, v3 and the nested message, with v2's count");
    let reasons: Vec<(&str, String)> = out.dead.iter().map(|d| (d.reason, d.detail.clone())).collect();
    let count = |reason: &str| reasons.iter().filter(|(r, _)| *r == reason).count();
    assert_eq!((count("schema_mismatch"), count("unknown_schema"), count("not_protobuf"), out.dead.len()), (6, 1, 2, 9), "{reasons:#?}");
    let mismatch = &reasons.iter().find(|(r, _)| *r == "schema_mismatch").unwrap().1;
    assert!(mismatch.contains(&format!("schema id {}", ids.rogue)) && mismatch.contains("`amount` is a string"), "{mismatch}");
    assert!(reasons.iter().any(|(r, d)| *r == "unknown_schema" && d.contains("no schema id 9999")), "{reasons:#?}");
    assert!(reasons.iter().any(|(r, d)| *r == "not_protobuf" && d.contains("no Confluent wire-format header")), "{reasons:#?}");
    assert!(reasons.iter().any(|(r, d)| *r == "not_protobuf" && d.contains(&format!("[1] name no message of schema id {}", ids.v1))), "{reasons:#?}");
    let counts = &out.sources["tx"];
    assert_eq!((counts.read, counts.accepted, counts.rejected_total()), (309, 300, 9), "nothing lost");
    assert!(out.dead.iter().all(|d| d.payload.as_ref().is_some_and(|p| !p.is_empty())), "dead letters keep their bytes");

    // a source that names its message refuses another one, and says which
    let named = Decoder::for_source(source(&reg.url, Duration::from_secs(30), Some("shop.Tx")).spec(), &[]);
    assert_eq!(named.decode(Some(&record(V2, "shop.Tx", ids.v2, &[1], 1)), &mut |_| {}).unwrap().event_id.as_deref(), Some("e1"));
    let other = named.decode(Some(&record(NESTED, "shop.Batch.Tx", ids.nested, &[0, 0], 2)), &mut |_| {}).unwrap_err();
    assert_eq!(other.reason, Reason::SchemaMismatch);
    assert!(other.detail.contains("the record is a `shop.Batch.Tx`, and this source reads `shop.Tx`"), "{other:?}");
    // an Avro schema's id on a Protobuf source
    let avro = Registry::new(&RegistrySettings::new(&reg.url)).register("avro-value", r#"{"type": "string"}"#).unwrap();
    let wrong = named.decode(Some(&frame(avro, &[0], &[])), &mut |_| {}).unwrap_err();
    assert_eq!(wrong.reason, Reason::UnknownSchema);
    assert!(wrong.detail.contains("is a schema of type AVRO, and this source reads PROTOBUF"), "{wrong:?}");
}

#[test]
fn a_registry_down_at_start_holds_a_protobuf_source_back_without_losing_a_record() {
    let reg = RealRegistry::start("protobuf-down");
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
                g.source(source(&url, Duration::from_secs(120), None)).map(|r| describe(&r)).sink("read");
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
    assert_eq!(out.dead.len(), 9, "the same dead letters as with the registry up");
}

/// The fraud job on Confluent-framed `demo.Transaction` messages (the demo's
/// transactions re-encoded record for record, the `.proto` in the registry)
/// scores exactly what it scores on JSON, on the pipeline and on the graph.
#[test]
fn the_fraud_job_scores_confluent_framed_protobuf_as_it_scores_json() {
    use format_jobs::{graph, json_input, pipeline, reencode};
    use vigil::demo::protobuf::{transaction_descriptor, transaction_message, TRANSACTION_PROTO};

    let reg = RealRegistry::start("protobuf-fraud");
    let id = Registry::new(&RegistrySettings::new(&reg.url)).register_as("transactions-value", TRANSACTION_PROTO, SchemaType::Protobuf).unwrap();
    let json_job = JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_job.toml").unwrap()).unwrap();
    let mut pb_job = json_job.clone();
    pb_job.source.format = SourceFormat::Protobuf(ProtobufSchema::from_registry(RegistrySettings::new(&reg.url), Some("demo.Transaction")));
    vigil::decode::protobuf::check_schema(&pb_job.source).unwrap();

    let desc = transaction_descriptor();
    let json = json_input(31);
    let (framed, undecodable) =
        reencode(&json_job, &json, |bytes| frame(id, &[0], &transaction_message(&desc, bytes).expect("a decodable transaction fits the message")));
    for run in [pipeline, graph] {
        let from_json = run(&json_job, &json);
        let from_pb = run(&pb_job, &framed);
        assert!(from_json.scores.values().map(Vec::len).sum::<usize>() > 8_000);
        assert_eq!(from_pb.scores, from_json.scores, "the scores");
        let mut expected = from_json.dead.clone();
        for at in &undecodable {
            let reason = from_pb.dead.get(at).unwrap_or_else(|| panic!("{at:?}: the Protobuf job accepted a record JSON could not decode"));
            // the size checks come before any format's
            let want = match from_json.dead[at].as_str() {
                size @ ("empty" | "oversize") => size,
                _ => "not_protobuf",
            };
            assert_eq!(reason, want, "{at:?}: bytes without the Confluent header");
            expected.insert(*at, reason.clone());
        }
        assert_eq!(from_pb.dead, expected, "dead letters");
    }
}

#[test]
fn toml_declares_a_registry_protobuf_source() {
    let toml = |format: &str| {
        std::fs::read_to_string("examples/fraud_job.toml").unwrap().replacen(
            "[source.schema]",
            &format!("format = \"protobuf\"\n{format}\n\n[source.schema]"),
            1,
        )
    };
    let job = JobSpec::from_toml(&toml(
        "protobuf = { registry = \"http://registry:8081/\", message = \"demo.Transaction\", registry_timeout = \"2s\", registry_max_wait = \"30s\" }",
    ))
    .unwrap();
    let SourceFormat::Protobuf(schema) = &job.source.format else { panic!("{:?}", job.source.format) };
    assert_eq!(schema.message.as_deref(), Some("demo.Transaction"));
    let ProtoDefinition::Registry(r) = &schema.definition else { panic!("{schema:?}") };
    assert_eq!((r.url.as_str(), r.timeout, r.max_wait, &r.user), ("http://registry:8081", Duration::from_secs(2), Duration::from_secs(30), &None));
    for (extra, says) in [
        ("protobuf = { schema_file = \"a.proto\", registry_timeout = \"1s\" }", "`registry_timeout` applies to a registry"),
        ("protobuf = { registry = \"http://r\", schema_file = \"a.proto\" }", "give one of `schema_file`"),
        ("protobuf = { registry = \"http://r\", registry_user = \"key\" }", "give `registry_user` and `registry_password_env` together"),
        ("protobuf = { registry = \"http://r\", registry_max_wait = \"soon\" }", "[source.protobuf] registry_max_wait"),
    ] {
        let e = JobSpec::from_toml(&toml(extra)).unwrap_err();
        assert!(format!("{e:#}").contains(says), "{extra}: {e:#}");
    }
}
