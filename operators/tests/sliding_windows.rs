//! Sliding windows as of each event against a naive oracle, on busy keys (many
//! events per window) with out-of-order and late events: count, sum, mean,
//! variance, std without extremes (an out-of-order event's window then comes
//! from the running tail less its later events plus the events before the tail's
//! window, or from a scan, whichever is less work) and with min/max beside them
//! (always a scan). The oracle sums the same fixed-point values over the events
//! it selects, so values must agree bit for bit.

mod support;

use proptest::prelude::*;
use vigil_operators::kinds::Span;
use vigil_operators::{Agg, FeatureDef, FeatureState, WindowFeature};

const LATENESS: i64 = 12;

fn check(events: Vec<(u8, i64, i16)>, window: i64, aggs: &[Agg]) -> Result<(), TestCaseError> {
    let defs: Vec<FeatureDef> =
        aggs.iter().map(|a| FeatureDef::Window(WindowFeature::sliding(&format!("{a:?}"), *a, (*a != Agg::Count).then_some(1), window))).collect();
    // two fields: the features read the second (the first is only carried)
    let mut state = FeatureState::new(defs, 2);
    let (mut out, mut accepted) = (Vec::new(), Vec::new());
    let mut source = support::Source::new(LATENESS);
    for (k, t, v) in events {
        let Some(wm) = source.admit(t) else { continue }; // late
                                                          // a value absent now and then
        let value = if v % 7 == 0 { f64::NAN } else { v as f64 / 4.0 };
        accepted.push((k, t, value));
        state.observe(&format!("k{k}"), 0, wm, t, &[t as f64, value], &mut out);
        let mut span = Span::new(2);
        for (_, tt, v) in accepted.iter().filter(|(kk, tt, _)| *kk == k && *tt > t - window && *tt <= t) {
            span.add(&[*tt as f64, *v]);
        }
        for (a, got) in aggs.iter().zip(&out) {
            let want = a.finish(span.count, (*a != Agg::Count).then(|| &span.fields[1]));
            prop_assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{:?} as of {:?}", a, accepted.last());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn sliding_windows_without_extremes_match_the_oracle(events in support::stream(-400i16..400, 3, 16, 300), window in 5i64..80) {
        check(events, window, &[Agg::Count, Agg::Sum, Agg::Mean, Agg::Variance, Agg::Std])?;
    }

    #[test]
    fn sliding_windows_with_extremes_match_the_oracle(events in support::stream(-400i16..400, 3, 16, 300), window in 5i64..80) {
        check(events, window, &[Agg::Sum, Agg::Min, Agg::Max, Agg::Mean])?;
    }
}
