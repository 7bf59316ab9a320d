//! The compute path's upper limit: one plain loop over a HashMap doing the fraud
//! job's work (decode the JSON, sliding-window features as of each event, logistic
//! score, encode the score record), with no dataflow around it.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use vigil_operators::logistic::sigmoid;

#[derive(Deserialize)]
#[serde(untagged)]
enum Ts<'a> {
    Ms(i64),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

#[derive(Deserialize)]
struct Tx<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    card_id: Cow<'a, str>,
    #[serde(borrow)]
    ts: Ts<'a>,
    amount: f64,
}

#[derive(Serialize)]
struct Out<'a> {
    event_id: &'a str,
    key: &'a str,
    event_time: i64,
    source_partition: u32,
    source_offset: i64,
    score: f64,
    model: &'a str,
    model_version: &'a str,
    features: [f64; 9],
}

#[derive(Default)]
struct Card {
    events: VecDeque<(i64, f64)>,
    last: Option<i64>,
}

/// Processes every payload; returns the number scored and a checksum of output bytes.
pub fn run(partitions: &[Vec<Vec<u8>>]) -> (u64, u64) {
    let mut cards: HashMap<String, Card> = HashMap::new();
    let mut buf = Vec::with_capacity(512);
    let (mut scored, mut bytes) = (0u64, 0u64);
    let longest = partitions.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for (p, records) in partitions.iter().enumerate() {
            let Some(payload) = records.get(i) else { continue };
            let Ok(tx) = serde_json::from_slice::<Tx>(payload) else { continue };
            let t = match tx.ts {
                Ts::Ms(ms) => ms,
                Ts::Text(s) => match chrono::DateTime::parse_from_rfc3339(&s) {
                    Ok(t) => t.timestamp_millis(),
                    Err(_) => continue,
                },
            };
            let card = cards.entry(tx.card_id.to_string()).or_default();
            while card.events.front().is_some_and(|(et, _)| *et <= t - 3_600_000 - 5_000) {
                card.events.pop_front();
            }
            let pos = card.events.partition_point(|(et, _)| *et <= t);
            card.events.insert(pos, (t, tx.amount));
            let prev = card.last.replace(t);
            let mut f = [0.0f64; 9];
            for (w, base) in [(60_000i64, 0usize), (3_600_000, 4)] {
                let (mut n, mut sum, mut max) = (0.0, 0.0, f64::MIN);
                for (et, a) in card.events.range(..pos + 1).rev() {
                    if *et <= t - w {
                        break;
                    }
                    n += 1.0;
                    sum += a;
                    max = max.max(*a);
                }
                f[base] = n;
                f[base + 1] = sum;
                f[base + 2] = sum / n;
                f[base + 3] = max;
            }
            f[8] = prev.map_or(0.0, |p| (t - p) as f64 / 1000.0);
            let l = |x: f64| x.signum() * x.abs().ln_1p();
            let z = -7.0 + 1.6 * l(f[0]) + 0.55 * l(tx.amount) + 0.2 * l(f[7]) - 0.35 * l(f[6]) - 0.15 * l(f[8]);
            let out = Out {
                event_id: &tx.event_id,
                key: &tx.card_id,
                event_time: t,
                source_partition: p as u32,
                source_offset: i as i64,
                score: sigmoid(z),
                model: "fraud-lr",
                model_version: "2026-11-27",
                features: f,
            };
            buf.clear();
            let _ = serde_json::to_writer(&mut buf, &out);
            bytes += buf.len() as u64;
            scored += 1;
        }
    }
    (scored, bytes)
}
