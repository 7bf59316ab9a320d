//! Checkpoints of a graph (`vigil::graph::checkpoint`): a two-topic graph with a
//! user operator with timers, an interval join, an as-of join, an upsert table
//! and views, features and a score, run
//! in memory with checkpoints, crashed dead after an epoch (the workers stop
//! without draining, as a kill would leave them), then restarted from the
//! newest checkpoint, with the same or another number of workers. What the
//! restarted run writes must equal what an uninterrupted run writes after the
//! checkpoint's epoch, record for record (epochs are deterministic in memory),
//! and what the crashed run wrote up to the checkpoint must equal the
//! uninterrupted run's prefix.

use std::time::Duration;

use anyhow::Result;
use vigil::graph::{Features, GraphBuilder, LocalRun, Model, Outputs, SinkRecord, Source};
use vigil::spec::FieldType;
use vigil_operators::{Agg, Transform};

#[path = "support/graph.rs"]
mod support;
use support::{card_topics, Sessions, Topics};
const SINKS: [&str; 6] = ["sessions", "pairs", "per_merchant", "devices_per_country", "tx_country", "scores"];

fn topics() -> (Vec<Vec<Vec<u8>>>, Vec<Vec<Vec<u8>>>) {
    card_topics(&Topics { seed: 5, events: 1_200, cards: 30, step_ms: 25, tx_partitions: 3, login_partitions: 2, garbage_every: 131 })
}

fn graph(g: &mut GraphBuilder<'_>) -> Result<()> {
    let source = |topic: &str| Source::json(topic).key("card").lateness(Duration::from_millis(150)).field("id", FieldType::Str);
    let tx = g.source(source("tx").field("merchant", FieldType::Str));
    let logins = g.source(source("logins").field("country", FieldType::Str));
    tx.stateful("sessions", Sessions { gap_ms: 400 }).map(|(card, n)| format!("{card}:{n}")).sink("sessions");
    tx.interval_join("tx_after_login", &logins, Duration::from_millis(300), Duration::ZERO)
        .map(|(t, l)| format!("{}|{}", t.str("id").unwrap_or("?"), l.str("id").unwrap_or("?")))
        .sink("pairs");
    tx.join_as_of("country_as_of_tx", &logins, |r| r.value.str("country").map(str::to_owned))
        .map(|(t, country)| format!("{}@{}", t.str("id").unwrap_or("?"), country.unwrap_or_else(|| "-".into())))
        .sink("tx_country");
    tx.view("tx_merchants", |r| r.value.str("merchant").unwrap_or("?").to_owned()).count().sink_upsert("per_merchant");
    logins
        .upsert_table("last_country", |r| r.value.str("country").map(str::to_owned))
        .map(|(_card, country)| country)
        .count()
        .sink_upsert("devices_per_country");
    let features = Features::new().window("n_1s", Agg::Count, None, Duration::from_secs(1)).time_since_prev("since_prev", Duration::from_secs(60));
    let model = Model::logistic("m", "1").bias(-1.0).weight("n_1s", 0.5, Transform::Log1p).weight("since_prev", -0.2, Transform::Identity);
    tx.features("card_features", features).score(model).sink_scores("scores");
    Ok(())
}

fn run(workers: usize, dir: Option<&std::path::Path>, crash_after: Option<u64>) -> Outputs {
    let (tx, logins) = topics();
    let mut r = LocalRun::new(workers).epoch_records(20).topic("tx", tx).topic("logins", logins);
    if let Some(d) = dir {
        r = r.checkpoints(d, 4);
    }
    if let Some(c) = crash_after {
        r = r.crash_after_epoch(c);
    }
    r.run(graph).unwrap()
}

fn records(out: &Outputs, sink: &str, keep: impl Fn(u64) -> bool) -> Vec<SinkRecord> {
    out.sink(sink).iter().filter(|r| keep(r.epoch)).cloned().collect()
}

fn crash_and_restore(before: usize, after: usize, crash_at: u64) {
    let whole = run(1, None, None);
    let dir = tempfile::tempdir().unwrap();
    let crashed = run(before, Some(dir.path()), Some(crash_at));
    if std::env::var("DBG").is_ok() {
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            eprintln!("{:?}", e.path());
            if e.path().is_dir() {
                let mut f: Vec<_> = std::fs::read_dir(e.path()).unwrap().map(|f| f.unwrap().file_name()).collect();
                f.sort();
                eprintln!("  {:?}", f);
            }
        }
    }
    let restored_epoch = *crashed.checkpoints.last().expect("a checkpoint before the crash");
    assert!(restored_epoch <= crash_at && restored_epoch % 4 == 3, "checkpoint {restored_epoch}, crash after {crash_at}");
    let resumed = run(after, Some(dir.path()), None);
    for sink in SINKS {
        // (the logins end early: their view may have nothing left after a late checkpoint)
        if sink != "devices_per_country" {
            assert!(!records(&whole, sink, |e| e > restored_epoch).is_empty(), "{sink}: something to compare after the checkpoint");
        }
        if sink == "sessions" {
            // a timer's output may land one epoch apart at another worker count
            // (another key's event may move its partition's watermark first);
            // across the crash, each output is written once
            let values = |rs: Vec<SinkRecord>| rs.into_iter().map(|r| (r.key, r.time_ms, r.value)).collect::<Vec<_>>();
            let mut both = values(records(&crashed, sink, |e| e <= restored_epoch));
            both.extend(values(records(&resumed, sink, |_| true)));
            both.sort();
            let mut expected = values(records(&whole, sink, |_| true));
            expected.sort();
            assert_eq!(both, expected, "{sink}: before the checkpoint and after the restore ({before} -> {after} workers)");
            continue;
        }
        assert_eq!(records(&crashed, sink, |e| e <= restored_epoch), records(&whole, sink, |e| e <= restored_epoch), "{sink}: up to the checkpoint");
        assert_eq!(records(&resumed, sink, |_| true), records(&whole, sink, |e| e > restored_epoch), "{sink}: after the restore ({before} -> {after} workers)");
    }
    // the sources read on from the checkpoint's offsets: the records of the
    // epochs after it (20 per partition per epoch), each once
    let (tx, logins) = topics();
    for (topic, parts) in [("tx", tx), ("logins", logins)] {
        let after: usize = parts.iter().map(|p| p.len().saturating_sub((restored_epoch as usize + 1) * 20)).sum();
        assert_eq!(resumed.sources.get(topic).map_or(0, |c| c.read) as usize, after, "{topic}: the restarted run starts at the checkpoint");
    }
}

#[test]
fn a_crash_and_a_restore_give_what_an_uninterrupted_run_gives() {
    crash_and_restore(1, 1, 9);
}

#[test]
fn a_checkpoint_of_two_workers_restores_into_one() {
    crash_and_restore(2, 1, 13);
}

#[test]
fn a_checkpoint_of_one_worker_restores_into_three() {
    crash_and_restore(1, 3, 20);
}

#[test]
fn a_checkpoint_whose_operators_differ_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = run(1, Some(dir.path()), Some(9));
    assert!(!crashed.checkpoints.is_empty());
    let (tx, logins) = topics();
    let err = LocalRun::new(1)
        .epoch_records(20)
        .topic("tx", tx)
        .topic("logins", logins)
        .checkpoints(dir.path(), 4)
        .run(|g| {
            let tx = g.source(Source::json("tx").key("card"));
            g.source(Source::json("logins").key("card"));
            tx.stateful("sessions_v2", Sessions { gap_ms: 400 }).map(|(c, _)| c).sink("sessions");
            Ok(())
        })
        .unwrap_err();
    let msg = format!("{err:#}");
    eprintln!("{msg}");
    assert!(msg.contains("operators only in the checkpoint") && msg.contains("\"tx_after_login\"") && msg.contains("\"sessions_v2\""), "{msg}");
}
