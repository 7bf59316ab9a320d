//! The compute path's upper limit: one plain single-thread loop doing the fraud
//! job's work with nothing around it: a typed serde decode of each transaction, the
//! same per-key feature state (a HashMap of running windows), the same logistic
//! score and the same score encoding. No dataflow, no exchange between workers, no
//! schema-driven validation, no watermarks, no metrics. The engine's ratio to this
//! loop is its overhead.

use std::borrow::Cow;

use serde::Deserialize;
use vigil::output::{ScoreContext, ScoreEncoder};
use vigil::spec::{InputSource, JobSpec};
use vigil_operators::FeatureState;

/// Epoch millis or RFC 3339 text (a hand-written visitor: serde's untagged enums
/// buffer their input and would make this loop slower than it needs to be).
enum Ts<'a> {
    Ms(i64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Ts<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Ts<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a timestamp")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Ts<'a>, E> {
                Ok(Ts::Ms(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Ts<'a>, E> {
                Ok(Ts::Ms(v as i64))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Ts<'a>, E> {
                Ok(Ts::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Ts<'a>, E> {
                Ok(Ts::Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
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

/// Processes every payload (partitions interleaved as the engine reads them);
/// returns the number scored and the bytes of score records produced.
pub fn run(job: &JobSpec, partitions: &[Vec<Vec<u8>>]) -> (u64, u64) {
    let names: Vec<String> = job.features.iter().map(|f| f.name().to_owned()).collect();
    let mut state = FeatureState::new(job.features.clone(), 1);
    let model = job.logistic_model();
    let inputs = job.model_inputs();
    let encoder = ScoreEncoder::new(&job.source.topic, &job.model.name, &job.model.version, &names);
    let lateness = job.source.allowed_lateness.as_millis() as i64;
    let mut max_time = vec![i64::MIN; partitions.len()];
    let (mut features, mut x, mut buf) = (Vec::new(), Vec::new(), Vec::with_capacity(512));
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
            max_time[p] = max_time[p].max(t);
            if t < max_time[p] - lateness {
                continue;
            }
            state.observe(&tx.card_id, p as u32, max_time[p] - lateness, t, &[tx.amount], &mut features);
            x.clear();
            x.extend(inputs.iter().map(|input| match input {
                InputSource::Feature(f) => features[*f],
                InputSource::Field(_) => Some(tx.amount),
            }));
            let ctx = ScoreContext {
                event_id: Some(&tx.event_id),
                key: &tx.card_id,
                event_time_ms: t,
                partition: p as u32,
                offset: i as i64,
                score: model.score(&x),
            };
            encoder.encode(&mut buf, &ctx, &features);
            bytes += buf.len() as u64;
            scored += 1;
        }
    }
    (scored, bytes)
}
