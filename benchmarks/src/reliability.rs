//! Reliability benchmarks: memory under a slow sink (backpressure) and restore time
//! as checkpointed state grows.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vigil::checkpoint::format;
use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::KafkaOptions;
use vigil_operators::{Agg, FeatureDef, FeatureState, WindowFeature};

pub struct RssSample {
    pub t: f64,
    pub rss_mb: f64,
    pub done: u64,
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .unwrap_or(0.0)
        / 1024.0
}

fn scrape(addr: &str, name: &str) -> u64 {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return 0 };
    let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum::<f64>() as u64
}

/// A `vigil run` subprocess over a prefilled topic whose outputs go to a broker with
/// `rtt_ms` of added round-trip time; RSS and progress sampled every 500 ms.
pub fn rss_under_slow_sink(vigil_bin: &str, events: u64, rtt_ms: u64, seconds: u64) -> Result<Vec<RssSample>> {
    // Two brokers: the input's partitions lead on broker 1, the outputs' on broker 2.
    let broker = EmbeddedBroker::start(2)?;
    for (t, p) in [("transactions", 8), ("scores", 8), ("dlq", 2)] {
        broker.create_topic(t, p)?;
        broker.set_leader(t, p, if t == "transactions" { 1 } else { 2 })?;
    }
    let kafka = KafkaOptions::new(&broker.bootstrap_servers());
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events, rate: None };
    publish(&kafka, GenConfig::default(), &opts, &PublishProgress::default(), &never())?;
    broker.cluster().broker_round_trip_time(2, Duration::from_millis(rtt_ms))?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let metrics = format!("127.0.0.1:{port}");
    let job = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/fraud_job.toml");
    let mut child = std::process::Command::new(vigil_bin)
        .args(["run", job, "--brokers", &kafka.brokers, "--metrics-addr", &metrics, "--group-id", "rss"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting vigil run")?;
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(500));
        let done = scrape(&metrics, "vigil_scores_out_total") + scrape(&metrics, "vigil_dlq_total");
        samples.push(RssSample { t: start.elapsed().as_secs_f64(), rss_mb: rss_mb(child.id()), done });
    }
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    Ok(samples)
}

pub struct RestoreTiming {
    pub keys: usize,
    pub bytes: usize,
    pub write_s: f64,
    pub restore_s: f64,
}

/// Encodes, writes (atomically, fsynced), reads and restores a feature state of
/// `keys` keys with `events_per_key` retained events each (the fraud job's features).
pub fn restore_time(keys: usize, events_per_key: usize) -> Result<RestoreTiming> {
    let w = |name: &str, agg, field, window_ms| FeatureDef::Window(WindowFeature::sliding(name, agg, field, window_ms));
    let defs = vec![
        w("n_1m", Agg::Count, None, 60_000),
        w("s_1m", Agg::Sum, Some(0), 60_000),
        w("x_1m", Agg::Max, Some(0), 60_000),
        w("n_1h", Agg::Count, None, 3_600_000),
        w("m_1h", Agg::Mean, Some(0), 3_600_000),
        w("x_1h", Agg::Max, Some(0), 3_600_000),
        FeatureDef::TimeSincePrev { name: "p".into(), ttl_ms: 86_400_000 },
    ];
    let mut state = FeatureState::new(defs.clone(), 1);
    let mut out = Vec::new();
    let t0 = 1_767_225_600_000i64;
    for e in 0..events_per_key {
        for k in 0..keys {
            state.observe(&format!("c-{k:08}"), (k % 8) as u32, t0, t0 + (e * 60_000 + k % 1000) as i64, &[(k % 97) as f64 + 0.5], &mut out);
        }
    }
    let dir = tempfile_dir()?;
    let path = dir.join(format::state_name(1, 0));
    let t = Instant::now();
    let bytes = format::encode_state(&state, &vigil_operators::JoinState::default())?;
    format::write_atomic(&path, &bytes)?;
    let write_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (restored, _) = format::read_state(&path)?;
    let mut fresh = FeatureState::new(defs, 1);
    fresh.absorb(restored, |_| true).map_err(anyhow::Error::msg)?;
    let restore_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(fresh.live_keys() == keys);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RestoreTiming { keys, bytes: bytes.len(), write_s, restore_s })
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("vigil-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
