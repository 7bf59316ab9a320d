//! Record-level data-quality expectations against a naive recomputation: on
//! random records (valid, malformed, and failing expectations of both modes)
//! the decoder's verdict is the plain decoder's for a malformed record, else
//! `expectation` exactly when a `dlq` expectation fails, and the failure
//! counters equal the naive counts; the same through a graph run; every
//! mistake in a declaration is refused naming it.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use vigil::decode::Decoder;
use vigil::graph::{LocalRun, Source};
use vigil::metrics::Metrics;
use vigil::spec::{Expectation, FieldType, JobSpec};
use vigil::types::Reason;

fn source(with_expectations: bool) -> Source {
    let s = Source::json("tx")
        .key("card")
        .field("amount", FieldType::F64)
        .optional("country", FieldType::Str)
        .field("merchant", FieldType::Str)
        .optional("device", FieldType::Str);
    if !with_expectations {
        return s;
    }
    s.expect(Expectation::range("amount_range", "amount", 0.0, 1000.0))
        .expect(Expectation::one_of("known_country", "country", &["FR", "DE", "US"]).warn())
        .expect(Expectation::regex("merchant_id", "merchant", "^m[0-9]{1,3}$"))
        .expect(Expectation::max_length("short_device", "device", 8))
        .expect(Expectation::range("small_amount", "amount", 0.0, 500.0).warn())
}

/// A random record: mostly valid, some values failing expectations, some malformed.
fn record(rng: &mut impl Rng) -> (String, serde_json::Value) {
    let mut o = serde_json::Map::new();
    o.insert("card".into(), format!("c{}", rng.gen_range(0..20)).into());
    o.insert("ts".into(), (1_700_000_000_000i64 + rng.gen_range(0..100_000)).into());
    let amount: serde_json::Value = match rng.gen_range(0..12) {
        0 => "12".into(),                          // wrong type
        1 => serde_json::Value::Null,              // null: a required field missing
        2 => (-rng.gen_range(1.0..100.0)).into(),  // below the range
        3 => rng.gen_range(1000.5..5000.0).into(), // above it
        4 => 1000.0.into(),                        // the bound itself
        _ => rng.gen_range(0.0..1000.0).into(),
    };
    o.insert("amount".into(), amount);
    match rng.gen_range(0..6) {
        0 => {}
        1 => drop(o.insert("country".into(), "XX".into())),
        2 => drop(o.insert("country".into(), serde_json::Value::Null)),
        _ => drop(o.insert("country".into(), ["FR", "DE", "US"][rng.gen_range(0..3)].into())),
    }
    let merchant: serde_json::Value = match rng.gen_range(0..10) {
        0 => "shop-9".into(),
        1 => "m1234".into(),
        2 => 7.into(), // wrong type
        _ => format!("m{}", rng.gen_range(0..1000)).into(),
    };
    o.insert("merchant".into(), merchant);
    match rng.gen_range(0..5) {
        0 => {}
        1 => drop(o.insert("device".into(), "é".repeat(rng.gen_range(6..12)).into())),
        _ => drop(o.insert("device".into(), "ios".into())),
    }
    let v = serde_json::Value::Object(o);
    (v.to_string(), v)
}

/// The naive verdict on a record the plain decoder accepts: the `dlq`
/// expectations that fail, and the `warn` ones.
fn naive(v: &serde_json::Value) -> (Vec<&'static str>, Vec<&'static str>) {
    let (mut dlq, mut warn) = (Vec::new(), Vec::new());
    if let Some(a) = v["amount"].as_f64() {
        if !(0.0..=1000.0).contains(&a) {
            dlq.push("amount_range");
        }
        if !(0.0..=500.0).contains(&a) {
            warn.push("small_amount");
        }
    }
    if let Some(c) = v["country"].as_str() {
        if !["FR", "DE", "US"].contains(&c) {
            warn.push("known_country");
        }
    }
    if let Some(m) = v["merchant"].as_str() {
        let digits = m.strip_prefix('m').unwrap_or("");
        if !(m.starts_with('m') && (1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())) {
            dlq.push("merchant_id");
        }
    }
    if let Some(d) = v["device"].as_str() {
        if d.chars().count() > 8 {
            dlq.push("short_device");
        }
    }
    (dlq, warn)
}

fn counter(metrics: &Metrics, name: &str, mode: &str) -> u64 {
    metrics.expectation_failures.with_label_values(&["tx", name, mode]).get()
}

#[test]
fn the_decoder_judges_expectations_as_a_naive_recomputation_does() {
    let plain = Decoder::for_source(source(false).spec(), &[]);
    let judged = Decoder::for_source(source(true).spec(), &[]);
    let metrics = Metrics::new();
    judged.count_expectations(&metrics);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let mut want: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let (mut expectation, mut accepted, mut malformed) = (0, 0, 0);
    for _ in 0..20_000 {
        let (text, value) = record(&mut rng);
        let base = plain.decode(Some(text.as_bytes()), &mut |_| {});
        let got = judged.decode(Some(text.as_bytes()), &mut |_| {});
        match base {
            Err(r) => {
                malformed += 1;
                assert_eq!(got.unwrap_err(), r, "a malformed record keeps its reason: {text}");
            }
            Ok(decoded) => {
                let (dlq, warn) = naive(&value);
                match (&got, dlq.first()) {
                    (Ok(d), None) => {
                        accepted += 1;
                        assert_eq!(d, &decoded);
                        for w in &warn {
                            *want.entry((w, "warn")).or_default() += 1;
                        }
                    }
                    (Err(r), Some(_)) => {
                        expectation += 1;
                        assert_eq!(r.reason, Reason::Expectation, "{text}");
                        let named =
                            dlq.iter().find(|n| r.detail.starts_with(&format!("expectation `{n}`: "))).unwrap_or_else(|| panic!("{text}: {}", r.detail));
                        *want.entry((named, "dlq")).or_default() += 1;
                    }
                    _ => panic!("{text}: the decoder says {got:?}, the naive check {dlq:?}"),
                }
            }
        }
    }
    assert!(expectation > 2_000 && accepted > 5_000 && malformed > 1_000, "{expectation} {accepted} {malformed}");
    for name in ["amount_range", "merchant_id", "short_device"] {
        assert_eq!(counter(&metrics, name, "dlq"), want.get(&(name, "dlq")).copied().unwrap_or(0), "{name}");
        assert!(counter(&metrics, name, "dlq") > 0, "{name} never failed");
    }
    for name in ["known_country", "small_amount"] {
        assert_eq!(counter(&metrics, name, "warn"), want[&(name, "warn")], "{name}");
    }
}

#[test]
fn a_graph_run_dead_letters_expectation_failures_and_counts_them() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let plain = Decoder::for_source(source(false).spec(), &[]);
    let records: Vec<(String, serde_json::Value)> = (0..3_000).map(|_| record(&mut rng)).collect();
    let failing = records.iter().filter(|(t, v)| plain.decode(Some(t.as_bytes()), &mut |_| {}).is_ok() && !naive(v).0.is_empty()).count() as u64;
    let topic = vec![records.iter().map(|(t, _)| t.clone().into_bytes()).collect()];
    let out = LocalRun::new(2)
        .topic("tx", topic)
        .run(|g| {
            g.source(source(true).lateness(std::time::Duration::from_secs(3600))).map(|r| r.f64("amount").unwrap_or(0.0)).sink("amounts");
            Ok(())
        })
        .unwrap();
    let counts = &out.sources["tx"];
    assert_eq!(counts.rejected.get("expectation").copied(), Some(failing), "{counts:?}");
    assert_eq!(counts.read, 3_000);
}

#[test]
fn mistakes_in_expectations_are_refused_naming_them() {
    let job = |expect: &str| {
        JobSpec::from_toml(&format!(
            r#"
[job]
name = "j"
[source]
topic = "t"
key = "card"
event_time = "ts"
[source.schema]
amount = "f64"
merchant = "str"
{expect}
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
"#
        ))
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
    };
    let e = |body: &str| format!("[[source.expect]]\nname = \"x\"\n{body}");
    job(&e("field = \"amount\"\nrange = [0.0, 1.0]")).unwrap();
    for (body, says) in [
        ("field = \"price\"\nrange = [0.0, 1.0]", "field `price` is not declared"),
        ("field = \"merchant\"\nrange = [0.0, 1.0]", "`range` needs a numeric field"),
        ("field = \"amount\"\none_of = [\"a\"]", "need a string field"),
        ("field = \"amount\"\nrange = [2.0, 1.0]", "range [2, 1] is empty"),
        ("field = \"merchant\"\nregex = \"m(\"", "`regex` does not compile"),
        ("field = \"merchant\"\nregex = \"m\"\nmax_length = 3", "set exactly one of"),
        ("field = \"merchant\"\nmax_length = 3\nmode = \"drop\"", "`mode` is `drop`"),
        ("field = \"merchant\"\none_of = []", "`one_of` lists no value"),
        ("field = \"merchant\"\nmax_length = 3\nseverity = 1", "unknown field `severity`"),
    ] {
        let err = job(&e(body)).unwrap_err();
        assert!(err.contains(says), "{body}: {err}");
    }
    let twice = format!("{}\n{}", e("field = \"amount\"\nrange = [0.0, 1.0]"), e("field = \"merchant\"\nmax_length = 3"));
    assert!(job(&twice).unwrap_err().contains("expectation `x` of source `t`: the name is used twice"));
}
