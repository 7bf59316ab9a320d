//! Decoding JSON, Avro and Protobuf: each decoder alone against its format's plain parser,
//! and the fraud job in memory fed each format. Writes the "Formats" section of
//! benchmarks/RESULTS.md.
//!
//! The same generated transactions (the demo's, no malformed records) are the
//! JSON input; each is re-encoded as an Avro datum of one writer schema (its time
//! in a union of long, double and string, as the JSON carries either). Decode
//! alone, one thread, per record: vigil's JSON decoder (schema-driven serde
//! visitor on serde_json) against `serde_json::from_slice` into a `Value` (the
//! generic parse a user would write first) and `sonic_rs::from_slice` (a SIMD
//! parser, parse alone); vigil's Avro decoder (a plan compiled once per writer
//! schema, read straight into the record) against `apache-avro`'s
//! `from_avro_datum` into its `Value`; and, each re-encoded as a Protobuf message,
//! vigil's Protobuf decoder against prost-reflect's `DynamicMessage::decode`. Then
//! the fraud job's pipeline, one worker, on each input.
//!
//! Outputs: the job's `scores` records (taken from a run of the JSON job)
//! re-encoded as Confluent-framed Avro (`[sinks] format = "avro"`: a parse of
//! the JSON record, then the datum) against apache-avro's `to_avro_datum` of the
//! same records already built as its `Value` (encoding alone), and the JSON job
//! with its scores re-encoded on their way to a sink that drops them.

#![allow(deprecated)] // apache-avro's one-call datum reader, the plain parser measured

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use vigil::decode::Decoder;
use vigil::demo::avro::{transaction_datum, transaction_schema, TRANSACTION_SCHEMA};
use vigil::demo::fraud_job;
use vigil::demo::generator::{GenConfig, Generator};
use vigil::demo::protobuf::{transaction_descriptor, transaction_message};
use vigil::metrics::Metrics;
use vigil::output::NullSink;
use vigil::spec::{AvroSchemas, SourceFormat};

#[path = "../report.rs"]
mod report;
use report::median;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Profile one decoder (`json`, `sonic-value`, `avro` or `protobuf`): decode
    /// alone, print the rate, write nothing.
    #[arg(long)]
    profile: Option<String>,
}

/// Records per second of `f` over every payload, median of `runs`.
fn rate(runs: usize, payloads: &[Vec<u8>], mut f: impl FnMut(&[u8]) -> bool) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let ok = payloads.iter().filter(|p| f(p)).count();
                assert_eq!(ok, payloads.len(), "every record decodes");
                payloads.len() as f64 / t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// The `scores` topic re-encoded as Avro (see the module docs).
struct Outputs {
    json_bytes: f64,
    avro_bytes: f64,
    reencode: f64,
    apache: f64,
    job: f64,
}

/// Re-encodes each `scores` record, then drops it.
struct Reencoding(vigil::output::avro::AvroOutputs);

impl vigil::output::OutputSink for Reencoding {
    fn send(&self, topic: vigil::output::Topic, _: &[u8], payload: &[u8], _: u64) {
        if topic == vigil::output::Topic::Scores {
            assert!(matches!(self.0.encode("scores", payload), Ok(Some(_))), "a scores record re-encodes");
        }
    }
}

fn outputs(job: &vigil::spec::JobSpec, input: &vigil::local::MemoryTopic, runs: usize) -> Result<Outputs> {
    use vigil::output::avro::{AvroOutputs, Shape};
    let names: Vec<String> = job.features.iter().map(|f| f.name().to_owned()).collect();
    let shape = Shape::Scores(names);
    let avro = AvroOutputs::with_ids(&[("scores", shape.clone(), 1)])?;
    let sink = vigil::output::MemorySink::new();
    vigil::local::run_local(job, input, 1, sink.clone(), Metrics::new())?;
    let scores: Vec<Vec<u8>> = sink.take().into_iter().filter(|r| r.0 == vigil::output::Topic::Scores).map(|r| r.2).take(200_000).collect();
    let framed: Vec<Vec<u8>> = scores.iter().map(|p| avro.encode("scores", p).map(Option::unwrap_or_default)).collect::<Result<_>>()?;
    let schema = apache_avro::Schema::parse_str(&shape.schema()?)?;
    let values: Vec<apache_avro::types::Value> = framed.iter().map(|f| apache_avro::from_avro_datum(&schema, &mut &f[5..], None)).collect::<Result<_, _>>()?;
    let reencode = rate(runs, &scores, |p| avro.encode("scores", p).is_ok_and(|f| f.is_some()));
    let mut i = 0;
    let apache = rate(runs, &scores, |_| {
        i = (i + 1) % values.len();
        apache_avro::to_avro_datum(&schema, values[i].clone()).is_ok()
    });
    let sink = Arc::new(Reencoding(avro));
    let mut rates = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        vigil::local::run_local(job, input, 1, sink.clone(), Metrics::new())?;
        rates.push(input.iter().map(|p| p.len()).sum::<usize>() as f64 / t.elapsed().as_secs_f64());
    }
    let mean = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() as f64 / v.len() as f64;
    Ok(Outputs { json_bytes: mean(&scores), avro_bytes: mean(&framed), reencode, apache, job: median(rates) })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cmd = std::env::args().collect::<Vec<_>>().join(" ");
    let mut gen = Generator::new(GenConfig { bad_ratio: 0.0, ..GenConfig::default() });
    let json: Vec<Vec<u8>> = (0..args.events).map(|_| gen.next_transaction().payload).collect();
    let schema = transaction_schema();
    let avro: Vec<Vec<u8>> = json.iter().map(|p| transaction_datum(&schema, p).expect("fits")).collect();
    let desc = transaction_descriptor();
    let protobuf: Vec<Vec<u8>> = json.iter().map(|p| transaction_message(&desc, p).expect("fits")).collect();
    let bytes = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() as f64 / v.len() as f64;

    let json_job = fraud_job();
    let mut avro_job = json_job.clone();
    avro_job.source.format = SourceFormat::Avro(AvroSchemas::Fixed { schema: TRANSACTION_SCHEMA.into() });
    let json_decoder = Decoder::new(&json_job);
    let avro_decoder = Decoder::new(&avro_job);
    let mut pb_job = json_job.clone();
    pb_job.source.format = SourceFormat::Protobuf(vigil::demo::protobuf::transaction_schema());
    let pb_decoder = Decoder::new(&pb_job);

    let runs = args.runs;
    if let Some(which) = &args.profile {
        if which == "sonic-value" {
            println!("{which}: {:.0} records/s", rate(runs, &json, |p| sonic_rs::from_slice::<sonic_rs::Value>(p).is_ok()));
            return Ok(());
        }
        let (decoder, input) = match which.as_str() {
            "avro" => (&avro_decoder, &avro),
            "protobuf" => (&pb_decoder, &protobuf),
            _ => (&json_decoder, &json),
        };
        println!("{which}: {:.0} records/s", rate(runs, input, |p| decoder.decode(Some(p), &mut |_| {}).is_ok()));
        return Ok(());
    }
    let vigil_json = rate(runs, &json, |p| json_decoder.decode(Some(p), &mut |_| {}).is_ok());
    let serde_value = rate(runs, &json, |p| serde_json::from_slice::<serde_json::Value>(p).is_ok());
    let sonic_value = rate(runs, &json, |p| sonic_rs::from_slice::<sonic_rs::Value>(p).is_ok());
    let vigil_avro = rate(runs, &avro, |p| avro_decoder.decode(Some(p), &mut |_| {}).is_ok());
    let avro_value = rate(runs, &avro, |p| apache_avro::from_avro_datum(&schema, &mut &p[..], None).is_ok());
    let vigil_pb = rate(runs, &protobuf, |p| pb_decoder.decode(Some(p), &mut |_| {}).is_ok());
    let pb_value = rate(runs, &protobuf, |p| prost_reflect::DynamicMessage::decode(desc.clone(), &p[..]).is_ok());

    // the fraud job's pipeline, 1 worker, 8 partitions by key, each input in turn
    let topic = |payloads: &[Vec<u8>]| -> vigil::local::MemoryTopic {
        let mut parts: Vec<Vec<Option<Vec<u8>>>> = vec![Vec::new(); 8];
        let mut gen = Generator::new(GenConfig { bad_ratio: 0.0, ..GenConfig::default() });
        for p in payloads {
            let key = gen.next_transaction().key; // the same key sequence as the payloads'
            parts[(vigil::types::key_hash(&key) % 8) as usize].push(Some(p.clone()));
        }
        parts.into_iter().map(Arc::new).collect()
    };
    let inputs = [(&json_job, topic(&json)), (&avro_job, topic(&avro)), (&pb_job, topic(&protobuf))];
    let mut rates = vec![Vec::new(); 3];
    for run in 0..runs {
        // the three inputs in turn, each run starting with another
        for i in (0..3).map(|i| (i + run) % 3) {
            let t = Instant::now();
            vigil::local::run_local(inputs[i].0, &inputs[i].1, 1, Arc::new(NullSink), Metrics::new())?;
            rates[i].push(args.events as f64 / t.elapsed().as_secs_f64());
        }
    }
    let [job_json, job_avro, job_pb] = [0, 1, 2].map(|i| median(rates[i].clone()));
    let out = outputs(&json_job, &inputs[0].1, runs)?;

    let k = |r: f64| format!("{:.0}", r / 1000.0);
    let heading = "## Formats: decoding JSON, Avro and Protobuf";
    let section = format!(
        "{heading} (measured {})\n\n\
         Machine: {}. Command: `{cmd}` (release build, from the repository root). The demo's transactions ({} events, no malformed records; \
         JSON {:.0} bytes per record, Avro {:.0}, Protobuf {:.0}), each also re-encoded as an Avro datum of one writer schema (`vigil::demo::avro`: time in a union of long, double \
         and string) and as a Protobuf message (`vigil::demo::protobuf`, encoded by prost-reflect; time a `google.protobuf.Timestamp`). Decode alone: one thread, every record, median of {runs}. Job: the fraud job's pipeline (decode, validate, 9 features, \
         score, encode), 1 worker, 8 partitions, in memory, the three inputs in turn run by run, median of {runs}.\n\n\
         | what | K records/s | ratio |\n|---|---:|---:|\n\
         | vigil JSON decoder (schema-driven serde visitor on serde_json, straight into the record) | {} | {:.2}x of `serde_json::Value` |\n\
         | plain parser: `serde_json::from_slice::<Value>` | {} | 1.00x |\n\
         | plain SIMD parser: `sonic_rs::from_slice::<Value>` (parse alone, no schema) | {} | {:.2}x |\n\
         | vigil Avro decoder (plan per writer schema, straight into the record) | {} | {:.2}x of apache-avro |\n\
         | plain parser: apache-avro `from_avro_datum` into its `Value` | {} | 1.00x |\n\
         | vigil Avro decoder against vigil's JSON decoder | | {:.2}x |\n\
         | vigil Protobuf decoder (plan per message type, straight into the record) | {} | {:.2}x of prost-reflect |\n\
         | plain parser: prost-reflect `DynamicMessage::decode` | {} | 1.00x |\n\
         | vigil Protobuf decoder against vigil's JSON decoder | | {:.2}x |\n\
         | fraud job, JSON input, 1 worker | {} | 1.00x |\n\
         | fraud job, Avro input, 1 worker | {} | {:.2}x of the JSON job |\n\
         | fraud job, Protobuf input, 1 worker | {} | {:.2}x of the JSON job |\n\
         | output: `scores` record re-encoded JSON to Confluent Avro (vigil, {:.0} to {:.0} bytes) | {} | {:.2}x of apache-avro |\n\
         | plain encoder: apache-avro `to_avro_datum` of the record's `Value`, built beforehand (a clone of it per call included) | {} | 1.00x |\n\
         | fraud job, JSON input, scores re-encoded as Avro, 1 worker | {} | {:.2}x of the JSON job |\n\n\
         Targets (#17): the fraud job in memory at >= 1M events/s per worker with JSON and >= 2M with Avro: not met; the job's features and \
         scoring, not the decoder, bound it (the Avro decoder alone runs at several times the job's rate).\n\n\
         A SIMD JSON parser was tried in the engine and not kept (commit 0d0145c, measured 2026-12-03 on this host with `--profile`): sonic-rs's \
         document parser alone reads these records at 3.8M/s, but parsing into its document and walking the fields by the same rules ran at \
         1.25M records/s against 1.65M for the serde_json visitor, and the visitor on sonic-rs's serde deserializer at 0.90x of the same visitor \
         on serde_json. On 150-byte records the decoder's time goes to the schema's work (name lookups, the record's own allocations), not to \
         scanning bytes.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        report::machine(),
        args.events,
        bytes(&json),
        bytes(&avro),
        bytes(&protobuf),
        k(vigil_json),
        vigil_json / serde_value,
        k(serde_value),
        k(sonic_value),
        sonic_value / serde_value,
        k(vigil_avro),
        vigil_avro / avro_value,
        k(avro_value),
        vigil_avro / vigil_json,
        k(vigil_pb),
        vigil_pb / pb_value,
        k(pb_value),
        vigil_pb / vigil_json,
        k(job_json),
        k(job_avro),
        job_avro / job_json,
        k(job_pb),
        job_pb / job_json,
        out.json_bytes,
        out.avro_bytes,
        k(out.reencode),
        out.reencode / out.apache,
        k(out.apache),
        k(out.job),
        out.job / job_json,
    );
    println!("{section}");
    report::write_section("benchmarks/RESULTS.md", heading, &section)
}
