//! User-defined keyed operators (`graph::keyed`) against a naive oracle: random
//! partitions, keys and out-of-order times; the runtime split over 1-3 workers by
//! key, interleaving partitions at random, checkpointed mid-way and restored into
//! another worker count. Each key's outputs must equal the oracle's, which replays
//! that key alone along its partition.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use vigil::graph::keyed::{KeyContext, KeyedOperator, KeyedRuntime, Origin};
use vigil::types::key_hash;

const GAP: i64 = 50;

/// Sessions with a gap: every event says how many the session has so far; a
/// session closes (with its count and sum) once `GAP` passes without an event.
#[derive(Default)]
struct Sessions;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Out {
    Seen { key: String, time: i64, count: u32 },
    Closed { key: String, at: i64, count: u32, sum: i64 },
}

impl KeyedOperator for Sessions {
    type In = i64;
    type Out = Out;
    type State = (u32, i64);
    fn on_event(&mut self, value: &i64, state: &mut (u32, i64), ctx: &mut KeyContext<'_, Out>) {
        state.0 += 1;
        state.1 += value;
        ctx.emit(Out::Seen { key: ctx.key().to_owned(), time: ctx.time(), count: state.0 });
        ctx.timer_at(ctx.time() + GAP);
    }
    fn on_timer(&mut self, timer: i64, state: &mut (u32, i64), ctx: &mut KeyContext<'_, Out>) {
        if !ctx.has_timer_after(timer) {
            ctx.emit(Out::Closed { key: ctx.key().to_owned(), at: timer, count: state.0, sum: state.1 });
            ctx.clear();
        }
    }
}

/// One accepted event: (partition, key, time, watermark after it, value).
type Ev = (u32, String, i64, i64, i64);

/// Partitions of events in offset order, keyed (a key lives on one partition),
/// out of order within `lateness`; late events are dropped as the source would.
fn partitions(raw: &[(u8, i64, i64)], parts: u32, lateness: i64) -> Vec<Vec<Ev>> {
    let mut out: Vec<Vec<Ev>> = vec![Vec::new(); parts as usize];
    let mut max_time = vec![i64::MIN; parts as usize];
    let mut clock = 0i64;
    for (k, advance, jitter) in raw {
        let key = format!("k{k}");
        let p = (key_hash(&key) % parts as u64) as usize;
        clock += advance;
        let time = clock - jitter;
        let wm = max_time[p].saturating_sub(lateness);
        if time < wm {
            continue; // late
        }
        max_time[p] = max_time[p].max(time);
        out[p].push((p as u32, key, time, max_time[p] - lateness, *advance + *jitter));
    }
    out
}

/// The oracle: each key alone, along its partition.
fn oracle(parts: &[Vec<Ev>]) -> BTreeMap<String, Vec<Out>> {
    let mut result: BTreeMap<String, Vec<Out>> = BTreeMap::new();
    for part in parts {
        let keys: BTreeSet<&String> = part.iter().map(|e| &e.1).collect();
        for key in keys {
            let (mut count, mut sum, mut timers) = (0u32, 0i64, BTreeSet::new());
            let out = result.entry(key.clone()).or_default();
            let fire = |wm: i64, count: &mut u32, sum: &mut i64, timers: &mut BTreeSet<i64>, out: &mut Vec<Out>| {
                while let Some(t) = timers.first().copied().filter(|t| *t < wm) {
                    timers.remove(&t);
                    if timers.is_empty() {
                        out.push(Out::Closed { key: key.clone(), at: t, count: *count, sum: *sum });
                        (*count, *sum) = (0, 0);
                    }
                }
            };
            for (_, k, time, wm, value) in part {
                fire(*wm, &mut count, &mut sum, &mut timers, out);
                if k == key {
                    count += 1;
                    sum += value;
                    out.push(Out::Seen { key: key.clone(), time: *time, count });
                    timers.insert(time + GAP);
                    fire(*wm, &mut count, &mut sum, &mut timers, out);
                }
            }
            fire(i64::MAX, &mut count, &mut sum, &mut timers, out);
        }
    }
    result
}

/// Runs `events` (per partition, from `from[p]` to `to[p]`) on `rts`, routed by
/// key, partitions interleaved by `order`.
fn feed(rts: &mut [KeyedRuntime<Sessions>], parts: &[Vec<Ev>], from: &[usize], to: &[usize], order: &[u8], out: &mut Vec<Out>) {
    let mut at = from.to_vec();
    let mut picks = order.iter().cycle();
    while (0..parts.len()).any(|p| at[p] < to[p]) {
        let open: Vec<usize> = (0..parts.len()).filter(|&p| at[p] < to[p]).collect();
        let p = open[*picks.next().unwrap_or(&0) as usize % open.len()];
        let (partition, key, time, wm, value) = &parts[p][at[p]];
        at[p] += 1;
        let w = (key_hash(key) % rts.len() as u64) as usize;
        rts[w].on_event(key, Origin { source: 0, partition: *partition }, *wm, *time, value, out);
    }
}

fn by_key(out: Vec<Out>) -> BTreeMap<String, Vec<Out>> {
    let mut m: BTreeMap<String, Vec<Out>> = BTreeMap::new();
    for o in out {
        let key = match &o {
            Out::Seen { key, .. } | Out::Closed { key, .. } => key.clone(),
        };
        m.entry(key).or_default().push(o);
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn keyed_operator_matches_the_oracle_across_workers_and_restores(
        raw in prop::collection::vec((0u8..6, 0i64..40, 0i64..30), 0..200),
        parts in 1u32..4,
        lateness in 0i64..40,
        workers in 1usize..4,
        restored_workers in 1usize..4,
        cut in 0.0f64..1.0,
        order in prop::collection::vec(any::<u8>(), 1..50),
    ) {
        let parts = partitions(&raw, parts, lateness);
        let want = oracle(&parts);
        let mut out = Vec::new();
        let mut rts: Vec<_> = (0..workers).map(|_| KeyedRuntime::new("sessions", Sessions)).collect();
        let cuts: Vec<usize> = parts.iter().map(|p| (p.len() as f64 * cut) as usize).collect();
        feed(&mut rts, &parts, &vec![0; parts.len()], &cuts, &order, &mut out);
        // checkpoint every worker, restore into another worker count
        let snaps: Vec<Vec<u8>> = rts.iter().map(|r| r.snapshot().unwrap()).collect();
        let mut rts: Vec<_> = (0..restored_workers).map(|w| {
            let mut r = KeyedRuntime::new("sessions", Sessions);
            for s in &snaps {
                r.restore(s, |k| (key_hash(k) % restored_workers as u64) as usize == w).unwrap();
            }
            r
        }).collect();
        let ends: Vec<usize> = parts.iter().map(Vec::len).collect();
        feed(&mut rts, &parts, &cuts, &ends, &order, &mut out);
        for r in rts.iter_mut() {
            r.finish(&mut out);
        }
        let got = by_key(out);
        prop_assert_eq!(got, want);
        prop_assert!(rts.iter().all(|r| r.keys() == 0 && r.timers() == 0), "every session closed at the end");
    }
}

#[test]
fn a_checkpoint_of_another_operator_or_version_is_refused_by_name() {
    #[derive(Default)]
    struct V2;
    impl KeyedOperator for V2 {
        type In = i64;
        type Out = Out;
        type State = (u32, i64);
        const STATE_VERSION: u32 = 2;
        fn on_event(&mut self, _: &i64, _: &mut (u32, i64), _: &mut KeyContext<'_, Out>) {}
    }
    let mut rt = KeyedRuntime::new("sessions", Sessions);
    rt.on_event("a", Origin { source: 0, partition: 0 }, 0, 5, &1, &mut Vec::new());
    let snap = rt.snapshot().unwrap();
    let err = KeyedRuntime::new("travel", Sessions).restore(&snap, |_| true).unwrap_err().to_string();
    assert!(err.contains("`sessions`") && err.contains("`travel`"), "{err}");
    let err = KeyedRuntime::new("sessions", V2).restore(&snap, |_| true).unwrap_err().to_string();
    assert!(err.contains("operator `sessions`") && err.contains("version 1") && err.contains("version 2"), "{err}");
    let err = KeyedRuntime::new("sessions", Sessions).restore(&snap[..snap.len() / 2], |_| true).unwrap_err().to_string();
    assert!(err.contains("sessions"), "{err}");
}

/// Through timely: the operator on 1 to 3 workers, each worker reading some of the
/// partitions, gives every key the oracle's outputs (with the timers that only the
/// end of the input fires).
#[test]
fn keyed_operator_in_a_dataflow_matches_the_oracle_at_any_worker_count() {
    use timely::dataflow::operators::capture::Event;
    use timely::dataflow::operators::{vec::ToStream, Capture};
    use vigil::graph::keyed::{keyed_operator, Keyed};

    let mut x = 7u64;
    let raw: Vec<(u8, i64, i64)> = (0..3000)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) as u8 % 40, ((x >> 20) % 30) as i64, ((x >> 45) % 25) as i64)
        })
        .collect();
    let parts = partitions(&raw, 3, 20);
    let want = oracle(&parts);
    assert!(want.values().flatten().filter(|o| matches!(o, Out::Closed { .. })).count() > 100, "sessions close mid-stream and at the end");
    for workers in 1..=3 {
        let events: Vec<Keyed<i64>> = parts
            .iter()
            .flatten()
            .map(|(p, key, time, wm, value)| Keyed {
                key: key.clone(),
                origin: Origin { source: 0, partition: *p },
                watermark: *wm,
                time_ms: *time,
                value: *value,
            })
            .collect();
        let out: Vec<Out> = timely::execute(timely::Config::process(workers), move |worker| {
            let (index, peers) = (worker.index(), worker.peers());
            let mine: Vec<Keyed<i64>> = events.iter().filter(|e| e.origin.partition as usize % peers == index).cloned().collect();
            worker.dataflow::<u64, _, _>(|scope| keyed_operator(mine.to_stream(scope), "sessions", Sessions).capture())
        })
        .unwrap()
        .join()
        .into_iter()
        // in the order each worker produced them (`extract` would sort them)
        .flat_map(|r| r.unwrap().try_iter().collect::<Vec<_>>())
        .flat_map(|e| match e {
            Event::Messages(_, v) => v,
            Event::Progress(_) => Vec::new(),
        })
        .collect();
        assert_eq!(by_key(out), want, "{workers} workers");
    }
}
