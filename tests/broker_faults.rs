//! Broker faults: with the job running, the broker gets slow (added round-trip
//! time), then goes down, then refuses produce requests for a while. The job
//! stalls without crashing, says so in `vigil_kafka_errors_total`, resumes when the
//! broker is back, and loses nothing: the accounting invariant holds from the topics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use vigil::broker::EmbeddedBroker;
use vigil::demo::fraud_job;
use vigil::generator::GenConfig;
use vigil::kafka::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::KafkaOptions;
use vigil::metrics::Metrics;
use vigil::pipeline::Control;
use vigil::run::{run_job, RunOptions};

const EVENTS: u64 = 300_000;

#[test]
fn the_job_rides_out_a_slow_then_dead_then_refusing_broker() {
    let broker = EmbeddedBroker::start(1).unwrap();
    for (t, p) in [("transactions", 16), ("scores", 32), ("dlq", 2)] {
        broker.create_topic(t, p).unwrap();
    }
    let kafka = KafkaOptions::new(&broker.bootstrap_servers());
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, events: EVENTS, rate: None };
    publish(&kafka, GenConfig { bad_ratio: 0.01, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never()).unwrap();

    let metrics = Metrics::new();
    let control = Control::new();
    let job = {
        let run = RunOptions { until_end: true, checkpoint_interval: Duration::from_millis(200), ..RunOptions::new(kafka.clone(), "faults", 1) };
        let (metrics, control) = (metrics.clone(), control.clone());
        std::thread::spawn(move || run_job(fraud_job(), &run, metrics, control, Arc::new(Mutex::new(None))))
    };
    let progress = || metrics.scores_out.get() + metrics.dlq_total();
    let wait_for = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while progress() < n {
            assert!(Instant::now() < deadline, "stuck at {} of {n}", progress());
            std::thread::sleep(Duration::from_millis(5));
        }
    };

    wait_for(2_000);
    let mock = broker.cluster();
    mock.broker_round_trip_time(1, Duration::from_millis(300)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    mock.broker_round_trip_time(1, Duration::ZERO).unwrap();

    let before_down = progress();
    mock.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let during_down = progress();
    mock.broker_up(1).unwrap();
    assert!(during_down < EVENTS, "the job finished before the broker went down");

    wait_for(during_down + 1_000);
    let errors = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 20];
    mock.request_errors(RDKafkaApiKey::Produce, &errors);
    wait_for(EVENTS);

    let summary = job.join().unwrap().expect("the job survives the faults");
    assert_eq!(summary.committed.iter().map(|c| c.1).sum::<i64>(), EVENTS as i64);
    assert!(metrics.kafka_errors.with_label_values(&["consumer"]).get() + metrics.kafka_errors.with_label_values(&["producer"]).get() > 0, "the outage is visible in the metrics");
    assert_eq!(metrics.producer_errors.get(), 0, "librdkafka retried every output");
    let report = vigil::accounting::check(&kafka, "transactions", "scores", "dlq", None).unwrap();
    assert!(report.holds(), "{report:?}");
    assert_eq!(report.inputs, EVENTS);
    println!("progress before the outage {before_down}, during it {during_down}; {report:?}", report = (report.scored, report.dead_lettered));
}
