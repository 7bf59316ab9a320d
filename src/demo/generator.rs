//! A deterministic, seeded generator of card transactions with fraud, labels that
//! arrive later (chargebacks), optional drift and malformed records.
//!
//! Patterns: ordinary spending (heavy-tailed amounts, mostly home country and usual
//! device); card testing (bursts of small amounts seconds apart); account takeover
//! (new device, foreign country, large amount). At `drift_at` the fraud rate
//! triples, amounts grow by half and takeovers come from the home country. Event
//! times advance at `events_per_second` of simulated time, with some records a
//! little out of order and a few late by more than the allowed lateness.

use std::collections::VecDeque;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};

/// 2026-01-01T00:00:00Z.
pub const DEFAULT_START_MS: i64 = 1_767_225_600_000;

#[derive(Clone, Debug)]
pub struct GenConfig {
    pub seed: u64,
    pub cards: u32,
    pub merchants: u32,
    /// Share of malformed records, in [0, 1].
    pub bad_ratio: f64,
    /// Event index at which the fraud pattern and amounts shift: three times the
    /// fraud, amounts x1.5, account takeovers from the home country, and card
    /// testers 20-60 s apart with amounts of 2-12 (concept drift: the 1-minute
    /// counts stop catching them).
    pub drift_at: Option<u64>,
    pub start_ms: i64,
    /// Simulated events per second of event time.
    pub events_per_second: f64,
    /// A label is published this many events after its transaction.
    pub label_delay: u64,
    /// Also generate logins ([`Generator::take_logins`]).
    pub logins: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 7,
            cards: 200_000,
            merchants: 2_000,
            bad_ratio: 0.0,
            drift_at: None,
            start_ms: DEFAULT_START_MS,
            events_per_second: 200.0,
            label_delay: 2_000,
            logins: false,
        }
    }
}

/// One record to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    pub key: String,
    pub payload: Vec<u8>,
    /// What was deliberately broken, for malformed records.
    pub malformed: Option<&'static str>,
}

/// Card holders' age bands (a fairness attribute: the demo's groups).
pub const AGE_BANDS: [&str; 4] = ["18-29", "30-44", "45-64", "65+"];

const COUNTRIES: [&str; 12] = ["US", "DE", "FR", "GB", "ES", "IT", "NL", "PL", "SE", "BR", "IN", "JP"];

/// The kinds of malformed record the generator injects.
pub const MALFORMED_KINDS: [&str; 12] = [
    "not_json",
    "truncated",
    "wrong_type",
    "missing_key",
    "ancient_timestamp",
    "future_timestamp",
    "invalid_utf8",
    "oversize",
    "empty",
    "array",
    "null_key",
    "duplicate_field",
];

struct Burst {
    card: u32,
    remaining: u32,
    next_ms: f64,
}

pub struct Generator {
    cfg: GenConfig,
    rng: ChaCha8Rng,
    index: u64,
    sim_ms: f64,
    interarrival: Exp<f64>,
    amount: LogNormal<f64>,
    big_amount: LogNormal<f64>,
    bursts: Vec<Burst>,
    labels: VecDeque<(u64, Generated)>,
    /// Logins (its own random stream: the transactions are the same with or
    /// without them).
    login_rng: ChaCha8Rng,
    logins: Vec<Generated>,
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Self {
        let rate = cfg.events_per_second.max(1e-3) / 1000.0;
        Generator {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            index: 0,
            sim_ms: cfg.start_ms as f64,
            interarrival: Exp::new(rate).expect("positive rate"),
            amount: LogNormal::new(3.4, 1.1).expect("valid"),
            big_amount: LogNormal::new(6.3, 0.6).expect("valid"),
            bursts: Vec::new(),
            labels: VecDeque::new(),
            login_rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6c6f_6769_6e73),
            logins: Vec::new(),
            cfg,
        }
    }

    fn drifted(&self) -> bool {
        self.cfg.drift_at.is_some_and(|d| self.index >= d)
    }

    fn home(&self, card: u32) -> &'static str {
        COUNTRIES[(card as usize * 7 + 3) % COUNTRIES.len()]
    }

    /// The next transaction record (possibly malformed).
    pub fn next_transaction(&mut self) -> Generated {
        self.index += 1;
        let id = self.index;
        self.sim_ms += self.interarrival.sample(&mut self.rng);
        let drift = self.drifted();
        let fraud_scale = if drift { 3.0 } else { 1.0 };
        let amount_scale = if drift { 1.5 } else { 1.0 };

        if self.rng.gen::<f64>() < 0.0015 * fraud_scale {
            let card = self.rng.gen_range(0..self.cfg.cards);
            let n = self.rng.gen_range(5..15);
            self.bursts.push(Burst { card, remaining: n, next_ms: self.sim_ms });
        }
        let due = self.bursts.iter().position(|b| b.next_ms <= self.sim_ms);
        let (card, amount, country, device, fraud) = if let Some(i) = due {
            let b = &mut self.bursts[i];
            b.remaining -= 1;
            // after the drift, card testers slow down and test with larger amounts:
            // the 1-minute counts that caught them stop working (concept drift)
            b.next_ms = self.sim_ms + if drift { self.rng.gen_range(20_000.0..60_000.0) } else { self.rng.gen_range(2_000.0..12_000.0) };
            let card = b.card;
            if b.remaining == 0 {
                self.bursts.swap_remove(i);
            }
            let amount = if drift { self.rng.gen_range(2.0..12.0) } else { self.rng.gen_range(0.5..3.0) };
            (card, amount, self.home(card).to_owned(), format!("d-{card}"), true)
        } else {
            // Mildly skewed activity: the busiest card makes ~0.5 transactions a minute.
            let u: f64 = self.rng.gen();
            let card = (u.powf(1.2) * self.cfg.cards as f64) as u32;
            if self.rng.gen::<f64>() < 0.001 * fraud_scale {
                let country = if drift {
                    self.home(card).to_owned()
                } else {
                    let c = *COUNTRIES.choose(&mut self.rng).expect("non-empty");
                    c.to_owned()
                };
                let device = format!("d-new-{}", self.rng.gen::<u32>());
                (card, self.big_amount.sample(&mut self.rng) * amount_scale, country, device, true)
            } else {
                let country =
                    if self.rng.gen::<f64>() < 0.03 { (*COUNTRIES.choose(&mut self.rng).expect("non-empty")).to_owned() } else { self.home(card).to_owned() };
                let device = if self.rng.gen::<f64>() < 0.02 { format!("d-new-{}", self.rng.gen::<u32>()) } else { format!("d-{card}") };
                (card, self.amount.sample(&mut self.rng) * amount_scale, country, device, false)
            }
        };
        let mut ts = self.sim_ms as i64;
        let jitter: f64 = self.rng.gen();
        if jitter < 0.002 {
            ts -= self.rng.gen_range(20_000..60_000); // late beyond the usual lateness
        } else if jitter < 0.10 {
            ts -= self.rng.gen_range(0..3_000); // a little out of order
        }
        let key = format!("c-{card:06}");
        let event_id = format!("e-{id}");
        let merchant = format!("m-{:05}", self.rng.gen_range(0..self.cfg.merchants));
        let amount = (amount * 100.0).round() / 100.0;
        let time_json = if id % 5 == 0 {
            serde_json::Value::String(
                chrono::DateTime::from_timestamp_millis(ts).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default(),
            )
        } else {
            serde_json::Value::from(ts)
        };
        let record = serde_json::json!({
            "event_id": event_id, "card_id": key, "ts": time_json, "amount": amount,
            "merchant": merchant, "country": country, "device": device,
            "age_band": AGE_BANDS[(card as usize * 5 + 1) % AGE_BANDS.len()],
        });
        if self.cfg.logins {
            self.login_before(id, &key, ts, &device, &country, fraud);
        }
        let label = serde_json::json!({"event_id": event_id, "card_id": key, "is_fraud": fraud, "label_ts": ts});
        self.labels.push_back((id + self.cfg.label_delay, Generated { key: key.clone(), payload: label.to_string().into_bytes(), malformed: None }));

        if self.rng.gen::<f64>() < self.cfg.bad_ratio {
            let kind = MALFORMED_KINDS[self.rng.gen_range(0..MALFORMED_KINDS.len())];
            return Generated { key, payload: self.malform(kind, &record), malformed: Some(kind) };
        }
        Generated { key, payload: record.to_string().into_bytes(), malformed: None }
    }

    /// The logins of card `key` before its transaction at `ts`: an account
    /// takeover (a fraud from a new device) follows a login from that device and
    /// country 30 s to 3 min earlier, nine times in ten; about one transaction in
    /// twelve follows a login of the card's holder (its own device, at home).
    /// `new_device` (0 or 1) is the login service's flag: 1 for a takeover's
    /// device, and for 0.5% of the holders' logins (a new phone).
    /// Logins are written when their transaction is, so they arrive up to 3 min
    /// out of event-time order.
    fn login_before(&mut self, id: u64, key: &str, ts: i64, device: &str, country: &str, fraud: bool) {
        let takeover = fraud && device.starts_with("d-new");
        let (p, device, country) = match takeover {
            true => (0.9, device.to_owned(), country.to_owned()),
            false => (1.0 / 12.0, format!("d-{}", key[2..].parse::<u32>().unwrap_or(0)), String::new()),
        };
        if self.login_rng.gen::<f64>() >= p {
            return;
        }
        let at = ts - self.login_rng.gen_range(30_000..180_000);
        let country = if country.is_empty() { self.home(key[2..].parse().unwrap_or(0)).to_owned() } else { country };
        // the login service flags a device it has not seen for the card
        let new_device = takeover || self.login_rng.gen::<f64>() < 0.005;
        let login =
            serde_json::json!({"login_id": format!("l-{id}"), "card_id": key, "ts": at, "device": device, "country": country, "new_device": new_device as u8});
        let payload =
            if self.login_rng.gen::<f64>() < self.cfg.bad_ratio { login.to_string()[..20].as_bytes().to_vec() } else { login.to_string().into_bytes() };
        self.logins.push(Generated { key: key.to_owned(), payload, malformed: None });
    }

    /// The logins generated since the last call (call after each transaction;
    /// a login comes before its transaction in event time, not in the topic).
    pub fn take_logins(&mut self) -> Vec<Generated> {
        std::mem::take(&mut self.logins)
    }

    /// Labels whose delay has passed (call after each transaction).
    pub fn due_labels(&mut self) -> Vec<Generated> {
        let mut out = Vec::new();
        while self.labels.front().is_some_and(|(due, _)| *due <= self.index) {
            out.extend(self.labels.pop_front().map(|(_, l)| l));
        }
        out
    }

    /// Every label still waiting (at the end of a run).
    pub fn remaining_labels(&mut self) -> Vec<Generated> {
        self.labels.drain(..).map(|(_, l)| l).collect()
    }

    fn malform(&mut self, kind: &str, record: &serde_json::Value) -> Vec<u8> {
        let text = record.to_string();
        let mut obj = record.as_object().cloned().unwrap_or_default();
        match kind {
            "not_json" => b"card=c-1;amount=12".to_vec(),
            "truncated" => text.as_bytes()[..text.len() / 2].to_vec(),
            "wrong_type" => {
                obj.insert("amount".into(), serde_json::Value::String("twelve".into()));
                serde_json::Value::Object(obj).to_string().into_bytes()
            }
            "missing_key" => {
                obj.remove("card_id");
                serde_json::Value::Object(obj).to_string().into_bytes()
            }
            "ancient_timestamp" => {
                obj.insert("ts".into(), serde_json::Value::from(86_400_000i64));
                serde_json::Value::Object(obj).to_string().into_bytes()
            }
            "future_timestamp" => {
                obj.insert("ts".into(), serde_json::Value::from(4_102_444_800_000i64)); // 2100
                serde_json::Value::Object(obj).to_string().into_bytes()
            }
            "invalid_utf8" => {
                let mut b = text.into_bytes();
                b.insert(b.len() / 2, 0xff);
                b
            }
            "oversize" => {
                obj.insert("padding".into(), serde_json::Value::String("x".repeat(70_000)));
                serde_json::Value::Object(obj).to_string().into_bytes()
            }
            "empty" => Vec::new(),
            "array" => format!("[{text}]").into_bytes(),
            "null_key" => {
                obj.insert("card_id".into(), serde_json::Value::Null);
                serde_json::Value::Object(obj).to_string().into_bytes()
            }
            _ => format!("{},\"amount\":1}}", &text[..text.len() - 1]).into_bytes(), // duplicate_field
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let cfg = GenConfig { bad_ratio: 0.05, ..GenConfig::default() };
        let mut a = Generator::new(cfg.clone());
        let mut b = Generator::new(cfg);
        for _ in 0..2_000 {
            assert_eq!(a.next_transaction(), b.next_transaction());
        }
    }

    #[test]
    fn takeovers_follow_logins_from_their_new_device() {
        let mut g = Generator::new(GenConfig { seed: 5, cards: 1_000, logins: true, ..GenConfig::default() });
        let (mut takeovers, mut holders) = (0, 0);
        for _ in 0..200_000 {
            let tx: serde_json::Value = serde_json::from_slice(&g.next_transaction().payload).unwrap();
            for l in g.take_logins() {
                let l: serde_json::Value = serde_json::from_slice(&l.payload).unwrap();
                assert_eq!(l["card_id"], tx["card_id"]);
                let card: u32 = tx["card_id"].as_str().unwrap()[2..].parse().unwrap();
                let own = format!("d-{card}");
                assert!(l["device"] == tx["device"] || l["device"] == own.as_str(), "a takeover's device, or the holder's own");
                let gap = tx["ts"].as_i64().map(|t| t - l["ts"].as_i64().unwrap());
                assert!(gap.is_none_or(|g| (30_000..180_000).contains(&g)), "{gap:?}");
                match l["device"].as_str().unwrap().starts_with("d-new") {
                    true => {
                        assert_eq!(l["new_device"], 1);
                        takeovers += 1
                    }
                    false => holders += 1,
                }
            }
        }
        assert!(takeovers > 50, "{takeovers}");
        assert!(holders > 200_000 / 15, "{holders}");
    }
}
