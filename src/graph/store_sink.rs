//! The online feature store fed from a graph: `features.sink_store(&store)`
//! keeps, for every live key, its features as of its latest event (what
//! `GET /features/{key}` serves, see `crate::http`), and drops a key when it
//! leaves the features operator's state.
//!
//! The input is [`super::Stream::features_all`]'s stream, whose outputs of a key
//! are in order: each featured event replaces the key's entry, and a key's
//! expiry removes it unless a later event of the key brought it back. Each
//! worker publishes once per input batch (a write lock per shard touched);
//! lookups never enter the dataflow. The store holds what the `features` topic
//! ends with per key (`tests/graph_golden.rs`).
//!
//! ```
//! use std::time::Duration;
//! use vigil::graph::{Features, LocalRun, Source};
//! use vigil::store::FeatureStore;
//! use vigil_operators::Agg;
//!
//! let features = Features::new().window("n_1m", Agg::Count, None, Duration::from_secs(60));
//! let store = FeatureStore::new(features.names());
//! let t0 = 1_700_000_000_000i64;
//! let tx = |card: &str, s: i64| format!(r#"{{"card":"{card}","ts":{}}}"#, t0 + s * 1000).into_bytes();
//! let (s, f) = (store.clone(), features.clone());
//! LocalRun::new(2)
//!     .topic("tx", vec![vec![tx("c1", 0), tx("c2", 1), tx("c1", 2)]])
//!     .run(move |g| {
//!         g.source(Source::json("tx").key("card")).features_all("card_features", f.clone()).sink_store(&s);
//!         Ok(())
//!     })
//!     .unwrap();
//! let c1 = store.get("c1").unwrap();
//! assert_eq!((c1.event_time_ms, c1.values.clone()), (t0 + 2000, vec![Some(2.0)]));
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::features::FeatureOutput;
use super::stream::{Msg, Stream};
use crate::store::{FeatureStore, StoredFeatures};

impl<'s> Stream<'s, FeatureOutput> {
    /// Keeps `store` up to date with every key's latest features; see the module docs.
    pub fn sink_store(&self, store: &Arc<FeatureStore>) {
        let store = store.clone();
        let mut latest: HashMap<String, StoredFeatures> = HashMap::new();
        let mut expired: HashSet<String> = HashSet::new();
        self.inner.clone().sink(Pipeline, "Store", move |(input, _frontier)| {
            input.for_each(|_, data| {
                for m in data.drain(..) {
                    let Msg::Event(r) = m else { continue };
                    match &r.value {
                        FeatureOutput::Event(record) => {
                            let values = record.added().map_or_else(Vec::new, |(_, v)| v.iter().map(|x| Some(*x).filter(|x| !x.is_nan())).collect());
                            expired.remove(&r.key);
                            latest.insert(r.key, StoredFeatures { event_time_ms: r.time_ms, values });
                        }
                        FeatureOutput::Expired => {
                            latest.remove(&r.key);
                            expired.insert(r.key);
                        }
                        FeatureOutput::Window(_) => {}
                    }
                }
            });
            if !latest.is_empty() || !expired.is_empty() {
                let gone: Vec<String> = expired.drain().collect();
                store.publish(&mut latest, &gone);
            }
        });
    }
}
