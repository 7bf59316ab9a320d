//! Data-quality expectations of a source.
//!
//! Record-level: a declared field's value within a range, in an allowed set,
//! matching a regex, or at most so long. A record that fails one goes to `dlq`
//! with reason `expectation` and the expectation's name (`mode = "dlq"`, the
//! default), or is only counted (`mode = "warn"`); both count in
//! `vigil_expectation_failures_total`. An absent or null value is not judged (a
//! required field's absence is `missing_field` already).
//!
//! Window-level, over tumbling event-time windows (`window`, one minute unless
//! set) of the records the source admits: a field's not-null rate, duplicate
//! values of a field (the event id, say), freshness (arrival against event
//! time) and volume (records per window). Each window's verdict is a `quality`
//! record on the drift topic and a Prometheus series; see
//! `crate::monitor::quality` for how windows close.
//!
//! ```
//! use std::time::Duration;
//! use vigil::spec::{Expectation, JobSpec};
//! let job = JobSpec::from_toml(r#"
//! [job]
//! name = "j"
//! [source]
//! topic = "t"
//! key = "card"
//! event_time = "ts"
//! [source.schema]
//! amount = "f64"
//! country = "str?"
//! [[source.expect]]
//! name = "amount_range"
//! field = "amount"
//! range = [0.0, 100000.0]
//! [[source.expect]]
//! name = "known_country"
//! field = "country"
//! one_of = ["FR", "DE"]
//! mode = "warn"
//! [[source.expect]]
//! name = "per_minute"
//! volume = [10, 100000]
//! [[source.expect]]
//! name = "fresh"
//! freshness = "30s"
//! max_rate = 0.01
//! window = "5m"
//! [[feature]]
//! name = "n"
//! agg = "count"
//! window = "sliding 1m"
//! [model]
//! bias = 0.0
//! [model.weights]
//! n = 1.0
//! [sinks]
//! scores = "scores"
//! dlq = "dlq"
//! "#).unwrap();
//! assert_eq!(job.source.expectations.len(), 4);
//! assert_eq!(job.source.expectations[1], Expectation::one_of("known_country", "country", &["FR", "DE"]).warn());
//! assert_eq!(job.source.expectations[2], Expectation::volume("per_minute", 10, 100_000));
//! assert_eq!(job.source.expectations[3], Expectation::freshness("fresh", Duration::from_secs(30), 0.01).per(Duration::from_secs(300)));
//! ```

use std::time::Duration;

use anyhow::{bail, Result};

use super::{FieldType, SourceSpec};

/// What a failed expectation does to its record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpectMode {
    /// The record goes to `dlq` with reason `expectation`.
    #[default]
    Dlq,
    /// The record goes on; the failure is counted.
    Warn,
}

impl ExpectMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectMode::Dlq => "dlq",
            ExpectMode::Warn => "warn",
        }
    }
}

/// The check of one expectation.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// A numeric field within `[min, max]` (inclusive).
    Range { min: f64, max: f64 },
    /// A string field equal to one of these.
    OneOf(Vec<String>),
    /// A string field that the regex (Rust `regex` syntax) matches somewhere;
    /// anchor it (`^...$`) to match the whole value.
    Regex(String),
    /// A string field of at most this many characters.
    MaxLength(usize),
    /// Window-level: at least this fraction of a window's records carry the
    /// field (present and not null).
    NotNullRate { min: f64 },
    /// Window-level: at most this fraction of a window's records repeat a value
    /// of the field seen earlier in the window (values compared by a 64-bit hash).
    Unique { max_rate: f64 },
    /// Window-level: at most this fraction of a window's records arrive more
    /// than `max_lag` after their event time (arrival: the wall clock when the
    /// source reads them).
    Freshness { max_lag: Duration, max_rate: f64 },
    /// Window-level: a window holds between `min` and `max` records (both
    /// inclusive). A window the run saw only part of (its first, and the last
    /// of a bounded input) is not held to `min`.
    Volume { min: u64, max: u64 },
}

impl Check {
    /// Whether the check judges windows of records, not each record.
    pub fn is_window(&self) -> bool {
        matches!(self, Check::NotNullRate { .. } | Check::Unique { .. } | Check::Freshness { .. } | Check::Volume { .. })
    }
    /// What a window-level check measures (the `method` of its `quality` records).
    pub fn method(&self) -> &'static str {
        match self {
            Check::Range { .. } => "range",
            Check::OneOf(_) => "one_of",
            Check::Regex(_) => "regex",
            Check::MaxLength(_) => "max_length",
            Check::NotNullRate { .. } => "not_null_rate",
            Check::Unique { .. } => "duplicate_rate",
            Check::Freshness { .. } => "stale_rate",
            Check::Volume { .. } => "volume",
        }
    }
}

/// The window of window-level expectations unless one sets its own.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// One named expectation on one declared field (or, for freshness and volume,
/// on the records themselves: `field` is empty).
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    pub name: String,
    pub field: String,
    pub check: Check,
    /// Record-level checks only.
    pub mode: ExpectMode,
    /// Window-level checks only: the tumbling event-time window judged.
    pub window: Duration,
}

impl Expectation {
    pub fn range(name: &str, field: &str, min: f64, max: f64) -> Self {
        Self::new(name, field, Check::Range { min, max })
    }
    pub fn one_of(name: &str, field: &str, values: &[&str]) -> Self {
        Self::new(name, field, Check::OneOf(values.iter().map(|v| v.to_string()).collect()))
    }
    pub fn regex(name: &str, field: &str, pattern: &str) -> Self {
        Self::new(name, field, Check::Regex(pattern.to_owned()))
    }
    pub fn max_length(name: &str, field: &str, chars: usize) -> Self {
        Self::new(name, field, Check::MaxLength(chars))
    }
    /// Window-level: at least `min` (a fraction) of a window's records carry `field`.
    pub fn not_null_rate(name: &str, field: &str, min: f64) -> Self {
        Self::new(name, field, Check::NotNullRate { min })
    }
    /// Window-level: at most `max_rate` of a window's records repeat a value of
    /// `field` (the key, the event id or a declared field) seen earlier in the window.
    pub fn unique(name: &str, field: &str, max_rate: f64) -> Self {
        Self::new(name, field, Check::Unique { max_rate })
    }
    /// Window-level: at most `max_rate` of a window's records arrive more than
    /// `max_lag` after their event time.
    pub fn freshness(name: &str, max_lag: Duration, max_rate: f64) -> Self {
        Self::new(name, "", Check::Freshness { max_lag, max_rate })
    }
    /// Window-level: between `min` and `max` records per window.
    pub fn volume(name: &str, min: u64, max: u64) -> Self {
        Self::new(name, "", Check::Volume { min, max })
    }
    /// Counts failures instead of dead-lettering their records.
    pub fn warn(mut self) -> Self {
        self.mode = ExpectMode::Warn;
        self
    }
    /// Judges windows of this length (window-level checks; one minute by default).
    pub fn per(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
    fn new(name: &str, field: &str, check: Check) -> Self {
        Expectation { name: name.to_owned(), field: field.to_owned(), check, mode: ExpectMode::Dlq, window: DEFAULT_WINDOW }
    }
}

/// Checks a source's expectations against its schema: each names a declared
/// field of a type its check reads, names are unique, ranges are ordered and
/// regexes compile. Errors name the expectation and the field.
pub fn check_expectations(source: &SourceSpec) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    for e in &source.expectations {
        let at = format!("expectation `{}` of source `{}`", e.name, source.topic);
        if e.name.is_empty() {
            bail!("an expectation of source `{}` has an empty name", source.topic);
        }
        if !names.insert(e.name.as_str()) {
            bail!("{at}: the name is used twice");
        }
        if e.check.is_window() {
            check_window(source, e, &at)?;
            continue;
        }
        if e.window != DEFAULT_WINDOW {
            bail!("{at}: `window` applies to window-level checks (not_null_rate, unique, freshness, volume)");
        }
        let Some(field) = source.fields.iter().find(|f| f.name == e.field) else {
            bail!("{at}: field `{}` is not declared in the source's schema", e.field);
        };
        match (&e.check, field.ty) {
            (Check::Range { min, max }, FieldType::F64 | FieldType::I64) => {
                if !(min <= max) {
                    bail!("{at}: range [{min}, {max}] is empty (min must be at most max, neither NaN)");
                }
            }
            (Check::Range { .. }, ty) => bail!("{at}: `range` needs a numeric field, `{}` is {ty:?}", e.field),
            (Check::OneOf(values), FieldType::Str) if values.is_empty() => bail!("{at}: `one_of` lists no value"),
            (Check::Regex(p), FieldType::Str) => {
                if let Err(err) = regex::Regex::new(p) {
                    bail!("{at}: `regex` does not compile: {err}");
                }
            }
            (Check::OneOf(_) | Check::MaxLength(_), FieldType::Str) => {}
            (_, ty) => bail!("{at}: `one_of`, `regex` and `max_length` need a string field, `{}` is {ty:?}", e.field),
        }
    }
    Ok(())
}

/// Window-level expectations need names unique across the sources of a job or
/// graph: their `quality` records and series are keyed by name alone.
pub fn check_window_names<'a>(sources: impl IntoIterator<Item = &'a SourceSpec>) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for s in sources {
        for e in s.window_expectations() {
            if let Some(other) = seen.insert(e.name.as_str(), s.topic.as_str()) {
                bail!("expectation `{}` is declared by sources `{other}` and `{}`: window-level expectations need names unique in the job", e.name, s.topic);
            }
        }
    }
    Ok(())
}

impl SourceSpec {
    /// The source's window-level expectations (not_null_rate, unique, freshness, volume).
    pub fn window_expectations(&self) -> impl Iterator<Item = &Expectation> {
        self.expectations.iter().filter(|e| e.check.is_window())
    }
}

/// A window-level expectation: its window, field and bounds.
fn check_window(source: &SourceSpec, e: &Expectation, at: &str) -> Result<()> {
    if e.window < Duration::from_millis(1) || e.window > Duration::from_secs(7 * 86_400) {
        bail!("{at}: `window` is {:?}; it must be between 1 ms and 7 days", e.window);
    }
    if e.mode != ExpectMode::Dlq {
        bail!("{at}: `mode` applies to record-level checks; a window-level one writes `quality` records");
    }
    let rate = |name: &str, r: f64| match (0.0..=1.0).contains(&r) {
        true => Ok(()),
        false => Err(anyhow::anyhow!("{at}: `{name}` is {r}; it must be a fraction in [0, 1]")),
    };
    let declared = || source.fields.iter().any(|f| f.name == e.field);
    if source.fields.iter().any(|f| f.name == e.field && f.ty == FieldType::Bool) {
        bail!("{at}: `{}` is a bool field; window-level checks read numeric and string fields", e.field);
    }
    match &e.check {
        Check::NotNullRate { min } => {
            rate("not_null_rate", *min)?;
            if !declared() {
                bail!("{at}: field `{}` is not declared in the source's schema", e.field);
            }
        }
        Check::Unique { max_rate } => {
            rate("max_rate", *max_rate)?;
            let special = e.field == source.key_field || source.event_id_field.as_deref() == Some(e.field.as_str());
            if !special && !declared() {
                bail!("{at}: field `{}` is neither the key, the event id nor declared in the source's schema", e.field);
            }
        }
        Check::Freshness { max_lag, max_rate } => {
            rate("max_rate", *max_rate)?;
            if max_lag.is_zero() {
                bail!("{at}: `freshness` must be a positive duration");
            }
        }
        Check::Volume { min, max } => {
            if min > max {
                bail!("{at}: volume [{min}, {max}] is empty (min must be at most max)");
            }
        }
        _ => {}
    }
    if matches!(e.check, Check::Freshness { .. } | Check::Volume { .. }) && !e.field.is_empty() {
        bail!("{at}: `freshness` and `volume` judge whole records; they take no `field`");
    }
    Ok(())
}
