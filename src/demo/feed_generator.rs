//! A deterministic, seeded recommendation feed (views, likes, shares) for the
//! engagement example and its benchmark: users with long-tailed activity, videos
//! with long-tailed popularity, two videos going viral halfway through, and likes
//! and shares that mostly follow the user's last view (what an interval join of
//! views and likes finds). Event times cover 8 hours, a little out of order.

use std::collections::HashMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::kafka::KafkaOptions;

/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// `events` feed records: `{"event_id","user_id","video_id","action","ts","views",
/// "likes","shares","points","watch_secs"}` (4,000 users, 400 videos).
pub fn synthetic_feed(events: usize) -> Vec<serde_json::Value> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut last_view: HashMap<u32, u32> = HashMap::new();
    let mut out = Vec::with_capacity(events);
    for i in 0..events {
        // 8 hours of feed; a little out of order
        let t = START_MS + (i as i64 * 8 * 3_600_000 / events as i64) - rng.gen_range(0..5_000);
        let user = (rng.gen::<f64>().powf(1.5) * 4_000.0) as u32;
        let viral = i > events / 2 && rng.gen::<f64>() < 0.15;
        let mut video = if viral { 398 + (i % 2) as u32 } else { (rng.gen::<f64>().powf(2.5) * 400.0) as u32 };
        let r: f64 = rng.gen();
        let action = if r < 0.85 {
            "view"
        } else if r < 0.97 {
            "like"
        } else {
            "share"
        };
        match (action, last_view.get(&user)) {
            ("view", _) => {
                last_view.insert(user, video);
            }
            // four in five likes and shares are of the video the user viewed last
            (_, Some(v)) if i % 5 != 0 => video = *v,
            _ => {}
        }
        let (views, likes, shares, points) = match action {
            "view" => (1, 0, 0, 1),
            "like" => (0, 1, 0, 4),
            _ => (0, 0, 1, 8),
        };
        let watch = if action == "view" { rng.gen_range(1.0..120.0f64).round() } else { 0.0 };
        out.push(serde_json::json!({
            "event_id": format!("f-{i}"), "user_id": format!("u-{user:05}"), "video_id": format!("v-{video:04}"),
            "action": action, "ts": t, "views": views, "likes": likes, "shares": shares, "points": points, "watch_secs": watch,
        }));
    }
    out
}

/// Publishes the feed twice: to `feed` keyed by user and to `feed_by_video` keyed
/// by video (what a repartition topic does for the per-video job).
pub fn publish_feed(kafka: &KafkaOptions, events: &[serde_json::Value]) -> anyhow::Result<()> {
    let producer: BaseProducer = kafka.client_config_with(&[("linger.ms", "5"), ("compression.type", "lz4")]).create()?;
    for e in events {
        let payload = e.to_string();
        for (topic, key) in [("feed", "user_id"), ("feed_by_video", "video_id")] {
            let key = e[key].as_str().unwrap_or_default();
            let mut record = BaseRecord::to(topic).key(key).payload(&payload);
            while let Err((err, r)) = producer.send(record) {
                anyhow::ensure!(matches!(err, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)), "{err}");
                producer.poll(Duration::from_millis(5));
                record = r;
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}
