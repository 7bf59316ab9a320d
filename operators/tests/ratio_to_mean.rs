//! Ratio to the long-window mean, kept from panes of evicted events, against a
//! naive oracle over every raw event: random streams of a few keys with ties,
//! out-of-order and late events (dropped before the operator, as the source
//! does) and absent values, with and without a shorter window that makes the key
//! retain raw events.

use proptest::prelude::*;
use vigil_operators::aggregate::{to_fixed, FIXED_SCALE};
use vigil_operators::{Agg, FeatureDef, FeatureState, RatioToMean, WindowFeature};

const LATENESS: i64 = 6;

fn oracle(r: &RatioToMean, accepted: &[(u8, i64, f64)], i: usize) -> Option<f64> {
    let (key, t, v) = accepted[i];
    let from = r.start(t);
    let (mut n, mut sum) = (0u64, 0i128);
    for (k, et, ev) in &accepted[..=i] {
        if *k == key && *et >= from && *et <= t && !ev.is_nan() {
            n += 1;
            sum += to_fixed(*ev);
        }
    }
    (n > 0 && sum != 0 && !v.is_nan()).then(|| v / (sum as f64 / FIXED_SCALE / n as f64))
}

fn stream() -> impl Strategy<Value = Vec<(u8, i64, f64)>> {
    prop::collection::vec((0u8..3, 0i64..4, prop::bool::weighted(0.2), 0i64..9, prop::option::weighted(0.9, 1i64..400)), 1..200).prop_map(|steps| {
        let mut t = 1_000;
        steps
            .into_iter()
            .map(|(k, dt, back, jump, v)| {
                t += dt;
                (k, if back { t - jump } else { t }, v.map_or(f64::NAN, |v| v as f64 / 4.0))
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn ratio_to_mean_matches_the_oracle(events in stream(), window in 10i64..60, pane in 1i64..12, short in prop::option::of(1i64..20)) {
        let r = RatioToMean { name: "r".into(), field: 0, window_ms: window, pane_ms: pane };
        let mut defs = vec![FeatureDef::RatioToMean(r.clone())];
        if let Some(w) = short {
            defs.push(FeatureDef::Window(WindowFeature::sliding("n", Agg::Count, None, w)));
        }
        let mut state = FeatureState::new(defs, 1);
        let (mut out, mut accepted) = (Vec::new(), Vec::new());
        let (mut max_t, mut wm) = (i64::MIN, i64::MIN);
        for (k, t, v) in events {
            if t < wm {
                continue; // late
            }
            max_t = max_t.max(t);
            wm = wm.max(max_t - LATENESS);
            accepted.push((k, t, v));
            state.observe(&format!("k{k}"), 0, wm, t, &[v], &mut out);
            let want = oracle(&r, &accepted, accepted.len() - 1);
            prop_assert_eq!(out[0].map(f64::to_bits), want.map(f64::to_bits), "event {:?}: {:?} vs oracle {:?}", accepted.last(), out[0], want);
        }
    }
}
