//! Approximate distinct counts from HyperLogLog panes: as of every event, the
//! estimate must be exactly that of one sketch holding the oracle's set, the
//! key's accepted events up to the event with time in `[s, t]` (no later event,
//! none before the window), on random out-of-order streams with late events,
//! ties, absent values and panes that age out.

use proptest::prelude::*;
use vigil_operators::distinct::{tag_of, ABSENT};
use vigil_operators::hll::Sketch;
use vigil_operators::{Agg, ApproxDistinct, FeatureDef, FeatureState, WindowFeature};

const LATENESS: i64 = 5;

fn stream() -> impl Strategy<Value = Vec<(u8, i64, Option<u16>)>> {
    prop::collection::vec((0u8..3, 0i64..3, prop::bool::weighted(0.2), 0i64..8, prop::option::weighted(0.9, 0u16..300)), 1..250).prop_map(|steps| {
        let mut t = 1_000;
        steps
            .into_iter()
            .map(|(k, dt, back, jump, v)| {
                t += dt;
                (k, if back { t - jump } else { t }, v)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn estimates_are_those_of_the_oracles_set(events in stream(), window in 10i64..80, pane in 1i64..15, precision in 4u8..11, short in prop::option::of(1i64..20)) {
        let d = ApproxDistinct { name: "u".into(), tag: 0, window_ms: window.max(pane), pane_ms: pane, precision };
        let mut defs = vec![FeatureDef::ApproxDistinct(d.clone())];
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
