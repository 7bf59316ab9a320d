//! The Avro decoder against two independent readings of the same bytes.
//!
//! - **Verdicts equal the JSON decoder's.** Random writer schemas (each declared
//!   field written as one of several compatible types, unions with null, an
//!   incompatible union branch, extra fields of nested types, any field order) and
//!   random records, encoded by `apache-avro`; each record is also decoded by
//!   `apache-avro`, turned into JSON text in the writer's field order and given to
//!   the JSON decoder. Both must accept with the same key, time, id, values and
//!   unknown fields, or reject for the same reason (`schema_mismatch` where JSON
//!   says `wrong_type`: a union branch of another type).
//! - **Never accepts what Avro's own reader rejects.** Valid records with bytes
//!   flipped, cut or appended: the decoder never panics, and whatever it accepts
//!   `apache-avro` reads too, to the last byte.
//! - **Whole-schema verdicts.** A declared field of another type, a required one
//!   missing: the schema is refused at load time, naming the field.
#![allow(deprecated)] // apache-avro's one-call datum reader and writer, plain enough for tests

use apache_avro::types::Value;
use apache_avro::{from_avro_datum, to_avro_datum, Schema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil::decode::{Decoded, Decoder};
use vigil::graph::Source;
use vigil::spec::{AvroSchemas, FieldType, SourceSpec};
use vigil::types::{Reason, Rejection};

/// The declared source: key `card`, time `ts`, id `id`, and four fields.
fn declare(s: Source) -> Source {
    s.key("card")
        .event_time("ts")
        .event_id("id")
        .max_future(std::time::Duration::from_secs(1))
        .field("amount", FieldType::F64)
        .optional("count", FieldType::I64)
        .field("merchant", FieldType::Str)
        .optional("flag", FieldType::Bool)
}

const KEPT: &[&str] = &["merchant"];

fn kept() -> Vec<String> {
    KEPT.iter().map(|s| s.to_string()).collect()
}

/// One writer field: its name and Avro type (JSON).
type WriterField = (String, String);

/// A random writer schema that the declared source can read.
fn writer_fields(rng: &mut StdRng) -> Vec<WriterField> {
    let pick = |rng: &mut StdRng, options: &[&str]| options[rng.gen_range(0..options.len())].to_owned();
    let mut fields: Vec<WriterField> = vec![
        ("card".into(), pick(rng, &[r#""string""#, r#""long""#, r#""int""#, r#"["null", "string"]"#])),
        ("ts".into(), pick(rng, &[r#""long""#, r#"{"type": "long", "logicalType": "timestamp-millis"}"#, r#""double""#, r#""string""#, r#"["null", "long"]"#])),
        (
            "amount".into(),
            pick(
                rng,
                &[
                    r#""double""#,
                    r#""float""#,
                    r#""int""#,
                    r#""long""#,
                    r#"["null", "double"]"#,
                    r#"["null", "double", "string"]"#,
                    r#"{"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}"#,
                    r#"{"type": "fixed", "name": "Cents", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 2}"#,
                ],
            ),
        ),
        (
            "merchant".into(),
            pick(rng, &[r#""string""#, r#"{"type": "enum", "name": "Merchant", "symbols": ["m0", "m1", "m2", "m3"]}"#, r#"["null", "string"]"#]),
        ),
    ];
    for (name, options) in [
        ("id", &[r#""string""#, r#"["null", "string"]"#, r#""long""#][..]),
        ("count", &[r#""long""#, r#""int""#, r#"["null", "long"]"#][..]),
        ("flag", &[r#""boolean""#, r#"["null", "boolean"]"#][..]),
    ] {
        if rng.gen_bool(0.7) {
            fields.push((name.into(), pick(rng, options)));
        }
    }
    let extras = [
        r#""bytes""#,
        r#"{"type": "array", "items": "long"}"#,
        r#"{"type": "map", "values": "string"}"#,
        r#"{"type": "record", "name": "Inner", "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": ["null", "string"]}]}"#,
        r#"{"type": "fixed", "name": "Three", "size": 3}"#,
        r#""float""#,
        r#"{"type": "array", "items": {"type": "map", "values": ["null", "double"]}}"#,
        r#""boolean""#,
    ];
    for i in 0..rng.gen_range(0..4) {
        // named types once each
        let extra = pick(rng, &extras).replace("Inner", &format!("Inner{i}")).replace("Three", &format!("Three{i}"));
        fields.push((format!("x{i}"), extra));
    }
    // any order
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.gen_range(0..=i));
    }
    fields
}

fn schema_text(fields: &[WriterField]) -> String {
    let fields: Vec<String> = fields.iter().map(|(n, t)| format!(r#"{{"name": "{n}", "type": {t}}}"#)).collect();
    format!(r#"{{"type": "record", "name": "Tx", "namespace": "test", "fields": [{}]}}"#, fields.join(", "))
}

/// A random value of `schema` (`name` says which field: keys and times get
/// plausible values most of the time).
fn value(rng: &mut StdRng, schema: &Schema, name: &str) -> Value {
    const T0: i64 = 1_700_000_000_000;
    match schema {
        Schema::Null => Value::Null,
        Schema::Boolean => Value::Boolean(rng.gen()),
        Schema::Int => Value::Int(match rng.gen_range(0..4) {
            0 => rng.gen(),
            _ => rng.gen_range(-1000..1000),
        }),
        Schema::Long => Value::Long(match (name, rng.gen_range(0..10)) {
            ("ts", 0) => rng.gen(),
            ("ts", _) => T0 + rng.gen_range(-5_000..5_000),
            (_, 0) => rng.gen(),
            (_, 1) => rng.gen_range(-(1i64 << 52)..(1 << 52)),
            _ => rng.gen_range(-1000..1000),
        }),
        Schema::TimestampMillis => Value::TimestampMillis(T0 + rng.gen_range(-5_000..5_000)),
        Schema::Float => Value::Float(rng.gen_range(-1e6f32..1e6)),
        Schema::Double => Value::Double(match (name, rng.gen_range(0..12)) {
            ("ts", 0) => 1e300,
            ("ts", _) => T0 as f64 + rng.gen_range(-5e3..5e3),
            (_, 0) => 1e16,
            _ => rng.gen_range(-1e6..1e6),
        }),
        Schema::String => Value::String(match (name, rng.gen_range(0..12)) {
            ("ts", 0) => "yesterday".into(),
            ("ts", _) => chrono::DateTime::from_timestamp_millis(T0 + rng.gen_range(-5_000..5_000)).unwrap().to_rfc3339(),
            (_, 0) => String::new(),
            (_, 1) => "é".repeat(300),
            _ => format!("s{}", rng.gen_range(0..50)),
        }),
        // scale 2 in these tests; 8 bytes of two's complement
        Schema::Decimal(_) => Value::Decimal(rng.gen_range(-(1i64 << 50)..(1 << 50)).to_be_bytes().into()),
        Schema::Bytes => Value::Bytes((0..rng.gen_range(0..6)).map(|_| rng.gen()).collect()),
        Schema::Fixed(f) => Value::Fixed(f.size, (0..f.size).map(|_| rng.gen()).collect()),
        Schema::Enum(e) => {
            let i = rng.gen_range(0..e.symbols.len());
            Value::Enum(i as u32, e.symbols[i].clone())
        }
        Schema::Array(a) => Value::Array((0..rng.gen_range(0..4)).map(|_| value(rng, &a.items, "")).collect()),
        Schema::Map(m) => Value::Map((0..rng.gen_range(0..4)).map(|i| (format!("k{i}"), value(rng, &m.types, ""))).collect()),
        Schema::Union(u) => {
            let variants = u.variants();
            // null one time in five
            let i = if variants[0] == Schema::Null && rng.gen_bool(0.8) { rng.gen_range(1..variants.len()) } else { rng.gen_range(0..variants.len()) };
            Value::Union(i as u32, Box::new(value(rng, &variants[i], name)))
        }
        Schema::Record(r) => Value::Record(r.fields.iter().map(|f| (f.name.clone(), value(rng, &f.schema, &f.name))).collect()),
        other => panic!("no generator for {other:?}"),
    }
}

/// `v` as JSON text (object keys in the record's order).
fn json(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Long(i) | Value::TimestampMillis(i) => i.to_string(),
        Value::Float(f) => serde_json::to_string(&f64::from(*f)).unwrap(),
        Value::Double(f) => serde_json::to_string(f).unwrap(),
        Value::String(s) | Value::Enum(_, s) => serde_json::to_string(s).unwrap(),
        Value::Bytes(b) | Value::Fixed(_, b) => serde_json::to_string(b).unwrap(),
        Value::Union(_, inner) => json(inner),
        // the unscaled integer as decimal text with 2 places, for JSON to parse
        Value::Decimal(d) => {
            let bytes: Vec<u8> = d.try_into().unwrap();
            let unscaled = i64::from_be_bytes(bytes.try_into().unwrap());
            let sign = if unscaled < 0 { "-" } else { "" };
            format!("{sign}{}.{:02}", unscaled.unsigned_abs() / 100, unscaled.unsigned_abs() % 100)
        }
        Value::Array(items) => format!("[{}]", items.iter().map(json).collect::<Vec<_>>().join(",")),
        Value::Map(m) => format!("{{{}}}", m.iter().map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), json(v))).collect::<Vec<_>>().join(",")),
        Value::Record(fields) => {
            format!("{{{}}}", fields.iter().map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), json(v))).collect::<Vec<_>>().join(","))
        }
        other => panic!("no JSON for {other:?}"),
    }
}

fn decoders(schema: &str) -> (Decoder, Decoder) {
    let avro = declare(Source::avro("t", AvroSchemas::Fixed { schema: schema.to_owned() }));
    let json = declare(Source::json("t"));
    (Decoder::for_source(avro.spec(), &kept()), Decoder::for_source(json.spec(), &kept()))
}

/// A verdict in comparable form: the record (NaN written out) and unknown fields,
/// or the reason.
fn verdict(r: Result<Decoded, Rejection>, unknown: Vec<String>) -> Result<String, Reason> {
    r.map(|d| format!("{d:?} unknown {unknown:?}")).map_err(|e| e.reason)
}

fn decode(d: &Decoder, bytes: &[u8]) -> Result<String, Reason> {
    let mut unknown = Vec::new();
    let r = d.decode(Some(bytes), &mut |n| unknown.push(n.to_owned()));
    verdict(r, unknown)
}

#[test]
fn avro_verdicts_equal_the_json_decoders_on_random_schemas_and_records() {
    let mut rng = StdRng::seed_from_u64(17);
    let (mut accepted, mut rejected) = (0, std::collections::BTreeMap::new());
    for _ in 0..400 {
        let fields = writer_fields(&mut rng);
        let text = schema_text(&fields);
        let schema = Schema::parse_str(&text).unwrap();
        let (avro, json_decoder) = decoders(&text);
        for _ in 0..150 {
            let record = value(&mut rng, &schema, "");
            let bytes = to_avro_datum(&schema, record).unwrap();
            let read_back = from_avro_datum(&schema, &mut &bytes[..], None).unwrap();
            let mine = decode(&avro, &bytes);
            let theirs = decode(&json_decoder, json(&read_back).as_bytes()).map_err(|r| if r == Reason::WrongType { Reason::SchemaMismatch } else { r });
            assert_eq!(mine, theirs, "schema {text}\nrecord {}", json(&read_back));
            match mine {
                Ok(_) => accepted += 1,
                Err(r) => *rejected.entry(r.as_str()).or_insert(0) += 1,
            }
        }
    }
    // the cases were reached
    assert!(accepted > 20_000, "{accepted} accepted");
    for reason in ["schema_mismatch", "missing_field", "bad_key", "bad_timestamp", "out_of_range"] {
        assert!(rejected.get(reason).copied().unwrap_or(0) > 50, "{reason}: {rejected:?}");
    }
}

#[test]
fn the_decoder_never_accepts_what_avros_reader_rejects() {
    let mut rng = StdRng::seed_from_u64(29);
    let mut accepted_mutants = 0;
    for _ in 0..300 {
        let fields = writer_fields(&mut rng);
        let text = schema_text(&fields);
        let schema = Schema::parse_str(&text).unwrap();
        let (avro, _) = decoders(&text);
        for _ in 0..200 {
            let mut bytes = to_avro_datum(&schema, value(&mut rng, &schema, "")).unwrap();
            match rng.gen_range(0..4) {
                0 => bytes.truncate(rng.gen_range(0..bytes.len())),
                1 => bytes.extend((0..rng.gen_range(1..4)).map(|_| rng.gen::<u8>())),
                _ => {
                    for _ in 0..rng.gen_range(1..4) {
                        let i = rng.gen_range(0..bytes.len());
                        bytes[i] = rng.gen();
                    }
                }
            }
            let mine = decode(&avro, &bytes);
            if mine.is_ok() {
                accepted_mutants += 1;
                let mut rest = &bytes[..];
                assert!(from_avro_datum(&schema, &mut rest, None).is_ok(), "accepted bytes Avro cannot read: {bytes:?} under {text}");
                assert!(rest.is_empty(), "accepted {} trailing bytes", rest.len());
            }
        }
    }
    assert!(accepted_mutants > 1000, "{accepted_mutants}: flipped values inside a record still read");
}

/// The declared source with a fixed writer schema made of `fields`.
fn fixed(fields: &str) -> SourceSpec {
    let schema = format!(r#"{{"type": "record", "name": "Tx", "fields": [{fields}]}}"#);
    declare(Source::avro("t", AvroSchemas::Fixed { schema })).spec().clone()
}

#[test]
fn an_unreadable_writer_schema_is_refused_naming_the_field() {
    let base = r#"{"name": "card", "type": "string"}, {"name": "ts", "type": "long"}, {"name": "merchant", "type": "string"}"#;
    let ok = fixed(&format!(r#"{base}, {{"name": "amount", "type": ["null", "float"]}}"#));
    vigil::decode::avro::check_fixed_schema(&ok).unwrap();
    for (amount, says) in [
        (r#"{"name": "amount", "type": "string"}"#, "`amount` is a string in the writer schema; the source declares F64"),
        (r#"{"name": "amount", "type": {"type": "array", "items": "double"}}"#, "`amount` is an array in the writer schema"),
        (r#"{"name": "amount", "type": "null"}"#, "`amount` is always null in the writer schema and the source requires it"),
        (r#"{"name": "other", "type": "double"}"#, "the writer schema has no field `amount` and the source requires it"),
    ] {
        let spec = fixed(&format!("{base}, {amount}"));
        let e = vigil::decode::avro::check_fixed_schema(&spec).unwrap_err();
        assert!(format!("{e:#}").contains(says), "{e:#}");
        // at run time too: every record of the schema is dead-lettered with the reason
        let d = Decoder::for_source(&spec, &kept());
        let r = d.decode(Some(&[2, b'c', 0]), &mut |_| {}).unwrap_err();
        assert_eq!((r.reason, r.detail.contains(says)), (Reason::SchemaMismatch, true), "{r:?}");
    }
    // the key and the time are required whatever the fields say
    let spec = fixed(r#"{"name": "card", "type": "string"}, {"name": "amount", "type": "double"}, {"name": "merchant", "type": "string"}"#);
    assert!(format!("{:#}", vigil::decode::avro::check_fixed_schema(&spec).unwrap_err()).contains("no field `ts`"));
}

#[test]
fn recursive_and_named_types_resolve() {
    // a linked list of the record's own type, and an enum used twice by name
    let spec = fixed(
        r#"{"name": "card", "type": "string"}, {"name": "ts", "type": "long"}, {"name": "amount", "type": "double"},
           {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b"]}},
           {"name": "merchant", "type": "Kind"},
           {"name": "next", "type": ["null", "Tx"]}"#,
    );
    vigil::decode::avro::check_fixed_schema(&spec).unwrap();
    let d = Decoder::for_source(&spec, &kept());
    let mut datum = vec![2, b'c'];
    vigil::decode::avro::put_long(&mut datum, 1_700_000_000_000);
    datum.extend(2.5f64.to_le_bytes());
    datum.extend([2, 0]); // kind b, merchant a
                          // next: one nested Tx (card "d", ts 1, amount 0, kind a, merchant b, next null)
    datum.extend([2, 2, b'd', 2]);
    datum.extend(0f64.to_le_bytes());
    datum.extend([0, 2, 0]);
    let mut unknown = Vec::new();
    let r = d.decode(Some(&datum), &mut |n| unknown.push(n.to_owned())).unwrap();
    assert_eq!((r.key.as_str(), r.numeric[0], r.strings[0].as_deref()), ("c", 2.5, Some("a")));
    assert_eq!(unknown, ["kind", "next"]);
}

/// What apache-avro's writer never produces: blocks with negative counts (and their
/// byte size), arrays of items with no bytes; and Avro's promotions and units.
#[test]
fn hand_built_datums_blocks_units_and_promotions() {
    use vigil::decode::avro::put_long;
    let spec = fixed(
        r#"{"name": "card", "type": "string"}, {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
           {"name": "amount", "type": "double"}, {"name": "merchant", "type": "bytes"},
           {"name": "count", "type": {"type": "long", "logicalType": "timestamp-micros"}},
           {"name": "x", "type": {"type": "array", "items": "long"}}, {"name": "z", "type": {"type": "array", "items": "null"}}"#,
    );
    vigil::decode::avro::check_fixed_schema(&spec).unwrap();
    let d = Decoder::for_source(&spec, &kept());
    let datum = |merchant: &[u8], x: &[u8], z: &[u8]| {
        let mut b = vec![2, b'c'];
        put_long(&mut b, 1_700_000_000_000_123); // micros
        b.extend(1.5f64.to_le_bytes());
        put_long(&mut b, merchant.len() as i64);
        b.extend(merchant);
        put_long(&mut b, 5_000_001);
        b.extend(x);
        b.extend(z);
        b
    };
    // x: a block of -2 items announcing its 2 bytes (longs 1 and 2), then the end;
    // z: a billion nulls in one block of no bytes
    let mut z = Vec::new();
    put_long(&mut z, 1_000_000_000);
    z.push(0);
    let ok = d.decode(Some(&datum(b"m1", &[3, 4, 2, 4, 0], &z)), &mut |_| {}).unwrap();
    assert_eq!(ok.time_ms, 1_700_000_000_000, "the event time's micros become millis");
    assert_eq!(ok.numeric, vec![1.5, 5_000_001.0], "a declared i64 keeps its raw value whatever its logical type");
    assert_eq!(ok.strings[0].as_deref(), Some("m1"), "bytes read as a string");
    let reason = |x: &[u8], z: &[u8], merchant: &[u8]| d.decode(Some(&datum(merchant, x, z)), &mut |_| {}).unwrap_err().reason;
    assert_eq!(reason(&[3, 6, 2, 4, 0], &z, b"m1"), Reason::NotAvro, "a block size that its items do not fill");
    assert_eq!(reason(&[4, 2, 0], &z, b"m1"), Reason::NotAvro, "a block announcing more items than its bytes hold");
    let mut z_sized = Vec::new();
    put_long(&mut z_sized, -5);
    put_long(&mut z_sized, 3);
    assert_eq!(reason(&[0], &z_sized, b"m1"), Reason::NotAvro, "items of no bytes announcing bytes");
    assert_eq!(reason(&[0], &z, &[0xff, 0xfe]), Reason::SchemaMismatch, "bytes that are not UTF-8 for a string");
}

#[test]
fn decimals_beyond_128_bits_and_named_types_defined_twice() {
    let spec = fixed(
        r#"{"name": "card", "type": "string"}, {"name": "ts", "type": "long"}, {"name": "merchant", "type": "string"},
           {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 60, "scale": 2}}"#,
    );
    let d = Decoder::for_source(&spec, &kept());
    let datum = |unscaled: &[u8]| {
        let mut b = vec![2, b'c'];
        vigil::decode::avro::put_long(&mut b, 1_700_000_000_000);
        b.extend([4, b'm', b'1']);
        vigil::decode::avro::put_long(&mut b, unscaled.len() as i64);
        b.extend(unscaled);
        b
    };
    // -12.34 with 20 bytes of sign extension, then a value beyond 128 bits
    let mut padded = vec![0xff; 20];
    padded.extend((-1234i16).to_be_bytes());
    assert_eq!(d.decode(Some(&datum(&padded)), &mut |_| {}).unwrap().numeric[0], -12.34);
    let mut huge = vec![0x7f];
    huge.extend([0xff; 19]);
    assert_eq!(d.decode(Some(&datum(&huge)), &mut |_| {}).unwrap_err().reason, Reason::OutOfRange);
    let twice = fixed(
        r#"{"name": "card", "type": "string"}, {"name": "ts", "type": "long"}, {"name": "merchant", "type": "string"}, {"name": "amount", "type": "double"},
           {"name": "a", "type": {"type": "fixed", "name": "F", "size": 4}}, {"name": "b", "type": {"type": "fixed", "name": "F", "size": 8}}"#,
    );
    assert!(vigil::decode::avro::check_fixed_schema(&twice).is_err(), "an ambiguous name is refused");
}
