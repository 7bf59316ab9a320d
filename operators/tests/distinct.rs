//! Exact distinct counts over sliding windows against a naive oracle: random
//! streams of a few keys over a small alphabet (repeats are common), ties,
//! out-of-order and late events (dropped before the operator), absent values,
//! alone and beside a longer window (so that entries outlive the distinct
//! window and are evicted later).

use std::collections::HashSet;

mod support;

use proptest::prelude::*;
use vigil_operators::distinct::{tag_of, ABSENT};
use vigil_operators::{Agg, Distinct, FeatureDef, FeatureState, WindowFeature};

const LATENESS: i64 = 5;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn distinct_counts_match_the_oracle(events in support::stream(prop::option::weighted(0.85, 0u8..6), 3, 8, 200), window in 1i64..25, longer in prop::option::of(25i64..60)) {
        let mut defs = vec![FeatureDef::Distinct(Distinct { name: "d".into(), tag: 1, window_ms: window })];
        if let Some(w) = longer {
            defs.push(FeatureDef::Window(WindowFeature::sliding("n", Agg::Count, None, w)));
        }
        let mut state = FeatureState::new(defs, 1);
        prop_assert_eq!(state.tags(), 2);
        let (mut out, mut accepted) = (Vec::new(), Vec::new());
        let mut source = support::Source::new(LATENESS);
        for (k, t, v) in events {
            let Some(wm) = source.admit(t) else { continue }; // late
            accepted.push((k, t, v));
            let tag = v.map_or(ABSENT, |v| tag_of(&format!("m-{v}")));
            state.observe_tagged(&format!("k{k}"), 0, wm, t, &[0.0], &[ABSENT, tag], &mut out);
            let want: HashSet<u8> = accepted.iter().filter(|(kk, tt, _)| *kk == k && *tt > t - window && *tt <= t).filter_map(|(_, _, v)| *v).collect();
            prop_assert_eq!(out[0], Some(want.len() as f64), "event {:?}", accepted.last());
        }
    }
}
