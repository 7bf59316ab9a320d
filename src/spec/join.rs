//! A stream-stream interval join as the builder and the TOML declare it, by
//! field names; `JobBuilder::build` resolves it into `vigil_operators::IntervalJoin`.

use std::time::Duration;

use anyhow::{bail, Result};
use vigil_operators::interval_join::SideFilter;
use vigil_operators::IntervalJoin;

use super::string_tag;
use super::time::duration_ms;

/// A stream-stream interval join as a job declares it: pairs of events of the
/// same key, a right event between `lower` and `upper` after a left one (see
/// `vigil_operators::interval_join`). Written to the `joins` sink.
///
/// ```
/// use std::time::Duration;
/// use vigil::spec::{FieldType, IntervalJoinDecl, JobBuilder};
/// let job = JobBuilder::new("feed")
///     .field("action", FieldType::Str)
///     .field("video", FieldType::Str)
///     .interval_join(
///         IntervalJoinDecl::new("like_after_view")
///             .left("action", "view")
///             .right("action", "like")
///             .within(Duration::from_secs(600))
///             .on("video")
///             .emit_unmatched(),
///     )
///     .joins_sink("joins")
///     .build()
///     .unwrap();
/// assert_eq!(job.joins[0].upper_ms, 600_000);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct IntervalJoinDecl {
    pub(super) name: String,
    pub(super) left: Option<(String, String)>,
    pub(super) right: Option<(String, String)>,
    pub(super) lower_ms: i64,
    pub(super) upper_ms: i64,
    pub(super) on: Option<String>,
    pub(super) emit_unmatched: bool,
}

impl IntervalJoinDecl {
    /// A join of every event with every event of its key at the same time;
    /// narrow it with `left`, `right`, `within`/`between`, `on`.
    pub fn new(name: &str) -> Self {
        IntervalJoinDecl { name: name.to_owned(), left: None, right: None, lower_ms: 0, upper_ms: 0, on: None, emit_unmatched: false }
    }
    /// The left side: events whose string `field` is `value`.
    pub fn left(mut self, field: &str, value: &str) -> Self {
        self.left = Some((field.to_owned(), value.to_owned()));
        self
    }
    /// The right side: events whose string `field` is `value`.
    pub fn right(mut self, field: &str, value: &str) -> Self {
        self.right = Some((field.to_owned(), value.to_owned()));
        self
    }
    /// A right event at most `d` after the left one (or at the same time).
    pub fn within(mut self, d: Duration) -> Self {
        self.lower_ms = 0;
        self.upper_ms = duration_ms(d);
        self
    }
    /// `lower_ms <= right - left <= upper_ms` (either may be negative).
    pub fn between_ms(mut self, lower_ms: i64, upper_ms: i64) -> Self {
        self.lower_ms = lower_ms;
        self.upper_ms = upper_ms;
        self
    }
    /// Both sides must carry the same value of the string `field` (besides the key).
    pub fn on(mut self, field: &str) -> Self {
        self.on = Some(field.to_owned());
        self
    }
    /// A left outer join: left events that no right event can match any more
    /// are emitted alone (e.g. impressions without a click: negative labels).
    pub fn emit_unmatched(mut self) -> Self {
        self.emit_unmatched = true;
        self
    }
}

/// The declared joins, checked against the schema (string fields they read are
/// added to `kept`); `joins_sink`: the job names a topic for the pairs.
pub(super) fn resolve(decls: Vec<IntervalJoinDecl>, fields: &[super::FieldSpec], kept: &mut Vec<String>, joins_sink: bool) -> Result<Vec<IntervalJoin>> {
    let mut joins: Vec<IntervalJoin> = Vec::new();
    for d in decls {
        let name = d.name;
        if joins.iter().any(|j| j.name == name) {
            bail!("join `{name}`: the name is already used");
        }
        let mut side = |s: Option<(String, String)>| -> Result<Option<SideFilter>> {
            s.map(|(field, value)| Ok(SideFilter { field: string_tag(fields, kept, &format!("join `{name}`"), &field)?, value })).transpose()
        };
        let (left, right) = (side(d.left)?, side(d.right)?);
        let on = d.on.map(|f| string_tag(fields, kept, &format!("join `{name}`"), &f)).transpose()?;
        if d.lower_ms > d.upper_ms {
            bail!("join `{name}`: the interval's lower bound ({} ms) is after its upper bound ({} ms)", d.lower_ms, d.upper_ms);
        }
        if !joins_sink {
            bail!("join `{name}`: name the topic for joined pairs (`[sinks] joins`)");
        }
        joins.push(IntervalJoin { name, left, right, lower_ms: d.lower_ms, upper_ms: d.upper_ms, on, emit_unmatched: d.emit_unmatched });
    }
    Ok(joins)
}
