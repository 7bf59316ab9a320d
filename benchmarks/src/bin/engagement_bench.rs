//! `engagement-bench`: the engagement example (`examples/engagement_users.toml`
//! and `engagement_videos.toml`: per-user windows, decayed scores, distinct
//! counts, a session window, a ratio to the 6-hour mean, daily windows on close
//! and the view-like interval join; per-video trending features with exact and
//! HyperLogLog unique viewers) end to end through the embedded Kafka broker.
//!
//! The synthetic feed (`vigil::demo::feed_generator`, 400,000 events by default) is
//! published to `feed` (by user) and `feed_by_video` (by video), 8 partitions
//! each. Then, median of 3 runs each, one worker per job: the user job alone, the
//! video job alone (each reads its topic from the beginning to its end and writes
//! scores, closed windows and join output), both jobs at once, and a plain
//! consume-and-produce passthrough of `feed` (the Kafka path's upper limit here,
//! capped by MockCluster itself). The same two jobs in memory (no Kafka, output
//! dropped) give the compute path's rate.
//!
//! Run: `cargo run --release -p vigil-benchmarks --bin engagement-bench`

#[path = "../report.rs"]
mod report;
use report::median;

#[path = "../kafka_bench.rs"]
#[allow(dead_code)]
mod kafka_bench;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{ensure, Result};
use clap::Parser;
use vigil::demo::feed_generator::{publish_feed, synthetic_feed};
use vigil::local::run_local;
use vigil::metrics::Metrics;
use vigil::output::NullSink;
use vigil::run::{run_job, RunOptions};
use vigil::spec::JobSpec;
use vigil::types::Control;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 400_000)]
    events: usize,
    /// Print only; do not write RESULTS.md.
    #[arg(long)]
    no_write: bool,
    /// Only the two jobs in memory, once (for profiling); writes nothing.
    #[arg(long)]
    memory_only: bool,
}

fn jobs() -> Result<[JobSpec; 2]> {
    let read = |name: &str| -> Result<JobSpec> {
        let path = format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"));
        JobSpec::from_toml(&std::fs::read_to_string(&path)?)
    };
    Ok([read("engagement_users.toml")?, read("engagement_videos.toml")?])
}

/// One job over its whole topic through Kafka: events/s from start to the last commit.
fn through_kafka(kafka: &vigil::kafka::KafkaOptions, job: &JobSpec, group: &str, events: usize) -> Result<f64> {
    let run = RunOptions { until_end: true, ..RunOptions::new(kafka.clone(), group, 1) };
    let metrics = Metrics::new();
    let t = Instant::now();
    run_job(job.clone(), &run, metrics.clone(), Control::new(), Arc::new(Mutex::new(None)))?;
    let secs = t.elapsed().as_secs_f64();
    ensure!(metrics.scores_out.get() == events as u64, "{}: scored {} of {events}", job.name, metrics.scores_out.get());
    Ok(events as f64 / secs)
}

/// Both jobs at once (two processes' worth of work on the 2 cores): total events/s.
fn both_through_kafka(kafka: &vigil::kafka::KafkaOptions, jobs: &[JobSpec; 2], run: usize, events: usize) -> Result<f64> {
    let t = Instant::now();
    let handles: Vec<_> = jobs
        .iter()
        .map(|job| {
            let (kafka, job) = (kafka.clone(), job.clone());
            let group = format!("{}-both-{run}", job.name);
            std::thread::spawn(move || through_kafka(&kafka, &job, &group, events))
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("a job panicked"))??;
    }
    Ok(2.0 * events as f64 / t.elapsed().as_secs_f64())
}

/// One job in memory (8 partitions, output dropped): events/s.
fn in_memory(job: &JobSpec, feed: &[serde_json::Value], key: &str) -> Result<f64> {
    let mut partitions = vec![Vec::new(); 8];
    for e in feed {
        let k = e[key].as_str().unwrap_or_default();
        partitions[(vigil::types::key_hash(k) % 8) as usize].push(Some(e.to_string().into_bytes()));
    }
    let topic = partitions.into_iter().map(Arc::new).collect();
    let t = Instant::now();
    run_local(job, &topic, 1, Arc::new(NullSink), Metrics::new())?;
    Ok(feed.len() as f64 / t.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let n = args.events;
    let jobs = jobs()?;
    if args.memory_only {
        let feed = synthetic_feed(n);
        println!("in memory: users {:.0}/s, videos {:.0}/s", in_memory(&jobs[0], &feed, "user_id")?, in_memory(&jobs[1], &feed, "video_id")?);
        return Ok(());
    }
    let topics = ["feed", "feed_by_video", "user_scores", "video_scores", "user_days", "user_likes", "dlq", "passthrough_out"];
    let (_broker, kafka) = kafka_bench::broker_with_topics(&topics)?;
    let feed = synthetic_feed(n);
    let t = Instant::now();
    publish_feed(&kafka, &feed)?;
    let publish_rate = 2.0 * n as f64 / t.elapsed().as_secs_f64();
    println!("published {n} events twice: {publish_rate:.0} records/s");

    let (mut users, mut videos, mut both, mut pass, mut mem_users, mut mem_videos) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for run in 0..3 {
        users.push(through_kafka(&kafka, &jobs[0], &format!("users-{run}"), n)?);
        videos.push(through_kafka(&kafka, &jobs[1], &format!("videos-{run}"), n)?);
        both.push(both_through_kafka(&kafka, &jobs, run, n)?);
        pass.push(kafka_bench::passthrough(&kafka, "feed", "passthrough_out", n as u64)?);
        mem_users.push(in_memory(&jobs[0], &feed, "user_id")?);
        mem_videos.push(in_memory(&jobs[1], &feed, "video_id")?);
        println!(
            "run {run}: users {:.0}/s, videos {:.0}/s, both {:.0}/s, passthrough {:.0}/s; in memory users {:.0}/s, videos {:.0}/s",
            users[run], videos[run], both[run], pass[run], mem_users[run], mem_videos[run]
        );
    }
    let (users, videos, both, pass, mem_users, mem_videos) = (median(users), median(videos), median(both), median(pass), median(mem_users), median(mem_videos));
    let heading = "## Engagement example end to end through Kafka";
    let row = |what: &str, rate: f64, ratio: String| format!("| {what} | {rate:.0} | {ratio} |");
    let pct = |r: f64| format!("{:.0}% of the passthrough", 100.0 * r / pass);
    let rows = [
        row("user job (8 features incl. session, ratio, daily windows on close, view-like interval join), 1 worker", users, pct(users)),
        row("video job (6 features incl. exact and HyperLogLog unique viewers), 1 worker", videos, pct(videos)),
        row("both jobs at once, events/s over both topics", both, format!("{:.0}% of 2x the passthrough", 50.0 * both / pass)),
        row("plain consume-and-produce passthrough of `feed` (upper limit of the Kafka path)", pass, "100%".into()),
        row("user job in memory (no Kafka, output dropped), 1 worker", mem_users, format!("Kafka path at {:.0}% of it", 100.0 * users / mem_users)),
        row("video job in memory (no Kafka, output dropped), 1 worker", mem_videos, format!("Kafka path at {:.0}% of it", 100.0 * videos / mem_videos)),
    ];
    let section = format!(
        "{heading} (measured {})\n\nMachine: {}. Command: `cargo run --release -p vigil-benchmarks --bin engagement-bench`.\n\n\
         {n} feed events (`vigil::demo::feed_generator`: 4,000 users, 400 videos, 8 hours of event time), published to `feed` and `feed_by_video` \
         (8 partitions each, {publish_rate:.0} records/s) on the embedded broker (MockCluster), then each job reads its topic from the beginning \
         to its end offsets (`--until-end`): decode, watermarks, features, scoring, scores + closed windows + join output produced, offsets \
         committed. Median of 3 runs. Both jobs share the 2 cores when run at once.\n\n\
         | what | events/s | ratio |\n|---|---|---|\n{}\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        report::machine(),
        rows.join("\n"),
    );
    println!("{section}");
    if !args.no_write {
        report::write_section("benchmarks/RESULTS.md", heading, &section)?;
    }
    Ok(())
}
