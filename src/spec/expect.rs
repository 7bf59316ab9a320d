//! Record-level data-quality expectations of a source: a declared field's value
//! within a range, in an allowed set, matching a regex, or at most so long.
//! A record that fails one goes to `dlq` with reason `expectation` and the
//! expectation's name (`mode = "dlq"`, the default), or is only counted
//! (`mode = "warn"`); both count in `vigil_expectation_failures_total`. An
//! absent or null value is not judged (a required field's absence is
//! `missing_field` already).
//!
//! ```
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
//! assert_eq!(job.source.expectations.len(), 2);
//! assert_eq!(job.source.expectations[1], Expectation::one_of("known_country", "country", &["FR", "DE"]).warn());
//! ```

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
}

/// One named expectation on one declared field.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    pub name: String,
    pub field: String,
    pub check: Check,
    pub mode: ExpectMode,
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
    /// Counts failures instead of dead-lettering their records.
    pub fn warn(mut self) -> Self {
        self.mode = ExpectMode::Warn;
        self
    }
    fn new(name: &str, field: &str, check: Check) -> Self {
        Expectation { name: name.to_owned(), field: field.to_owned(), check, mode: ExpectMode::Dlq }
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
