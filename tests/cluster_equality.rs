//! The same input gives the same scores (same set, same values) with one worker,
//! two worker threads, and two processes of one worker each in timely's cluster
//! mode. The jobs run as separate `vigil run` processes against a broker hosted by
//! this test process.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::Duration;

use common::{job_file, wait_ok};

use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::read::read_topic;
use vigil::kafka::KafkaOptions;

const EVENTS: u64 = 40_000;
const LIMIT: Duration = Duration::from_secs(240);

fn vigil(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).spawn().unwrap()
}

#[path = "support/ports.rs"]
mod ports;
use ports::quiet_port as free_port;

/// (partition, offset) -> (score, features) as written to `topic`, plus the DLQ positions.
fn outputs(kafka: &KafkaOptions, run: &str) -> (BTreeMap<(u32, i64), String>, Vec<(u64, i64, String)>) {
    let mut scores = BTreeMap::new();
    for r in read_topic(kafka, &format!("scores_{run}"), Duration::from_secs(60)).unwrap() {
        let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        let key = (v["source_partition"].as_u64().unwrap() as u32, v["source_offset"].as_i64().unwrap());
        let value = format!("{} {}", v["score"], v["features"]);
        assert!(scores.insert(key, value).is_none(), "{run}: {key:?} scored twice");
    }
    let mut dlq: Vec<(u64, i64, String)> = read_topic(kafka, &format!("dlq_{run}"), Duration::from_secs(60))
        .unwrap()
        .into_iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            (v["source_partition"].as_u64().unwrap(), v["source_offset"].as_i64().unwrap(), v["reason"].as_str().unwrap().to_owned())
        })
        .collect();
    dlq.sort();
    (scores, dlq)
}

#[test]
fn one_worker_two_workers_and_two_processes_give_the_same_scores() {
    let broker = EmbeddedBroker::start(1).unwrap();
    broker.create_topic("transactions", 8).unwrap();
    for run in ["w1", "w2", "p2"] {
        broker.create_topic(&format!("scores_{run}"), 8).unwrap();
        broker.create_topic(&format!("dlq_{run}"), 2).unwrap();
    }
    let addr = broker.bootstrap_servers();
    let kafka = KafkaOptions::new(&addr);
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events: EVENTS, rate: None };
    publish(&kafka, GenConfig { bad_ratio: 0.02, seed: 3, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let common = |job: &str, group: &str| -> Vec<String> {
        vec![
            "run".into(),
            job.to_string(),
            "--brokers".into(),
            addr.clone(),
            "--until-end".into(),
            "--group-id".into(),
            group.into(),
            "--metrics-addr".into(),
            "off".into(),
        ]
    };
    let w1 = job_file(dir.path(), "w1");
    wait_ok(vigil(&common(&w1, "g-w1")), "-w 1", LIMIT);

    let w2 = job_file(dir.path(), "w2");
    let mut args = common(&w2, "g-w2");
    args.extend(["-w".into(), "2".into()]);
    wait_ok(vigil(&args), "-w 2", LIMIT);

    let p2 = job_file(dir.path(), "p2");
    let hosts = dir.path().join("hosts");
    // the hostfile names the processes, as a StatefulSet's does; process 0 (the
    // one the others connect to) listens on every interface instead of its line
    // (--cluster-listen, as in a pod)
    let ports = [free_port(), free_port()];
    std::fs::write(&hosts, format!("localhost:{}\nlocalhost:{}\n", ports[0], ports[1])).unwrap();
    let procs: Vec<Child> = (0..2)
        .map(|i| {
            let mut args = common(&p2, "g-p2");
            args.extend(["-n".into(), "2".into(), "-p".into(), i.to_string(), "--hostfile".into(), hosts.display().to_string()]);
            if i == 0 {
                args.extend(["--cluster-listen".into(), format!("0.0.0.0:{}", ports[0])]);
            }
            vigil(&args)
        })
        .collect();
    for (i, p) in procs.into_iter().enumerate() {
        wait_ok(p, &format!("process {i} of 2"), LIMIT);
    }

    let (s1, d1) = outputs(&kafka, "w1");
    let (s2, d2) = outputs(&kafka, "w2");
    let (s3, d3) = outputs(&kafka, "p2");
    assert_eq!(s1.len() + d1.len(), EVENTS as usize);
    assert!(s1.len() > 35_000);
    assert!(s1 == s2, "-w 2 differs from -w 1");
    assert!(s1 == s3, "two processes differ from -w 1");
    assert_eq!(d1, d2);
    assert_eq!(d1, d3);
}
