//! Loud misconfiguration of the labels stream.
//!
//! A misspelt `[model] labels.field` or `labels.id` makes every label malformed or
//! orphan; counting them in a metric is not enough. Once at least [`MIN_LABELS`]
//! labels were read and more than [`MAX_BAD_SHARE`] of them are malformed or
//! orphan, the learner logs a warning naming the reason, the first bad record's
//! field names and the setting to check; then again at most every
//! [`REPEAT_EVERY`], while the bad count grows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::checkpoint::Counts;
use super::LabelSpec;

/// Labels read before the share of bad ones is judged.
pub const MIN_LABELS: u64 = 100;
/// Share of malformed labels above which the learner warns.
pub const MAX_BAD_SHARE: f64 = 0.01;
/// Share of orphan labels above which the learner warns: the labels of
/// dead-lettered events are orphans by design (the demo's 1% of malformed
/// records leaves ~1.2% of its labels orphan), a wrong id field makes them all so.
pub const MAX_ORPHAN_SHARE: f64 = 0.05;
/// Time between repeated warnings.
pub const REPEAT_EVERY: Duration = Duration::from_secs(60);
/// Field names listed at most.
const MAX_FIELDS: usize = 20;

/// What the learner has seen of bad labels, for the warning.
#[derive(Debug)]
pub struct LabelHealth {
    topic: String,
    id_field: String,
    label_field: String,
    time_field: Option<String>,
    /// Malformed labels by reason (this run).
    reasons: BTreeMap<&'static str, u64>,
    /// The first malformed record: its reason and field names (`None`: not a JSON object).
    first_malformed: Option<(&'static str, Option<Vec<String>>)>,
    /// The field names of the first well-formed record (for orphans).
    first_ok: Option<Vec<String>>,
    /// When the last warning went out, and the bad count then.
    warned: Option<(Instant, u64)>,
}

impl LabelHealth {
    pub fn new(spec: &LabelSpec) -> LabelHealth {
        LabelHealth {
            topic: spec.topic.clone(),
            id_field: spec.id.clone(),
            label_field: spec.field.clone(),
            time_field: spec.time.clone(),
            reasons: BTreeMap::new(),
            first_malformed: None,
            first_ok: None,
            warned: None,
        }
    }

    /// Notes one label record and how it decoded.
    pub fn note<T>(&mut self, payload: Option<&[u8]>, decoded: &Result<T, &'static str>) {
        match decoded {
            Ok(_) if self.first_ok.is_none() => self.first_ok = field_names(payload),
            Ok(_) => {}
            Err(reason) => {
                *self.reasons.entry(*reason).or_default() += 1;
                if self.first_malformed.is_none() {
                    self.first_malformed = Some((*reason, field_names(payload)));
                }
            }
        }
    }

    /// The warning to log now, if any: the first time the share of bad labels is
    /// exceeded, then at most every [`REPEAT_EVERY`] while the bad count grows.
    pub fn check(&mut self, counts: &Counts, now: Instant) -> Option<String> {
        let bad = counts.malformed + counts.orphan;
        if let Some((at, seen)) = self.warned {
            if now.duration_since(at) < REPEAT_EVERY || bad <= seen {
                return None;
            }
        }
        let message = self.message(counts)?;
        self.warned = Some((now, bad));
        Some(message)
    }

    /// The warning for these counts, or `None` while the labels look fine.
    pub fn message(&self, counts: &Counts) -> Option<String> {
        let read = counts.labels_read;
        if read < MIN_LABELS {
            return None;
        }
        let too_many = |n: u64| n as f64 > MAX_BAD_SHARE * read as f64;
        let mut parts = Vec::new();
        if too_many(counts.malformed) {
            parts.push(self.malformed_part(counts.malformed, read));
        }
        if counts.orphan as f64 > MAX_ORPHAN_SHARE * read as f64 {
            parts.push(self.orphan_part(counts.orphan, read));
        }
        (!parts.is_empty()).then(|| parts.join("; also "))
    }

    fn malformed_part(&self, n: u64, read: u64) -> String {
        let reasons = self.reasons.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ");
        let reasons = if reasons.is_empty() { "reasons from before a restart".to_owned() } else { reasons };
        let (reason, fields) = self.first_malformed.clone().unwrap_or(("unknown", None));
        let (id, field) = (&self.id_field, &self.label_field);
        let hint = match reason {
            "missing_label" => format!("the job reads the label from field \"{field}\" ([model] labels = {{ field = \"{field}\" }})"),
            "bad_label" => format!("field \"{field}\" must hold a boolean, 0/1 or \"true\"/\"false\" ([model] labels = {{ field = \"{field}\" }})"),
            "missing_id" => format!("the job reads the event id from field \"{id}\" ([model] labels = {{ id = \"{id}\" }})"),
            "missing_time" | "bad_timestamp" => {
                let time = self.time_field.as_deref().unwrap_or("");
                format!("the job reads the label's time from field \"{time}\" (epoch ms or RFC 3339; [model] labels = {{ time = \"{time}\" }})")
            }
            _ => format!("label records must be JSON objects of at most {} KiB", super::labels::MAX_LABEL_BYTES / 1024),
        };
        format!("labels from `{}`: {n} of {read} malformed ({reasons}); the first ({reason}) {}; {hint}", self.topic, describe(fields.as_deref()))
    }

    fn orphan_part(&self, n: u64, read: u64) -> String {
        let id = &self.id_field;
        format!(
            "labels from `{}`: {n} of {read} orphan (no scored event with their id; dead-lettered events leave orphans too); the first well-formed label {}; \
             field \"{id}\" ([model] labels = {{ id = \"{id}\" }}) must hold the ids the events carry in [source] event_id",
            self.topic,
            describe(self.first_ok.as_deref())
        )
    }
}

fn describe(fields: Option<&[String]>) -> String {
    match fields {
        Some(f) => format!("has fields [{}]", f.join(", ")),
        None => "is not a JSON object".to_owned(),
    }
}

/// The top-level field names of a JSON object record (the first [`MAX_FIELDS`]).
fn field_names(payload: Option<&[u8]>) -> Option<Vec<String>> {
    let bytes = payload.filter(|b| b.len() <= super::labels::MAX_LABEL_BYTES)?;
    match serde_json::from_slice::<serde_json::Value>(bytes).ok()? {
        serde_json::Value::Object(obj) => {
            let mut names: Vec<String> = obj.keys().take(MAX_FIELDS).cloned().collect();
            if obj.len() > MAX_FIELDS {
                names.push(format!("... {} more", obj.len() - MAX_FIELDS));
            }
            Some(names)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::labels::decode_label;

    fn spec() -> LabelSpec {
        LabelSpec::new("labels", "event_id", "is_fraud", Duration::from_secs(60), None)
    }

    /// Feeds `records` through decoding as the learner does, counting them.
    fn feed(h: &mut LabelHealth, counts: &mut Counts, records: &[&str]) {
        for r in records {
            let decoded = decode_label(Some(r.as_bytes()), "event_id", "is_fraud");
            h.note(Some(r.as_bytes()), &decoded);
            counts.labels_read += 1;
            if decoded.is_err() {
                counts.malformed += 1;
            }
        }
    }

    #[test]
    fn a_misspelt_label_field_names_the_fields_and_the_setting() {
        let mut h = LabelHealth::new(&spec());
        let mut counts = Counts::default();
        feed(&mut h, &mut counts, &vec![r#"{"event_id":"e-1","fraud":true}"#; 3000]);
        let msg = h.message(&counts).expect("a warning");
        assert_eq!(
            msg,
            "labels from `labels`: 3000 of 3000 malformed (missing_label 3000); the first (missing_label) has fields [event_id, fraud]; \
             the job reads the label from field \"is_fraud\" ([model] labels = { field = \"is_fraud\" })"
        );
    }

    #[test]
    fn a_misspelt_id_field_and_garbage_records() {
        let mut h = LabelHealth::new(&spec());
        let mut counts = Counts::default();
        feed(&mut h, &mut counts, &vec![r#"{"id":"e-1","is_fraud":1}"#; 200]);
        let msg = h.message(&counts).expect("a warning");
        assert!(msg.contains("200 of 200 malformed (missing_id 200)"), "{msg}");
        assert!(msg.contains("has fields [id, is_fraud]"), "{msg}");
        assert!(msg.contains("labels = { id = \"event_id\" }"), "{msg}");

        let mut h = LabelHealth::new(&spec());
        let mut counts = Counts::default();
        feed(&mut h, &mut counts, &vec!["not json"; 150]);
        let msg = h.message(&counts).expect("a warning");
        assert!(msg.contains("150 of 150 malformed (not_json 150); the first (not_json) is not a JSON object; label records must be JSON objects"), "{msg}");
    }

    #[test]
    fn a_missing_time_field_names_the_time_setting() {
        let mut spec = spec();
        spec.time = Some("revealed_at".into());
        let mut h = LabelHealth::new(&spec);
        let record = r#"{"event_id":"e-1","is_fraud":true,"ts":5}"#;
        let counts = Counts { labels_read: 100, malformed: 100, ..Default::default() };
        for _ in 0..100 {
            h.note::<()>(Some(record.as_bytes()), &Err("missing_time"));
        }
        let msg = h.message(&counts).expect("a warning");
        assert!(msg.contains("100 of 100 malformed (missing_time 100); the first (missing_time) has fields [event_id, is_fraud, ts]"), "{msg}");
        assert!(
            msg.ends_with("the job reads the label's time from field \"revealed_at\" (epoch ms or RFC 3339; [model] labels = { time = \"revealed_at\" })"),
            "{msg}"
        );
    }

    #[test]
    fn orphans_name_the_id_setting() {
        let mut h = LabelHealth::new(&spec());
        let mut counts = Counts::default();
        feed(&mut h, &mut counts, &vec![r#"{"event_id":"x-1","is_fraud":false,"ts":1}"#; 500]);
        counts.orphan = 400;
        let msg = h.message(&counts).expect("a warning");
        assert!(msg.starts_with("labels from `labels`: 400 of 500 orphan (no scored event with their id; dead-lettered events leave orphans too); the first well-formed label has fields [event_id, is_fraud, ts]"), "{msg}");
        assert!(msg.contains("[source] event_id"), "{msg}");
    }

    #[test]
    fn quiet_below_the_share_or_before_enough_labels() {
        let mut h = LabelHealth::new(&spec());
        let mut counts = Counts::default();
        feed(&mut h, &mut counts, &vec![r#"{"event_id":"e"}"#; 99]);
        assert_eq!(h.message(&counts), None, "99 labels are too few to judge");
        let mut h = LabelHealth::new(&spec());
        let mut counts = Counts::default();
        feed(&mut h, &mut counts, &vec![r#"{"event_id":"e","is_fraud":true}"#; 1000]);
        feed(&mut h, &mut counts, &vec![r#"{"event_id":"e"}"#; 10]);
        counts.orphan = 50;
        assert_eq!(h.message(&counts), None, "1% malformed and 5% orphan (dead-lettered events) are tolerated");
        feed(&mut h, &mut counts, &[r#"{"event_id":"e"}"#; 2]);
        assert!(h.message(&counts).is_some_and(|m| m.contains("12 of 1012 malformed")));
    }

    #[test]
    fn warns_once_then_rate_limited() {
        let mut h = LabelHealth::new(&spec());
        let mut counts = Counts::default();
        feed(&mut h, &mut counts, &vec![r#"{"event_id":"e"}"#; 100]);
        let t0 = Instant::now();
        assert!(h.check(&counts, t0).is_some());
        feed(&mut h, &mut counts, &vec![r#"{"event_id":"e"}"#; 100]);
        assert_eq!(h.check(&counts, t0 + Duration::from_secs(1)), None, "within the repeat interval");
        assert!(h.check(&counts, t0 + REPEAT_EVERY).is_some_and(|m| m.contains("200 of 200")));
        assert_eq!(h.check(&counts, t0 + 3 * REPEAT_EVERY), None, "no new bad labels");
    }
}
