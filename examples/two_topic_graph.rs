//! A graph with two topics on Kafka: card transactions and logins.
//!
//! - a user closure drops test merchants;
//! - a user operator with event-time timers flags a card's burst (its third
//!   transaction within a minute) and forgets the card after a quiet minute;
//! - an interval join pairs each transaction with the same card's logins of the
//!   minute before it (two topics, each with its own watermark);
//! - a differential view counts flagged transactions per merchant, written as an
//!   upsert topic (`merchant_risk`);
//! - bad records go to `dlq`, and checkpoints (with `--checkpoints DIR`) let a
//!   killed run resume where it stopped.
//!
//! ```text
//! cargo run --release --example two_topic_graph                  # embedded broker, generated data
//! cargo run --release --example two_topic_graph -- --brokers HOST:9092 --checkpoints /var/lib/vigil/graph
//! cargo run --release --example two_topic_graph -- --brokers HOST:9092 --generate 100000   # only write input
//! ```
//!
//! Options: `--workers N` (2), `--hosts H0:P,H1:P,..` with `--process I` (this
//! process of a timely cluster), `--checkpoints DIR` with `--every K` epochs (5),
//! `--epoch-ms MS` (200), `--pace N` (at most N records per source and worker
//! per epoch), `--until-end` (stop at the end of the topics as of the
//! start; always so on the embedded broker).

use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use vigil::demo::broker::EmbeddedBroker;
use vigil::graph::{GraphBuilder, KeyContext, KeyedOperator, Record, Source};
use vigil::kafka::KafkaOptions;
use vigil::kafka::KafkaRun;
use vigil::spec::FieldType;

/// A card's third transaction within a minute.
#[derive(Default)]
struct Burst;

impl KeyedOperator for Burst {
    type In = Record;
    type Out = String;
    /// The card's transaction times within the last minute.
    type State = Vec<i64>;
    fn on_event(&mut self, tx: &Record, recent: &mut Vec<i64>, ctx: &mut KeyContext<'_, String>) {
        let now = ctx.time();
        recent.retain(|t| now - t < 60_000);
        recent.push(now);
        if recent.len() >= 3 {
            ctx.emit(tx.str("merchant").unwrap_or("?").to_owned());
        }
        ctx.timer_at(now + 60_000);
    }
    fn on_timer(&mut self, timer: i64, _: &mut Vec<i64>, ctx: &mut KeyContext<'_, String>) {
        if !ctx.has_timer_after(timer) {
            ctx.clear(); // a quiet minute: forget the card
        }
    }
}

/// The graph, built on every worker.
pub fn graph(g: &mut GraphBuilder<'_>) -> Result<()> {
    let tx = g.source(
        Source::json("transactions")
            .key("card")
            .event_time("ts")
            .lateness(Duration::from_secs(5))
            .field("merchant", FieldType::Str)
            .field("amount", FieldType::F64),
    );
    let logins = g.source(Source::json("logins").key("card").event_time("ts").lateness(Duration::from_secs(10)).field("device", FieldType::Str));
    let tx = tx.filter(|r| !r.str("merchant").is_some_and(|m| m.starts_with("test-")));
    let bursts = tx.stateful("burst", Burst);
    bursts.sink("bursts");
    tx.interval_join("tx_after_login", &logins, Duration::from_secs(60), Duration::ZERO)
        .map(|(t, l)| serde_json::json!({"merchant": t.str("merchant"), "amount": t.f64("amount"), "device": l.str("device")}))
        .sink("tx_after_login");
    bursts.view("burst_merchants", |r| r.value.clone()).count().sink_upsert("merchant_risk");
    Ok(())
}

/// Writes `n` generated transactions (3 partitions) and logins (2 partitions),
/// cards keyed to partitions, with a few broken records.
pub fn generate(opts: &KafkaOptions, n: usize) -> Result<()> {
    let producer: BaseProducer = opts.client_config().create()?;
    let t0 = 1_700_000_000_000i64;
    let mut state = 42u64;
    let mut next = move |m: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let send = |topic: &str, partition: i32, payload: Vec<u8>| -> Result<()> {
        let mut r = BaseRecord::<[u8], [u8]>::to(topic).partition(partition).payload(&payload);
        while let Err((e, back)) = producer.send(r) {
            anyhow::ensure!(matches!(e, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)), "{e}");
            producer.poll(Duration::from_millis(5));
            r = back;
        }
        Ok(())
    };
    for i in 0..n as i64 {
        let card = next(200);
        let ts = t0 + i * 200 + next(3_000) as i64;
        let merchant = if next(50) == 0 { "test-shop".to_owned() } else { format!("m{}", next(30)) };
        send(
            "transactions",
            (card % 3) as i32,
            format!(r#"{{"card":"c{card}","ts":{ts},"merchant":"{merchant}","amount":{}}}"#, next(50_000) as f64 / 100.0).into_bytes(),
        )?;
        if next(5) == 0 {
            send("logins", (card % 2) as i32, format!(r#"{{"card":"c{card}","ts":{},"device":"d{}"}}"#, ts - next(2_000) as i64, next(9)).into_bytes())?;
        }
        if i % 500 == 0 {
            send("transactions", (i % 3) as i32, b"{\"card\": 12, \"ts\": \"not a time\"}".to_vec())?;
        }
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> Result<()> {
    let _failpoints = fail::FailScenario::setup();
    let args: Vec<String> = std::env::args().collect();
    let workers: usize = arg(&args, "--workers").map(|w| w.parse()).transpose().context("--workers")?.unwrap_or(2);
    let embedded;
    let opts = match arg(&args, "--brokers") {
        Some(b) if args.iter().any(|a| a == "--generate") => {
            // only write the generated topics (they must exist)
            return generate(&KafkaOptions::new(&b), arg(&args, "--generate").unwrap_or_default().parse().context("--generate N")?);
        }
        Some(b) => KafkaOptions::new(&b),
        None => {
            embedded = EmbeddedBroker::start(1)?;
            for (topic, partitions) in [("transactions", 3), ("logins", 2), ("bursts", 2), ("tx_after_login", 2), ("merchant_risk", 2), ("dlq", 1)] {
                embedded.create_topic(topic, partitions)?;
            }
            let opts = embedded.kafka_options();
            generate(&opts, 20_000)?;
            opts
        }
    };
    let mut run = KafkaRun::new(opts.clone())
        .workers(workers)
        .epoch_interval(Duration::from_millis(arg(&args, "--epoch-ms").map(|e| e.parse()).transpose()?.unwrap_or(200)));
    if arg(&args, "--brokers").is_none() || args.iter().any(|a| a == "--until-end") {
        run = run.until_end();
    }
    if let Some(hosts) = arg(&args, "--hosts") {
        let process = arg(&args, "--process").map(|p| p.parse()).transpose().context("--process I")?.unwrap_or(0);
        run = run.cluster(process, hosts.split(',').map(str::to_owned).collect());
    }
    if let Some(n) = arg(&args, "--pace") {
        run = run.max_records_per_epoch(n.parse().context("--pace N")?);
    }
    if let Some(dir) = arg(&args, "--checkpoints") {
        run = run.checkpoints(std::path::Path::new(&dir), arg(&args, "--every").map(|e| e.parse()).transpose()?.unwrap_or(5));
    }
    let out = run.run(graph)?;
    for (topic, counts) in &out.sources {
        println!("{topic}: read {}, accepted {}, rejected {:?}", counts.read, counts.accepted, counts.rejected);
    }
    for (topic, n) in &out.produced {
        println!("wrote {n} records to {topic}");
    }
    println!("checkpoints: {:?}", out.checkpoints);
    Ok(())
}
