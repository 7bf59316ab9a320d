//! A bounded fuzz run of the decoder (the toolchain is stable Rust, so no `cargo
//! fuzz`): for `--seconds`, decode random bytes and mutations of valid records
//! (bit flips, truncations, splices, inserted JSON tokens, huge numbers, deep
//! nesting), in turn as JSON, as Avro (the demo's transactions as datums, mutated
//! the same way, and random bytes for a writer schema of nested arrays, maps,
//! unions and a recursive record) and as Protobuf (the demo's transactions as
//! `demo.Transaction` messages, mutated the same way). Any panic fails the run.
//! `.ci/test` runs it for 20 seconds.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use vigil::decode::Decoder;
use vigil::spec::{AvroSchemas, SourceFormat};

/// A writer schema the fraud job can read, with nested types to skip.
const NESTED: &str = r#"{"type": "record", "name": "Node", "fields": [
  {"name": "card_id", "type": "string"}, {"name": "ts", "type": ["null", "long", "string"]},
  {"name": "tags", "type": {"type": "array", "items": {"type": "map", "values": ["null", "double", "bytes"]}}},
  {"name": "amount", "type": ["double", "float", "int"]},
  {"name": "merchant", "type": {"type": "enum", "name": "M", "symbols": ["a", "b", "c"]}},
  {"name": "next", "type": ["null", "Node"]},
  {"name": "country", "type": "string"}, {"name": "id", "type": {"type": "fixed", "name": "Id", "size": 4}}]}"#;

fn main() {
    let seconds: u64 = std::env::args().skip_while(|a| a != "--seconds").nth(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = std::env::args().skip_while(|a| a != "--seed").nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let job = vigil::demo::fraud_job();
    let decoder = Decoder::new(&job);
    let mut avro_job = job.clone();
    avro_job.source.format = SourceFormat::Avro(AvroSchemas::Fixed { schema: vigil::demo::avro::TRANSACTION_SCHEMA.into() });
    let avro_decoder = Decoder::new(&avro_job);
    let schema = vigil::demo::avro::transaction_schema();
    avro_job.source.format = SourceFormat::Avro(AvroSchemas::Fixed { schema: NESTED.into() });
    vigil::decode::avro::check_fixed_schema(&avro_job.source).expect("the fraud job reads the nested schema");
    let nested_decoder = Decoder::new(&avro_job);
    let mut pb_job = job.clone();
    pb_job.source.format = SourceFormat::Protobuf(vigil::demo::protobuf::transaction_schema());
    let pb_decoder = Decoder::new(&pb_job);
    let desc = vigil::demo::protobuf::transaction_descriptor();
    let mut gen = vigil::demo::generator::Generator::new(vigil::demo::generator::GenConfig { bad_ratio: 0.2, seed, ..Default::default() });
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let tokens: [&[u8]; 14] = [b"{", b"}", b"[", b"]", b"\"", b":", b",", b"null", b"1e999", b"-0", b"\\u0000", b"\xff", b"NaN", b"99999999999999999999999"];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut cases, mut accepted) = (0u64, 0u64);
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        let format = round % 3; // JSON, Avro, Protobuf
        for _ in 0..1000 {
            let mut bytes = gen.next_transaction().payload;
            if format == 1 {
                bytes = vigil::demo::avro::transaction_datum(&schema, &bytes).unwrap_or(bytes);
            } else if format == 2 {
                bytes = vigil::demo::protobuf::transaction_message(&desc, &bytes).unwrap_or(bytes);
            }
            match rng.gen_range(0..6) {
                0 => bytes = (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect(),
                1 => {
                    for _ in 0..rng.gen_range(1..8) {
                        if !bytes.is_empty() {
                            let i = rng.gen_range(0..bytes.len());
                            bytes[i] ^= 1 << rng.gen_range(0..8);
                        }
                    }
                }
                2 => bytes.truncate(rng.gen_range(0..=bytes.len())),
                3 => {
                    let i = rng.gen_range(0..=bytes.len());
                    let t = tokens[rng.gen_range(0..tokens.len())];
                    bytes.splice(i..i, t.iter().copied());
                }
                4 => {
                    let depth = rng.gen_range(1..5000);
                    let i = rng.gen_range(0..=bytes.len());
                    let nest: Vec<u8> = std::iter::repeat_n(b'[', depth).chain(std::iter::repeat_n(b']', depth)).collect();
                    bytes.splice(i..i, nest);
                }
                _ => {
                    let other = gen.next_transaction().payload;
                    let cut = rng.gen_range(0..=bytes.len().min(other.len()));
                    bytes.truncate(cut);
                    bytes.extend_from_slice(&other[cut..]);
                }
            }
            let d = match (format, rng.gen_range(0..4)) {
                (0, _) => &decoder,
                (1, 0) => &nested_decoder,
                (1, _) => &avro_decoder,
                _ => &pb_decoder,
            };
            accepted += d.decode(Some(&bytes), &mut |_| {}).is_ok() as u64;
            cases += 1;
        }
    }
    println!("fuzz-decoder: seed {seed}: {cases} inputs in {seconds} s ({accepted} accepted), no panic");
}
