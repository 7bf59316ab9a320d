//! vigil's ADWIN, DDM and Page-Hinkley alarm at exactly the positions where River
//! 0.26's do, on the same streams with the same parameters. The streams and
//! River's detections are in `fixtures/river_parity.json`, written by
//! `fixtures/river_parity.py` (River is not needed to run this test).

use serde_json::Value;
use vigil_operators::drift::{detections, Adwin, AdwinConfig, ChangeDetector, Ddm, DdmConfig, PageHinkley, PageHinkleyConfig, PhMode};

fn values(stream: &Value) -> Vec<f64> {
    match &stream["values"] {
        Value::String(digits) => digits.bytes().map(|b| f64::from(b - b'0')).collect(),
        Value::Array(a) => a.iter().map(|v| v.as_f64().expect("a number")).collect(),
        other => panic!("unexpected values {other}"),
    }
}

fn detector(name: &str) -> Box<dyn ChangeDetector> {
    match name {
        "adwin" => Box::new(Adwin::new(AdwinConfig::default())),
        "adwin_strict" => Box::new(Adwin::new(AdwinConfig { delta: 1e-5, min_window_length: 500, ..Default::default() })),
        "ddm" => Box::new(Ddm::new(DdmConfig::default())),
        "ddm_warm" => Box::new(Ddm::new(DdmConfig { warm_start: 1000, ..Default::default() })),
        "page_hinkley" => Box::new(PageHinkley::new(PageHinkleyConfig::default())),
        "page_hinkley_up" => Box::new(PageHinkley::new(PageHinkleyConfig { mode: PhMode::Up, threshold: 20.0, ..Default::default() })),
        other => panic!("no detector {other}"),
    }
}

#[test]
fn detections_equal_rivers() {
    let fixture: Value = serde_json::from_str(include_str!("fixtures/river_parity.json")).expect("the fixture parses");
    let mut compared = 0;
    for (name, stream) in fixture["streams"].as_object().expect("streams") {
        let xs = values(stream);
        for (det, expected) in stream["detections"].as_object().expect("detections") {
            let expected: Vec<usize> = expected.as_array().expect("positions").iter().map(|v| v.as_u64().expect("an index") as usize).collect();
            let found = detections(detector(det).as_mut(), xs.iter().copied());
            assert_eq!(found, expected, "{det} on {name}");
            compared += 1;
        }
    }
    assert_eq!(compared, 16);
}
