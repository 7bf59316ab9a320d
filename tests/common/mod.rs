//! Shared test support: an independent, naive oracle for the job's semantics, and
//! helpers to host a broker and read topics.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Kills a helper process (a broker, a job) when the test ends, however it ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit successfully within `limit`.
pub fn wait_ok(mut child: Child, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} exited with {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes the demo's fraud job with its outputs renamed to `scores_<run>` and
/// `dlq_<run>`, and returns the file's path.
pub fn job_file(dir: &Path, run: &str) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fraud_job.toml")).unwrap();
    let text = text.replace("scores = \"scores\"", &format!("scores = \"scores_{run}\"")).replace("dlq = \"dlq\"", &format!("dlq = \"dlq_{run}\""));
    let path = dir.join(format!("{run}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// 2000-01-01 in epoch ms.
pub const Y2000_MS: i64 = 946_684_800_000;

/// What the oracle expects for one input offset.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    Dlq(&'static str),
    /// Feature values by name (None = null).
    Scored(Vec<(String, Option<f64>)>),
}

/// A window feature as the oracle understands it.
#[derive(Clone, Debug)]
pub enum OracleFeature {
    Window {
        name: String,
        agg: &'static str,
        field: Option<String>,
        window_ms: i64,
    },
    /// A tumbling, hopping or session window as of each event (see `vigil_operators::kinds`).
    Kind {
        name: String,
        agg: &'static str,
        field: Option<String>,
        kind: vigil_operators::WindowKind,
        size_ms: i64,
    },
    SincePrev {
        name: String,
        ttl_ms: i64,
    },
    /// Every accepted earlier event of the key (and the event) at or before its time, weighted 2^(-age / half-life).
    Decayed {
        name: String,
        kind: vigil_operators::DecayKind,
        field: Option<String>,
        half_life_ms: i64,
    },
    /// The field's value over its mean over the key's accepted events (up to this
    /// one) with time in `[s, t]`, `s` = the window start rounded up to the pane grid.
    RatioToMean {
        name: String,
        field: String,
        window_ms: i64,
        pane_ms: i64,
    },
    /// Distinct values of a string field over the sliding window.
    Distinct {
        name: String,
        field: String,
        window_ms: i64,
    },
    /// HyperLogLog estimate of the distinct values of a string field over `[s, t]`,
    /// `s` rounded up to the pane grid (the sketch of the oracle's set).
    ApproxDistinct {
        name: String,
        field: String,
        window_ms: i64,
        pane_ms: i64,
        precision: u8,
    },
    /// The field at the key's previous accepted event, if within `ttl_ms`.
    PrevValue {
        name: String,
        field: String,
        ttl_ms: i64,
    },
}

pub struct OracleJob {
    pub key: String,
    /// Optional numeric fields: present values must be numbers (else `wrong_type`).
    pub numeric: Vec<String>,
    pub time: String,
    pub lateness_ms: i64,
    pub max_bytes: usize,
    pub max_future_ms: i64,
    pub features: Vec<OracleFeature>,
}

/// Computes, by brute force, what every offset of every partition must become.
/// `now_ms` is the wall clock used for the future-timestamp rule.
pub fn oracle(job: &OracleJob, partitions: &[Vec<Option<Vec<u8>>>], now_ms: i64) -> HashMap<(u32, i64), Expected> {
    let mut out = HashMap::new();
    for (p, records) in partitions.iter().enumerate() {
        let mut max_seen: Option<i64> = None;
        // accepted events of this partition so far: (key, time, record)
        let mut accepted: Vec<(String, i64, serde_json::Map<String, serde_json::Value>)> = Vec::new();
        for (o, payload) in records.iter().enumerate() {
            let key = (p as u32, o as i64);
            let Some(bytes) = payload.as_deref().filter(|b| !b.is_empty()) else {
                out.insert(key, Expected::Dlq("empty"));
                continue;
            };
            if bytes.len() > job.max_bytes {
                out.insert(key, Expected::Dlq("oversize"));
                continue;
            }
            let Ok(text) = std::str::from_utf8(bytes) else {
                out.insert(key, Expected::Dlq("invalid_utf8"));
                continue;
            };
            let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
                out.insert(key, Expected::Dlq("not_json"));
                continue;
            };
            if has_duplicate_top_level_key(text) {
                out.insert(key, Expected::Dlq("duplicate_field"));
                continue;
            }
            let Some(obj) = value.as_object().cloned() else {
                out.insert(key, Expected::Dlq("not_object"));
                continue;
            };
            if job.numeric.iter().any(|f| obj.get(f).is_some_and(|v| !v.is_null() && !v.is_number())) {
                out.insert(key, Expected::Dlq("wrong_type"));
                continue;
            }
            let k = match obj.get(&job.key) {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => {
                    out.insert(key, Expected::Dlq("missing_field"));
                    continue;
                }
            };
            let t = match obj.get(&job.time) {
                Some(serde_json::Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap(),
                Some(serde_json::Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
                    Ok(t) => t.timestamp_millis(),
                    Err(_) => {
                        out.insert(key, Expected::Dlq("bad_timestamp"));
                        continue;
                    }
                },
                _ => {
                    out.insert(key, Expected::Dlq("missing_field"));
                    continue;
                }
            };
            let reference = max_seen.map_or(now_ms, |m| m.max(now_ms));
            if t < Y2000_MS || t > reference + job.max_future_ms {
                out.insert(key, Expected::Dlq("bad_timestamp"));
                continue;
            }
            if max_seen.is_some_and(|m| t < m - job.lateness_ms) {
                out.insert(key, Expected::Dlq("late"));
                continue;
            }
            max_seen = Some(max_seen.map_or(t, |m| m.max(t)));
            let previous = accepted.iter().rev().find(|(kk, _, _)| *kk == k).map(|(_, pt, _)| *pt);
            let previous_record = accepted.iter().rev().find(|(kk, _, _)| *kk == k).map(|(_, pt, r)| (*pt, r.clone()));
            accepted.push((k.clone(), t, obj));
            let mut feats = Vec::new();
            for f in &job.features {
                match f {
                    OracleFeature::Window { name, agg, field, window_ms } => {
                        let in_window: Vec<Option<f64>> = accepted
                            .iter()
                            .filter(|(kk, tt, _)| *kk == k && *tt > t - window_ms && *tt <= t)
                            .map(|(_, _, r)| field.as_ref().and_then(|f| r.get(f)).and_then(|v| v.as_f64()))
                            .collect();
                        feats.push((name.clone(), naive_agg(agg, &in_window)));
                    }
                    OracleFeature::Kind { name, agg, field, kind, size_ms } => {
                        // the key's events so far at or before t, in time order
                        let mut seen: Vec<(i64, Option<f64>)> = accepted
                            .iter()
                            .filter(|(kk, tt, _)| *kk == k && *tt <= t)
                            .map(|(_, tt, r)| (*tt, field.as_ref().and_then(|f| r.get(f)).and_then(|v| v.as_f64())))
                            .collect();
                        seen.sort_by_key(|(tt, _)| *tt);
                        let start = match *kind {
                            vigil_operators::WindowKind::Tumbling => t.div_euclid(*size_ms) * size_ms,
                            vigil_operators::WindowKind::Hopping { hop_ms } => (t - size_ms).div_euclid(hop_ms) * hop_ms + hop_ms,
                            vigil_operators::WindowKind::Session { gap_ms } => {
                                let mut j = seen.len() - 1;
                                while j > 0 && seen[j].0 - seen[j - 1].0 < gap_ms {
                                    j -= 1;
                                }
                                seen[j].0
                            }
                            vigil_operators::WindowKind::Sliding => t - size_ms + 1,
                        };
                        let in_window: Vec<Option<f64>> = seen.into_iter().filter(|(tt, _)| *tt >= start).map(|(_, v)| v).collect();
                        feats.push((name.clone(), naive_agg(agg, &in_window)));
                    }
                    OracleFeature::Decayed { name, kind, field, half_life_ms } => {
                        let (mut sum, mut weight) = (0.0, 0.0);
                        for (_, tt, r) in accepted.iter().filter(|(kk, tt, _)| *kk == k && *tt <= t) {
                            let f = (-((t - tt) as f64) / *half_life_ms as f64).exp2();
                            match field.as_ref().map(|name| r.get(name).and_then(|v| v.as_f64())) {
                                None => (sum, weight) = (sum + f, weight + f),
                                Some(Some(v)) => (sum, weight) = (sum + f * v, weight + f),
                                Some(None) => {}
                            }
                        }
                        let v = match kind {
                            vigil_operators::DecayKind::Avg => (weight > 0.0).then(|| sum / weight),
                            _ => Some(sum),
                        };
                        feats.push((name.clone(), v));
                    }
                    OracleFeature::PrevValue { name, field, ttl_ms } => {
                        let v = previous_record.as_ref().filter(|(pt, _)| t - pt <= *ttl_ms).and_then(|(_, r)| r.get(field).and_then(|v| v.as_f64()));
                        feats.push((name.clone(), v));
                    }
                    OracleFeature::RatioToMean { name, field, window_ms, pane_ms } => {
                        let from = ((t - window_ms).div_euclid(*pane_ms) + 1) * pane_ms;
                        let values: Vec<f64> = accepted
                            .iter()
                            .filter(|(kk, tt, _)| *kk == k && *tt >= from && *tt <= t)
                            .filter_map(|(_, _, r)| r.get(field).and_then(|v| v.as_f64()))
                            .collect();
                        let mean = values.iter().sum::<f64>() / values.len() as f64;
                        let own = accepted.last().and_then(|(_, _, r)| r.get(field)).and_then(|v| v.as_f64());
                        feats.push((name.clone(), own.filter(|_| !values.is_empty() && mean != 0.0).map(|v| v / mean)));
                    }
                    OracleFeature::Distinct { name, field, window_ms } => {
                        let values: std::collections::HashSet<&str> = accepted
                            .iter()
                            .filter(|(kk, tt, _)| *kk == k && *tt > t - window_ms && *tt <= t)
                            .filter_map(|(_, _, r)| r.get(field).and_then(|v| v.as_str()))
                            .collect();
                        feats.push((name.clone(), Some(values.len() as f64)));
                    }
                    OracleFeature::ApproxDistinct { name, field, window_ms, pane_ms, precision } => {
                        let from = ((t - window_ms).div_euclid(*pane_ms) + 1) * pane_ms;
                        let mut sketch = vigil_operators::hll::Sketch::new(*precision);
                        for (_, _, r) in accepted.iter().filter(|(kk, tt, _)| *kk == k && *tt >= from && *tt <= t) {
                            if let Some(v) = r.get(field).and_then(|v| v.as_str()) {
                                sketch.add(*precision, vigil_operators::distinct::tag_of(v));
                            }
                        }
                        feats.push((name.clone(), Some(sketch.estimate())));
                    }
                    OracleFeature::SincePrev { name, ttl_ms } => {
                        let v = previous.filter(|pt| t - pt <= *ttl_ms).map(|pt| (t - pt) as f64 / 1000.0);
                        feats.push((name.clone(), v));
                    }
                }
            }
            out.insert(key, Expected::Scored(feats));
        }
    }
    out
}

/// A naive aggregate over a window's events (`None`: the event lacks the field).
pub fn naive_agg(agg: &str, in_window: &[Option<f64>]) -> Option<f64> {
    let present: Vec<f64> = in_window.iter().flatten().copied().collect();
    match agg {
        "count" => Some(in_window.len() as f64),
        "sum" => Some(present.iter().fold(0.0, |a, v| a + v)),
        "mean" => (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64),
        "max" => present.iter().copied().reduce(f64::max),
        "min" => present.iter().copied().reduce(f64::min),
        "variance" | "std" => (present.len() >= 2).then(|| {
            let m = present.iter().sum::<f64>() / present.len() as f64;
            let var = present.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (present.len() - 1) as f64;
            if agg == "std" {
                var.sqrt()
            } else {
                var
            }
        }),
        _ => unreachable!(),
    }
}

/// Every window of a tumbling, hopping or session feature over the accepted
/// events of each key (`(key, time, field value)`): `(key, start, end) -> aggregate`,
/// what emit-on-close must write, once each.
pub fn closed_windows(
    agg: &str,
    kind: vigil_operators::WindowKind,
    size_ms: i64,
    accepted: &[(String, i64, Option<f64>)],
) -> std::collections::BTreeMap<(String, i64, i64), Option<f64>> {
    let mut by_key: std::collections::BTreeMap<&str, Vec<(i64, Option<f64>)>> = Default::default();
    for (k, t, v) in accepted {
        by_key.entry(k).or_default().push((*t, *v));
    }
    let mut windows: std::collections::BTreeMap<(String, i64, i64), Vec<Option<f64>>> = Default::default();
    for (k, mut events) in by_key {
        events.sort_by_key(|(t, _)| *t);
        match kind {
            vigil_operators::WindowKind::Session { gap_ms } => {
                let mut i = 0;
                while i < events.len() {
                    let mut j = i;
                    while j + 1 < events.len() && events[j + 1].0 - events[j].0 < gap_ms {
                        j += 1;
                    }
                    windows.insert((k.to_owned(), events[i].0, events[j].0 + gap_ms), events[i..=j].iter().map(|(_, v)| *v).collect());
                    i = j + 1;
                }
            }
            _ => {
                let hop = if let vigil_operators::WindowKind::Hopping { hop_ms } = kind { hop_ms } else { size_ms };
                for (t, v) in &events {
                    let mut s = kind.start(size_ms, *t).expect("tumbling or hopping");
                    while s <= *t {
                        windows.entry((k.to_owned(), s, s + size_ms)).or_default().push(*v);
                        s += hop;
                    }
                }
            }
        }
    }
    windows.into_iter().map(|(w, values)| (w, naive_agg(agg, &values))).collect()
}

/// Reads output payloads (scores or DLQ JSON) into what the oracle predicts.
pub fn observed(scores: &[serde_json::Value], dlq: &[serde_json::Value]) -> HashMap<(u32, i64), Vec<Expected>> {
    let mut out: HashMap<(u32, i64), Vec<Expected>> = HashMap::new();
    for s in scores {
        let key = (s["source_partition"].as_u64().unwrap() as u32, s["source_offset"].as_i64().unwrap());
        let feats = s["features"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_f64())).collect::<Vec<_>>();
        out.entry(key).or_default().push(Expected::Scored(feats));
    }
    for d in dlq {
        let key = (d["source_partition"].as_u64().unwrap() as u32, d["source_offset"].as_i64().unwrap());
        let reason: &'static str = Box::leak(d["reason"].as_str().unwrap().to_owned().into_boxed_str());
        out.entry(key).or_default().push(Expected::Dlq(reason));
    }
    out
}

/// Compares expectations with observations; returns a description of the first
/// difference. Feature order is ignored; values must be equal (the test inputs use
/// integer amounts, so every sum is exact in any order).
pub fn compare(expected: &HashMap<(u32, i64), Expected>, observed: &HashMap<(u32, i64), Vec<Expected>>) -> Result<(), String> {
    for (k, obs) in observed {
        if !expected.contains_key(k) {
            return Err(format!("output for unknown input {k:?}: {obs:?}"));
        }
    }
    let mut keys: Vec<_> = expected.keys().collect();
    keys.sort();
    for k in keys {
        let want = &expected[k];
        let got = observed.get(k).map(Vec::as_slice).unwrap_or_default();
        if got.len() != 1 {
            return Err(format!("input {k:?}: expected exactly one output, got {got:?} (want {want:?})"));
        }
        let same = match (want, &got[0]) {
            (Expected::Dlq(a), Expected::Dlq(b)) => a == b,
            (Expected::Scored(a), Expected::Scored(b)) => {
                let mut a = a.clone();
                let mut b = b.clone();
                a.sort_by(|x, y| x.0.cmp(&y.0));
                b.sort_by(|x, y| x.0.cmp(&y.0));
                a.len() == b.len()
                    && a.iter().zip(&b).all(|((na, va), (nb, vb))| {
                        na == nb
                            && match (va, vb) {
                                (None, None) => true,
                                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                                _ => false,
                            }
                    })
            }
            _ => false,
        };
        if !same {
            return Err(format!("input {k:?}: expected {want:?}, got {:?}", got[0]));
        }
    }
    Ok(())
}

/// Whether a JSON object names one top-level key twice (serde_json's Value keeps the last).
fn has_duplicate_top_level_key(text: &str) -> bool {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Dup;
    impl<'de> Visitor<'de> for Dup {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("anything")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut dup = false;
            while let Some((k, _)) = map.next_entry::<String, IgnoredAny>()? {
                dup |= !seen.insert(k);
            }
            Ok(dup)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    serde_json::Deserializer::from_str(text).deserialize_any(Dup).unwrap_or(false)
}

/// Two tables (`cards` by the event key: `limit`, `tier`; `merchants` by the
/// `merchant` field: `risk`) and three lookup features, to add to
/// `examples/fraud_job.toml`.
pub const TABLE_LOOKUPS: &str = r#"
[[table]]
name = "cards"
topic = "card_profiles"
columns = ["limit", "tier"]

[[table]]
name = "merchants"
topic = "merchant_risk"
columns = ["risk"]

[[feature]]
name = "card_limit"
agg = "lookup"
join = "cards"
field = "limit"

[[feature]]
name = "card_tier"
agg = "lookup"
join = "cards"
field = "tier"

[[feature]]
name = "merchant_risk"
agg = "lookup"
join = "merchants"
field = "risk"
on = "merchant"
"#;
