//! `agg-bench`: each aggregate alone on one worker, in memory: the operator
//! (`FeatureState::observe`: events as of themselves, out-of-order events, eviction,
//! TTL sweeps) against a plain loop doing the same aggregate over in-order events
//! (a HashMap of per-key deques with running sums, a monotonic deque for min/max,
//! a running decayed sum): the upper limit.
//!
//! Stream: 2,000,000 events over 100,000 keys (uniform), 10,000 events/s of event
//! time, 1-minute windows (about 6 events per key per window), 2% of the events up
//! to 2 s out of order (lateness 5 s), half-life 30 s for the decayed sums.
//!
//! Run: `cargo run --release -p vigil-benchmarks --bin agg-bench`

#[path = "../report.rs"]
mod report;
use report::median;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use anyhow::Result;
use vigil_operators::distinct::tag_of;
use vigil_operators::hll::Sketch;
use vigil_operators::learn::SplitMix;
use vigil_operators::{Agg, ApproxDistinct, DecayKind, Decayed, Distinct, FeatureDef, FeatureState, RatioToMean, WindowFeature, WindowKind};

// the allocator of the `vigil` binary
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: usize = 2_000_000;
const KEYS: u64 = 100_000;
const WINDOW_MS: i64 = 60_000;
const HALF_LIFE_MS: i64 = 30_000;
const HOP_MS: i64 = 10_000;
const PANE_MS: i64 = 10_000;
/// Session gaps: 1 minute, like the other windows, and 10 s, where most keys
/// leave state between two of their events (~10 s apart) and come back.
fn gap(name: &str) -> i64 {
    if name == "session_churn" {
        10_000
    } else {
        60_000
    }
}

struct Event {
    key: String,
    time: i64,
    watermark: i64,
    value: f64,
    /// A string field's tag (one of 50 values), for distinct counts.
    tag: u64,
}

fn stream() -> Vec<Event> {
    let mut rng = SplitMix(42);
    let mut max_t = 0i64;
    (0..EVENTS)
        .map(|i| {
            let key = format!("k{}", rng.next_u64() % KEYS);
            let base = i as i64 / 10; // 10 events per ms
            let late = rng.next_u64() % 100 < 2;
            let time = if late { base - (rng.next_u64() % 2_000) as i64 } else { base };
            max_t = max_t.max(time);
            let value = (rng.next_u64() % 100_000) as f64 / 100.0;
            let tag = tag_of(&format!("m-{}", rng.next_u64() % 50));
            Event { key, time, watermark: max_t - 5_000, value, tag }
        })
        .collect()
}

fn def(name: &str) -> FeatureDef {
    let w = |agg| FeatureDef::Window(WindowFeature::sliding(name, agg, Some(0), WINDOW_MS));
    match name {
        "count" => FeatureDef::Window(WindowFeature::sliding(name, Agg::Count, None, WINDOW_MS)),
        "sum" => w(Agg::Sum),
        "mean" => w(Agg::Mean),
        "min" => w(Agg::Min),
        "max" => w(Agg::Max),
        "variance" => w(Agg::Variance),
        "std" => w(Agg::Std),
        "distinct" => FeatureDef::Distinct(Distinct { name: name.into(), tag: 0, window_ms: WINDOW_MS }),
        "approx_distinct" => FeatureDef::ApproxDistinct(ApproxDistinct { name: name.into(), tag: 0, window_ms: WINDOW_MS, pane_ms: PANE_MS, precision: 10 }),
        "ratio" => FeatureDef::RatioToMean(RatioToMean { name: name.into(), field: 0, window_ms: WINDOW_MS, pane_ms: PANE_MS }),
        "tumbling" | "hopping" | "session" | "session_churn" => FeatureDef::Window(WindowFeature {
            kind: match name {
                "tumbling" => WindowKind::Tumbling,
                "hopping" => WindowKind::Hopping { hop_ms: HOP_MS },
                _ => WindowKind::Session { gap_ms: gap(name) },
            },
            window_ms: if name.starts_with("session") { 0 } else { WINDOW_MS },
            ..WindowFeature::sliding(name, Agg::Sum, Some(0), WINDOW_MS)
        }),
        _ => FeatureDef::Decayed(Decayed { name: name.into(), kind: DecayKind::Sum, field: Some(0), half_life_ms: HALF_LIFE_MS, ttl_ms: 16 * HALF_LIFE_MS }),
    }
}

/// Which side of the interval join an event is on (half left, half right).
fn side(e: &Event) -> &'static str {
    if (e.value * 100.0) as u64 % 2 == 0 {
        "L"
    } else {
        "R"
    }
}

/// The interval join: right events within 1 minute after a left one, per key;
/// every pair out (the operator also keeps unmatched lefts until they expire).
fn join_operator(events: &[Event]) -> f64 {
    use vigil_operators::interval_join::{IntervalJoin, JoinInput, JoinState, SideFilter};
    let def = IntervalJoin {
        name: "j".into(),
        left: Some(SideFilter { field: 0, value: "L".into() }),
        right: Some(SideFilter { field: 0, value: "R".into() }),
        lower_ms: 0,
        upper_ms: WINDOW_MS,
        on: None,
        emit_unmatched: true,
    };
    let strings: Vec<Vec<Option<String>>> = events.iter().map(|e| vec![Some(side(e).to_owned())]).collect();
    let mut state = JoinState::new(vec![def]);
    let mut out = Vec::new();
    let mut pairs = 0usize;
    let start = Instant::now();
    for (i, (e, strings)) in events.iter().zip(&strings).enumerate() {
        let input = JoinInput { time: e.time, partition: 0, offset: i as i64, event_id: None, values: &[e.value], strings };
        state.observe(&e.key, 0, e.watermark, &input, &mut out);
        if i % 4096 == 0 {
            state.expire_due(&mut out); // once per batch, as the job does
        }
        pairs += out.len();
        out.clear();
    }
    std::hint::black_box(pairs);
    events.len() as f64 / start.elapsed().as_secs_f64()
}

/// The plain join: in-order events, a deque of each key's lefts of the last
/// minute; a right event pairs with all of them.
fn join_plain(events: &[Event]) -> f64 {
    let mut lefts: HashMap<&str, VecDeque<(i64, f64)>> = HashMap::new();
    let mut pairs = 0usize;
    let start = Instant::now();
    for e in events {
        let q = lefts.entry(e.key.as_str()).or_default();
        while q.front().is_some_and(|(t, _)| *t < e.time - WINDOW_MS) {
            q.pop_front();
        }
        if side(e) == "L" {
            q.push_back((e.time, e.value));
        } else {
            pairs += q.len();
        }
    }
    std::hint::black_box(pairs);
    events.len() as f64 / start.elapsed().as_secs_f64()
}

fn operator(events: &[Event], name: &str) -> f64 {
    if name == "interval_join" {
        return join_operator(events);
    }
    let mut state = FeatureState::new(vec![def(name)], 1);
    let mut out = Vec::new();
    let mut check = 0.0;
    let start = Instant::now();
    for e in events {
        state.observe_tagged(&e.key, 0, e.watermark, e.time, &[e.value], &[e.tag], &mut out);
        check += out[0].unwrap_or(0.0);
    }
    std::hint::black_box(check);
    events.len() as f64 / start.elapsed().as_secs_f64()
}

/// The plain loop: in-order events, one deque per key, running aggregates.
fn plain(events: &[Event], name: &str) -> f64 {
    if name == "interval_join" {
        return join_plain(events);
    }
    #[derive(Default)]
    struct Key {
        items: VecDeque<(i64, f64)>,
        sum: f64,
        sum_sq: f64,
        mono: VecDeque<(i64, f64)>,
        decayed: (i64, f64),
        /// tumbling: (bucket, sum); session: (last time, sum)
        run: (i64, f64),
        /// distinct: tag counts over the window's deque
        tags: VecDeque<(i64, u64)>,
        counts: HashMap<u64, u32>,
        sketch: Option<Sketch>,
    }
    let mut keys: HashMap<&str, Key> = HashMap::new();
    let (min, max) = (name == "min", name == "max");
    let mut check = 0.0;
    let start = Instant::now();
    for e in events {
        let k = keys.entry(e.key.as_str()).or_default();
        if name == "decayed" {
            let (at, v) = k.decayed;
            let v = v * (-((e.time - at) as f64) / HALF_LIFE_MS as f64).exp2() + e.value;
            k.decayed = (e.time, v);
            check += v;
            continue;
        }
        if name == "distinct" {
            let lo = e.time - WINDOW_MS;
            while k.tags.front().is_some_and(|(t, _)| *t <= lo) {
                let (_, tag) = k.tags.pop_front().expect("non-empty");
                let n = k.counts.get_mut(&tag).expect("counted");
                *n -= 1;
                if *n == 0 {
                    k.counts.remove(&tag);
                }
            }
            k.tags.push_back((e.time, e.tag));
            *k.counts.entry(e.tag).or_default() += 1;
            check += k.counts.len() as f64;
            continue;
        }
        if name == "approx_distinct" {
            // one sketch per key, never windowed: less work than the operator does
            let s = k.sketch.get_or_insert_with(|| Sketch::new(10));
            s.add(10, e.tag);
            check += s.estimate();
            continue;
        }
        if name == "tumbling" || name.starts_with("session") {
            let (at, sum) = k.run;
            let same = if name == "tumbling" { e.time.div_euclid(WINDOW_MS) == at } else { e.time - at < gap(name) && !k.items.is_empty() };
            let sum = if same { sum + e.value } else { e.value };
            k.run = (if name == "tumbling" { e.time.div_euclid(WINDOW_MS) } else { e.time }, sum);
            if k.items.is_empty() {
                k.items.push_back((0, 0.0)); // marks the key as seen
            }
            check += sum;
            continue;
        }
        let lo = if name == "hopping" { (e.time - WINDOW_MS).div_euclid(HOP_MS) * HOP_MS + HOP_MS - 1 } else { e.time - WINDOW_MS };
        while k.items.front().is_some_and(|(t, _)| *t <= lo) {
            let (_, v) = k.items.pop_front().expect("non-empty");
            k.sum -= v;
            k.sum_sq -= v * v;
        }
        k.items.push_back((e.time, e.value));
        k.sum += e.value;
        k.sum_sq += e.value * e.value;
        if min || max {
            while k.mono.front().is_some_and(|(t, _)| *t <= lo) {
                k.mono.pop_front();
            }
            while k.mono.back().is_some_and(|(_, v)| if max { *v <= e.value } else { *v >= e.value }) {
                k.mono.pop_back();
            }
            k.mono.push_back((e.time, e.value));
        }
        let n = k.items.len() as f64;
        check += match name {
            "count" => n,
            "sum" => k.sum,
            "mean" => k.sum / n,
            "min" | "max" => k.mono.front().map_or(0.0, |m| m.1),
            "ratio" => e.value / (k.sum / n),
            _ if n > 1.0 => ((k.sum_sq - k.sum * k.sum / n) / (n - 1.0)).max(0.0).sqrt(),
            _ => 0.0,
        };
    }
    std::hint::black_box(check);
    events.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() -> Result<()> {
    let events = stream();
    let mut in_order: Vec<&Event> = events.iter().collect();
    in_order.sort_by_key(|e| e.time);
    let sorted: Vec<Event> = in_order.iter().map(|e| Event { key: e.key.clone(), time: e.time, watermark: e.watermark, value: e.value, tag: e.tag }).collect();
    // `agg-bench NAME` runs one aggregate and writes nothing (profiling)
    let only = std::env::args().nth(1);
    let mut rows = Vec::new();
    for name in [
        "count",
        "sum",
        "mean",
        "min",
        "max",
        "variance",
        "std",
        "decayed",
        "tumbling",
        "hopping",
        "session",
        "session_churn",
        "distinct",
        "approx_distinct",
        "ratio",
        "interval_join",
    ] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let op = median((0..3).map(|_| operator(&events, name)).collect());
        let pl = median((0..3).map(|_| plain(&sorted, name)).collect());
        println!("{name}: operator {:.2}M/s, plain loop {:.2}M/s", op / 1e6, pl / 1e6);
        let label = match name {
            "decayed" => "decayed_sum (half-life 30 s)".to_owned(),
            "tumbling" => "sum (tumbling 1 min)".to_owned(),
            "hopping" => "sum (hopping 1 min every 10 s)".to_owned(),
            "session" => "sum (session, gap 1 min)".to_owned(),
            "session_churn" => "sum (session, gap 10 s: keys leave state and return)".to_owned(),
            "distinct" => "distinct_count (sliding 1 min, 50 values)".to_owned(),
            "approx_distinct" => "approx_distinct (HyperLogLog p=10, 1 min in 10 s panes)".to_owned(),
            "ratio" => "ratio_to_mean (1 min in 10 s panes)".to_owned(),
            "interval_join" => "interval join (half left, half right, within 1 min, left outer)".to_owned(),
            _ => format!("{name} (sliding 1 min)"),
        };
        rows.push(format!("| {label} | {:.2}M | {:.2}M | {:.0}% | {} |", op / 1e6, pl / 1e6, 100.0 * op / pl, if op >= 1e6 { "met" } else { "not met" }));
    }
    let heading = "## Aggregates and window kinds, one at a time (in memory, one worker)";
    let section = format!(
        "{heading} (measured {})\n\nMachine: {}. Command: `cargo run --release -p vigil-benchmarks --bin agg-bench`.\n\n\
         {EVENTS} events over {KEYS} keys, 10,000 events/s of event time, 2% up to 2 s out of order (lateness 5 s); one feature per run through \
         `FeatureState::observe` (as of each event, out-of-order events exact, eviction, TTL sweeps), median of 3. Plain loop: the same aggregate over the \
         events sorted by time (no out-of-order handling), a HashMap of per-key deques with f64 running sums, a monotonic deque for min/max, a running \
         decayed sum, a running (bucket, sum) for tumbling and (last time, sum) for session windows, the deque with the start rounded to the hop for \
         hopping windows: the upper limit. The plain loops keep every key forever; the operator drops a key idle past its TTL (the window, or the session \
         gap), so with a 10 s gap most keys leave state between two of their events and are built again. The plain loop of `approx_distinct` updates one \
         never-windowed sketch per key (less work than the operator's panes); that of `ratio_to_mean` divides by the sliding mean of the raw events. \
         The interval join's plain loop keeps a deque of each key's lefts of the last minute and counts a right event's pairs; the operator also \
         handles out-of-order events on both sides, copies each pair's two records out, and keeps and expires unmatched lefts. `approx_distinct` keeps \
         a sparse sketch per pane per key (its few set registers), a cached union of the panes and a running union for in-order events; with 100,000 \
         keys and about one event per key per pane, most events still start a pane or rebuild a key's union. Built with mimalloc, the `vigil` binary's \
         allocator (until 2026-11-27 this benchmark ran on the system allocator: sliding aggregates were ~25% faster there and the join, \
         distinct counts and HyperLogLog slower). Target: 1,000,000 updates/s per worker.\n\n\
         | aggregate | operator events/s | plain loop events/s | ratio | target |\n|---|---|---|---|---|\n{}\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        report::machine(),
        rows.join("\n"),
    );
    println!("{section}");
    if only.is_some() {
        return Ok(());
    }
    report::write_section("benchmarks/RESULTS.md", heading, &section)
}
