//! Interval joins against a naive oracle: random out-of-order streams of a few
//! keys on two partitions, with late events dropped at the source, events on
//! either side or neither, `on` values that agree, differ or are absent, ties,
//! and pairs exactly on the interval's bounds. Checked: the set of pairs and
//! unmatched lefts, *when* each is emitted (a pair at the later of its two
//! events, an unmatched left at the first watermark that rules out a match), and
//! that the state holds exactly the events that can still match.

mod support;

use proptest::prelude::*;
use vigil_operators::interval_join::{IntervalJoin, JoinInput, JoinState, SideFilter};

const LATENESS: i64 = 5;

#[derive(Clone, Debug)]
struct Accepted {
    step: usize,
    key: u8,
    partition: u32,
    time: i64,
    left: bool,
    right: bool,
    on: Option<u8>,
}

/// What the oracle expects: (left step, right step or none, step it is emitted at).
fn oracle(events: &[Accepted], def: &IntervalJoin, watermarks: &[Vec<i64>], steps: usize) -> Vec<(usize, Option<usize>, usize)> {
    let mut want = Vec::new();
    for l in events.iter().filter(|e| e.left) {
        let mut matched = false;
        for r in events.iter().filter(|e| e.right && e.key == l.key) {
            let d = r.time - l.time;
            let on_ok = def.on.is_none() || (l.on.is_some() && l.on == r.on);
            if d >= def.lower_ms && d <= def.upper_ms && on_ok {
                want.push((l.step, Some(r.step), l.step.max(r.step)));
                matched = true;
            }
        }
        if !matched && def.emit_unmatched {
            let at = if def.on.is_some() && l.on.is_none() {
                l.step // can match nothing: at once
            } else {
                // the first step whose watermark rules out any right: else the flush
                let wm = &watermarks[l.partition as usize];
                (l.step..steps).find(|s| wm[*s] > l.time + def.upper_ms).unwrap_or(steps)
            };
            want.push((l.step, None, at));
        }
    }
    want.sort();
    want
}

fn run(stream: Vec<(u8, i64, (u8, Option<u8>))>, def: IntervalJoin) -> Result<(), TestCaseError> {
    let mut state = JoinState::new(vec![def.clone()]);
    let mut sources = [support::Source::new(LATENESS), support::Source::new(LATENESS)];
    let mut current = [i64::MIN, i64::MIN];
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut watermarks: Vec<Vec<i64>> = vec![Vec::new(), Vec::new()];
    let mut got = Vec::new();
    let mut out = Vec::new();
    let steps = stream.len();
    for (step, (key, time, (side, on))) in stream.into_iter().enumerate() {
        let partition = (key % 2) as u32;
        if let Some(wm) = sources[partition as usize].admit(time) {
            current[partition as usize] = wm;
            let strings = vec![Some(["L", "R", "X"][side as usize].to_string()), on.map(|v| format!("v{v}"))];
            let input = JoinInput { time, partition, offset: step as i64, event_id: None, values: &[time as f64], strings: &strings };
            state.observe(&format!("k{key}"), partition, wm, &input, &mut out);
            accepted.push(Accepted {
                step,
                key,
                partition,
                time,
                left: def.left.as_ref().is_none_or(|f| f.value == ["L", "R", "X"][side as usize]),
                right: def.right.as_ref().is_none_or(|f| f.value == ["L", "R", "X"][side as usize]),
                on,
            });
        }
        state.expire_due(&mut out);
        for p in 0..2 {
            watermarks[p].push(current[p]);
        }
        for j in out.drain(..) {
            prop_assert_eq!(j.left.values[0], j.left.time as f64, "values travel with the record");
            got.push((j.left.offset as usize, j.right.map(|r| r.offset as usize), step));
        }
        // the state holds exactly the events that can still match
        let live = accepted
            .iter()
            .filter(|e| def.on.is_none() || e.on.is_some())
            .map(|e| {
                let wm = current[e.partition as usize];
                (e.left && e.time + def.upper_ms >= wm) as usize + (e.right && e.time - def.lower_ms >= wm) as usize
            })
            .sum::<usize>();
        prop_assert_eq!(state.buffered(), live, "after step {}", step);
    }
    state.flush_all(&mut out);
    got.extend(out.drain(..).map(|j| (j.left.offset as usize, j.right.map(|r| r.offset as usize), steps)));
    prop_assert_eq!(state.buffered(), 0);
    got.sort();
    prop_assert_eq!(got, oracle(&accepted, &def, &watermarks, steps));
    Ok(())
}

fn side(v: &str) -> Option<SideFilter> {
    Some(SideFilter { field: 0, value: v.into() })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn interval_joins_match_the_oracle(
        stream in support::stream((0u8..3, prop::option::weighted(0.8, 0u8..2)), 4, 12, 150),
        lower in -20i64..6,
        width in 0i64..30,
        with_on in any::<bool>(),
        emit_unmatched in any::<bool>(),
    ) {
        let def = IntervalJoin { name: "j".into(), left: side("L"), right: side("R"), lower_ms: lower, upper_ms: lower + width, on: with_on.then_some(1), emit_unmatched };
        run(stream, def)?;
    }

    /// Every event on both sides (a self join: "another event of the key within
    /// the interval"): an event pairs with itself when 0 is in the interval.
    #[test]
    fn self_joins_match_the_oracle(
        stream in support::stream((0u8..3, prop::option::weighted(0.8, 0u8..2)), 4, 12, 120),
        lower in -15i64..3,
        width in 0i64..20,
    ) {
        let def = IntervalJoin { name: "self".into(), left: None, right: None, lower_ms: lower, upper_ms: lower + width, on: None, emit_unmatched: true };
        run(stream, def)?;
    }
}
