//! The graph API (`vigil::graph`) against naive oracles, on the in-memory runner:
//! - the two-topic interval join (1-2 workers, 1-3 partitions per topic,
//!   out-of-order, late and malformed records): exactly the pairs of the
//!   definition over the accepted events, and every offset accounted for;
//! - a differential view over an upsert table: after every epoch, the upsert
//!   sink's records replayed give the view recomputed from scratch;
//! - one graph with a user operator (timers), a join and a view gives the same
//!   outputs with 1 worker, 2 workers and 2 processes;
//! - graph mistakes are refused with messages naming them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use vigil::graph::{LocalRun, Outputs, Source};
use vigil::spec::FieldType;
use vigil::types::key_hash;

#[path = "support/graph.rs"]
mod support;
use support::{card_topics, Sessions, Topics, T0};

/// One generated record of a partition: a key, a time offset and whether its
/// bytes are broken (0: fine, 1: not JSON, 2: no key).
#[derive(Clone, Debug)]
struct Gen {
    key: u8,
    dt: i64,
    broken: u8,
}

fn partitions(max_partitions: usize) -> impl Strategy<Value = Vec<Vec<Gen>>> {
    // times on a 100 ms grid, so that pairs and watermarks often meet exactly at
    // the join's bounds
    let record =
        (0u8..4, 0i64..30, prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)]).prop_map(|(key, dt, broken)| Gen { key, dt: dt * 100, broken });
    prop::collection::vec(prop::collection::vec(record, 0..40), 1..=max_partitions)
}

fn payload(prefix: &str, p: usize, i: usize, g: &Gen) -> Vec<u8> {
    match g.broken {
        1 => b"{\"card\": nope".to_vec(),
        2 => format!(r#"{{"ts":{},"id":"x"}}"#, T0 + g.dt).into_bytes(),
        _ => format!(r#"{{"card":"c{}","ts":{},"id":"{prefix}-{p}-{i}"}}"#, g.key, T0 + g.dt).into_bytes(),
    }
}

/// The accepted events of a topic as the sources decide them: broken records
/// out, and per partition in offset order, those older than the partition's
/// maximum time minus the lateness out (`late`). Returns (id, key, time).
fn accepted(prefix: &str, parts: &[Vec<Gen>], lateness: i64) -> Vec<(String, u8, i64)> {
    let mut out = Vec::new();
    for (p, records) in parts.iter().enumerate() {
        let mut max = None::<i64>;
        for (i, g) in records.iter().enumerate() {
            if g.broken != 0 || max.is_some_and(|m| g.dt < m - lateness) {
                continue;
            }
            max = Some(max.map_or(g.dt, |m| m.max(g.dt)));
            out.push((format!("{prefix}-{p}-{i}"), g.key, g.dt));
        }
    }
    out
}

fn topic(prefix: &str, parts: &[Vec<Gen>]) -> Vec<Vec<Vec<u8>>> {
    parts.iter().enumerate().map(|(p, records)| records.iter().enumerate().map(|(i, g)| payload(prefix, p, i, g)).collect()).collect()
}

fn id_source(topic: &str, lateness: i64) -> Source {
    Source::json(topic).key("card").lateness(Duration::from_millis(lateness as u64)).field("id", FieldType::Str)
}

/// Every offset of `topic` is accepted or a dead letter, and the counts agree.
fn check_accounting(out: &Outputs, topic: &str, parts: &[Vec<Gen>], accepted: usize) {
    let total: usize = parts.iter().map(Vec::len).sum();
    let counts = out.sources.get(topic).cloned().unwrap_or_default();
    assert_eq!(counts.read as usize, total, "{topic}: every record read");
    assert_eq!(counts.accepted as usize, accepted, "{topic}: accepted as the oracle says");
    assert_eq!(counts.read, counts.accepted + counts.rejected_total(), "{topic}: read = accepted + rejected");
    let dead = out.dead.iter().filter(|d| d.topic == topic).count();
    assert_eq!(dead as u64, counts.rejected_total(), "{topic}: one dead letter per rejection");
}

fn join_case(tx: &[Vec<Gen>], logins: &[Vec<Gen>], before: i64, after: i64, lateness: i64, run: LocalRun) {
    let out = run
        .topic("tx", topic("tx", tx))
        .topic("logins", topic("lg", logins))
        .run(move |g| {
            let tx = g.source(id_source("tx", lateness));
            let logins = g.source(id_source("logins", lateness));
            tx.interval_join("tx_after_login", &logins, Duration::from_millis(before as u64), Duration::from_millis(after as u64))
                .map(|(t, l)| format!("{}|{}", t.str("id").unwrap_or("?"), l.str("id").unwrap_or("?")))
                .sink("pairs");
            Ok(())
        })
        .unwrap();
    let (txs, lgs) = (accepted("tx", tx, lateness), accepted("lg", logins, lateness));
    let mut expected: Vec<String> = Vec::new();
    for (tid, tk, tt) in &txs {
        for (lid, lk, lt) in &lgs {
            if tk == lk && *lt >= tt - before && *lt <= tt + after {
                expected.push(format!("\"{tid}|{lid}\""));
            }
        }
    }
    expected.sort();
    assert_eq!(out.values("pairs"), expected);
    check_accounting(&out, "tx", tx, txs.len());
    check_accounting(&out, "logins", logins, lgs.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn the_two_topic_join_gives_the_pairs_of_the_definition(
        tx in partitions(3),
        logins in partitions(3),
        before in (0i64..8).prop_map(|n| n * 100),
        after in (0i64..8).prop_map(|n| n * 100),
        lateness in (0i64..15).prop_map(|n| n * 100),
        workers in 1usize..=2,
        epoch_records in 1usize..6,
    ) {
        join_case(&tx, &logins, before, after, lateness, LocalRun::new(workers).epoch_records(epoch_records));
    }
}

#[test]
fn the_two_topic_join_across_two_processes() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..3 {
        let tx = partitions(3).new_tree(&mut runner).unwrap().current();
        let logins = partitions(2).new_tree(&mut runner).unwrap().current();
        join_case(&tx, &logins, 500, 200, 700, LocalRun::new(1).processes(2).epoch_records(3));
    }
}

/// Profiles: (key, country or none = tombstone, broken).
fn profiles() -> impl Strategy<Value = Vec<(u8, Option<u8>, bool)>> {
    prop::collection::vec((0u8..8, prop::option::weighted(0.8, 0u8..3), prop::bool::weighted(0.1)), 0..80)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// An upsert table (keys partitioned by hash, as Kafka does), counted per
    /// value: after every epoch, the sink's records so far give exactly the
    /// counts recomputed from the events of the epochs so far.
    #[test]
    fn a_view_equals_its_recomputation_at_every_epoch(
        events in profiles(),
        partitions in 1usize..=3,
        workers in 1usize..=2,
        epoch_records in 1usize..5,
    ) {
        let mut parts: Vec<Vec<(u8, Option<u8>, bool)>> = vec![Vec::new(); partitions];
        for e in &events {
            parts[key_hash(&format!("u{}", e.0)) as usize % partitions].push(*e);
        }
        let bytes: Vec<Vec<Vec<u8>>> = parts
            .iter()
            .map(|p| {
                p.iter()
                    .map(|(user, country, broken)| match (broken, country) {
                        (true, _) => b"not json".to_vec(),
                        (false, Some(c)) => format!(r#"{{"key":"u{user}","ts":{T0},"country":"C{c}"}}"#).into_bytes(),
                        (false, None) => format!(r#"{{"key":"u{user}","ts":{T0}}}"#).into_bytes(),
                    })
                    .collect()
            })
            .collect();
        let out = LocalRun::new(workers)
            .epoch_records(epoch_records)
            .topic("profiles", bytes)
            .run(|g| {
                g.source(Source::json("profiles").optional("country", FieldType::Str))
                    .upsert_table("profiles", |r| r.value.str("country").map(str::to_owned))
                    .map(|(_user, country)| country)
                    .count()
                    .sink_upsert("per_country");
                Ok(())
            })
            .unwrap();
        let epochs = parts.iter().map(|p| p.len().div_ceil(epoch_records)).max().unwrap_or(0) as u64;
        let records = out.sink("per_country");
        for e in 0..epochs {
            // the oracle: the table after the events of epochs <= e, counted
            let mut table: BTreeMap<u8, u8> = BTreeMap::new();
            for p in &parts {
                for (user, country, broken) in p.iter().take((e as usize + 1) * epoch_records) {
                    match (broken, country) {
                        (true, _) => {}
                        (false, Some(c)) => { table.insert(*user, *c); }
                        (false, None) => { table.remove(user); }
                    }
                }
            }
            let mut expected: BTreeMap<String, String> = BTreeMap::new();
            for c in table.values() {
                let n = expected.entry(format!("C{c}")).or_insert_with(|| "0".into());
                *n = (n.parse::<i64>().unwrap() + 1).to_string();
            }
            // the sink's records up to e, replayed as upserts and tombstones
            let mut got: BTreeMap<String, String> = BTreeMap::new();
            for r in records.iter().filter(|r| r.epoch <= e) {
                match &r.value {
                    Some(v) => { got.insert(r.key.clone(), v.clone()); }
                    None => { got.remove(&r.key); }
                }
            }
            prop_assert_eq!(&got, &expected, "after epoch {}", e);
        }
        // no record repeats a key's value of the previous one: only changes
        let mut last: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        for r in records {
            prop_assert_ne!(last.insert(&r.key, r.value.as_deref()), Some(r.value.as_deref()), "a record that changes nothing");
        }
    }
}

fn mixed_graph(run: LocalRun) -> Outputs {
    let (tx, logins) = card_topics(&Topics { seed: 7, events: 1_500, cards: 40, step_ms: 20, tx_partitions: 3, login_partitions: 3, garbage_every: 97 });
    run.epoch_records(50)
        .topic("tx", tx)
        .topic("logins", logins)
        .run(|g| {
            let tx = g.source(id_source("tx", 200).field("merchant", FieldType::Str));
            let logins = g.source(id_source("logins", 200));
            tx.stateful("sessions", Sessions { gap_ms: 500 }).map(|(card, n)| format!("{card}:{n}")).sink("sessions");
            tx.interval_join("tx_after_login", &logins, Duration::from_millis(300), Duration::ZERO)
                .map(|(t, l)| format!("{}|{}", t.str("id").unwrap_or("?"), l.str("id").unwrap_or("?")))
                .sink("pairs");
            tx.filter(|r| r.str("merchant") != Some("m0"))
                .view("tx_merchants", |r| r.value.str("merchant").unwrap_or("?").to_owned())
                .count()
                .sink_upsert("per_merchant");
            Ok(())
        })
        .unwrap()
}

#[test]
fn one_worker_two_workers_and_two_processes_agree() {
    let one = mixed_graph(LocalRun::new(1));
    assert!(one.values("sessions").len() > 100, "sessions closed: {}", one.values("sessions").len());
    assert!(one.values("pairs").len() > 50, "pairs: {}", one.values("pairs").len());
    assert_eq!(one.sources["tx"].rejected.get("invalid_utf8"), Some(&16));
    for other in [mixed_graph(LocalRun::new(2)), mixed_graph(LocalRun::new(1).processes(2))] {
        // values of streams; views with their epochs (views are per epoch)
        assert_eq!(other.values("sessions"), one.values("sessions"));
        assert_eq!(other.values("pairs"), one.values("pairs"));
        assert_eq!(other.sink("per_merchant"), one.sink("per_merchant"));
        assert_eq!(other.sources, one.sources);
    }
    let keys: BTreeSet<&str> = one.sink("per_merchant").iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys.len(), 6, "m0 is filtered out: {keys:?}");
}

#[test]
fn graph_mistakes_are_refused_by_name() {
    let ev = br#"{"key":"a","ts":1700000000000}"#.to_vec();
    let err = LocalRun::new(1)
        .topic("events", vec![vec![ev.clone()]])
        .run(|g| {
            let s = g.source(Source::json("events"));
            s.stateful("twice", Sessions { gap_ms: 500 }).map(|_| 0).sink("a");
            s.stateful("twice", Sessions { gap_ms: 500 }).map(|_| 0).sink("b");
            Ok(())
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("two operators are named `twice`"), "{err:#}");
    let err = LocalRun::new(1)
        .run(|g| {
            g.source(Source::json("nowhere")).map(|_| 0).sink("a");
            Ok(())
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("source `nowhere`: the runner has no input for this topic"), "{err:#}");
}

/// Table updates: (key, time step, value or delete); stream events: (key, time step).
fn as_of_inputs() -> impl Strategy<Value = (Vec<(u8, i64, Option<u8>)>, Vec<(u8, i64)>)> {
    (prop::collection::vec((0u8..4, 0i64..30, prop::option::weighted(0.85, 0u8..5)), 0..50), prop::collection::vec((0u8..4, 0i64..30), 0..50))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The stream-table join as of event time: every accepted event gets its
    /// key's latest accepted table value at or before its time (ties: the later
    /// offset), whatever the interleaving, worker count or partitioning.
    #[test]
    fn the_as_of_join_gives_each_event_its_keys_value_as_of_its_time(
        (updates, events) in as_of_inputs(),
        partitions in 1usize..=3,
        workers in 1usize..=2,
        lateness in (0i64..6).prop_map(|n| n * 100),
        epoch_records in 1usize..5,
    ) {
        // keyed partitioning (a key in one partition of each topic), as Kafka does
        let mut table: Vec<Vec<(u8, i64, Option<u8>)>> = vec![Vec::new(); partitions];
        for u in &updates {
            table[key_hash(&format!("k{}", u.0)) as usize % partitions].push(*u);
        }
        let mut stream: Vec<Vec<(u8, i64)>> = vec![Vec::new(); 2];
        for (i, e) in events.iter().enumerate() {
            stream[i % 2].push(*e);
        }
        let table_bytes: Vec<Vec<Vec<u8>>> = table.iter().map(|p| p.iter().map(|(k, t, v)| match v {
            Some(v) => format!(r#"{{"key":"k{k}","ts":{},"v":"v{v}"}}"#, T0 + t * 100).into_bytes(),
            None => format!(r#"{{"key":"k{k}","ts":{}}}"#, T0 + t * 100).into_bytes(),
        }).collect()).collect();
        let stream_bytes: Vec<Vec<Vec<u8>>> = stream.iter().enumerate().map(|(p, es)| es.iter().enumerate().map(|(i, (k, t))| {
            format!(r#"{{"key":"k{k}","ts":{},"id":"e{p}-{i}"}}"#, T0 + t * 100).into_bytes()
        }).collect()).collect();
        let out = LocalRun::new(workers).epoch_records(epoch_records).topic("table", table_bytes).topic("events", stream_bytes).run(move |g| {
            let events = g.source(Source::json("events").lateness(Duration::from_millis(lateness as u64)).field("id", FieldType::Str));
            let table = g.source(Source::json("table").lateness(Duration::from_millis(lateness as u64)).optional("v", FieldType::Str));
            events.join_as_of("as_of", &table, |r| r.value.str("v").map(str::to_owned))
                .map(|(e, v)| format!("{}={}", e.str("id").unwrap_or("?"), v.unwrap_or_else(|| "-".into())))
                .sink("joined");
            Ok(())
        }).unwrap();
        // the oracle: acceptance per partition (lateness), then the latest update at or before
        let accept = |times: Vec<i64>| -> Vec<bool> {
            let mut max = None::<i64>;
            times.into_iter().map(|t| {
                let ok = max.is_none_or(|m| t * 100 >= m * 100 - lateness);
                if ok { max = Some(max.map_or(t, |m| m.max(t))); }
                ok
            }).collect()
        };
        let mut accepted_updates = Vec::new();
        for p in &table {
            for (i, (ok, u)) in accept(p.iter().map(|u| u.1).collect()).into_iter().zip(p).enumerate() {
                if ok { accepted_updates.push((u.0, u.1, i, u.2)); }
            }
        }
        let mut expected = Vec::new();
        for (p, es) in stream.iter().enumerate() {
            for (i, (ok, (k, t))) in accept(es.iter().map(|e| e.1).collect()).into_iter().zip(es).enumerate() {
                if !ok { continue }
                let v = accepted_updates.iter().filter(|u| u.0 == *k && u.1 <= *t).max_by_key(|u| (u.1, u.2)).and_then(|u| u.3);
                expected.push(format!("\"e{p}-{i}={}\"", v.map_or("-".to_string(), |v| format!("v{v}"))));
            }
        }
        expected.sort();
        prop_assert_eq!(out.values("joined"), expected);
    }
}

/// A source of the user's type: every payload is a `Tx` (then an event) or a
/// dead letter with its reason; the events are exactly the payloads a plain
/// serde read accepts (the key, time and lateness checks aside, which these
/// payloads pass), in each partition's order.
#[test]
fn a_typed_source_reads_what_serde_reads_and_dead_letters_the_rest() {
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Tx {
        card: String,
        amount: f64,
        #[serde(default)]
        note: Option<String>,
    }
    let mut state = 17u64;
    let mut next = move |m: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let mut parts = vec![Vec::new(); 3];
    for i in 0..600i64 {
        let card = format!("c{}", next(20));
        let ts = T0 + i * 10;
        let payload = match next(8) {
            0 => format!(r#"{{"card":"{card}","ts":{ts}}}"#),                     // no amount
            1 => format!(r#"{{"card":"{card}","ts":{ts},"amount":"ten"}}"#),      // a string amount
            2 => format!(r#"{{"card":"{card}","ts":{ts},"amount":1,"note":7}}"#), // a number note
            3 => format!(r#"{{"card":"{card}","ts":{ts},"amount":2.5,"note":"gift"}}"#),
            _ => format!(r#"{{"card":"{card}","ts":{ts},"amount":{}}}"#, next(1000)),
        };
        parts[key_hash(&card) as usize % 3].push(payload.into_bytes());
    }
    let expected: Vec<(String, Tx)> = parts.iter().flatten().filter_map(|p| serde_json::from_slice::<Tx>(p).ok().map(|t| (t.card.clone(), t))).collect();
    for workers in [1, 2] {
        let out = LocalRun::new(workers)
            .topic("tx", parts.clone())
            .run(|g| {
                g.source_typed::<Tx>(Source::json("tx").key("card")).sink("tx");
                Ok(())
            })
            .unwrap();
        let got: Vec<(String, Tx)> = out.sink("tx").iter().map(|r| (r.key.clone(), serde_json::from_str(r.value.as_deref().unwrap()).unwrap())).collect();
        let (mut a, mut b) = (got.clone(), expected.clone());
        a.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
        b.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
        assert_eq!(a, b, "{workers} workers");
        let counts = &out.sources["tx"];
        assert_eq!(counts.read, 600);
        assert_eq!(counts.accepted as usize, expected.len());
        assert_eq!(counts.rejected_total() as usize, 600 - expected.len());
        assert_eq!(counts.rejected_total() as usize, out.dead.len());
        let reasons: BTreeSet<&str> = out.dead.iter().map(|d| d.reason).collect();
        assert_eq!(reasons, BTreeSet::from(["missing_field", "wrong_type"]));
        assert!(out.dead.iter().all(|d| d.detail.contains("`Tx`")));
    }
}

/// A key leaves the features' state once its partition's clock is past its
/// last event by the features' reach (a sweep every 65,536 events finds it).
/// Its departure (a tombstone on the features sink) is stamped with that clock,
/// after its last event, even while another partition holds the stream's
/// watermark far behind it.
#[test]
fn a_key_leaves_the_feature_state_after_its_last_event_while_another_partition_lags() {
    let n = 40_000i64; // per partition: the sweep comes after 65,536 events
    let line = |key: String, t: i64| format!(r#"{{"card":"{key}","ts":{t}}}"#).into_bytes();
    let a_at = T0 + 1_000_000;
    let mut ahead = vec![line("a".into(), a_at)];
    ahead.extend((0..n).map(|i| line(format!("b{}", i % 100), a_at + 10 + i)));
    let behind: Vec<_> = (0..n).map(|i| line(format!("c{}", i % 100), T0 + i)).collect();
    let out = LocalRun::new(1)
        .topic("tx", vec![ahead, behind])
        .run(|g| {
            let features = vigil::graph::Features::new().time_since_prev("since_prev", Duration::from_secs(1));
            g.source(Source::json("tx").key("card")).features_all("f", features).sink_features("features");
            Ok(())
        })
        .unwrap();
    let gone: Vec<_> = out.sink("features").iter().filter(|r| r.key == "a" && r.value.is_none()).collect();
    assert_eq!(gone.len(), 1, "`a` left the state once: {gone:?}");
    assert!(gone[0].time_ms > a_at + 1_000, "`a` left at {}, its last event was at {a_at}", gone[0].time_ms);
}
