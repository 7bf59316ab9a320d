//! Ratio to the long-window mean, kept from panes of evicted events, against a
//! naive oracle over every raw event: random streams of a few keys with ties,
//! out-of-order and late events (dropped before the operator, as the source
//! does) and absent values, with and without a shorter window that makes the key
//! retain raw events.

mod support;

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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn ratio_to_mean_matches_the_oracle(events in support::stream(prop::option::weighted(0.9, 1i64..400).prop_map(|v| v.map_or(f64::NAN, |v| v as f64 / 4.0)), 4, 9, 200), window in 10i64..60, pane in 1i64..12, short in prop::option::of(1i64..20)) {
        let r = RatioToMean { name: "r".into(), field: 0, window_ms: window, pane_ms: pane };
        let mut defs = vec![FeatureDef::RatioToMean(r.clone())];
        if let Some(w) = short {
            defs.push(FeatureDef::Window(WindowFeature::sliding("n", Agg::Count, None, w)));
        }
        let mut state = FeatureState::new(defs, 1);
        let (mut out, mut accepted) = (Vec::new(), Vec::new());
        let mut source = support::Source::new(LATENESS);
        for (k, t, v) in events {
            let Some(wm) = source.admit(t) else { continue }; // late
            accepted.push((k, t, v));
            state.observe(&format!("k{k}"), 0, wm, t, &[v], &mut out);
            let want = oracle(&r, &accepted, accepted.len() - 1);
            prop_assert_eq!(out[0].map(f64::to_bits), want.map(f64::to_bits), "event {:?}: {:?} vs oracle {:?}", accepted.last(), out[0], want);
        }
    }
}
