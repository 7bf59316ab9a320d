//! A job (`JobSpec`: TOML or `JobBuilder`) built as a graph:
//!
//! ```text
//! source (decode, validate, dlq) -> features (+ `features`, closed windows -> `windows`) -> score -> `scores`
//!                                 \-> sub-stream joins (`[[join]]`) -> `joins`            \-> monitor -> `drift`
//! other topics (`[[source]]`) -> interval joins between topics (`[[topic_join]]`) -> their sinks
//! ```
//!
//! With [`job_graph_with`], the scored events also go to the offline log
//! ([`super::Stream::sink_offline`], `vigil run --data-dir`) and each key's
//! latest features to the online feature store ([`super::Stream::sink_store`],
//! served at `/features/{key}`).
//!
//! The same records come out as from the job's own pipeline, byte for byte
//! (`tests/graph_golden.rs`): scores, dead letters and closed windows. The
//! monitor ([`super::Monitor`]) takes events in event-time order, so its
//! findings do not depend on speed or workers (the pipeline's, for a model with
//! fixed weights, take them as scored). A model trained online
//! (`[model.online]`) runs as [`super::Stream::score_online`], its shadow topic
//! as [`super::Stream::sink_shadow`]; with a `[monitor]`, the learner watches
//! concept drift and fairness on the labeled outcomes
//! ([`super::OnlineModel::monitored`]: the same findings as the pipeline's).
//!
//! ```
//! use vigil::graph::{job::job_graph, LocalRun};
//! use vigil::spec::JobSpec;
//!
//! let job = JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_job.toml").unwrap()).unwrap();
//! let tx = br#"{"event_id":"e1","card_id":"c1","ts":1700000000000,"amount":12.5,"country":"FR","merchant":"m1"}"#.to_vec();
//! let out = LocalRun::new(1).topic("transactions", vec![vec![tx, b"not json".to_vec()]]).run(move |g| job_graph(g, &job)).unwrap();
//! assert_eq!(out.values("scores").len(), 1);
//! assert_eq!(out.dead[0].reason, "not_json");
//! ```

use std::sync::Arc;

use anyhow::Result;

use super::{FeatureOutput, Features, GraphBuilder, Model, Monitor, OnlineModel, Record, Source, Stream, SubJoins};
use crate::offline::OfflineLink;
use crate::spec::JobSpec;
use crate::store::FeatureStore;
use crate::table::SharedTable;

/// The name of the job's feature operator (its checkpointed state).
pub const FEATURES: &str = "features";
/// The name of the job's monitor.
pub const MONITOR: &str = "monitor";
/// The name of the job's `[[join]]` operator.
pub const JOINS: &str = "joins";

/// What a job's graph reads and writes besides its topics: its tables, the
/// offline log (`vigil run --data-dir`) and the feature store (served with
/// `--metrics-addr`).
#[derive(Clone, Default)]
pub struct JobIo {
    /// The job's `[[table]]`s for its lookup features (`Tables::start` loads
    /// them from their topics, `SharedTable::from_records` from memory).
    pub tables: Vec<Arc<SharedTable>>,
    /// The offline log: every scored event's features (`Stream::sink_offline`).
    pub offline: Option<OfflineLink>,
    /// The online feature store: each live key's latest features (`Stream::sink_store`).
    pub store: Option<Arc<FeatureStore>>,
}

/// Builds `job` on `g`; see the module docs.
pub fn job_graph(g: &mut GraphBuilder<'_>, job: &JobSpec) -> Result<()> {
    job_graph_with(g, job, &JobIo::default())
}

/// [`job_graph`] with the tables, offline log and feature store of `io`.
pub fn job_graph_with(g: &mut GraphBuilder<'_>, job: &JobSpec, io: &JobIo) -> Result<()> {
    // the string fields the job reads (monitor, distinct counts); the others are
    // checked, not kept, unless a join between topics writes them
    let mut source = Source::from_spec(job.source.clone());
    if job.topic_joins.is_empty() {
        source = source.keep_strings(&job.strings);
    }
    let events = g.source(source);
    topic_joins(g, job, &events);
    quality_findings(g, job);
    if let (false, Some(topic)) = (job.joins.is_empty(), &job.sinks.joins) {
        events.sub_stream_joins(JOINS, SubJoins::of_job(job)).sink_joins(topic);
    }
    let features = Features::of_job_with_tables(job, &io.tables)?;
    let scored = match (&job.sinks.features, &job.sinks.windows, &job.model.online, &io.store) {
        // the common case in one operator
        (None, None, None, None) => events.features_scored(FEATURES, features, Model::of_job(job)?),
        (features_topic, windows_topic, online, store) => {
            let featured = featured(&events, features, features_topic.as_deref(), windows_topic.as_deref(), store.as_ref());
            match online {
                Some(_) => {
                    let mut model = OnlineModel::of_job(job)?;
                    if job.monitor.is_some() {
                        model = model.monitored(&Monitor::of_job(job)?, job.sinks.drift.as_deref());
                    }
                    featured.score_online(model)
                }
                None => featured.score(Model::of_job(job)?),
            }
        }
    };
    scored.sink_scores(&job.sinks.scores);
    if let Some(topic) = &job.sinks.shadow {
        scored.sink_shadow(topic);
    }
    if let Some(log) = &io.offline {
        scored.sink_offline(log);
    }
    if job.monitor.is_some() {
        let findings = scored.monitor(MONITOR, Monitor::of_job(job)?);
        if let Some(topic) = &job.sinks.drift {
            findings.sink_drift(topic);
        }
    }
    Ok(())
}

/// The sources' window-level expectations: their findings to the drift topic.
fn quality_findings(g: &GraphBuilder<'_>, job: &JobSpec) {
    for s in std::iter::once(&job.source).chain(&job.sources) {
        let Some(findings) = g.quality(&s.topic) else { continue };
        match &job.sinks.drift {
            Some(topic) => findings.sink_drift(topic),
            None => tracing::warn!(
                source = %s.topic,
                "[sinks] drift is not set: the findings of the source's window-level expectations go to Prometheus only"
            ),
        }
    }
}

/// The features of every event, the `features` and `windows` topics and the
/// feature store.
fn featured<'s>(
    events: &Stream<'s, Record>,
    features: Features,
    features_topic: Option<&str>,
    windows_topic: Option<&str>,
    store: Option<&Arc<FeatureStore>>,
) -> Stream<'s, Record> {
    if features_topic.is_none() && windows_topic.is_none() && store.is_none() {
        return events.features(FEATURES, features);
    }
    let all = events.features_all(FEATURES, features);
    if let Some(store) = store {
        all.sink_store(store);
    }
    if let Some(topic) = features_topic {
        all.sink_features(topic);
    }
    if let Some(topic) = windows_topic {
        all.flat_map(|o| match o {
            FeatureOutput::Window(w) => Some(w),
            _ => None,
        })
        .sink(topic);
    }
    all.flat_map(|o| match o {
        FeatureOutput::Event(r) => Some(r),
        _ => None,
    })
}

/// The job's other topics and the joins between topics (`[[source]]`,
/// `[[topic_join]]`): each pair as `{"join","left":{..},"right":{..}}`.
fn topic_joins<'s>(g: &mut GraphBuilder<'s>, job: &JobSpec, main: &Stream<'s, Record>) {
    let mut streams: Vec<(String, Stream<'s, Record>)> = vec![(job.source.topic.clone(), main.clone())];
    for s in &job.sources {
        streams.push((s.topic.clone(), g.source(Source::from_spec(s.clone()))));
    }
    let stream = |topic: &str| streams.iter().find(|(t, _)| t == topic).map(|(_, s)| s.clone());
    for j in &job.topic_joins {
        // the job's builder checked that both topics are its sources
        let (Some(left), Some(right)) = (stream(&j.left), stream(&j.right)) else { continue };
        let name = j.name.clone();
        left.interval_join(&j.name, &right, j.before, j.after).map(move |(l, r)| serde_json::json!({ "join": name, "left": l, "right": r })).sink(&j.sink);
    }
}
