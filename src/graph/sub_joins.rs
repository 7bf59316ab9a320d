//! The interval joins of one stream's sub-streams: a TOML job's `[[join]]`
//! (views joined with the same user's likes of the same video in the next 10
//! minutes, both in one `feed` topic), as a graph operator:
//! `stream.sub_stream_joins("joins", SubJoins::of_job(&job)).sink_joins("joins")`.
//!
//! Each join selects its left and right events by a string field's value, pairs
//! a key's left and right events whose times are within its bounds (and, with
//! `on`, whose `on` field is equal and present), each pair once, as soon as the
//! later event arrives; a left outer join also writes a left event alone once
//! its partition's watermark passes the end of its interval (final), and every
//! left event still waiting at the end of the input. The state machine is the
//! pipeline's (`vigil_operators::interval_join`), so the records are the job's,
//! byte for byte (`tests/graph_golden.rs`). Between two topics, use
//! [`Stream::interval_join`].
//!
//! State: every key's buffered events, checkpointed under the operator's name,
//! restored by key into any number of workers.
//!
//! ```
//! use vigil::graph::{job::job_graph, LocalRun};
//! use vigil::spec::JobSpec;
//!
//! let job = JobSpec::from_toml(&std::fs::read_to_string("examples/engagement_users.toml").unwrap()).unwrap();
//! let feed = |i: i64, action: &str| {
//!     let (views, likes) = if action == "view" { (1, 0) } else { (0, 1) };
//!     format!(r#"{{"event_id":"e{i}","user_id":"u1","ts":{},"video_id":"v1","action":"{action}","views":{views},"likes":{likes},"shares":0,"points":1,"watch_secs":10}}"#, 1_764_000_000_000i64 + i * 60_000).into_bytes()
//! };
//! let out = LocalRun::new(1).topic("feed", vec![vec![feed(0, "view"), feed(1, "like"), feed(30, "view")]]).run(move |g| job_graph(g, &job)).unwrap();
//! let joins = out.values("user_likes");
//! assert_eq!(joins.len(), 2); // the first view with its like; the second view alone (at the end of the input)
//! assert!(joins.iter().any(|j| j.contains(r#""matched":true"#)) && joins.iter().any(|j| j.contains(r#""matched":false"#)));
//! ```

use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use vigil_operators::interval_join::{JoinInput, JoinRecord};
use vigil_operators::{IntervalJoin, JoinState, Joined};

use super::gated::{gated, Gated};
use super::keyed::Origin;
use super::record::{FieldReader, Record};
use super::sink::Written;
use super::stream::{Msg, Rec, Stream};
use crate::output::encode_join;
use crate::spec::JobSpec;
use crate::types::key_hash;

/// The version of the operator's checkpointed state ([`JoinState`] in bincode).
const STATE_VERSION: u32 = 1;

/// The joins, and the fields they read; see the module docs.
#[derive(Clone, Debug)]
pub struct SubJoins {
    defs: Vec<IntervalJoin>,
    /// The string fields side filters and `on` read (their indices point here).
    strings: Vec<String>,
    /// The numeric fields carried with each side.
    fields: Vec<String>,
}

impl SubJoins {
    /// A job's `[[join]]`s.
    pub fn of_job(job: &JobSpec) -> SubJoins {
        SubJoins { defs: job.joins.clone(), strings: job.strings.clone(), fields: job.numeric_fields().iter().map(|f| f.name.clone()).collect() }
    }
}

/// A join's output: a matched pair, or a left event alone (outer join).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinPair {
    pub join: String,
    pub left: JoinRecord,
    pub right: Option<JoinRecord>,
    /// The names of the sides' `values`.
    pub fields: Arc<Vec<String>>,
}

impl<'s> Stream<'s, Record> {
    /// This stream's sub-stream joins under `name`; see the module docs.
    pub fn sub_stream_joins(&self, name: &str, joins: SubJoins) -> Stream<'s, JoinPair> {
        self.shared.claim(name, STATE_VERSION);
        let mut op = SubJoinOp {
            state: JoinState::new(joins.defs.clone()),
            names: joins.defs.iter().map(|d| d.name.clone()).collect(),
            numeric: FieldReader::new(&joins.fields),
            fields: Arc::new(joins.fields.clone()),
            strings: joins.strings,
            values: Vec::new(),
            joined: Vec::new(),
            last: None,
        };
        self.shared.restore_each::<JoinState>(name, "joins", |old| {
            let shared = self.shared.clone();
            if let Err(e) = op.state.absorb(old, |k| shared.owns(key_hash(k))) {
                self.shared.errors.borrow_mut().push(format!("joins `{name}`: {e}"));
            }
        });
        gated(self, name, op)
    }
}

impl<'s> Stream<'s, JoinPair> {
    /// The `joins` topic of a job, byte for byte: `{"join","key","matched",
    /// "delay_ms","left":{..},"right":{..}|null}`.
    pub fn sink_joins(&self, name: &str) {
        self.sink_with(name, |r, buf| {
            let p = &r.value;
            encode_join(buf, &p.join, &r.key, &p.left, p.right.as_ref(), &p.fields);
            Written::Value
        })
    }
}

/// The operator's work on one worker, without timely.
struct SubJoinOp {
    state: JoinState,
    names: Vec<String>,
    numeric: FieldReader,
    fields: Arc<Vec<String>>,
    strings: Vec<String>,
    // scratch
    values: Vec<f64>,
    joined: Vec<Joined>,
    /// The envelope of the latest event (for outputs of expiry).
    last: Option<Rec<()>>,
}

impl SubJoinOp {
    fn emit(&mut self, out: &mut Vec<Msg<JoinPair>>, watermark: i64) {
        let origin = self.last.as_ref().map_or(Origin { source: 0, partition: 0 }, |l| l.origin);
        for j in self.joined.drain(..) {
            let time_ms = j.right.as_ref().map_or(j.left.time, |r| r.time.max(j.left.time));
            let value = JoinPair { join: self.names[j.join].clone(), left: j.left, right: j.right, fields: self.fields.clone() };
            out.push(Msg::Event(Rec { key: j.key, time_ms, origin, offset: -1, watermark, value }));
        }
    }
}

impl Gated for SubJoinOp {
    type In = Record;
    type Out = JoinPair;
    fn event(&mut self, r: Rec<Record>, out: &mut Vec<Msg<JoinPair>>) {
        self.numeric.read_nan(&r.value, &mut self.values);
        let strings: Vec<Option<String>> = self.strings.iter().map(|s| r.value.str(s).map(str::to_owned)).collect();
        let input = JoinInput {
            time: r.time_ms,
            partition: r.origin.partition,
            offset: r.offset,
            event_id: r.value.event_id(),
            values: &self.values,
            strings: &strings,
        };
        self.state.observe(&r.key, r.origin.partition, r.watermark, &input, &mut self.joined);
        let watermark = r.watermark;
        self.last = Some(r.with(()));
        self.emit(out, watermark);
    }
    /// Left events that can no longer match (outer joins).
    fn batch_done(&mut self, watermark: i64, out: &mut Vec<Msg<JoinPair>>) {
        self.state.expire_due(&mut self.joined);
        self.emit(out, watermark);
    }
    /// Every left event still waiting is final (no right event can come).
    fn finish(&mut self, out: &mut Vec<Msg<JoinPair>>) {
        self.state.flush_all(&mut self.joined);
        self.emit(out, i64::MAX);
    }
    fn snapshot(&self) -> Result<Vec<u8>> {
        Ok(bincode::serialize(&self.state)?)
    }
}
