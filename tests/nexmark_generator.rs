//! The Nexmark generator against Apache Beam's Java generator: the reference's
//! own output for the first 1,000 events of three configurations, compared
//! field by field; and `java.util.Random` against the JDK's outputs.

use serde_json::Value;
use vigil::nexmark::java_random::JavaRandom;
use vigil::nexmark::{Event, Generator, GeneratorConfig};

fn lines(file: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/nexmark/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The reference's event as ours serializes: its kind and fields.
fn reference_event(line: &Value) -> Value {
    let kind = line["type"].as_str().unwrap();
    serde_json::json!({ kind: line[kind].clone() })
}

fn check(file: &str, config: GeneratorConfig) {
    let reference = lines(file);
    assert_eq!(reference.len(), 1000);
    let ours: Vec<Event> = Generator::new(config.clone()).take(reference.len()).collect();
    let mut kinds = [0; 3];
    for (i, (line, event)) in reference.iter().zip(&ours).enumerate() {
        assert_eq!(line["index"].as_i64(), Some(i as i64));
        assert_eq!(serde_json::to_value(event).unwrap(), reference_event(line), "{file}: event {i} (id {})", line["eventId"]);
        assert_eq!(line["timestamp"].as_i64(), Some(event.date_time()));
        assert_eq!(config.timestamp(i as i64), event.date_time());
        kinds[match event {
            Event::Person(_) => 0,
            Event::Auction(_) => 1,
            Event::Bid(_) => 2,
        }] += 1;
    }
    assert_eq!(kinds, [20, 60, 920], "{file}: the proportions 1:3:46");
}

#[test]
fn first_thousand_events_equal_beams_with_its_default_configuration() {
    check("beam_default_base0.jsonl", GeneratorConfig { base_time: 0, ..GeneratorConfig::default() });
}

#[test]
fn first_thousand_events_equal_beams_with_one_generator() {
    check("beam_one_generator_base0.jsonl", GeneratorConfig { base_time: 0, num_event_generators: 1, ..GeneratorConfig::default() });
}

#[test]
fn a_sub_generators_events_equal_beams() {
    check("beam_default_first_id_1000.jsonl", GeneratorConfig { base_time: 0, first_event_id: 1000, ..GeneratorConfig::default() });
}

#[test]
fn java_random_equals_the_jdks() {
    let vectors = lines("java_random_vectors.jsonl");
    assert!(vectors.len() >= 10);
    for v in &vectors {
        let seed = v["seed"].as_i64().unwrap();
        let ints = |key: &str| v[key].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect::<Vec<_>>();
        let mut r = JavaRandom::new(seed);
        assert_eq!(ints("nextInt"), (0..ints("nextInt").len()).map(|_| r.next_int() as i64).collect::<Vec<_>>(), "seed {seed}");
        let mut r = JavaRandom::new(seed);
        assert_eq!(ints("nextLong"), (0..ints("nextLong").len()).map(|_| r.next_long()).collect::<Vec<_>>(), "seed {seed}");
        let mut r = JavaRandom::new(seed);
        let bits: Vec<u64> = v["nextDoubleBits"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        assert_eq!(bits, (0..bits.len()).map(|_| r.next_double().to_bits()).collect::<Vec<_>>(), "seed {seed}");
        let mut r = JavaRandom::new(seed);
        let bools: Vec<bool> = v["nextBoolean"].as_array().unwrap().iter().map(|x| x.as_bool().unwrap()).collect();
        assert_eq!(bools, (0..bools.len()).map(|_| r.next_boolean()).collect::<Vec<_>>(), "seed {seed}");
        for (bound, expected) in v["nextIntBounded"].as_object().unwrap() {
            let bound: i32 = bound.parse().unwrap();
            let expected: Vec<i64> = expected.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
            let mut r = JavaRandom::new(seed);
            assert_eq!(expected, (0..expected.len()).map(|_| r.next_int_bounded(bound) as i64).collect::<Vec<_>>(), "seed {seed}, bound {bound}");
        }
    }
}
