//! Protobuf sources.
//!
//! - The fraud job reading Protobuf scores exactly what it scores reading JSON:
//!   the demo's transactions (malformed, late and out-of-range ones included) are
//!   re-encoded as `demo.Transaction` messages by prost-reflect, record for record
//!   at the same offsets (each record the JSON decoder rejects keeps its bytes);
//!   the job runs on the pipeline and on the graph.
//! - The decoder against prost-reflect's own decoding of random messages (every
//!   scalar type, fields in any order, repeated and unknown fields).
//! - Evolution: a field the writer added is skipped and counted, one it dropped
//!   takes its default or is absent; malformed bytes are `not_protobuf`, never a
//!   panic; a declared field of another type is refused when the job loads.

use proptest::prelude::*;
use prost_reflect::prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, Value};
use vigil::decode::Decoder;
use vigil::demo::protobuf::{transaction_descriptor, transaction_message, transaction_schema};
use vigil::graph::Source;
use vigil::spec::{FieldType, JobSpec, ProtobufSchema, SourceFormat};
use vigil::types::Reason;

#[path = "support/format_jobs.rs"]
mod format_jobs;
use format_jobs::{graph, json_input, pipeline, reencode};

#[test]
fn the_fraud_job_scores_protobuf_as_it_scores_json() {
    let json_job = JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_job.toml").unwrap()).unwrap();
    let mut pb_job = json_job.clone();
    pb_job.source.format = SourceFormat::Protobuf(transaction_schema());
    vigil::decode::protobuf::check_schema(&pb_job.source).unwrap();

    let desc = transaction_descriptor();
    let json = json_input(29);
    let (messages, undecodable) = reencode(&json_job, &json, |bytes| transaction_message(&desc, bytes).expect("a decodable transaction fits the message"));

    for run in [pipeline, graph] {
        let from_json = run(&json_job, &json);
        let from_pb = run(&pb_job, &messages);
        assert!(from_json.scores.values().map(Vec::len).sum::<usize>() > 8_000);
        assert_eq!(from_pb.scores, from_json.scores, "the scores");
        let mut expected = from_json.dead.clone();
        for at in &undecodable {
            let reason = from_pb.dead.get(at).unwrap_or_else(|| panic!("{at:?}: the Protobuf job accepted a record JSON could not decode"));
            expected.insert(*at, reason.clone());
        }
        assert_eq!(from_pb.dead, expected, "dead letters");
        let late = from_pb.dead.values().filter(|r| *r == "late").count();
        let time = from_pb.dead.values().filter(|r| *r == "bad_timestamp").count();
        assert!(late > 0 && time > 0, "late and bad timestamps reach the Protobuf job's clock: {late}, {time}");
    }
}

/// Every scalar type once, a repeated field, a nested message, an enum.
const ALL_TYPES: &str = r#"syntax = "proto3";
package t;
enum Color { RED = 0; GREEN = 1; BLUE = 2; }
message Inner { string s = 1; }
message All {
  string key = 1;
  int64 ts = 2;
  int32 i32 = 3;
  int64 i64 = 4;
  uint32 u32 = 5;
  uint64 u64 = 6;
  sint32 s32 = 7;
  sint64 s64 = 8;
  fixed32 f32 = 9;
  fixed64 f64 = 10;
  sfixed32 sf32 = 11;
  sfixed64 sf64 = 12;
  float fl = 13;
  double db = 14;
  bool flag = 15;
  string text = 16;
  Color color = 17;
  optional double maybe = 18;
  repeated int64 many = 19;
  Inner inner = 20;
  bytes raw = 21;
}
"#;

const NUMERIC: [&str; 12] = ["i32", "i64", "u32", "u64", "s32", "s64", "f32", "f64", "sf32", "sf64", "fl", "db"];

fn all_source() -> Source {
    let mut s = Source::protobuf("t", ProtobufSchema::from_text(ALL_TYPES, Some("t.All"))).key("key").event_time("ts");
    for n in NUMERIC {
        s = s.field(n, FieldType::F64);
    }
    s.field("flag", FieldType::Bool).field("text", FieldType::Str).field("color", FieldType::Str).optional("maybe", FieldType::F64)
}

fn all_descriptor() -> MessageDescriptor {
    vigil::decode::protobuf::message(&ProtobufSchema::from_text(ALL_TYPES, Some("t.All"))).unwrap()
}

/// What prost-reflect decodes field `name` of `m` to, as the f64 the engine keeps.
fn number(m: &DynamicMessage, name: &str) -> f64 {
    match &*m.get_field_by_name(name).unwrap() {
        Value::I32(v) => *v as f64,
        Value::I64(v) => *v as f64,
        Value::U32(v) => *v as f64,
        Value::U64(v) => *v as f64,
        Value::F32(v) => *v as f64,
        Value::F64(v) => *v,
        other => panic!("{name}: {other:?}"),
    }
}

fn scalar(name: &str, r: i64) -> Value {
    match name {
        "i32" | "s32" | "sf32" => Value::I32(r as i32),
        "i64" | "s64" | "sf64" => Value::I64(r),
        "u32" | "f32" => Value::U32(r as u32),
        "u64" | "f64" => Value::U64(r.unsigned_abs()),
        "fl" => Value::F32(r as f32 / 7.0),
        _ => Value::F64(r as f64 / 3.0),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Random messages encoded by prost-reflect decode to what prost-reflect itself
    /// decodes them to; field order on the wire does not matter, repeated and
    /// nested fields are skipped, a field written twice keeps its last value.
    #[test]
    fn decodes_as_prost_reflect_does(
        values in proptest::collection::vec(-(1i64 << 40)..(1i64 << 40), 12),
        set in proptest::collection::vec(any::<bool>(), 12),
        flag in any::<bool>(),
        color in 0i32..3,
        many in proptest::collection::vec(any::<i64>(), 0..5),
        maybe in proptest::option::of(-1e9f64..1e9),
        shuffle in any::<u64>(),
        twice in any::<bool>(),
    ) {
        let desc = all_descriptor();
        let mut m = DynamicMessage::new(desc.clone());
        m.set_field_by_name("key", Value::String("k1".into()));
        m.set_field_by_name("ts", Value::I64(1_700_000_000_000));
        for (i, n) in NUMERIC.iter().enumerate() {
            if set[i] {
                m.set_field_by_name(n, scalar(n, values[i]));
            }
        }
        m.set_field_by_name("flag", Value::Bool(flag));
        m.set_field_by_name("text", Value::String(format!("t{}", values[0])));
        m.set_field_by_name("color", Value::EnumNumber(color));
        if let Some(x) = maybe {
            m.set_field_by_name("maybe", Value::F64(x));
        }
        m.set_field_by_name("many", Value::List(many.iter().map(|v| Value::I64(*v)).collect()));
        let mut inner = DynamicMessage::new(desc.get_field_by_name("inner").unwrap().kind().as_message().unwrap().clone());
        inner.set_field_by_name("s", Value::String("nested".into()));
        m.set_field_by_name("inner", Value::Message(inner));
        // the fields' encodings in a shuffled order (a message is a sequence of fields)
        let mut fields: Vec<Vec<u8>> = desc.fields().filter(|f| m.has_field(f)).map(|f| {
            let mut one = DynamicMessage::new(desc.clone());
            one.set_field(&f, m.get_field(&f).into_owned());
            one.encode_to_vec()
        }).collect();
        let mut x = shuffle | 1;
        for i in (1..fields.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            fields.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut bytes: Vec<u8> = fields.concat();
        if twice {
            // an earlier value of `i64` first: the last one wins
            let mut early = DynamicMessage::new(desc.clone());
            early.set_field_by_name("i64", Value::I64(-5));
            bytes = [early.encode_to_vec(), bytes].concat();
        }
        let oracle = DynamicMessage::decode(desc.clone(), bytes.as_slice()).unwrap();

        let source = all_source();
        let decoder = Decoder::for_source(source.spec(), &["text".to_owned(), "color".to_owned()]);
        let mut unknown = Vec::new();
        let d = decoder.decode(Some(&bytes), &mut |n| unknown.push(n.to_owned())).unwrap();
        prop_assert_eq!(d.key.as_str(), "k1");
        prop_assert_eq!(d.time_ms, 1_700_000_000_000);
        for (i, n) in NUMERIC.iter().enumerate() {
            prop_assert_eq!(d.numeric[i], number(&oracle, n), "{}", n);
        }
        let color_name = ["RED", "GREEN", "BLUE"][color as usize].to_owned();
        prop_assert_eq!(d.strings.clone(), vec![Some(format!("t{}", values[0])), Some(color_name)]);
        let mut want_unknown = Vec::new();
        if !many.is_empty() { want_unknown.push("many"); }
        want_unknown.push("inner");
        // each undeclared field once, however often it is written
        unknown.sort();
        want_unknown.sort();
        prop_assert_eq!(unknown, want_unknown);
        prop_assert_eq!(d.numeric.last().copied().filter(|v| !v.is_nan()), maybe);
    }
}

fn decode(decoder: &Decoder, bytes: &[u8]) -> Result<vigil::decode::Decoded, vigil::types::Rejection> {
    decoder.decode(Some(bytes), &mut |_| {})
}

/// The writer's message of a newer (`V2`: a field added, `device` dropped) or an
/// older version is read by a job declaring `V1`.
#[test]
fn a_newer_or_older_writer_is_read_by_protobufs_rules() {
    const V1: &str = r#"syntax = "proto3";
message Tx { string card = 1; int64 ts = 2; double amount = 3; optional string device = 4; int64 count = 5; }"#;
    const V2: &str = r#"syntax = "proto3";
message Tx { string card = 1; int64 ts = 2; double amount = 3; int64 count = 5; string channel = 6; }"#;
    let v2 = vigil::decode::protobuf::message(&ProtobufSchema::from_text(V2, None)).unwrap();
    let source = Source::protobuf("tx", ProtobufSchema::from_text(V1, None))
        .key("card")
        .event_time("ts")
        .field("amount", FieldType::F64)
        .optional("device", FieldType::Str)
        .field("count", FieldType::I64);
    let decoder = Decoder::for_source(source.spec(), &["device".to_owned()]);
    let mut m = DynamicMessage::new(v2);
    m.set_field_by_name("card", Value::String("c9".into()));
    m.set_field_by_name("ts", Value::I64(1_700_000_000_123));
    m.set_field_by_name("amount", Value::F64(3.25));
    m.set_field_by_name("channel", Value::String("web".into()));
    let mut unknown = Vec::new();
    let d = decoder.decode(Some(&m.encode_to_vec()), &mut |n| unknown.push(n.to_owned())).unwrap();
    assert_eq!((d.key.as_str(), d.time_ms, d.numeric.clone()), ("c9", 1_700_000_000_123, vec![3.25, 0.0]), "count not sent: proto3's default 0");
    assert_eq!(d.strings, vec![None], "device has presence: absent");
    assert_eq!(unknown, ["#6"], "the added field is skipped and counted by number");

    // bytes that are not a `Tx`: each is `not_protobuf` with what is wrong
    let good = m.encode_to_vec();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..good.len() - 1].to_vec(), "length 3 at byte 21 with 2 bytes left"),
        (vec![0x0a, 0x85], "truncated varint"),
        (vec![0x0f, 0x01], "wire type 7"),
        (vec![0x00, 0x01], "field number 0"),
        (vec![0x11, 1, 2, 3, 4, 5, 6, 7, 8], "`ts` is on the wire with wire type 1"),
        (vec![0x0a, 2, 0xff, 0xfe], "not UTF-8"),
        (vec![0x33, 0x08, 0x01, 0x3c], "group 6 ended by the end of group 7"),
        (vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], "varint"),
    ];
    for (bytes, says) in cases {
        let r = decode(&decoder, &bytes).unwrap_err();
        assert_eq!(r.reason, Reason::NotProtobuf, "{bytes:?}: {r:?}");
        assert!(r.detail.contains(says), "{bytes:?}: {}", r.detail);
    }
    // a group of an unknown field is skipped whole
    let mut grouped = vec![0x33, 0x08, 0x01, 0x34];
    grouped.extend(&good);
    assert_eq!(decode(&decoder, &grouped).unwrap().key, "c9");
    // the key absent: proto3's empty string, refused as a key
    assert_eq!(decode(&decoder, &good[4..]).unwrap_err().reason, Reason::BadKey);
    // proptest-style garbage never panics
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for len in 0..3_000usize {
        let bytes: Vec<u8> = (0..len % 97)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = decoder.decode(Some(&bytes), &mut |_| {});
    }
}

/// A declared field the message cannot give is refused when the job loads,
/// naming the field; a TOML source reads a `.proto` file or a descriptor set.
#[test]
fn a_mismatched_declaration_is_refused_at_load_and_toml_reads_files() {
    let dir = tempfile::tempdir().unwrap();
    let proto = dir.path().join("tx.proto");
    std::fs::write(&proto, vigil::demo::protobuf::TRANSACTION_PROTO).unwrap();
    let toml =
        |format: &str| std::fs::read_to_string("examples/fraud_job.toml").unwrap().replacen("[source.schema]", &format!("{format}\n\n[source.schema]"), 1);
    let job = JobSpec::from_toml(&toml(&format!("format = \"protobuf\"\nprotobuf = {{ schema_file = \"{}\" }}", proto.display()))).unwrap();
    assert_eq!(job.source.format, SourceFormat::Protobuf(ProtobufSchema::from_file(&proto, None)));
    let set = dir.path().join("tx.binpb");
    std::fs::write(&set, protox::compile([&proto], [dir.path()]).unwrap().encode_to_vec()).unwrap();
    let job2 =
        JobSpec::from_toml(&toml(&format!("format = \"protobuf\"\nprotobuf = {{ descriptor_set = \"{}\", message = \"demo.Transaction\" }}", set.display())))
            .unwrap();
    let desc = transaction_descriptor();
    let json = br#"{"event_id":"e1","card_id":"c1","ts":"2024-05-01T10:00:00.250Z","amount":12.5,"merchant":"m-1","country":"DE","device":"ios"}"#;
    let msg = transaction_message(&desc, json).unwrap();
    let want =
        Decoder::new(&JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_job.toml").unwrap()).unwrap()).decode(Some(json), &mut |_| {}).unwrap();
    for j in [&job, &job2] {
        assert_eq!(Decoder::new(j).decode(Some(&msg), &mut |_| {}).unwrap(), want);
    }

    let bad = dir.path().join("bad.proto");
    std::fs::write(&bad, vigil::demo::protobuf::TRANSACTION_PROTO.replace("double amount = 4;", "string amount = 4;")).unwrap();
    let two = dir.path().join("two.proto");
    std::fs::write(&two, "syntax = \"proto3\";\nmessage A { string card_id = 1; }\nmessage B { string card_id = 1; }\n").unwrap();
    for (extra, says) in [
        (
            format!("format = \"protobuf\"\nprotobuf = {{ schema_file = \"{}\" }}", bad.display()),
            "`amount` is a string in the message; the source declares F64",
        ),
        (format!("format = \"protobuf\"\nprotobuf = {{ schema_file = \"{}\" }}", two.display()), "has 2 messages (A, B): name one with `message`"),
        (format!("format = \"protobuf\"\nprotobuf = {{ schema_file = \"{}\", message = \"demo.Tx\" }}", proto.display()), "no message `demo.Tx`"),
        (format!("format = \"protobuf\"\nprotobuf = {{ schema_file = \"{}\", message = \"A\" }}", two.display()), "message `A` has no field `amount`"),
        ("format = \"protobuf\"\nprotobuf = { schema_file = \"/nonexistent/x.proto\" }".to_owned(), "does not compile"),
        ("format = \"protobuf\"\nprotobuf = { schema_file = \"a.proto\", descriptor_set = \"b.binpb\" }".to_owned(), "give one of `schema_file`"),
        ("format = \"protobuf\"\nprotobuf = { descriptor_set = \"/nonexistent.binpb\" }".to_owned(), "reading the descriptor set"),
    ] {
        let e = JobSpec::from_toml(&toml(&extra)).unwrap_err();
        assert!(format!("{e:#}").contains(says), "{extra}: {e:#}");
    }

    // an enum value the job's schema does not know (a newer writer's) where a string is declared
    let colors = "syntax = \"proto3\";\nenum C { RED = 0; }\nmessage M { string k = 1; int64 t = 2; C c = 3; }";
    let d = Decoder::for_source(
        Source::protobuf("m", ProtobufSchema::from_text(colors, None)).key("k").event_time("t").field("c", FieldType::Str).spec(),
        &["c".to_owned()],
    );
    let r = decode(&d, &[0x0a, 1, b'k', 0x10, 0x80, 0xa0, 0xbe, 0xa3, 0xcf, 0x31, 0x18, 0x05]).unwrap_err();
    assert_eq!(r.reason, Reason::SchemaMismatch, "{r:?}");
    assert_eq!(decode(&d, &[0x0a, 1, b'k', 0x10, 0x80, 0xa0, 0xbe, 0xa3, 0xcf, 0x31]).unwrap().strings, vec![Some("RED".to_owned())], "absent: value 0");
}
