//! Fraud detection as a graph over two topics, on the embedded broker:
//! `cargo run --release --example fraud_detection` (or `-- --brokers host:9092`
//! against topics written by `vigil gen --logins-topic logins`).
//!
//! ```text
//! transactions ─ filter (purchases) ─┬─ stateful "card_testing" (timers) ─────────────> card_testing
//!                                     ├─ interval_join "login_then_purchase" ─ filter ─> takeover_alerts
//! logins ────────────────────────────┘                                        
//!                                     └─ features ─ score_online (labels) ─┬─────────> scores
//!                                                                          └─ view "risky_merchants" (count) ─> merchant_risk (upsert)
//! ```
//!
//! Options: `--workers N` (2), and `--hosts H0:P,H1:P,..` with `--process I` to
//! run as process I of a timely cluster (every process with the same options).
//!
//! - A user closure keeps purchases (authorisation checks of no amount are not).
//! - A user-defined stateful operator with event-time timers flags card testing:
//!   a card's third purchase under 5.00 within two minutes.
//! - An interval join across the two topics flags account takeovers: a purchase
//!   of more than 200.00 from a device that logged in to the card, as a device
//!   new to it, in the ten minutes before.
//! - The job's features (sliding windows over 1 minute and 1 hour, time since the
//!   previous purchase) and a logistic model trained online from the labels topic
//!   (event-time consistency: the same input gives the same scores at any speed).
//! - A differential view: per merchant, how many of its purchases scored 0.5 or
//!   more, written to a compacted topic (one record per changed merchant per
//!   epoch).

use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::graph::{Features, GraphBuilder, KeyContext, KeyedOperator, OnlineModel, Record, Source};
use vigil::kafka::read::read_topic;
use vigil::kafka::KafkaOptions;
use vigil::kafka::KafkaRun;
use vigil::learner::{Consistency, LabelSpec};
use vigil::spec::FieldType;
use vigil_operators::{Agg, Transform};

/// An alert of the card-testing operator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CardTesting {
    pub card: String,
    pub first_ms: i64,
    pub third_ms: i64,
}

/// Card testing: a card's third purchase under 5.00 within two minutes. State:
/// the times of the card's recent small purchases; a timer forgets them after
/// two quiet minutes.
#[derive(Default)]
pub struct SmallPurchases;

const TWO_MINUTES: i64 = 120_000;

impl KeyedOperator for SmallPurchases {
    type In = Record;
    type Out = CardTesting;
    type State = Vec<i64>;
    fn on_event(&mut self, tx: &Record, times: &mut Vec<i64>, ctx: &mut KeyContext<'_, CardTesting>) {
        if !tx.f64("amount").is_some_and(|a| a < 5.0) {
            return;
        }
        let now = ctx.time();
        times.retain(|t| now - t < TWO_MINUTES);
        times.push(now);
        times.sort_unstable();
        if times.len() == 3 {
            ctx.emit(CardTesting { card: ctx.key().to_owned(), first_ms: times[0], third_ms: now });
        }
        ctx.timer_at(now + TWO_MINUTES);
    }
    fn on_timer(&mut self, timer: i64, _: &mut Vec<i64>, ctx: &mut KeyContext<'_, CardTesting>) {
        if !ctx.has_timer_after(timer) {
            ctx.clear();
        }
    }
}

/// The features of `examples/fraud_online.toml`.
pub fn features() -> Features {
    let (minute, hour) = (Duration::from_secs(60), Duration::from_secs(3600));
    Features::new()
        .window("tx_count_1m", Agg::Count, None, minute)
        .window("amount_sum_1m", Agg::Sum, Some("amount"), minute)
        .window("amount_mean_1m", Agg::Mean, Some("amount"), minute)
        .window("amount_max_1m", Agg::Max, Some("amount"), minute)
        .window("tx_count_1h", Agg::Count, None, hour)
        .window("amount_sum_1h", Agg::Sum, Some("amount"), hour)
        .window("amount_mean_1h", Agg::Mean, Some("amount"), hour)
        .window("amount_max_1h", Agg::Max, Some("amount"), hour)
        .time_since_prev("secs_since_prev", Duration::from_secs(86_400))
}

/// The model of `examples/fraud_online.toml`, trained online from `labels`.
pub fn model() -> OnlineModel {
    let labels = LabelSpec::new("labels", "event_id", "is_fraud", Duration::from_secs(120), Some(false)).revealed_at("label_ts", Duration::from_secs(15));
    let inputs = ["tx_count_1m", "amount", "amount_max_1h", "amount_mean_1h", "secs_since_prev", "tx_count_1h", "amount_sum_1m", "amount_max_1m"];
    inputs.iter().fold(OnlineModel::logistic("fraud-lr-online", labels), |m, i| m.input(i, Transform::Log1p)).configure(|s| {
        s.consistency = Consistency::EventTime;
        s.batch = 32;
        s.select_every = 5_000;
        s.window = 5_000;
        s.min_labels = 1_000;
    })
}

/// The graph, built on every worker.
pub fn graph(g: &mut GraphBuilder<'_>) -> Result<()> {
    let tx = g.source(
        Source::json("transactions")
            .key("card_id")
            .event_time("ts")
            .event_id("event_id")
            .lateness(Duration::from_secs(5))
            .field("amount", FieldType::F64)
            .field("merchant", FieldType::Str)
            .field("country", FieldType::Str)
            .optional("device", FieldType::Str),
    );
    // logins arrive up to 3 minutes out of order
    let logins = g.source(
        Source::json("logins")
            .key("card_id")
            .event_time("ts")
            .lateness(Duration::from_secs(180))
            .field("device", FieldType::Str)
            .field("country", FieldType::Str)
            .field("new_device", FieldType::I64),
    );
    let purchases = tx.filter(|r| r.f64("amount").is_some_and(|a| a > 0.0));
    purchases.stateful("card_testing", SmallPurchases).sink("card_testing");
    purchases
        .interval_join("login_then_purchase", &logins, Duration::from_secs(600), Duration::ZERO)
        .filter(|(t, l)| {
            let big = t.f64("amount").is_some_and(|a| a > 200.0);
            big && l.f64("new_device") == Some(1.0) && t.str("device").is_some() && t.str("device") == l.str("device")
        })
        .map(|(t, l)| {
            serde_json::json!({"event_id": t.event_id(), "merchant": t.str("merchant"), "amount": t.f64("amount"),
                               "device": t.str("device"), "login_country": l.str("country"), "country": t.str("country")})
        })
        .sink("takeover_alerts");
    let scored = purchases.features("card_features", features()).score_online(model());
    scored.sink_scores("scores");
    scored
        .filter(|s| s.score >= 0.5)
        .view("risky_merchants", |s| s.value.record.str("merchant").unwrap_or("?").to_owned())
        .count()
        .sink_upsert("merchant_risk");
    Ok(())
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let embedded;
    let opts = match arg(&args, "--brokers") {
        Some(b) => KafkaOptions::new(&b),
        None => {
            embedded = EmbeddedBroker::start(1)?;
            let topics = [
                ("transactions", 4),
                ("logins", 2),
                ("labels", 2),
                ("scores", 4),
                ("card_testing", 2),
                ("takeover_alerts", 2),
                ("merchant_risk", 2),
                ("dlq", 1),
            ];
            for (topic, partitions) in topics {
                embedded.create_topic(topic, partitions)?;
            }
            let opts = embedded.kafka_options();
            let events = arg(&args, "--events").map(|n| n.parse()).transpose().context("--events N")?.unwrap_or(60_000);
            let publish_opts =
                PublishOptions { topic: "transactions".into(), labels_topic: Some("labels".into()), logins_topic: Some("logins".into()), events, rate: None };
            publish(&opts, GenConfig { bad_ratio: 0.01, cards: 20_000, ..GenConfig::default() }, &publish_opts, &PublishProgress::default(), &never())?;
            opts
        }
    };
    let workers = arg(&args, "--workers").map(|w| w.parse()).transpose().context("--workers N")?.unwrap_or(2);
    let mut run = KafkaRun::new(opts.clone()).workers(workers).until_end();
    if let Some(hosts) = arg(&args, "--hosts") {
        // one process of a timely cluster: each process runs a replica of the learner
        let process = arg(&args, "--process").map(|p| p.parse()).transpose().context("--process I")?.unwrap_or(0);
        run = run.cluster(process, hosts.split(',').map(str::to_owned).collect());
    }
    let out = run.run(graph)?;
    for (topic, c) in &out.sources {
        println!("{topic}: read {}, accepted {}, rejected {:?}", c.read, c.accepted, c.rejected);
    }
    for (topic, n) in &out.produced {
        println!("wrote {n} records to {topic}");
    }
    for (model, l) in &out.learners {
        println!(
            "{model}: {} labels joined, {} trained, {} selection rounds ({}), champion {} (AUC {:?})",
            l.counts.joined, l.counts.trained, l.counts.selections, l.device, l.champion, l.champion_quality.roc_auc
        );
    }
    let mut risk: Vec<(String, i64)> = read_topic(&opts, "merchant_risk", Duration::from_secs(10))?
        .into_iter()
        .filter_map(|r| Some((String::from_utf8(r.key?).ok()?, r.payload.and_then(|p| serde_json::from_slice(&p).ok()).unwrap_or(0))))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    risk.sort_by_key(|(_, n)| -n);
    println!("riskiest merchants (purchases scored >= 0.5): {:?}", &risk[..risk.len().min(5)]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use vigil::demo::generator::Generator;
    use vigil::graph::LocalRun;
    use vigil::types::key_hash;

    use super::*;

    type Partitions = Vec<Vec<Vec<u8>>>;

    /// The generator's transactions (4 partitions), logins (2) and labels (1),
    /// and per event id: its label and its merchant.
    fn topics(events: usize) -> (Partitions, Partitions, Partitions, HashMap<String, bool>, HashMap<String, String>) {
        let mut g = Generator::new(GenConfig { seed: 9, cards: 2_000, bad_ratio: 0.01, logins: true, label_delay: 500, ..GenConfig::default() });
        let (mut tx, mut logins, mut labels) = (vec![Vec::new(); 4], vec![Vec::new(); 2], vec![Vec::new()]);
        let (mut fraud, mut merchants) = (HashMap::new(), HashMap::new());
        let mut label = |l: vigil::demo::generator::Generated, fraud: &mut HashMap<String, bool>| {
            let v: serde_json::Value = serde_json::from_slice(&l.payload).unwrap();
            fraud.insert(v["event_id"].as_str().unwrap().to_owned(), v["is_fraud"].as_bool().unwrap());
            labels[0].push(l.payload);
        };
        for _ in 0..events {
            let t = g.next_transaction();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&t.payload) {
                if let (Some(id), Some(m)) = (v["event_id"].as_str(), v["merchant"].as_str()) {
                    merchants.insert(id.to_owned(), m.to_owned());
                }
            }
            tx[(key_hash(&t.key) % 4) as usize].push(t.payload);
            for l in g.take_logins() {
                logins[(key_hash(&l.key) % 2) as usize].push(l.payload);
            }
            g.due_labels().into_iter().for_each(|l| label(l, &mut fraud));
        }
        g.remaining_labels().into_iter().for_each(|l| label(l, &mut fraud));
        (tx, logins, labels, fraud, merchants)
    }

    #[test]
    fn the_graph_finds_takeovers_and_card_testers_and_keeps_the_risk_view() {
        let (tx, logins, labels, fraud, merchants) = topics(40_000);
        let out = LocalRun::new(2).topic("transactions", tx).topic("logins", logins).topic("labels", labels).run(graph).unwrap();
        let accepted = out.sources["transactions"].accepted;
        assert_eq!(out.sink("scores").len() as u64, accepted, "every accepted purchase scored");
        assert!(out.sources["logins"].accepted > 2_000);
        let learner = &out.learners["fraud-lr-online"];
        assert!(learner.counts.joined > 30_000, "{:?}", learner.counts);
        // takeover alerts are frauds
        let alerts: Vec<serde_json::Value> = out.values("takeover_alerts").iter().map(|v| serde_json::from_str(v).unwrap()).collect();
        let true_alerts = alerts.iter().filter(|a| fraud.get(a["event_id"].as_str().unwrap()) == Some(&true)).count();
        assert!(alerts.len() >= 10 && true_alerts * 10 >= alerts.len() * 9, "{true_alerts} of {}", alerts.len());
        assert!(!out.sink("card_testing").is_empty());
        // the view's last value per merchant is the count of its purchases scored 0.5 or more
        let mut expected: BTreeMap<String, i64> = BTreeMap::new();
        for s in out.values("scores") {
            let s: serde_json::Value = serde_json::from_str(&s).unwrap();
            if s["score"].as_f64().unwrap() >= 0.5 {
                *expected.entry(merchants[s["event_id"].as_str().unwrap()].clone()).or_default() += 1;
            }
        }
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        for r in out.sink("merchant_risk") {
            last.insert(r.key.clone(), r.value.as_deref().map_or(0, |v| v.parse().unwrap()));
        }
        assert!(expected.len() > 10, "{expected:?}");
        assert_eq!(last, expected);
    }
}
