//! Tumbling, hopping and session windows against a naive oracle, on random
//! streams of a few keys with ties, times exactly on window boundaries, events
//! out of order and late events (dropped before the operator, as the source
//! does). Checked: every event's value as of itself (count, sum, mean, min, max,
//! std) on update, and on close every window exactly once, with its final
//! aggregate, never before the watermark passed its end and always once it had.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vigil_operators::aggregate::{to_fixed, FIXED_SCALE};
use vigil_operators::{Agg, ClosedWindow, Emit, FeatureDef, FeatureState, WindowFeature, WindowKind};

const LATENESS: i64 = 6;
const AGGS: [Agg; 6] = [Agg::Count, Agg::Sum, Agg::Mean, Agg::Min, Agg::Max, Agg::Std];

/// (key, time, value; NaN = absent)
type Ev = (u8, i64, f64);

fn defs(kind: WindowKind, size: i64) -> Vec<FeatureDef> {
    AGGS.iter()
        .enumerate()
        .map(|(i, agg)| {
            FeatureDef::Window(WindowFeature {
                name: format!("f{i}"),
                agg: *agg,
                field: (*agg != Agg::Count).then_some(0),
                window_ms: size,
                kind,
                // one on-close feature is enough to check the windows
                emit: if i == 1 { Emit::OnClose } else { Emit::OnUpdate },
            })
        })
        .collect()
}

/// The naive aggregate of `values` (present ones for field aggregates).
fn naive(agg: Agg, values: &[f64]) -> Option<f64> {
    let present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let n = present.len() as f64;
    match agg {
        Agg::Count => Some(values.len() as f64),
        Agg::Sum => Some(present.iter().map(|v| to_fixed(*v)).sum::<i128>() as f64 / FIXED_SCALE),
        Agg::Mean => (!present.is_empty()).then(|| present.iter().map(|v| to_fixed(*v)).sum::<i128>() as f64 / FIXED_SCALE / n),
        Agg::Min => present.iter().copied().reduce(f64::min),
        Agg::Max => present.iter().copied().reduce(f64::max),
        Agg::Std => (present.len() > 1).then(|| {
            let mean = present.iter().sum::<f64>() / n;
            (present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        }),
        _ => unreachable!(),
    }
}

/// The events of `e`'s window as of `e` (index `i` among the accepted events).
fn window_of(kind: WindowKind, size: i64, accepted: &[Ev], i: usize) -> Vec<f64> {
    let (key, t, _) = accepted[i];
    let mut seen: Vec<(i64, f64)> = accepted[..=i].iter().filter(|(k, et, _)| *k == key && *et <= t).map(|(_, et, v)| (*et, *v)).collect();
    seen.sort_by_key(|(et, _)| *et);
    let start = match kind {
        WindowKind::Tumbling => t.div_euclid(size) * size,
        WindowKind::Hopping { hop_ms } => (t - size).div_euclid(hop_ms) * hop_ms + hop_ms,
        WindowKind::Session { gap_ms } => {
            let mut j = seen.len() - 1;
            while j > 0 && seen[j].0 - seen[j - 1].0 < gap_ms {
                j -= 1;
            }
            seen[j].0
        }
        WindowKind::Sliding => unreachable!(),
    };
    seen.into_iter().filter(|(et, _)| *et >= start).map(|(_, v)| v).collect()
}

/// Every window of the stream, by (key, start, end): its values.
fn all_windows(kind: WindowKind, size: i64, accepted: &[Ev]) -> BTreeMap<(u8, i64, i64), Vec<f64>> {
    let mut out: BTreeMap<(u8, i64, i64), Vec<f64>> = BTreeMap::new();
    match kind {
        WindowKind::Session { gap_ms } => {
            let mut by_key: BTreeMap<u8, Vec<(i64, f64)>> = BTreeMap::new();
            for (k, t, v) in accepted {
                by_key.entry(*k).or_default().push((*t, *v));
            }
            for (k, mut evs) in by_key {
                evs.sort_by_key(|(t, _)| *t);
                let mut session: Vec<(i64, f64)> = Vec::new();
                for (t, v) in evs {
                    if session.last().is_some_and(|(lt, _)| t - lt >= gap_ms) {
                        out.insert((k, session[0].0, session.last().unwrap().0 + gap_ms), session.iter().map(|(_, v)| *v).collect());
                        session.clear();
                    }
                    session.push((t, v));
                }
                out.insert((k, session[0].0, session.last().unwrap().0 + gap_ms), session.iter().map(|(_, v)| *v).collect());
            }
        }
        _ => {
            let hop = if let WindowKind::Hopping { hop_ms } = kind { hop_ms } else { size };
            for (k, t, v) in accepted {
                let mut s = kind.start(size, *t).unwrap();
                while s <= *t {
                    out.entry((*k, s, s + size)).or_default().push(*v);
                    s += hop;
                }
            }
        }
    }
    out
}

fn same(a: Option<f64>, b: Option<f64>, agg: Agg) -> bool {
    match (a, b) {
        (Some(x), Some(y)) if agg == Agg::Std => (x - y).abs() <= 1e-9 * (1.0 + y.abs()),
        _ => a.map(f64::to_bits) == b.map(f64::to_bits),
    }
}

fn kind_strategy() -> impl Strategy<Value = (WindowKind, i64)> {
    prop_oneof![
        (2i64..12).prop_map(|w| (WindowKind::Tumbling, w)),
        (1i64..6, 1i64..4).prop_map(|(h, m)| (WindowKind::Hopping { hop_ms: h }, h * m)),
        (1i64..8).prop_map(|g| (WindowKind::Session { gap_ms: g }, 0)),
    ]
}

fn stream() -> impl Strategy<Value = Vec<Ev>> {
    // time advances by 0..3 per event (ties are common), some events jump back
    // (out of order, sometimes past the lateness: late)
    prop::collection::vec((0u8..3, 0i64..3, prop::bool::weighted(0.25), 0i64..10, prop::option::weighted(0.9, -50i64..200)), 1..120).prop_map(|steps| {
        let mut t = 100;
        steps
            .into_iter()
            .map(|(k, dt, back, jump, v)| {
                t += dt;
                let time = if back { t - jump } else { t };
                (k, time, v.map_or(f64::NAN, |v| v as f64 / 4.0))
            })
            .collect()
    })
}

fn run(kind: WindowKind, size: i64, events: &[Ev]) -> Result<(), TestCaseError> {
    let d = defs(kind, size);
    let mut state = FeatureState::new(d, 1);
    let mut out = Vec::new();
    let mut closed: Vec<(ClosedWindow, i64)> = Vec::new();
    let mut accepted: Vec<Ev> = Vec::new();
    let (mut max_t, mut wm) = (i64::MIN, i64::MIN);
    for &(k, t, v) in events {
        if t < wm {
            continue; // late: dead-lettered at the source
        }
        max_t = max_t.max(t);
        wm = wm.max(max_t - LATENESS);
        accepted.push((k, t, v));
        state.observe(&format!("k{k}"), 0, wm, t, &[v], &mut out);
        let i = accepted.len() - 1;
        let values = window_of(kind, size, &accepted, i);
        for (j, agg) in AGGS.iter().enumerate() {
            let want = naive(*agg, &values);
            prop_assert!(
                same(out[j], want, *agg),
                "event {i} {:?}: {agg:?} = {:?}, oracle {:?} over {} values {:?}",
                accepted[i],
                out[j],
                want,
                values.len(),
                &values[..values.len().min(12)]
            );
        }
        let mut now = Vec::new();
        state.close_due(&mut now);
        for c in now {
            prop_assert!(c.end <= wm, "{c:?} closed before the watermark {wm} passed its end");
            closed.push((c, wm));
        }
    }
    // every window whose end the watermark passed is closed by now
    let expected = all_windows(kind, size, &accepted);
    for ((k, s, e), _) in expected.iter().filter(|((_, _, e), _)| *e <= wm) {
        prop_assert!(
            closed.iter().any(|(c, _)| c.key == format!("k{k}") && c.start == *s && c.end == *e),
            "window k{k} [{s}, {e}) not closed at watermark {wm}"
        );
    }
    let mut rest = Vec::new();
    state.close_all(&mut rest);
    closed.extend(rest.into_iter().map(|c| (c, i64::MAX)));
    let mut got: BTreeMap<(u8, i64, i64), &ClosedWindow> = BTreeMap::new();
    for (c, _) in &closed {
        let k: u8 = c.key[1..].parse().unwrap();
        prop_assert!(got.insert((k, c.start, c.end), c).is_none(), "window {c:?} emitted twice");
    }
    prop_assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (w, values) in &expected {
        let c = got[w];
        prop_assert_eq!(c.feature, 1);
        let sum = Agg::Sum.finish(c.span.count, Some(&c.span.fields[0]));
        prop_assert!(same(sum, naive(Agg::Sum, values), Agg::Sum), "{w:?}: sum {sum:?} vs {values:?}");
        prop_assert_eq!(c.span.count, values.len() as u64);
        prop_assert!(same(Agg::Max.finish(c.span.count, Some(&c.span.fields[0])), naive(Agg::Max, values), Agg::Max));
        prop_assert!(same(Agg::Min.finish(c.span.count, Some(&c.span.fields[0])), naive(Agg::Min, values), Agg::Min));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn window_kinds_match_the_oracle((kind, size) in kind_strategy(), events in stream()) {
        run(kind, size, &events)?;
    }
}

/// Long sessions outlive the retained events (eviction at the watermark): the
/// evicted part is kept as a summary and still counts.
#[test]
fn a_session_longer_than_the_retention_stays_exact() {
    let mut events = Vec::new();
    for i in 0..500 {
        events.push((0u8, 1_000 + i * 3, (i % 7) as f64)); // gaps of 3 < 6: one session up to 2_497
    }
    events.push((0, 2_507, 1.0)); // a new session (watermark 2_501)
    events.push((0, 2_501, 2.0)); // out of order, within the lateness: joins the first one
    run(WindowKind::Session { gap_ms: 6 }, 0, &events).unwrap();
}
