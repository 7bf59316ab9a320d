//! Benchmarks through the embedded broker: the job end to end, a plain
//! consume-and-produce passthrough (the Kafka path's upper limit), latency at a
//! paced rate, and the CPU an idle job burns.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::fraud_job;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::read::read_topic;
use vigil::kafka::KafkaOptions;
use vigil::metrics::Metrics;
use vigil::run::{run_job, RunOptions};
use vigil::types::Control;

pub const PARTITIONS: i32 = 8;

pub fn broker_with_topics(topics: &[&str]) -> Result<(EmbeddedBroker, KafkaOptions)> {
    let broker = EmbeddedBroker::start(1)?;
    for t in topics {
        broker.create_topic(t, PARTITIONS)?;
    }
    let kafka = broker.kafka_options();
    Ok((broker, kafka))
}

pub fn prefill(kafka: &KafkaOptions, topic: &str, events: u64) -> Result<f64> {
    let opts = PublishOptions { topic: topic.into(), labels_topic: None, logins_topic: None, events, rate: None };
    let t = Instant::now();
    publish(kafka, GenConfig::default(), &opts, &PublishProgress::default(), &never())?;
    Ok(events as f64 / t.elapsed().as_secs_f64())
}

/// The fraud job over a prefilled topic: events/s from start to the last commit.
pub fn job_over_prefilled(kafka: &KafkaOptions, events: u64, workers: usize) -> Result<f64> {
    let run = RunOptions { until_end: true, ..RunOptions::new(kafka.clone(), &format!("bench-w{workers}"), workers) };
    let metrics = Metrics::new();
    let t = Instant::now();
    run_job(fraud_job(), &run, metrics.clone(), Control::new(), Arc::new(Mutex::new(None)))?;
    let secs = t.elapsed().as_secs_f64();
    let done = metrics.scores_out.get() + metrics.dlq_total();
    anyhow::ensure!(done == events, "job handled {done} of {events}");
    Ok(events as f64 / secs)
}

/// Generator -> Kafka -> job -> Kafka, all at once: events/s over the whole run.
pub fn concurrent_end_to_end(kafka: &KafkaOptions, events: u64) -> Result<f64> {
    let end = Arc::new(Mutex::new(None));
    let t = Instant::now();
    let gen = {
        let (kafka, end) = (kafka.clone(), end.clone());
        std::thread::spawn(move || -> Result<()> {
            let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events, rate: None };
            publish(&kafka, GenConfig::default(), &opts, &PublishProgress::default(), &never())?;
            let admin = kafka.admin_consumer("bench")?;
            let ends = vigil::kafka::end_offsets(&admin, "transactions", PARTITIONS as u32)?;
            *end.lock().unwrap() = Some(ends.into_iter().enumerate().map(|(p, o)| (p as u32, o)).collect());
            Ok(())
        })
    };
    let run = RunOptions { until_end: false, ..RunOptions::new(kafka.clone(), "bench-concurrent", 1) };
    run_job(fraud_job(), &run, Metrics::new(), Control::new(), end)?;
    gen.join().map_err(|_| anyhow::anyhow!("generator panicked"))??;
    Ok(events as f64 / t.elapsed().as_secs_f64())
}

/// A plain loop: consume every record of `input` and produce it to `output`.
pub fn passthrough(kafka: &KafkaOptions, input: &str, output: &str, events: u64) -> Result<f64> {
    passthrough_partitions(kafka, input, output, events, PARTITIONS)
}

/// Produces `rec`, waiting while the producer's queue is full.
fn send_retrying(producer: &ThreadedProducer<DefaultProducerContext>, mut rec: BaseRecord<'_, [u8], [u8]>) {
    while let Err((_, back)) = producer.send(rec) {
        rec = back;
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// [`passthrough`] of a topic with `partitions` partitions.
pub fn passthrough_partitions(kafka: &KafkaOptions, input: &str, output: &str, events: u64, partitions: i32) -> Result<f64> {
    let consumer: BaseConsumer =
        kafka.consumer_config_with(&[]).set("group.id", "passthrough").set("enable.auto.commit", "false").set("fetch.wait.max.ms", "10").create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(input, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let producer: ThreadedProducer<DefaultProducerContext> = kafka
        .client_config()
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .create()?;
    let t = Instant::now();
    let mut n = 0;
    while n < events {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let rec = BaseRecord::to(output).payload(m.payload().unwrap_or_default()).key(m.key().unwrap_or_default());
                send_retrying(&producer, rec);
                n += 1;
            }
            Some(Err(e)) => return Err(e).context("passthrough consume"),
            None => {}
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(events as f64 / t.elapsed().as_secs_f64())
}

pub struct Latency {
    pub rate: f64,
    pub events: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub histogram_mean_ms: f64,
}

impl Latency {
    fn from_samples(mut lat: Vec<f64>, rate: f64, events: u64, histogram_mean_ms: f64) -> Result<Latency> {
        anyhow::ensure!(!lat.is_empty(), "no latency samples");
        lat.sort_by(f64::total_cmp);
        let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
        Ok(Latency { rate, events, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: *lat.last().unwrap_or(&0.0), histogram_mean_ms })
    }
}

/// Publishes `warmup + seconds` of events at `rate` from one producer on a
/// thread of its own; returns it and the wall-clock time (ms) from which records
/// are measured.
fn publish_paced(kafka: &KafkaOptions, rate: f64, warmup: f64, seconds: f64) -> (std::thread::JoinHandle<Result<f64>>, i64) {
    let events = (rate * (warmup + seconds)) as u64;
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events, rate: Some(rate) };
    let kafka = kafka.clone();
    let from_ms = chrono::Utc::now().timestamp_millis() + (warmup * 1000.0) as i64;
    let handle = std::thread::spawn(move || {
        let t = Instant::now();
        publish(&kafka, GenConfig { seed: 99, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never())?;
        Ok(events as f64 / t.elapsed().as_secs_f64())
    });
    (handle, from_ms)
}

fn sleep_until_ms(at_ms: i64) {
    let now = chrono::Utc::now().timestamp_millis();
    if at_ms > now {
        std::thread::sleep(Duration::from_millis((at_ms - now) as u64));
    }
}

fn wait_for(what: &str, done: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not done within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The job (`workers` workers) running while events are published at `rate`:
/// first `warmup` seconds of them, not measured (the broker's JVM compiles its
/// hot paths, the clients connect and fetch), then `seconds` measured, from each
/// input record's create time to its score record's create time.
pub fn latency_at_rate(kafka: &KafkaOptions, rate: f64, seconds: f64, workers: usize, warmup: f64) -> Result<Latency> {
    let control = Control::new();
    let metrics = Metrics::new();
    let job = {
        let (kafka, control, metrics) = (kafka.clone(), control.clone(), metrics.clone());
        std::thread::spawn(move || {
            let run = RunOptions { until_end: false, ..RunOptions::new(kafka, "bench-latency", workers) };
            run_job(fraud_job(), &run, metrics, control, Arc::new(Mutex::new(None)))
        })
    };
    std::thread::sleep(Duration::from_secs(2)); // let the job start and assign partitions
    let handled = || metrics.scores_out.get() + metrics.dlq_total();
    let (publisher, from_ms) = publish_paced(kafka, rate, warmup, seconds);
    sleep_until_ms(from_ms);
    let (sum0, count0) = (metrics.latency.get_sample_sum(), metrics.latency.get_sample_count());
    let achieved = publisher.join().map_err(|_| anyhow::anyhow!("the generator panicked"))??;
    let events = (rate * (warmup + seconds)) as u64;
    wait_for("the events", || handled() >= events)?;
    let (sum, count) = (metrics.latency.get_sample_sum() - sum0, metrics.latency.get_sample_count() - count0);
    control.request_shutdown();
    job.join().map_err(|_| anyhow::anyhow!("job panicked"))??;

    let input = read_topic(kafka, "transactions", Duration::from_secs(120))?;
    let created: std::collections::HashMap<(u32, i64), i64> =
        input.iter().filter_map(|r| Some(((r.partition, r.offset), r.timestamp?))).filter(|(_, t)| *t >= from_ms).collect();
    let mut lat: Vec<f64> = Vec::new();
    for r in read_topic(kafka, "scores", Duration::from_secs(120))? {
        let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap_or_default())?;
        let key = (v["source_partition"].as_u64().unwrap_or(0) as u32, v["source_offset"].as_i64().unwrap_or(0));
        if let (Some(c), Some(s)) = (created.get(&key), r.timestamp) {
            lat.push((s - c) as f64);
        }
    }
    Latency::from_samples(lat, achieved, (rate * seconds) as u64, 1000.0 * sum / count.max(1) as f64)
}

/// The same measurement for a plain loop: one thread consuming `transactions`
/// (zero-timeout polls and a 1 ms sleep when idle, like the job's source) and
/// producing each record to `passthrough` with the job's sink settings; a
/// record's latency is its output's create time (stamped when produced) less
/// its input's. The lower limit of the job's latency on the same broker.
pub fn passthrough_latency_at_rate(kafka: &KafkaOptions, rate: f64, seconds: f64, warmup: f64) -> Result<Latency> {
    let consumer: BaseConsumer =
        kafka.consumer_config_with(&[("fetch.wait.max.ms", "100")]).set("group.id", "passthrough-latency").set("enable.auto.commit", "false").create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("transactions", p, Offset::End)?;
    }
    consumer.assign(&tpl)?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        kafka.client_config().set("linger.ms", "5").set("queue.buffering.max.messages", "200000").set("compression.type", "lz4").create()?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let from = Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let looper = {
        let (stop, from, count) = (stop.clone(), from.clone(), count.clone());
        std::thread::spawn(move || -> Result<Vec<f64>> {
            let mut lat = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match consumer.poll(Duration::ZERO) {
                    Some(Ok(m)) => {
                        let rec = BaseRecord::to("passthrough").payload(m.payload().unwrap_or_default()).key(m.key().unwrap_or_default());
                        let now = chrono::Utc::now().timestamp_millis();
                        if let Some(created) = m.timestamp().to_millis().filter(|c| *c >= from.load(std::sync::atomic::Ordering::Relaxed)) {
                            lat.push((now - created) as f64);
                        }
                        send_retrying(&producer, rec);
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Some(Err(e)) => return Err(e).context("passthrough consume"),
                    None => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            producer.flush(Duration::from_secs(60))?;
            Ok(lat)
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let handled = || count.load(std::sync::atomic::Ordering::Relaxed);
    let (publisher, from_ms) = publish_paced(kafka, rate, warmup, seconds);
    from.store(from_ms, std::sync::atomic::Ordering::Relaxed);
    let achieved = publisher.join().map_err(|_| anyhow::anyhow!("the generator panicked"))??;
    let events = (rate * (warmup + seconds)) as u64;
    wait_for("the events", || handled() >= events)?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lat = looper.join().map_err(|_| anyhow::anyhow!("passthrough panicked"))??;
    Latency::from_samples(lat, achieved, (rate * seconds) as u64, 0.0)
}

/// CPU share of one core used by a `vigil run` process idling on an empty topic.
pub fn idle_cpu(vigil_bin: &str, kafka: &KafkaOptions, job_toml: &str, seconds: u64) -> Result<f64> {
    let mut child = std::process::Command::new(vigil_bin)
        .args(["run", job_toml, "--brokers", &kafka.brokers, "--metrics-addr", "off", "--group-id", "bench-idle"])
        .spawn()
        .context("starting vigil run")?;
    std::thread::sleep(Duration::from_secs(3));
    let ticks = |pid: u32| -> Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
    };
    let before = ticks(child.id())?;
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let after = ticks(child.id())?;
    let secs = t.elapsed().as_secs_f64();
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    Ok((after - before) as f64 / 100.0 / secs) // USER_HZ = 100
}

/// An Apache Kafka broker started by `scripts/kafka.sh` (single combined
/// broker/controller on loopback), stopped and removed on drop.
pub struct ApacheKafka {
    dir: std::path::PathBuf,
    pub kafka: KafkaOptions,
}

impl ApacheKafka {
    pub fn start(topics: &[&str]) -> Result<ApacheKafka> {
        let dir = std::env::temp_dir().join(format!("vigil-bench-kafka-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let port = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port().to_string());
        let out = std::process::Command::new("scripts/kafka.sh")
            .args(["start", "--dir"])
            .arg(&dir)
            .args(["--port", &port()?, "--controller-port", &port()?])
            .output()
            .context("running scripts/kafka.sh (from the repository root)")?;
        anyhow::ensure!(out.status.success(), "scripts/kafka.sh start failed: {}", String::from_utf8_lossy(&out.stderr));
        let brokers = String::from_utf8_lossy(&out.stdout).lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or_default().to_owned();
        let broker = ApacheKafka { dir, kafka: KafkaOptions::new(&brokers) };
        for t in topics {
            let out = std::process::Command::new("scripts/kafka.sh").args(["topic", "--brokers", &brokers, "create", t, &PARTITIONS.to_string()]).output()?;
            anyhow::ensure!(out.status.success(), "creating {t}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(broker)
    }
}

impl Drop for ApacheKafka {
    fn drop(&mut self) {
        let _ = std::process::Command::new("scripts/kafka.sh").args(["stop", "--clean", "--dir"]).arg(&self.dir).output();
    }
}

/// How the fraud job runs in [`delivery_over_prefilled`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Delivery {
    PipelineAtLeastOnce,
    PipelineExactlyOnce,
    GraphAtLeastOnce,
    /// The graph in two processes of one worker (`vigil run -n 2`).
    ClusterAtLeastOnce,
    ClusterExactlyOnce,
    GraphExactlyOnce,
}

impl Delivery {
    pub const ALL: [Delivery; 6] = [
        Delivery::PipelineAtLeastOnce,
        Delivery::PipelineExactlyOnce,
        Delivery::GraphAtLeastOnce,
        Delivery::GraphExactlyOnce,
        Delivery::ClusterAtLeastOnce,
        Delivery::ClusterExactlyOnce,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Delivery::PipelineAtLeastOnce => "pipeline, at-least-once",
            Delivery::PipelineExactlyOnce => "pipeline, exactly-once",
            Delivery::GraphAtLeastOnce => "graph, at-least-once",
            Delivery::GraphExactlyOnce => "graph, exactly-once",
            Delivery::ClusterAtLeastOnce => "graph, 2 processes, at-least-once",
            Delivery::ClusterExactlyOnce => "graph, 2 processes, exactly-once",
        }
    }
}

/// The fraud job over a prefilled topic, 1 worker, a checkpoint every second
/// into a fresh directory, on the pipeline or the graph, at-least-once or
/// exactly-once (its own group): events/s from the start to the end of the
/// run (every output flushed, the last checkpoint committed).
pub fn delivery_over_prefilled(kafka: &KafkaOptions, events: u64, how: Delivery, run_index: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let group = format!("bench-delivery-{run_index}-{how:?}");
    let t = Instant::now();
    let done = match how {
        Delivery::PipelineAtLeastOnce | Delivery::PipelineExactlyOnce => {
            let mut run = RunOptions { until_end: true, ..RunOptions::new(kafka.clone(), &group, 1) };
            run.checkpoint_dir = Some(dir.path().to_owned());
            run.checkpoint_interval = Duration::from_secs(1);
            run.exactly_once = how == Delivery::PipelineExactlyOnce;
            let metrics = Metrics::new();
            run_job(fraud_job(), &run, metrics.clone(), Control::new(), Arc::new(Mutex::new(None)))?;
            metrics.scores_out.get() + metrics.dlq_total()
        }
        Delivery::GraphAtLeastOnce | Delivery::GraphExactlyOnce => {
            let job = fraud_job();
            // epochs are 1 s apart: a checkpoint at the end of each
            let mut run = vigil::kafka::KafkaRun::new(kafka.clone()).workers(1).group(&group).until_end().dlq_topic(&job.sinks.dlq).checkpoints(dir.path(), 1);
            if how == Delivery::GraphExactlyOnce {
                run = run.exactly_once(&format!("{group}-txn"));
            }
            let out = run.run(move |g| vigil::graph::job::job_graph(g, &job))?;
            out.sources.values().map(|c| c.read).sum()
        }
        Delivery::ClusterAtLeastOnce | Delivery::ClusterExactlyOnce => cluster_run(kafka, dir.path(), &group, how == Delivery::ClusterExactlyOnce)?,
    };
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(done == events, "{}: handled {done} of {events}", how.name());
    Ok(events as f64 / secs)
}

/// Two processes of `vigil run` (the binary beside this one) running the fraud
/// job on the graph as one timely cluster on loopback, one worker each,
/// checkpoints every second; returns the records they read.
fn cluster_run(kafka: &KafkaOptions, dir: &std::path::Path, group: &str, exactly_once: bool) -> Result<u64> {
    let vigil = std::env::current_exe()?.with_file_name("vigil");
    anyhow::ensure!(vigil.exists(), "{} is not built: run `cargo build --release` first", vigil.display());
    let job = dir.join("fraud_job.toml");
    std::fs::write(&job, include_str!("../../examples/fraud_job.toml"))?;
    let ports: Vec<u16> =
        (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port())).collect::<std::io::Result<_>>()?;
    let hostfile = dir.join("hosts");
    std::fs::write(&hostfile, ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join("\n"))?;
    let mut children = Vec::new();
    for p in 0..2 {
        let mut c = std::process::Command::new(&vigil);
        c.arg("run").arg(&job).args(["--engine", "graph", "--brokers", &kafka.brokers, "--until-end", "--group-id", group, "--metrics-addr", "off"]);
        c.args(["-w", "1", "-n", "2", "-p", &p.to_string(), "--hostfile"]).arg(&hostfile).arg("--checkpoint-dir").arg(dir.join("checkpoints"));
        c.args(["--checkpoint-interval", "1s"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        for (k, v) in &kafka.extra {
            c.args(["-X", &format!("{k}={v}")]);
        }
        if exactly_once {
            c.arg("--exactly-once");
        }
        children.push(c.spawn()?);
    }
    let mut read = 0;
    for (p, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "process {p} of the cluster failed ({}):\n{text}", out.status);
        read += text.lines().find_map(|l| l.trim().strip_prefix("transactions: read ")?.split(',').next()?.parse::<u64>().ok()).unwrap_or(0);
    }
    Ok(read)
}
