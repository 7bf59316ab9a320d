//! Real-time features for a recommendation feed, on the embedded broker:
//! `cargo run --release --example engagement_features`.
//!
//! A feed of views, likes and shares (synthetic: 4,000 users, 400 videos with
//! long-tailed popularity, two videos going viral halfway through) runs through
//! two jobs, the same graphs as `examples/engagement_users.toml` and
//! `examples/engagement_videos.toml`:
//! - per user (topic `feed`, keyed by user): views, likes and shares in the last
//!   hour, an engagement score (points decayed with a 1-hour half-life), distinct
//!   videos watched in the last hour, watch time in the current session (30-minute
//!   gap), the watch time over the user's 6-hour average (from 15-minute panes),
//!   and daily views per user, emitted once per closed day to `user_days`; and
//!   an interval join of each view with the user's likes of the same video in the
//!   next 10 minutes, to `user_likes` (views never liked are written too, once 10
//!   minutes of event time have passed: labels for a "will like" model);
//! - per video (topic `feed_by_video`, the same events keyed by video: what a
//!   repartition topic does): views over 10 minutes and 1 hour, decayed view
//!   counts with 10-minute and 6-hour half-lives (their ratio is the trending
//!   velocity), exact unique viewers over 1 hour and approximate (HyperLogLog)
//!   unique viewers over 6 hours.
//!
//! Both jobs score every event (a small "will like" model over the user's
//! features; a "trending" model over the video's), and the example prints the
//! most engaged users and the trending videos, read back from the output topics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::feed_generator::{publish_feed, synthetic_feed};
use vigil::kafka::read::read_topic;
use vigil::kafka::KafkaOptions;
use vigil::metrics::Metrics;
use vigil::run::{run_job, RunOptions};
use vigil::spec::{FieldType, IntervalJoinDecl, JobBuilder, JobSpec, Window};
use vigil::types::Control;
use vigil_operators::{Agg, DecayKind, Emit, Transform};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The feed's common source settings.
fn feed(name: &str, topic: &str, key: &str) -> JobBuilder {
    let b = JobBuilder::new(name)
        .source_topic(topic)
        .key_field(key)
        .event_time_field("ts")
        .event_id_field("event_id")
        .allowed_lateness(Duration::from_secs(30))
        .max_future(HOUR);
    // the key is not a schema field; the other id is (for distinct counts)
    let other = if key == "user_id" { "video_id" } else { "user_id" };
    // in the TOML files' (sorted) order, so that field indices agree
    b.field("action", FieldType::Str)
        .field("likes", FieldType::F64)
        .field("points", FieldType::F64)
        .field("shares", FieldType::F64)
        .field(other, FieldType::Str)
        .field("views", FieldType::F64)
        .field("watch_secs", FieldType::F64)
}

/// Per user: the same graph as `examples/engagement_users.toml`.
pub fn user_job() -> anyhow::Result<JobSpec> {
    feed("engagement-users", "feed", "user_id")
        .window_feature("views_1h", Agg::Sum, Some("views"), HOUR)
        .window_feature("likes_1h", Agg::Sum, Some("likes"), HOUR)
        .window_feature("shares_1h", Agg::Sum, Some("shares"), HOUR)
        .decayed_feature("engagement", DecayKind::Sum, Some("points"), HOUR, None)
        .distinct_count_feature("videos_1h", "video_id", HOUR)
        .windowed_feature("session_watch_secs", Agg::Sum, Some("watch_secs"), Window::Session { gap: 30 * MINUTE }, Emit::OnUpdate)
        .ratio_to_mean_feature("watch_vs_6h", "watch_secs", 6 * HOUR, 15 * MINUTE)
        .windowed_feature("views_day", Agg::Sum, Some("views"), Window::Tumbling(24 * HOUR), Emit::OnClose)
        .interval_join(
            IntervalJoinDecl::new("like_after_view").left("action", "view").right("action", "like").within(10 * MINUTE).on("video_id").emit_unmatched(),
        )
        .model_name("will-like", "example")
        .bias(-2.0)
        .weight_with("engagement", 0.3, Transform::Log1p)
        .weight_with("likes_1h", 0.8, Transform::Log1p)
        .weight_with("videos_1h", -0.2, Transform::Log1p)
        .sinks("user_scores", "dlq")
        .windows_sink("user_days")
        .joins_sink("user_likes")
        .build()
}

/// Per video: the same graph as `examples/engagement_videos.toml`.
pub fn video_job() -> anyhow::Result<JobSpec> {
    feed("engagement-videos", "feed_by_video", "video_id")
        .window_feature("views_10m", Agg::Sum, Some("views"), 10 * MINUTE)
        .window_feature("views_1h", Agg::Sum, Some("views"), HOUR)
        .decayed_feature("heat_10m", DecayKind::Count, None, 10 * MINUTE, None)
        .decayed_feature("heat_6h", DecayKind::Count, None, 6 * HOUR, None)
        .distinct_count_feature("viewers_1h", "user_id", HOUR)
        .approx_distinct_feature("viewers_6h", "user_id", 6 * HOUR, 15 * MINUTE, 10)
        .model_name("trending", "example")
        .bias(-4.0)
        .weight_with("heat_6h", -0.3, Transform::Log1p)
        .weight_with("views_10m", 0.9, Transform::Log1p)
        .sinks("video_scores", "dlq")
        .build()
}

/// The last score record per key of a topic (offset order per partition).
fn latest(kafka: &KafkaOptions, topic: &str) -> anyhow::Result<HashMap<String, serde_json::Value>> {
    let mut out = HashMap::new();
    for r in read_topic(kafka, topic, Duration::from_secs(60))? {
        if let Some(v) = r.payload.as_deref().and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok()) {
            out.insert(v["key"].as_str().unwrap_or_default().to_owned(), v);
        }
    }
    Ok(out)
}

/// What a run found (read by the test).
#[cfg_attr(not(test), allow(dead_code))]
struct Report {
    scored: Vec<u64>,
    trending: Vec<String>,
    closed_days: usize,
    /// Views in the feed, views with a like within 10 minutes, and views written
    /// unmatched, from `user_likes`.
    views: usize,
    liked_views: usize,
    unliked_views: usize,
    /// Views with a like within 10 minutes, by brute force over the feed.
    liked_views_naive: usize,
}

fn main() -> anyhow::Result<()> {
    run(60_000).map(|_| ())
}

fn run(n: usize) -> anyhow::Result<Report> {
    let broker = EmbeddedBroker::start(1)?;
    for (topic, partitions) in [("feed", 4), ("feed_by_video", 4), ("user_scores", 4), ("video_scores", 4), ("user_days", 2), ("user_likes", 4), ("dlq", 2)] {
        broker.create_topic(topic, partitions)?;
    }
    let kafka = KafkaOptions::new(&broker.bootstrap_servers());
    println!("embedded broker at {}", kafka.brokers);
    let events = synthetic_feed(n);
    publish_feed(&kafka, &events)?;

    // both jobs at once, each until it has read its topic
    let handles: Vec<_> = [user_job()?, video_job()?]
        .into_iter()
        .map(|job| {
            let kafka = kafka.clone();
            std::thread::spawn(move || {
                let metrics = Metrics::new();
                let run = RunOptions { until_end: true, ..RunOptions::new(kafka, &job.name.clone(), 1) };
                run_job(job, &run, metrics.clone(), Control::new(), Arc::new(Mutex::new(None))).map(|_| metrics.scores_out.get())
            })
        })
        .collect();
    let mut scored = Vec::new();
    for (name, h) in ["users", "videos"].iter().zip(handles) {
        scored.push(h.join().map_err(|_| anyhow::anyhow!("the {name} job panicked"))??);
        println!("{name} job: scored {} events", scored.last().unwrap_or(&0));
    }

    let users = latest(&kafka, "user_scores")?;
    let mut by_engagement: Vec<&serde_json::Value> = users.values().collect();
    by_engagement.sort_by(|a, b| b["features"]["engagement"].as_f64().partial_cmp(&a["features"]["engagement"].as_f64()).unwrap_or(std::cmp::Ordering::Equal));
    println!("most engaged users (as of their latest event):");
    for u in by_engagement.iter().take(5) {
        let f = &u["features"];
        println!(
            "  {} engagement {:.1}, views/likes/shares 1h {}/{}/{}, {} videos in 1h, session watch {} s, will-like {:.3}",
            u["key"],
            f["engagement"].as_f64().unwrap_or(0.0),
            f["views_1h"],
            f["likes_1h"],
            f["shares_1h"],
            f["videos_1h"],
            f["session_watch_secs"],
            u["score"].as_f64().unwrap_or(0.0)
        );
    }
    let videos = latest(&kafka, "video_scores")?;
    let velocity = |v: &serde_json::Value| {
        let (hot, base) = (v["features"]["heat_10m"].as_f64().unwrap_or(0.0), v["features"]["heat_6h"].as_f64().unwrap_or(0.0));
        // decayed counts per unit of half-life: 36 ten-minute spans in six hours
        if base > 0.0 {
            36.0 * hot / base
        } else {
            0.0
        }
    };
    let mut trending: Vec<&serde_json::Value> = videos.values().filter(|v| v["features"]["views_1h"].as_f64().unwrap_or(0.0) >= 100.0).collect();
    trending.sort_by(|a, b| velocity(b).partial_cmp(&velocity(a)).unwrap_or(std::cmp::Ordering::Equal));
    println!("trending videos among those with 100+ views in the last hour (velocity = decayed views 10 min / 6 h, per unit of half-life; 1 = steady):");
    for v in trending.iter().take(5) {
        let f = &v["features"];
        println!(
            "  {} velocity {:.2}, views 10m/1h {}/{}, unique viewers 1h {} (exact), 6h ~{:.0} (HyperLogLog)",
            v["key"],
            velocity(v),
            f["views_10m"],
            f["views_1h"],
            f["viewers_1h"],
            f["viewers_6h"].as_f64().unwrap_or(0.0)
        );
    }
    let days = read_topic(&kafka, "user_days", Duration::from_secs(30))?;
    println!("user_days: {} closed daily windows (one per user and day, written once)", days.len());
    let mut liked = std::collections::HashSet::new();
    let mut unliked = 0;
    for r in read_topic(&kafka, "user_likes", Duration::from_secs(30))? {
        let v: serde_json::Value = r.payload.as_deref().and_then(|p| serde_json::from_slice(p).ok()).unwrap_or_default();
        match v["matched"].as_bool() {
            Some(true) => {
                liked.insert(v["left"]["event_id"].as_str().unwrap_or_default().to_owned());
            }
            _ => unliked += 1,
        }
    }
    let views = events.iter().filter(|e| e["action"] == "view").count();
    let mut likes: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
    for l in events.iter().filter(|e| e["action"] == "like") {
        likes
            .entry((l["user_id"].as_str().unwrap_or_default(), l["video_id"].as_str().unwrap_or_default()))
            .or_default()
            .push(l["ts"].as_i64().unwrap_or_default());
    }
    let liked_views_naive = events
        .iter()
        .filter(|v| v["action"] == "view")
        .filter(|v| {
            let t = v["ts"].as_i64().unwrap_or_default();
            let of = likes.get(&(v["user_id"].as_str().unwrap_or_default(), v["video_id"].as_str().unwrap_or_default()));
            of.is_some_and(|times| times.iter().any(|l| (0..=600_000).contains(&(l - t))))
        })
        .count();
    println!(
        "user_likes: {} of {views} views liked within 10 minutes ({:.1}%), {unliked} written unmatched",
        liked.len(),
        100.0 * liked.len() as f64 / views.max(1) as f64
    );
    Ok(Report {
        scored,
        trending: trending.iter().map(|v| v["key"].as_str().unwrap_or_default().to_owned()).collect(),
        closed_days: days.len(),
        views,
        liked_views: liked.len(),
        unliked_views: unliked,
        liked_views_naive,
    })
}

#[cfg(test)]
mod tests {
    fn same(toml: &str, built: vigil::spec::JobSpec) {
        let text = std::fs::read_to_string(format!("{}/examples/{toml}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let from_toml = vigil::spec::JobSpec::from_toml(&text).unwrap();
        assert_eq!(format!("{:?}", from_toml.features), format!("{:?}", built.features), "{toml}");
        assert_eq!(format!("{:?}", from_toml.model), format!("{:?}", built.model), "{toml}");
        assert_eq!(format!("{:?}", from_toml.sinks), format!("{:?}", built.sinks), "{toml}");
        assert_eq!(from_toml.joins, built.joins, "{toml}");
        assert_eq!(from_toml.kept_strings(), built.kept_strings(), "{toml}");
    }

    #[test]
    fn the_builder_and_the_toml_define_the_same_jobs() {
        same("engagement_users.toml", super::user_job().unwrap());
        same("engagement_videos.toml", super::video_job().unwrap());
    }

    #[test]
    fn the_example_runs_and_the_viral_videos_trend() {
        let report = super::run(20_000).unwrap();
        assert_eq!(report.scored, vec![20_000, 20_000], "every event scored by both jobs");
        let mut top: Vec<&str> = report.trending.iter().take(2).map(String::as_str).collect();
        top.sort();
        assert_eq!(top, ["v-0398", "v-0399"], "{:?}", report.trending);
        assert!(report.closed_days > 1_000, "{}", report.closed_days);
        // every view once in the join's output: liked, or written unmatched
        assert_eq!(report.liked_views + report.unliked_views, report.views);
        assert_eq!(report.liked_views, report.liked_views_naive, "views liked within 10 minutes, against brute force");
        assert!(report.liked_views > 100, "{}", report.liked_views);
    }
}
