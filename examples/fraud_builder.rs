//! The fraud job defined in Rust with the builder API, run against the embedded
//! broker: `cargo run --release --example fraud_builder`. (`fraud_detection.rs`
//! is the same kind of job as a graph over two topics.)
//!
//! It builds the same job as `examples/fraud_job.toml`, publishes synthetic card
//! transactions, runs the job until it has read them all, and prints the riskiest
//! scores and the dead-letter reasons, read back from the output topics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::read::read_topic;
use vigil::kafka::KafkaOptions;
use vigil::metrics::Metrics;
use vigil::run::{run_job, RunOptions};
use vigil::spec::{FieldType, JobBuilder, JobSpec};
use vigil::types::Control;
use vigil_operators::{Agg, Transform};

/// The fraud job: the same graph as `examples/fraud_job.toml`.
pub fn fraud_job() -> anyhow::Result<JobSpec> {
    let (minute, hour) = (Duration::from_secs(60), Duration::from_secs(3600));
    JobBuilder::new("fraud")
        .source_topic("transactions")
        .key_field("card_id")
        .event_time_field("ts")
        .event_id_field("event_id")
        .allowed_lateness(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(10))
        .max_future(hour)
        .max_message_bytes(65_536)
        .field("amount", FieldType::F64)
        .optional_field("device", FieldType::Str)
        .optional_field("age_band", FieldType::Str)
        .field("country", FieldType::Str)
        .field("merchant", FieldType::Str)
        .window_feature("tx_count_1m", Agg::Count, None, minute)
        .window_feature("amount_sum_1m", Agg::Sum, Some("amount"), minute)
        .window_feature("amount_mean_1m", Agg::Mean, Some("amount"), minute)
        .window_feature("amount_max_1m", Agg::Max, Some("amount"), minute)
        .window_feature("tx_count_1h", Agg::Count, None, hour)
        .window_feature("amount_sum_1h", Agg::Sum, Some("amount"), hour)
        .window_feature("amount_mean_1h", Agg::Mean, Some("amount"), hour)
        .window_feature("amount_max_1h", Agg::Max, Some("amount"), hour)
        .time_since_prev_feature("secs_since_prev", Duration::from_secs(86_400))
        .model_name("fraud-lr", "2026-11-27")
        .bias(-6.0)
        .weight_with("amount", 0.55, Transform::Log1p)
        .weight_with("amount_max_1h", 0.2, Transform::Log1p)
        .weight_with("amount_mean_1h", -0.35, Transform::Log1p)
        .weight_with("secs_since_prev", -0.15, Transform::Log1p)
        .weight_with("tx_count_1m", 2.5, Transform::Log1p)
        .sinks("scores", "dlq")
        .build()
}

fn main() -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(1)?;
    for (topic, partitions) in [("transactions", 8), ("scores", 8), ("dlq", 2)] {
        broker.create_topic(topic, partitions)?;
    }
    let kafka = KafkaOptions::new(&broker.bootstrap_servers());
    println!("embedded broker at {}", kafka.brokers);

    let gen = GenConfig { bad_ratio: 0.01, ..GenConfig::default() };
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events: 50_000, rate: None };
    publish(&kafka, gen, &opts, &PublishProgress::default(), &never())?;

    let run = RunOptions { until_end: true, ..RunOptions::new(kafka.clone(), "example", 2) };
    let metrics = Metrics::new();
    run_job(fraud_job()?, &run, metrics.clone(), Control::new(), Arc::new(Mutex::new(None)))?;
    println!("scored {}, dead-lettered {}", metrics.scores_out.get(), metrics.dlq_total());

    let mut scores: Vec<serde_json::Value> =
        read_topic(&kafka, "scores", Duration::from_secs(30))?.into_iter().filter_map(|r| serde_json::from_slice(r.payload.as_deref()?).ok()).collect();
    scores.sort_by(|a, b| b["score"].as_f64().partial_cmp(&a["score"].as_f64()).unwrap_or(std::cmp::Ordering::Equal));
    println!("riskiest events:");
    for s in scores.iter().take(5) {
        println!(
            "  {:.3} {} {} tx_count_1m={} amount_max_1h={}",
            s["score"].as_f64().unwrap_or(0.0),
            s["key"],
            s["event_id"],
            s["features"]["tx_count_1m"],
            s["features"]["amount_max_1h"]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_builder_and_the_toml_define_the_same_job() {
        let from_toml = vigil::demo::fraud_job();
        let from_builder = super::fraud_job().unwrap();
        // Schema order differs (TOML tables are sorted); compare everything else.
        assert_eq!(format!("{:?}", from_toml.features), format!("{:?}", from_builder.features));
        assert_eq!(format!("{:?}", from_toml.model), format!("{:?}", from_builder.model));
        assert_eq!(format!("{:?}", from_toml.sinks), format!("{:?}", from_builder.sinks));
        let mut a = from_toml.source.fields.clone();
        let mut b = from_builder.source.fields.clone();
        a.sort_by(|x, y| x.name.cmp(&y.name));
        b.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(a, b);
        assert_eq!(from_toml.source.allowed_lateness, from_builder.source.allowed_lateness);
        assert_eq!(from_toml.source.event_id_field, from_builder.source.event_id_field);
    }
}
