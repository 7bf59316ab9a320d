//! The offline log fed from a graph: `scored.sink_offline(&log.link)` appends
//! every scored event's features, with its key, event id, event time and source
//! position, to the Parquet log under the job's data directory
//! ([`crate::offline`]), from which `vigil features export` builds
//! point-in-time-correct training data.
//!
//! The logged columns are the log's feature names ([`OfflineLink::features`]),
//! read by name from each record as the model reads its inputs (a feature
//! shadows a source field of the same name; absent or non-finite is null). So a
//! row holds exactly the features its event was scored with. Each worker sends
//! one batch per epoch per activation to the log's writer thread; a full channel
//! blocks the worker (backpressure, not loss). The rows of a job are the
//! pipeline's rows (`tests/graph_golden.rs`); the order of rows within a file is
//! not part of the contract (export keys them by event id).
//!
//! ```
//! use vigil::graph::{Features, LocalRun, Model, Source};
//! use vigil::metrics::Metrics;
//! use vigil::offline::export::{log_files, read_log_file};
//! use vigil::offline::log::{OfflineConfig, OfflineLog};
//! use vigil_operators::{Agg, Transform};
//! use std::time::Duration;
//!
//! let dir = std::env::temp_dir().join(format!("vigil-offline-doc-{}", std::process::id()));
//! let log = OfflineLog::start(OfflineConfig::new(&dir, vec!["n_1m".into()]), None, Metrics::new()).unwrap();
//! let link = log.link.clone();
//! let t0 = 1_700_000_000_000i64;
//! let tx = |s: i64| format!(r#"{{"card":"c1","ts":{}}}"#, t0 + s * 1000).into_bytes();
//! LocalRun::new(1)
//!     .topic("tx", vec![vec![tx(0), tx(5)]])
//!     .run(move |g| {
//!         let features = Features::new().window("n_1m", Agg::Count, None, Duration::from_secs(60));
//!         let model = Model::logistic("m", "1").weight("n_1m", 0.1, Transform::Identity);
//!         g.source(Source::json("tx").key("card")).features("f", features).score(model).sink_offline(&link);
//!         Ok(())
//!     })
//!     .unwrap();
//! assert_eq!(log.finish().unwrap().rows, 2);
//! let files = log_files(&dir.join("offline")).unwrap();
//! let rows = read_log_file(&files[0], &["n_1m".to_string()]).unwrap();
//! assert_eq!(rows.values[0], vec![Some(1.0), Some(2.0)]);
//! assert_eq!(rows.offsets, vec![0, 1]);
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::record::FieldReader;
use super::score::Scored;
use super::stream::{Msg, Stream};
use crate::offline::{OfflineLink, OfflineRows};

impl<'s> Stream<'s, Scored> {
    /// Logs every scored event's features to the offline log; see the module docs.
    pub fn sink_offline(&self, log: &OfflineLink) {
        let link = log.clone();
        let mut reader = FieldReader::new(link.features());
        let mut values = Vec::with_capacity(link.features().len());
        self.inner.clone().sink(Pipeline, "Offline", move |(input, _frontier)| {
            let mut rows: Option<OfflineRows> = None;
            input.for_each(|time, data| {
                let epoch = time.least().copied().unwrap_or_default();
                if rows.as_ref().is_some_and(|r| r.epoch != epoch) {
                    link.send(rows.take().unwrap_or_default());
                }
                let rows = rows.get_or_insert_with(|| OfflineRows { epoch, ..link.rows() });
                for m in data.drain(..) {
                    let Msg::Event(r) = m else { continue };
                    let record = &r.value.record;
                    reader.read(record, &mut values);
                    rows.push(&r.key, record.event_id(), r.time_ms, r.origin.partition, r.offset, &values);
                }
            });
            if let Some(rows) = rows.filter(|r| !r.is_empty()) {
                link.send(rows);
            }
        });
    }
}
