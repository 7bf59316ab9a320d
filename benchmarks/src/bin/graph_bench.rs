//! The graph API's cost: a two-topic interval join (transactions within 10
//! minutes after a login of the same card) through `vigil::graph` on 1 and 2
//! workers, against a plain loop doing the same work in one thread (decode with
//! the same decoder, the same watermarks, the same join state machine), and a
//! graph that only decodes (source -> count) to show the source's share.
//!
//! `cargo run --release -p vigil-benchmarks --bin graph-bench -- --events 1000000 --runs 3`
//! writes its section of `benchmarks/RESULTS.md`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use rand::{Rng, SeedableRng};
use vigil::decode::Decoder;
use vigil::graph::{LocalRun, Source};
use vigil::spec::FieldType;
use vigil::watermark::{PartitionClock, TimePolicy};
use vigil_operators::stream_join::StreamJoin;

#[path = "../report.rs"]
mod report;
use report::median;
use report::{machine, write_section};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Transactions (logins are a quarter as many).
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long, default_value_t = 4)]
    partitions: usize,
    /// Only the graph join on one worker, once (for profiling).
    #[arg(long)]
    profile: bool,
    /// Do not write RESULTS.md.
    #[arg(long)]
    dry_run: bool,
}

const T0: i64 = 1_700_000_000_000;
const LATENESS_MS: i64 = 2_000;
const BEFORE_MS: i64 = 600_000;

/// Transactions and logins, keyed by card, each card in one partition; times
/// rise with up to 1 s of disorder.
fn topics(events: usize, partitions: usize) -> (Vec<Vec<Vec<u8>>>, Vec<Vec<Vec<u8>>>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let cards = (events / 10).max(1);
    let mut tx = vec![Vec::new(); partitions];
    let mut logins = vec![Vec::new(); partitions];
    for i in 0..events {
        let card = rng.gen_range(0..cards);
        let p = card % partitions;
        let ts = T0 + (i as i64) * 2 + rng.gen_range(0..1_000);
        if i % 4 == 0 {
            // a login of the card now; its later transactions within 10 minutes join it
            let at = ts + rng.gen_range(0..1_000);
            logins[p].push(format!(r#"{{"card":"c{card}","ts":{at},"device":"d{}"}}"#, rng.gen_range(0..1000)).into_bytes());
        }
        tx[p]
            .push(format!(r#"{{"card":"c{card}","ts":{ts},"amount":{:.2},"merchant":"m{}"}}"#, rng.gen_range(1.0..500.0), rng.gen_range(0..5000)).into_bytes());
    }
    (tx, logins)
}

fn tx_source() -> Source {
    Source::json("tx").key("card").lateness(Duration::from_millis(LATENESS_MS as u64)).field("amount", FieldType::F64).field("merchant", FieldType::Str)
}

fn login_source() -> Source {
    Source::json("logins").key("card").lateness(Duration::from_millis(LATENESS_MS as u64)).field("device", FieldType::Str)
}

/// The join through the graph; returns (seconds, pairs).
fn graph_join(workers: usize, tx: &[Vec<Vec<u8>>], logins: &[Vec<Vec<u8>>]) -> Result<(f64, u64)> {
    let pairs = Arc::new(AtomicU64::new(0));
    let counter = pairs.clone();
    let run = LocalRun::new(workers).epoch_records(4096).topic("tx", tx.to_vec()).topic("logins", logins.to_vec());
    let start = Instant::now();
    run.run(move |g| {
        let tx = g.source(tx_source());
        let logins = g.source(login_source());
        let counter = counter.clone();
        tx.interval_join("tx_after_login", &logins, Duration::from_millis(BEFORE_MS as u64), Duration::ZERO).inspect(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        Ok(())
    })?;
    Ok((start.elapsed().as_secs_f64(), pairs.load(Ordering::Relaxed)))
}

/// Only the sources (decode, validate, watermarks) and a count.
fn graph_decode(workers: usize, tx: &[Vec<Vec<u8>>], logins: &[Vec<Vec<u8>>]) -> Result<f64> {
    let run = LocalRun::new(workers).epoch_records(4096).topic("tx", tx.to_vec()).topic("logins", logins.to_vec());
    let start = Instant::now();
    run.run(|g| {
        g.source(tx_source()).inspect(|_| {});
        g.source(login_source()).inspect(|_| {});
        Ok(())
    })?;
    Ok(start.elapsed().as_secs_f64())
}

/// The same join in one plain loop: partitions in turn, 4096 records at a time,
/// each side's watermark the least of its partitions'.
fn plain_join(tx: &[Vec<Vec<u8>>], logins: &[Vec<Vec<u8>>]) -> (f64, u64) {
    let start = Instant::now();
    let (txd, lgd) = (Decoder::for_source(tx_source().spec(), &["merchant".into()]), Decoder::for_source(login_source().spec(), &["device".into()]));
    let policy = TimePolicy { allowed_lateness_ms: LATENESS_MS, max_future_ms: 3_600_000 };
    let mut join = StreamJoin::<(f64, Option<String>), Option<String>>::new(BEFORE_MS, 0);
    let mut out = Vec::new();
    let mut pairs = 0u64;
    let (mut tclocks, mut lclocks) = (vec![PartitionClock::default(); tx.len()], vec![PartitionClock::default(); logins.len()]);
    let now = (vigil::types::now_us() / 1000) as i64;
    let longest = tx.iter().chain(logins).map(Vec::len).max().unwrap_or(0);
    for chunk in (0..longest).step_by(4096) {
        for (p, records) in tx.iter().enumerate() {
            for bytes in records.iter().skip(chunk).take(4096) {
                let Ok(d) = txd.decode(Some(bytes), &mut |_| {}) else { continue };
                if tclocks[p].admit(d.time_ms, now, &policy).is_ok() {
                    join.left(&d.key, d.time_ms, (d.numeric[0], d.strings[0].clone()), &mut out);
                    pairs += out.len() as u64;
                    out.clear();
                }
            }
        }
        for (p, records) in logins.iter().enumerate() {
            for bytes in records.iter().skip(chunk).take(4096) {
                let Ok(d) = lgd.decode(Some(bytes), &mut |_| {}) else { continue };
                if lclocks[p].admit(d.time_ms, now, &policy).is_ok() {
                    join.right(&d.key, d.time_ms, d.strings[0].clone(), &mut out);
                    pairs += out.len() as u64;
                    out.clear();
                }
            }
        }
        let low = |clocks: &[PartitionClock]| clocks.iter().map(|c| c.watermark(&policy).unwrap_or(i64::MIN)).min().unwrap_or(i64::MIN);
        join.left_watermark(low(&tclocks));
        join.right_watermark(low(&lclocks));
    }
    (start.elapsed().as_secs_f64(), pairs)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (tx, logins) = topics(args.events, args.partitions);
    let total = (tx.iter().map(Vec::len).sum::<usize>() + logins.iter().map(Vec::len).sum::<usize>()) as f64;
    if args.profile {
        let (s, p) = graph_join(1, &tx, &logins)?;
        eprintln!("graph 1w: {:.0}/s, {p} pairs", total / s);
        return Ok(());
    }
    let (mut plain, mut g1, mut g2, mut d1, mut d2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut pair_counts = Vec::new();
    for run in 0..args.runs {
        // interleaved, so that machine noise falls on all alike
        let (s, p) = plain_join(&tx, &logins);
        plain.push(total / s);
        pair_counts.push(p);
        let (s, p) = graph_join(1, &tx, &logins)?;
        g1.push(total / s);
        pair_counts.push(p);
        let (s, p) = graph_join(2, &tx, &logins)?;
        g2.push(total / s);
        pair_counts.push(p);
        d1.push(total / graph_decode(1, &tx, &logins)?);
        d2.push(total / graph_decode(2, &tx, &logins)?);
        eprintln!("run {run}: plain {:.0}/s, graph 1w {:.0}/s, 2w {:.0}/s, decode only 1w {:.0}/s, 2w {:.0}/s", plain[run], g1[run], g2[run], d1[run], d2[run]);
    }
    pair_counts.dedup();
    anyhow::ensure!(pair_counts.len() == 1, "the runs disagree on the number of pairs: {pair_counts:?}");
    let (p, a, b) = (median(plain), median(g1), median(g2));
    let (da, db) = (median(d1), median(d2));
    let k = |x: f64| format!("{:.0}K", x / 1000.0);
    let section = format!(
        "## Graph API: two-topic interval join (measured {})\n\n\
         {} transactions and {} logins in {} partitions each (cards in one partition each, up to 1 s of disorder), \
         transactions joined with the same card's logins up to 10 minutes before; {} pairs. In memory, median of {} interleaved runs; \
         events/s counts both topics. Machine: {}. Command: `cargo run --release -p vigil-benchmarks --bin graph-bench -- --events {} --runs {}`.\n\n\
         | | events/s | vs plain loop |\n|---|---:|---:|\n\
         | plain loop, one thread (same decoder, watermarks and join state machine) | {} | 1.00 |\n\
         | graph, 1 worker | {} | {:.2} |\n\
         | graph, 2 workers | {} | {:.2} |\n\
         | graph, sources only (decode, validate, watermarks), 1 worker | {} | {:.2} |\n\
         | graph, sources only, 2 workers | {} | {:.2} |\n\n\
         The graph's cost over the loop on one worker: every event moves through timely's exchange to its key's worker with its \
         envelope (key, time, origin, offset), watermarks travel as marks, and the join takes its input in epoch order (so that its \
         state can be checkpointed exactly). A second worker takes the graph past one thread of the plain loop.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        tx.iter().map(Vec::len).sum::<usize>(),
        logins.iter().map(Vec::len).sum::<usize>(),
        args.partitions,
        pair_counts[0],
        args.runs,
        machine(),
        args.events,
        args.runs,
        k(p),
        k(a),
        a / p,
        k(b),
        b / p,
        k(da),
        da / p,
        k(db),
        db / p,
    );
    println!("{section}");
    if !args.dry_run {
        write_section("benchmarks/RESULTS.md", "## Graph API: two-topic interval join", &section)?;
    }
    Ok(())
}
