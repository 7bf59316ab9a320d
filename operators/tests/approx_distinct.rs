//! Approximate distinct counts from HyperLogLog panes: as of every event, the
//! estimate must be exactly that of one sketch holding the oracle's set, the
//! key's accepted events up to the event with time in `[s, t]` (no later event,
//! none before the window), on random out-of-order streams with late events,
//! ties, absent values and panes that age out.

mod support;

use proptest::prelude::*;
use vigil_operators::distinct::{tag_of, ABSENT};
use vigil_operators::hll::Sketch;
use vigil_operators::{Agg, ApproxDistinct, FeatureDef, FeatureState, WindowFeature};

const LATENESS: i64 = 5;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn estimates_are_those_of_the_oracles_set(events in support::stream(prop::option::weighted(0.9, 0u16..300), 3, 8, 250), window in 10i64..80, pane in 1i64..15, precision in 4u8..11, short in prop::option::of(1i64..20)) {
        let d = ApproxDistinct { name: "u".into(), tag: 0, window_ms: window.max(pane), pane_ms: pane, precision };
        let mut defs = vec![FeatureDef::ApproxDistinct(d.clone())];
        if let Some(w) = short {
            defs.push(FeatureDef::Window(WindowFeature::sliding("n", Agg::Count, None, w)));
        }
        let mut state = FeatureState::new(defs, 1);
        let (mut out, mut accepted) = (Vec::new(), Vec::new());
        let mut source = support::Source::new(LATENESS);
        for (k, t, v) in events {
            let Some(wm) = source.admit(t) else { continue }; // late
            accepted.push((k, t, v));
            let tag = v.map_or(ABSENT, |v| tag_of(&format!("user-{v}")));
            state.observe_tagged(&format!("k{k}"), 0, wm, t, &[0.0], &[tag], &mut out);
            let from = d.start(t);
            let mut want = Sketch::new(precision);
            for (_, _, v) in accepted.iter().filter(|(kk, tt, _)| *kk == k && *tt >= from && *tt <= t) {
                want.add(precision, v.map_or(ABSENT, |v| tag_of(&format!("user-{v}"))));
            }
            prop_assert_eq!(out[0].map(f64::to_bits), Some(want.estimate().to_bits()), "event {:?}: {:?} vs {}", accepted.last(), out[0], want.estimate());
        }
    }
}
