//! Nexmark on vigil's graph API: events/s per query on 1 and 2 workers, next to
//! Feldera's DBSP reference figures measured on this kind of machine.
//!
//! The events come from vigil's port of Beam's generator
//! (`vigil::nexmark::Generator`, default configuration), pre-generated before the
//! clock starts (generation is excluded), spread round-robin over 4 partitions,
//! and moved into the run through the values source (no bytes, no decoding: the
//! events enter as Rust values, as DBSP's do). A run ends when every output is
//! final (the end of the input closes every window); outputs are counted, not
//! kept. Median of `--runs`.
//!
//! `cargo run --release -p vigil-benchmarks --bin nexmark-bench -- --events 10000000 --runs 3`
//! writes its section of `benchmarks/RESULTS.md`.

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use vigil::graph::values_source::Values;
use vigil::graph::{GraphBuilder, LocalRun};
use vigil::nexmark::{queries, Event, Generator, GeneratorConfig};

#[path = "../report.rs"]
mod report;
use report::median;

#[path = "../kafka_bench.rs"]
#[allow(dead_code)]
mod kafka_bench;
use report::{machine, write_section};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Only these queries (e.g. `q0,q5`).
    #[arg(long)]
    queries: Option<String>,
    #[arg(long, default_value = "benchmarks/RESULTS.md")]
    out: String,
    /// Also run the queries in Apache Flink SQL with this Python (a virtual
    /// environment with `apache-flink`: `benchmarks/flink/setup.sh` makes one),
    /// over the same events written as JSON lines.
    #[arg(long)]
    flink: Option<String>,
    /// Flink's runs per query (each starts a job on a local cluster).
    #[arg(long, default_value_t = 1)]
    flink_runs: usize,
    /// Also run q0, q5 and q7 end to end through Kafka: `embedded` (the
    /// embedded mock broker) or HOST:PORT of a broker (`scripts/kafka.sh start`).
    #[arg(long)]
    kafka: Option<String>,
    /// What the broker is, for the table (e.g. "Apache Kafka 4.4.0, one KRaft node").
    #[arg(long, default_value = "")]
    kafka_about: String,
    /// Runs only this query, on `--profile-workers` workers, `--runs` times,
    /// printing the rates and writing nothing: for a profiler.
    #[arg(long)]
    profile: Option<String>,
    #[arg(long, default_value_t = 1)]
    profile_workers: usize,
    /// Events published for the Kafka runs.
    #[arg(long, default_value_t = 1_000_000)]
    kafka_events: usize,
}

const PARTITIONS: usize = 4;

/// The queries, with Feldera's DBSP Nexmark on this kind of machine (one
/// worker, 10M events, K events/s; DBSP has no q6; no figures were given for
/// q11, q14 and q17-q20).
const DBSP: &[(&str, f64)] = &[
    ("q0", 1284.0),
    ("q1", 929.0),
    ("q2", 1594.0),
    ("q3", 1409.0),
    ("q4", 909.0),
    ("q5", 1233.0),
    ("q6", f64::NAN),
    ("q7", 883.0),
    ("q8", 1359.0),
    ("q9", 239.0),
];

/// Every row the table may have, in order: the queries and, after q4 and q9,
/// their first formulation (the SQL as written: a differential join).
const ROWS: [&str; 18] = ["q0", "q1", "q2", "q3", "q4", "q4-join", "q5", "q6", "q7", "q8", "q9", "q9-join", "q11", "q14", "q17", "q18", "q19", "q20"];

/// The query a row measures (`q4` for `q4-join`): its DBSP and Flink figures.
fn query_of(row: &str) -> &str {
    row.split('-').next().unwrap_or(row)
}

fn run(q: &'static str, workers: usize, parts: Vec<Vec<Event>>, n: usize) -> Result<(f64, u64)> {
    let t = Instant::now();
    let out = LocalRun::new(workers).count_only().values("nexmark", parts).run(move |g: &mut GraphBuilder<'_>| {
        let events = g.source_values(Values::new("nexmark", Event::date_time));
        queries::sink_query(q, &events, "out")
    })?;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    Ok((rate, out.written.get("out").copied().unwrap_or(0)))
}

/// Flink's events/s per query (its job's net runtime: from running to
/// finished, without planning and the local cluster's start), and a line
/// saying what ran.
fn flink(python: &str, parts: &[Vec<Event>], queries: &[&str], runs: usize) -> Result<(Vec<(String, f64)>, String)> {
    use std::io::Write;
    let dir = std::path::Path::new("target/nexmark-flink");
    std::fs::create_dir_all(dir)?;
    let events = dir.join("events.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&events)?);
    // the generator's order: partition i holds events i, i + P, ...
    let longest = parts.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for p in parts {
            if let Some(e) = p.get(i) {
                serde_json::to_writer(&mut file, e)?;
                file.write_all(b"\n")?;
            }
        }
    }
    file.flush()?;
    drop(file);
    let results = dir.join("results.json");
    let flink_queries: Vec<&str> = queries.iter().copied().filter(|q| *q != "q6" && query_of(q) == *q).collect();
    let status = std::process::Command::new(python)
        .args(["benchmarks/flink/run_flink_nexmark.py", "--events-file"])
        .arg(&events)
        .args(["--queries", &flink_queries.join(","), "--repeat", &runs.to_string(), "--baselines", "read", "--log-dir", "target/nexmark-flink/logs", "--out"])
        .arg(&results)
        .status()?;
    anyhow::ensure!(status.success(), "the Flink runner failed ({status})");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&results)?)?;
    let _ = std::fs::remove_file(&events);
    let rates =
        r["results"].as_object().map(|m| m.iter().filter_map(|(q, v)| Some((q.clone(), v["events_per_s_net"].as_f64()?))).collect()).unwrap_or_default();
    let about = format!(
        "Apache Flink {} (PyFlink, Java {}), streaming mode, parallelism 1, one task slot, in-memory state, no checkpoints, each query to a blackhole sink, \
         the same events as JSON lines from a file (Flink parses them: its `read` job, the file into a blackhole, ran at {:.0}K events/s); \
         events/s from each job's net runtime (running to finished), median of {runs}, one JVM for all jobs",
        r["flink_version"].as_str().unwrap_or("?"),
        r["java_version_line"].as_str().unwrap_or("?").split('"').nth(1).unwrap_or("?"),
        r["results"]["read"]["events_per_s_net"].as_f64().unwrap_or(f64::NAN) / 1e3,
    );
    Ok((rates, about))
}

const KAFKA_QUERIES: [&str; 3] = ["q0", "q5", "q7"];
const KAFKA_PARTITIONS: u32 = 4;

/// q0, q5 and q7 through a broker: the events published to a topic (timed
/// apart), then each query reading it to its end and writing its results to a
/// topic, on 1 and 2 workers, next to a plain consume-and-produce loop over the
/// same topic. Returns the section.
fn kafka(args: &Args, brokers: &str) -> Result<String> {
    use vigil::kafka::KafkaOptions;
    use vigil::nexmark::kafka as nk;
    let embedded = (brokers == "embedded").then(|| vigil::demo::broker::EmbeddedBroker::start(1)).transpose()?;
    let opts = match &embedded {
        Some(b) => b.kafka_options(),
        None => KafkaOptions::new(brokers),
    };
    // fresh topics per run: a real broker keeps the last run's records
    let tag = format!("nexmark-bench-{}", std::process::id());
    let topic = |name: &str| -> Result<String> {
        let t = format!("{tag}-{name}");
        match &embedded {
            Some(b) => b.create_topic(&t, KAFKA_PARTITIONS as i32)?,
            None => drop(vigil::kafka::ensure_topic(&opts, &t, KAFKA_PARTITIONS, 1)?),
        }
        Ok(t)
    };
    let (input, dlq) = (topic("events")?, topic("dlq")?);
    let n = args.kafka_events;
    let t = Instant::now();
    nk::publish(&opts, &input, KAFKA_PARTITIONS, Generator::new(GeneratorConfig::default()).take(n))?;
    let publish_rate = n as f64 / t.elapsed().as_secs_f64();
    let (mut pass, pass_topic) = (Vec::new(), topic("pass")?);
    for _ in 0..args.runs {
        pass.push(kafka_bench::passthrough_partitions(&opts, &input, &pass_topic, n as u64, KAFKA_PARTITIONS as i32)?);
    }
    let pass = median(pass);
    println!("kafka: published {n} at {:.0}K/s, passthrough {:.0}K/s", publish_rate / 1e3, pass / 1e3);
    let mut rows = Vec::new();
    for q in KAFKA_QUERIES {
        // one results topic per query: every run appends to it
        let out = topic(q)?;
        let (w1, w2, written) = on_1_and_2_workers(args.runs, |workers| {
            let run =
                vigil::kafka::KafkaRun::new(opts.clone()).workers(workers).until_end().dlq_topic(&dlq).epoch_interval(std::time::Duration::from_millis(100));
            let (source, sink) = (input.clone(), out.clone());
            let t = Instant::now();
            let summary = run.run(move |g| {
                let events = g.source_decoded(nk::source(&source), nk::decode);
                queries::sink_query(q, &events, &sink)
            })?;
            let rate = n as f64 / t.elapsed().as_secs_f64();
            let accepted = summary.sources.get(&input).map_or(0, |c| c.accepted);
            anyhow::ensure!(accepted == n as u64, "{q} on Kafka accepted {accepted} of {n} events");
            Ok((rate, summary.produced.get(&out).copied().unwrap_or(0)))
        })?;
        println!("kafka {q}: 1 worker {:.0}K/s, 2 workers {:.0}K/s, {written} outputs", w1 / 1e3, w2 / 1e3);
        rows.push(format!("| {q} | {:.0} | {:.0} | {:.0}% | {written} |", w1 / 1e3, w2 / 1e3, 100.0 * w1 / pass));
    }
    let about = if args.kafka_about.is_empty() { brokers.to_owned() } else { args.kafka_about.clone() };
    let broker = match &embedded {
        Some(_) => "the embedded broker (librdkafka's mock cluster: it keeps ~5 MB per partition and answers empty fetches only after the full wait; judge by the ratio to the passthrough)".to_owned(),
        None => format!("{about} on this machine"),
    };
    Ok(format!(
        "### Nexmark through Kafka\n\n\
         {n} events published to one topic of {KAFKA_PARTITIONS} partitions on {broker} \
         (`vigil nexmark gen`'s format: one JSON event per record; published at {:.0}K events/s, not timed below). \
         Each query reads the topic to its end with the Nexmark decoder (`source_decoded`), from the first record, \
         and writes its results to a topic of its own (`vigil nexmark run --until-end`); \
         K events/s from the run's start until its outputs are flushed, median of {}. \
         The broker's JVM runs on the same two cores. \
         For scale: a plain single-threaded loop (rdkafka `BaseConsumer::poll`, each record produced to another topic) ran {:.0}K events/s (median of {}).\n\n\
         | query | vigil 1 worker | vigil 2 workers | 1 worker / plain loop | outputs |\n|---|---|---|---|---|\n{}\n",
        publish_rate / 1e3,
        args.runs,
        pass / 1e3,
        args.runs,
        rows.join("\n")
    ))
}

/// `measure(workers)` `runs` times on 1 and on 2 workers (alternating):
/// the median rate of each, and the outputs of the last run.
fn on_1_and_2_workers(runs: usize, mut measure: impl FnMut(usize) -> Result<(f64, u64)>) -> Result<(f64, f64, u64)> {
    let mut rates = [Vec::new(), Vec::new()];
    let mut written = 0;
    for _ in 0..runs {
        for (i, workers) in [1, 2].into_iter().enumerate() {
            let (rate, w) = measure(workers)?;
            rates[i].push(rate);
            written = w;
        }
    }
    Ok((median(rates[0].clone()), median(rates[1].clone()), written))
}

/// What a run of some queries keeps from the section it replaces.
struct Earlier {
    /// The rows of the queries not run now: the row's name and line.
    rows: Vec<(String, String)>,
    /// The earlier run's command.
    command: String,
    /// Its "through Kafka" part.
    kafka: String,
}

impl Earlier {
    fn read(path: &str, chosen: &[&str]) -> Earlier {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let section: Vec<&str> = text.lines().skip_while(|l| *l != "## Nexmark (graph API)").skip(1).take_while(|l| !l.starts_with("## ")).collect();
        let table_end = section.iter().position(|l| l.starts_with("### ")).unwrap_or(section.len());
        let command = section.iter().find_map(|l| l.split("Command: `").nth(1)).and_then(|c| c.split('`').next()).unwrap_or("").to_owned();
        let mut rows = Vec::new();
        for line in &section[..table_end] {
            let Some(q) = line.strip_prefix("| ").and_then(|l| l.split(' ').next()) else { continue };
            if ROWS.contains(&q) && !chosen.contains(&q) {
                rows.push((q.to_owned(), line.to_string()));
            }
        }
        let kafka = match section.iter().position(|l| l.starts_with("### Nexmark through Kafka")) {
            Some(i) => section[i..].join("\n").trim_end().to_owned() + "\n",
            None => String::new(),
        };
        Earlier { rows, command, kafka }
    }

    /// Says which rows were kept (a kept Kafka part says its own run, as its
    /// text was written).
    fn note(&self) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        format!(
            " Rows {} are from the run this one replaced (`{}`), not re-measured: each row's Flink figure comes from the same run as its vigil figures.",
            self.rows.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>().join(", "),
            self.command
        )
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let t = Instant::now();
    let mut parts: Vec<Vec<Event>> = vec![Vec::with_capacity(args.events / PARTITIONS + 1); PARTITIONS];
    for (i, e) in Generator::new(GeneratorConfig::default()).take(args.events).enumerate() {
        parts[i % PARTITIONS].push(e);
    }
    println!("generated {} events in {:.1} s", args.events, t.elapsed().as_secs_f64());
    if let Some(q) = &args.profile {
        let q: &'static str = ROWS.iter().find(|n| *n == q).ok_or_else(|| anyhow::anyhow!("no query {q}"))?;
        for _ in 0..args.runs {
            let (rate, _) = run(q, args.profile_workers, parts.clone(), args.events)?;
            println!("{q}: {:.0}K/s on {} workers", rate / 1e3, args.profile_workers);
        }
        return Ok(());
    }
    let chosen: Vec<&'static str> = ROWS.iter().copied().filter(|q| args.queries.as_deref().is_none_or(|list| list.split(',').any(|x| x == *q))).collect();
    let (flink_rates, flink_about) = match &args.flink {
        Some(python) => flink(python, &parts, &chosen, args.flink_runs)?,
        None => (Vec::new(), "Apache Flink: not run (`--flink`)".to_owned()),
    };
    let mut rows = Vec::new();
    for q in chosen.iter().copied() {
        // a fresh copy per run, made before the clock starts: the run moves it in
        let (w1, w2, written) = on_1_and_2_workers(args.runs, |workers| run(q, workers, parts.clone(), args.events))?;
        let dbsp = DBSP.iter().find(|(x, _)| query_of(q) == *x).map_or(f64::NAN, |(_, r)| *r * 1e3);
        println!("{q}: 1 worker {:.0}K/s, 2 workers {:.0}K/s, DBSP {:.0}K/s, {written} outputs", w1 / 1e3, w2 / 1e3, dbsp / 1e3);
        let (reference, ratio) = if dbsp.is_nan() { ("-".to_owned(), "-".to_owned()) } else { (format!("{:.0}", dbsp / 1e3), format!("{:.2}x", w1 / dbsp)) };
        let (fl, fl_ratio) = match flink_rates.iter().find(|(x, _)| query_of(q) == x) {
            Some((_, r)) => (format!("{:.0}", r / 1e3), format!("{:.1}x", w1 / r)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        rows.push(format!("| {q} | {:.0} | {:.0} | {reference} | {ratio} | {fl} | {fl_ratio} | {written} |", w1 / 1e3, w2 / 1e3));
    }
    // a run of some queries (`--queries`) keeps the other rows, and the Kafka
    // part when it is not run, from the section it replaces, and says so
    let earlier = Earlier::read(&args.out, &chosen);
    rows.extend(earlier.rows.iter().map(|(_, line)| line.clone()));
    rows.sort_by_key(|r| ROWS.iter().position(|q| r.starts_with(&format!("| {q} |"))));
    let kafka_section = match &args.kafka {
        Some(brokers) => kafka(&args, brokers)?,
        None => earlier.kafka.clone(),
    };
    let cmd = std::env::args().collect::<Vec<_>>().join(" ");
    let section = format!(
        "## Nexmark (graph API)\n\nMachine: {}. Command: `{cmd}`.\n\n\
         {} events from vigil's port of Beam's generator (default configuration: 10 ms of event time apart), pre-generated (not timed), \
         {PARTITIONS} partitions round-robin, moved into the run as Rust values (the values source; no decoding, as DBSP's events). \
         Median of {} runs; K events/s of the whole run (until every output is final). \
         DBSP: Feldera's figures measured on this kind of machine (one worker, 10M events, its generator on the other core), quoted, not re-run (figures given for q0-q9, none for q6). \
         {flink_about}. Flink has no q6 (its SQL is not supported there).{}\n\n\
         | query | vigil 1 worker | vigil 2 workers | DBSP 1 worker (reference) | vigil 1 worker / DBSP | Flink 1 slot | vigil 1 worker / Flink | outputs |\n|---|---|---|---|---|---|---|---|\n{}\n\n{kafka_section}",
        machine(),
        args.events,
        args.runs,
        earlier.note(),
        rows.join("\n")
    );
    write_section(&args.out, "## Nexmark (graph API)", &section)?;
    println!("wrote {}", args.out);
    Ok(())
}
