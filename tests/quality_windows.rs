//! Window-level data-quality expectations (not-null rate, duplicates,
//! freshness, volume) on the graph: the `quality` findings equal a naive
//! recomputation over the admitted records, window by window, with one or two
//! workers, one to three partitions, malformed records and out-of-order events;
//! through `job_graph` a TOML job writes them to its drift topic; the pipeline
//! and bad declarations are refused, naming the expectation.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use vigil::graph::job::job_graph;
use vigil::graph::{LocalRun, Source};
use vigil::monitor::DriftRecord;
use vigil::spec::{Expectation, FieldType, JobSpec};

const MIN: i64 = 60_000;

/// One generated record: its time, card, merchant (or none), id, amount (or none).
#[derive(Clone, Debug)]
struct Tx {
    time: i64,
    card: u8,
    merchant: Option<u8>,
    id: u16,
    amount: Option<u8>,
}

impl Tx {
    fn json(&self) -> Vec<u8> {
        let mut fields = vec![format!(r#""card":"c{}""#, self.card), format!(r#""ts":{}"#, self.time), format!(r#""id":"t{}""#, self.id)];
        if let Some(m) = self.merchant {
            fields.push(format!(r#""merchant":"m{m}""#));
        }
        match self.amount {
            Some(a) => fields.push(format!(r#""amount":{a}"#)),
            None => fields.push(r#""amount":null"#.to_owned()),
        }
        format!("{{{}}}", fields.join(",")).into_bytes()
    }
}

/// The expectations under test; freshness is against the wall clock, and the
/// generated times keep clear of its boundary (see `times`).
fn expectations() -> Vec<Expectation> {
    vec![
        Expectation::not_null_rate("merchant_present", "merchant", 0.8),
        Expectation::not_null_rate("amount_present", "amount", 0.7).per(Duration::from_secs(30)),
        Expectation::unique("unique_ids", "id", 0.05).per(Duration::from_secs(90)),
        Expectation::unique("amount_values", "amount", 0.5),
        Expectation::freshness("fresh", Duration::from_secs(3600), 0.2).per(Duration::from_secs(120)),
        Expectation::volume("per_minute", 3, 12),
    ]
}

fn source() -> Source {
    let mut s = Source::json("tx").key("card").optional("merchant", FieldType::Str).field("id", FieldType::Str).optional("amount", FieldType::F64);
    s = s.lateness(Duration::from_secs(5));
    for e in expectations() {
        s = s.expect(e);
    }
    s
}

/// The expected findings: each expectation's windows from its first window with
/// records to its last, computed from scratch.
fn naive(txs: &[Tx], now_ms: i64) -> Vec<(i64, String, String, f64, bool)> {
    let mut out = Vec::new();
    for e in expectations() {
        let len = e.window.as_millis() as i64;
        let mut windows: BTreeMap<i64, Vec<&Tx>> = BTreeMap::new();
        for t in txs {
            windows.entry(t.time.div_euclid(len) * len).or_default().push(t);
        }
        let (Some(&first), Some(&last)) = (windows.keys().next(), windows.keys().next_back()) else { continue };
        let mut start = first;
        while start <= last {
            let w = windows.get(&start).cloned().unwrap_or_default();
            let n = w.len() as f64;
            let rate = |k: usize| if w.is_empty() { 0.0 } else { k as f64 / n };
            let partial = start == first || start == last;
            let found = match &e.check {
                vigil::spec::Check::NotNullRate { min } => {
                    let present = w.iter().filter(|t| if e.field == "merchant" { t.merchant.is_some() } else { t.amount.is_some() }).count();
                    (!w.is_empty()).then(|| (rate(present), rate(present) < *min))
                }
                vigil::spec::Check::Unique { max_rate } => {
                    let mut seen = HashMap::new();
                    let mut dups = 0;
                    for t in &w {
                        let v = if e.field == "id" { Some(t.id as u32) } else { t.amount.map(|a| a as u32) };
                        if let Some(v) = v {
                            *seen.entry(v).or_insert(0) += 1;
                            dups += (seen[&v] > 1) as usize;
                        }
                    }
                    (!w.is_empty()).then(|| (rate(dups), rate(dups) > *max_rate))
                }
                vigil::spec::Check::Freshness { max_lag, max_rate } => {
                    let stale = w.iter().filter(|t| now_ms - t.time > max_lag.as_millis() as i64).count();
                    (!w.is_empty()).then(|| (rate(stale), rate(stale) > *max_rate))
                }
                vigil::spec::Check::Volume { min, max } => {
                    let k = w.len() as u64;
                    Some((k as f64, (k < *min && !partial) || k > *max))
                }
                _ => None,
            };
            if let Some((value, failed)) = found {
                out.push((start + len, e.name.clone(), e.check.method().to_owned(), value, failed));
            }
            start += len;
        }
    }
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

fn findings(values: Vec<String>) -> Vec<(i64, String, String, f64, bool)> {
    let mut out: Vec<_> = values
        .iter()
        .map(|v| serde_json::from_str::<DriftRecord>(v).unwrap())
        .inspect(|r| assert_eq!(r.kind, "quality"))
        .map(|r| (r.ts, r.name, r.method, r.value, r.drift))
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

/// Times around two anchors an hour and a half apart (an hour-old anchor and
/// a fresh one), in the past, away from the freshness boundary (1 h): a test run
/// of seconds cannot move a record across it.
fn anchor(now_ms: i64, fresh: bool) -> i64 {
    let base = if fresh { now_ms - 30 * MIN } else { now_ms - 150 * MIN };
    base.div_euclid(MIN) * MIN
}

fn generated() -> impl Strategy<Value = (Vec<Tx>, usize, usize, bool, Vec<usize>)> {
    let tx = (0..8u8, prop::option::weighted(0.85, 0..5u8), 0..60u16, prop::option::weighted(0.75, 0..6u8), 0i64..2000);
    (prop::collection::vec(tx, 1..160), 1..=2usize, 1..=3usize, any::<bool>(), prop::collection::vec(0..3usize, 0..6)).prop_map(
        |(raw, workers, partitions, gap, bad)| {
            // times rise by 0-2 s (a gap of 4 minutes at 2/3 when `gap`), each
            // jittered back by up to 2 s (within the 5 s lateness: nothing is late)
            let mut time = 0i64;
            let mut txs = Vec::new();
            let n = raw.len();
            for (i, (card, merchant, id, amount, step)) in raw.into_iter().enumerate() {
                time += step;
                if gap && i == 2 * n / 3 {
                    time += 4 * MIN;
                }
                txs.push(Tx { time: time - (step % 3) * 700, card, merchant, id, amount });
            }
            (txs, workers, partitions, gap, bad)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn findings_equal_a_naive_recomputation((txs, workers, partitions, _gap, bad) in generated(), fresh in any::<bool>()) {
        let now_ms = vigil::types::now_us() as i64 / 1000;
        // the whole input an hour and a half old (stale) or half an hour (fresh),
        // its first quarter of the other age when `fresh`, to mix both
        let txs: Vec<Tx> = txs
            .into_iter()
            .enumerate()
            .map(|(i, mut t)| {
                let mixed = fresh && i % 4 == 0;
                t.time += anchor(now_ms, !mixed);
                t
            })
            .collect();
        // per partition the stale records first (two hours apart, they would be
        // late among the fresh ones), each group in its jittered order (out of
        // order by up to 1.4 s, within the lateness)
        let stale_before = now_ms - 90 * MIN;
        let mut parts = vec![Vec::new(); partitions];
        for t in &txs {
            parts[t.card as usize % partitions].push(t.clone());
        }
        for p in &mut parts {
            p.sort_by_key(|t| t.time > stale_before);
        }
        let admitted: Vec<Tx> = parts.iter().flatten().cloned().collect();
        let mut payloads: Vec<Vec<Vec<u8>>> = parts.iter().map(|p| p.iter().map(Tx::json).collect()).collect();
        for (k, b) in bad.iter().enumerate() {
            let p = b % partitions;
            let at = (k * 7) % (payloads[p].len() + 1);
            payloads[p].insert(at, b"{not json".to_vec());
        }
        let out = LocalRun::new(workers).epoch_records(16).topic("tx", payloads).run(|g| {
            g.source(source());
            g.quality("tx").expect("the source has window-level expectations").sink_drift("drift");
            Ok(())
        }).unwrap();
        prop_assert_eq!(out.sources["tx"].accepted as usize, admitted.len());
        prop_assert_eq!(findings(out.values("drift")), naive(&admitted, now_ms));
    }
}

#[test]
fn two_workers_and_two_processes_agree_with_one() {
    let now_ms = vigil::types::now_us() as i64 / 1000;
    let t0 = anchor(now_ms, true);
    let txs: Vec<Tx> = (0..600u16)
        .map(|i| Tx {
            time: t0 + i as i64 * 700,
            card: (i % 7) as u8,
            merchant: (i % 9 != 0).then_some((i % 5) as u8),
            id: i % 500,
            amount: Some((i % 11) as u8),
        })
        .collect();
    let mut parts = vec![Vec::new(); 3];
    for t in &txs {
        parts[t.card as usize % 3].push(t.json());
    }
    let run = |workers: usize, processes: usize| {
        let out = LocalRun::new(workers)
            .processes(processes)
            .topic("tx", parts.clone())
            .run(|g| {
                g.source(source());
                g.quality("tx").unwrap().sink_drift("drift");
                Ok(())
            })
            .unwrap();
        findings(out.values("drift"))
    };
    let one = run(1, 1);
    assert_eq!(one, naive(&txs, now_ms));
    assert!(one.iter().any(|f| f.2 == "duplicate_rate" && f.4), "ids repeat after 500 records: {one:?}");
    assert_eq!(run(2, 1), one);
    assert_eq!(run(1, 2), one);
}

const JOB: &str = r#"
[job]
name = "quality"
[source]
topic = "tx"
key = "card"
event_time = "ts"
[source.schema]
amount = "f64"
merchant = "str?"
[[source.expect]]
name = "merchant_present"
field = "merchant"
not_null_rate = 0.95
[[source.expect]]
name = "per_minute"
volume = [5, 1000]
[[feature]]
name = "n"
agg = "count"
window = "sliding 1m"
[model]
bias = 0.0
[model.weights]
n = 1.0
[sinks]
scores = "scores"
dlq = "dlq"
drift = "drift"
"#;

#[test]
fn a_toml_job_writes_quality_records_to_its_drift_topic_and_the_pipeline_refuses_it() {
    let job = JobSpec::from_toml(JOB).unwrap();
    assert!(job.graph_only().is_some_and(|why| why.contains("window-level")));
    let t0 = 1_700_000_000_000i64;
    // 3 minutes of one record a second, every tenth without a merchant; then
    // two minutes with none (a whole window empty), then one more record
    let mut tx: Vec<Vec<u8>> = (0..180)
        .map(|i| match i % 10 {
            0 => format!(r#"{{"card":"c{}","ts":{},"amount":1}}"#, i % 3, t0 + i * 1000),
            _ => format!(r#"{{"card":"c{}","ts":{},"amount":1,"merchant":"m"}}"#, i % 3, t0 + i * 1000),
        })
        .map(String::into_bytes)
        .collect();
    tx.push(format!(r#"{{"card":"c0","ts":{},"amount":1,"merchant":"m"}}"#, t0 + 330_000).into_bytes());
    let out = LocalRun::new(2).topic("tx", vec![tx]).run(move |g| job_graph(g, &job)).unwrap();
    let found = findings(out.values("drift"));
    let failed: Vec<_> = found.iter().filter(|f| f.4).map(|f| (f.1.as_str(), f.3)).collect();
    // 90% carry a merchant (below 95%) in every full minute; the empty minute fails volume
    assert!(failed.contains(&("merchant_present", 0.9)), "{found:?}");
    assert!(failed.contains(&("per_minute", 0.0)), "{found:?}");
    assert_eq!(out.sink("scores").len(), 181);

    let input: vigil::local::MemoryTopic = vec![std::sync::Arc::new(vec![])];
    let refused = vigil::local::run_local(&JobSpec::from_toml(JOB).unwrap(), &input, 1, vigil::output::MemorySink::new(), vigil::metrics::Metrics::new());
    assert!(refused.is_err_and(|e| e.to_string().contains("window-level expectations")));
}

/// The windows are not checkpointed, and do not hold checkpoints back: a run
/// with checkpoints writes them as without the expectations.
#[test]
fn a_graph_with_window_level_expectations_checkpoints() {
    let t0 = 1_700_000_000_000i64;
    let tx: Vec<Vec<u8>> = (0..400).map(|i| format!(r#"{{"card":"c{}","ts":{},"id":"t{i}","amount":1}}"#, i % 5, t0 + i * 500).into_bytes()).collect();
    let dir = tempfile::tempdir().unwrap();
    let out = LocalRun::new(2)
        .epoch_records(50)
        .checkpoints(dir.path(), 1)
        .topic("tx", vec![tx])
        .run(|g| {
            g.source(source());
            g.quality("tx").unwrap().sink_drift("drift");
            Ok(())
        })
        .unwrap();
    assert!(out.checkpoints.len() >= 4, "checkpoints: {:?}", out.checkpoints);
    assert!(!out.values("drift").is_empty());
}

#[test]
fn bad_declarations_are_refused_naming_the_expectation() {
    let with = |expect: &str| JOB.replace("[[feature]]", &format!("[[source.expect]]\nname = \"bad\"\n{expect}\n[[feature]]"));
    let cases = [
        ("field = \"merchant\"\nnot_null_rate = 1.5", "`not_null_rate` is 1.5"),
        ("field = \"nope\"\nunique = true", "field `nope` is neither the key"),
        ("volume = [10, 5]", "volume [10, 5] is empty"),
        ("freshness = \"30s\"\nmode = \"warn\"", "`mode` applies to record-level checks"),
        ("field = \"amount\"\nrange = [0.0, 1.0]\nwindow = \"1m\"", "`window` applies to window-level checks"),
        ("field = \"amount\"\nrange = [0.0, 1.0]\nmax_rate = 0.1", "`max_rate` applies to `unique` and `freshness` only"),
        ("field = \"merchant\"\nvolume = [1, 2]", "take no `field`"),
        ("unique = false\nfield = \"merchant\"", "`unique = false` checks nothing"),
        ("freshness = \"soon\"", "`freshness`"),
        ("volume = [1, 2]\nwindow = \"0s\"", "`window` is 0ns"),
    ];
    for (expect, message) in cases {
        let err = match JobSpec::from_toml(&with(expect)) {
            Ok(_) => panic!("{expect:?} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(message), "{expect:?}: {err}");
        assert!(err.contains("`bad`"), "{expect:?} does not name the expectation: {err}");
    }
    // names are unique across the job's sources (records and series are keyed by name)
    let two = JOB.replacen("[source]\n", "[[source]]\n", 1).replace(
        "[[feature]]",
        "[[source]]\ntopic = \"logins\"\nkey = \"card\"\nevent_time = \"ts\"\n[[source.expect]]\nname = \"per_minute\"\nvolume = [1, 2]\n[[feature]]",
    );
    let err = format!("{:#}", JobSpec::from_toml(&two).err().expect("refused"));
    assert!(err.contains("expectation `per_minute` is declared by sources `tx` and `logins`"), "{err}");
    // a typed source cannot read fields by name
    let err = LocalRun::new(1)
        .topic("tx", vec![vec![]])
        .run(|g| {
            g.source_typed::<serde_json::Value>(Source::json("tx").key("card").expect(Expectation::volume("v", 1, 2)));
            Ok(())
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("need a source of records"), "{err:#}");
}
