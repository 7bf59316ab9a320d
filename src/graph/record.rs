//! The dynamic record: a decoded JSON event whose fields are read by name.
//!
//! A source with a declared schema decodes each payload once, checks it (types,
//! required fields, sizes; failures go to `dlq`), and hands on a [`Record`]: its
//! numeric fields (`f64`/`i64` in the schema) and its string fields, by name. The
//! key and the event time travel in the envelope ([`super::Rec`]).
//!
//! As JSON (sinks) a record is an object of its fields; between processes it
//! travels in a compact binary form.
//!
//! ```
//! use vigil::graph::Record;
//! let r = Record::from_fields("tx", [("amount", 12.5)], [("country", Some("FR"))]);
//! assert_eq!(r.f64("amount"), Some(12.5));
//! assert_eq!(r.str("country"), Some("FR"));
//! assert_eq!(r.str("city"), None);
//! assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"amount":12.5,"country":"FR"}"#);
//! ```

use std::sync::Arc;

use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// The field names of one source's records (shared by all its records).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub topic: String,
    pub numeric: Vec<String>,
    pub strings: Vec<String>,
}

/// A decoded event; see the module docs. Immutable, so a clone (a join pairing
/// it many times, a stream read by several operators) shares it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record(Arc<Fields>);

#[derive(Debug, PartialEq)]
struct Fields {
    schema: Arc<Schema>,
    event_id: Option<String>,
    numeric: Vec<f64>,
    strings: Vec<Option<String>>,
    /// The record this one extends (its fields are this one's too).
    base: Option<Record>,
}

impl Record {
    pub(crate) fn new(schema: Arc<Schema>, event_id: Option<String>, numeric: Vec<f64>, strings: Vec<Option<String>>) -> Self {
        Record(Arc::new(Fields { schema, event_id, numeric, strings, base: None }))
    }

    /// This record with more numeric fields (`schema.numeric` names them, and
    /// shadow same-named fields of this record): what [`super::Features`] adds.
    /// The record itself is shared, not copied.
    pub fn extend(&self, schema: Arc<Schema>, numeric: Vec<f64>) -> Record {
        Record(Arc::new(Fields { schema, event_id: None, numeric, strings: Vec::new(), base: Some(self.clone()) }))
    }

    /// The fields the newest [`Record::extend`] added (names and values; NaN is
    /// absent), or none for a record as read.
    pub fn added(&self) -> Option<(&[String], &[f64])> {
        self.0.base.as_ref().map(|_| (self.0.schema.numeric.as_slice(), self.0.numeric.as_slice()))
    }

    /// Whether `other` has this record's layout: the same schema objects, layer
    /// by layer (so the same topic, field names and added names). A pointer
    /// comparison per layer, for operators that cache what a layout implies.
    pub fn same_layout(&self, other: &Record) -> bool {
        let (mut a, mut b) = (Some(self), Some(other));
        while let (Some(x), Some(y)) = (a, b) {
            if !Arc::ptr_eq(&x.0.schema, &y.0.schema) {
                return false;
            }
            (a, b) = (x.0.base.as_ref(), y.0.base.as_ref());
        }
        a.is_none() && b.is_none()
    }

    /// A record built by hand (tests, examples).
    pub fn from_fields<'a>(
        topic: &str,
        numeric: impl IntoIterator<Item = (&'a str, f64)>,
        strings: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Self {
        let (nn, nv): (Vec<String>, Vec<f64>) = numeric.into_iter().map(|(n, v)| (n.to_owned(), v)).unzip();
        let (sn, sv): (Vec<String>, Vec<Option<String>>) = strings.into_iter().map(|(n, v)| (n.to_owned(), v.map(str::to_owned))).unzip();
        Record::new(Arc::new(Schema { topic: topic.to_owned(), numeric: nn, strings: sn }), None, nv, sv)
    }

    /// The topic the record was read from.
    pub fn topic(&self) -> &str {
        match &self.0.base {
            Some(base) => base.topic(),
            None => &self.0.schema.topic,
        }
    }
    /// The event id field, where the source declares one.
    pub fn event_id(&self) -> Option<&str> {
        match &self.0.base {
            Some(base) => base.event_id(),
            None => self.0.event_id.as_deref(),
        }
    }
    /// A numeric field; `None` when the schema has no such numeric field or the
    /// record left it out (or null).
    pub fn f64(&self, name: &str) -> Option<f64> {
        match self.0.schema.numeric.iter().position(|n| n == name) {
            Some(i) => self.0.numeric.get(i).copied().filter(|v| !v.is_nan()),
            None => self.0.base.as_ref()?.f64(name),
        }
    }
    /// A string field; `None` when absent, null or not declared.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.0.schema.strings.iter().position(|n| n == name) {
            Some(i) => self.0.strings.get(i)?.as_deref(),
            None => self.0.base.as_ref()?.str(name),
        }
    }

    /// Every field as (name, JSON value), the base's first; a name added later
    /// replaces the earlier one in place.
    fn entries(&self, out: &mut Vec<(String, serde_json::Value)>) {
        if let Some(base) = &self.0.base {
            base.entries(out);
        }
        let numeric = self.0.schema.numeric.iter().zip(&self.0.numeric).map(|(n, v)| (n, (!v.is_nan()).then_some(*v).into()));
        let strings = self.0.schema.strings.iter().zip(&self.0.strings).map(|(n, v)| (n, v.clone().into()));
        for (name, value) in numeric.chain(strings) {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value,
                None => out.push((name.clone(), value)),
            }
        }
    }
}

/// Reads a fixed list of numeric fields from records by name, as
/// [`Record::f64`] does, but resolves the names to positions once per record
/// layout (every record of a source, extended by the same operators, shares
/// one): what operators that read many fields per event use.
///
/// ```
/// use vigil::graph::record::{FieldReader, Record};
/// let mut reader = FieldReader::new(&["b", "a", "zz"]);
/// let mut out = Vec::new();
/// reader.read(&Record::from_fields("t", [("a", 1.0), ("b", 2.0)], []), &mut out);
/// assert_eq!(out, vec![Some(2.0), Some(1.0), None]);
/// ```
#[derive(Clone, Debug)]
pub struct FieldReader {
    names: Vec<String>,
    /// The schemas of the layout resolved, newest layer first (held, so that
    /// an address is never reused for another schema while cached).
    layout: Vec<Arc<Schema>>,
    /// Per name: (layer, index) of its value (an index past the layer's
    /// values where the field is absent).
    plan: Vec<(u32, u32)>,
}

impl FieldReader {
    pub fn new<S: AsRef<str>>(names: &[S]) -> Self {
        FieldReader { names: names.iter().map(|n| n.as_ref().to_owned()).collect(), layout: Vec::new(), plan: Vec::new() }
    }

    /// The fields' values (`None`: absent or not a numeric field), in order.
    pub fn read(&mut self, r: &Record, out: &mut Vec<Option<f64>>) {
        let layers = self.layers(r);
        out.clear();
        out.extend(self.plan.iter().map(|&(depth, i)| layers.value(depth, i, r)).map(|v| Some(v).filter(|v| !v.is_nan())));
    }

    /// [`FieldReader::read`] with NaN for an absent value (the operators'
    /// convention), without the options.
    pub fn read_nan(&mut self, r: &Record, out: &mut Vec<f64>) {
        let layers = self.layers(r);
        out.clear();
        out.extend(self.plan.iter().map(|&(depth, i)| layers.value(depth, i, r)));
    }

    /// The values of `r`'s layers, the layout resolved for `r` first where it
    /// is not (one walk over the layers when it is).
    #[inline]
    fn layers<'r>(&mut self, r: &'r Record) -> Layers<'r> {
        match self.layers_as_resolved(r) {
            Some(layers) => layers,
            None => {
                self.resolve(r);
                self.layers_as_resolved(r).expect("a layout resolved for the record")
            }
        }
    }

    #[inline]
    fn layers_as_resolved<'r>(&self, r: &'r Record) -> Option<Layers<'r>> {
        let mut layers = Layers { numeric: [&[]; LAYERS] };
        let (mut layer, mut depth) = (Some(r), 0);
        for id in &self.layout {
            let l = layer.filter(|l| Arc::ptr_eq(&l.0.schema, id))?;
            if depth < LAYERS {
                layers.numeric[depth] = &l.0.numeric;
            }
            (layer, depth) = (l.0.base.as_ref(), depth + 1);
        }
        (layer.is_none() && depth > 0).then_some(layers)
    }

    #[cold]
    #[inline(never)]
    fn resolve(&mut self, r: &Record) {
        let mut layers = Vec::new();
        let mut layer = Some(r);
        while let Some(l) = layer {
            layers.push(l);
            layer = l.0.base.as_ref();
        }
        self.layout = layers.iter().map(|l| l.0.schema.clone()).collect();
        // an absent field: past any layer's values (read as NaN)
        let absent = (0, u32::MAX);
        self.plan = self
            .names
            .iter()
            .map(|n| {
                let mut found = layers.iter().enumerate().filter_map(|(d, l)| l.0.schema.numeric.iter().position(|x| x == n).map(|i| (d as u32, i as u32)));
                found.next().unwrap_or(absent)
            })
            .collect();
    }
}

/// How many layers [`FieldReader`] keeps at hand (deeper ones are walked to).
const LAYERS: usize = 4;

/// The numeric values of a record's first [`LAYERS`] layers.
struct Layers<'r> {
    numeric: [&'r [f64]; LAYERS],
}

impl<'r> Layers<'r> {
    /// The `i`-th value of layer `depth` of `r` (NaN past its values).
    #[inline]
    fn value(&self, depth: u32, i: u32, r: &'r Record) -> f64 {
        let values = match self.numeric.get(depth as usize) {
            Some(values) => values,
            None => &r.layer(depth as usize).0.numeric[..],
        };
        values.get(i as usize).copied().unwrap_or(f64::NAN)
    }
}

impl Record {
    /// The `depth`-th layer (0: this record, 1: the one it extends, ...).
    fn layer(&self, depth: usize) -> &Record {
        let mut r = self;
        for _ in 0..depth {
            match &r.0.base {
                Some(b) => r = b,
                None => break,
            }
        }
        r
    }
}

/// The binary form: names and values side by side.
#[derive(Serialize, Deserialize)]
struct Compact {
    schema: Schema,
    event_id: Option<String>,
    numeric: Vec<f64>,
    strings: Vec<Option<String>>,
    base: Option<Box<Compact>>,
}

impl Compact {
    fn of(r: &Record) -> Compact {
        let f = &r.0;
        let base = f.base.as_ref().map(|b| Box::new(Compact::of(b)));
        Compact { schema: (*f.schema).clone(), event_id: f.event_id.clone(), numeric: f.numeric.clone(), strings: f.strings.clone(), base }
    }
    fn into_record(self) -> Record {
        let base = self.base.map(|b| b.into_record());
        Record(Arc::new(Fields { schema: Arc::new(self.schema), event_id: self.event_id, numeric: self.numeric, strings: self.strings, base }))
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let mut map = s.serialize_map(None)?;
            if self.0.base.is_some() {
                let mut entries = Vec::new();
                self.entries(&mut entries);
                for (name, v) in &entries {
                    map.serialize_entry(name, v)?;
                }
                return map.end();
            }
            for (name, v) in self.0.schema.numeric.iter().zip(&self.0.numeric) {
                map.serialize_entry(name, &(!v.is_nan()).then_some(*v))?;
            }
            for (name, v) in self.0.schema.strings.iter().zip(&self.0.strings) {
                map.serialize_entry(name, v)?;
            }
            map.end()
        } else {
            // names travel with each record between processes: simple, not small
            Compact::of(self).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return Err(serde::de::Error::custom("a Record is read from JSON by a source's decoder, not by serde"));
        }
        Ok(Compact::deserialize(d)?.into_record())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_crosses_processes_intact() {
        let r = Record::from_fields("tx", [("amount", 3.0), ("missing", f64::NAN)], [("country", None), ("city", Some("Lyon"))]);
        let bytes = bincode::serialize(&r).unwrap();
        let back: Record = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back.f64("amount"), Some(3.0));
        assert_eq!(back.f64("missing"), None);
        assert_eq!(back.str("city"), Some("Lyon"));
        assert_eq!(back.str("country"), None);
        assert_eq!(serde_json::to_string(&back).unwrap(), r#"{"amount":3.0,"missing":null,"country":null,"city":"Lyon"}"#);
    }

    #[test]
    fn an_extended_record_reads_both_layers_and_crosses_processes() {
        let r = Record::from_fields("tx", [("amount", 3.0)], [("city", Some("Lyon"))]);
        let added = Arc::new(Schema { topic: "tx".into(), numeric: vec!["n_1m".into(), "amount".into()], strings: vec![] });
        let x = r.extend(added, vec![2.0, f64::NAN]);
        assert_eq!(x.f64("n_1m"), Some(2.0));
        assert_eq!(x.f64("amount"), None, "the newer layer shadows");
        assert_eq!(x.str("city"), Some("Lyon"));
        assert_eq!(x.added().map(|(n, _)| n.len()), Some(2));
        let back: Record = bincode::deserialize(&bincode::serialize(&x).unwrap()).unwrap();
        assert_eq!((back.f64("n_1m"), back.f64("amount"), back.str("city")), (Some(2.0), None, Some("Lyon")));
        assert_eq!(serde_json::to_string(&back).unwrap(), r#"{"amount":null,"city":"Lyon","n_1m":2.0}"#);
    }

    /// A record extended `depth` times, layer `d` adding `f{d}` = d (and
    /// shadowing `base`'s `x` at depth 3).
    fn layered(depth: usize, base: &Record) -> Record {
        let mut r = base.clone();
        for d in 1..=depth {
            let mut names = vec![format!("f{d}")];
            let mut values = vec![d as f64];
            if d == 3 {
                names.push("x".into());
                values.push(-1.0);
            }
            r = r.extend(Arc::new(Schema { topic: "t".into(), numeric: names, strings: vec![] }), values);
        }
        r
    }

    #[test]
    fn a_field_reader_follows_layouts_of_any_depth_and_their_changes() {
        let base = Record::from_fields("t", [("x", 7.0)], []);
        let mut reader = FieldReader::new(&["x", "f1", "f6", "nope", "f5"]);
        let (mut out, mut nan) = (Vec::new(), Vec::new());
        // deeper than the layers kept at hand, then shallower, then deeper again
        for depth in [6, 6, 1, 0, 6, 2] {
            let r = layered(depth, &base);
            reader.read(&r, &mut out);
            let expect: Vec<Option<f64>> = ["x", "f1", "f6", "nope", "f5"].iter().map(|n| r.f64(n)).collect();
            assert_eq!(out, expect, "depth {depth}");
            reader.read_nan(&r, &mut nan);
            assert_eq!(nan.iter().map(|v| Some(*v).filter(|v| !v.is_nan())).collect::<Vec<_>>(), expect, "depth {depth}");
        }
        assert_eq!(out, vec![Some(7.0), Some(1.0), None, None, None]);
    }

    #[test]
    fn records_share_a_layout_only_through_the_same_schema_objects() {
        let schema = Arc::new(Schema { topic: "t".into(), numeric: vec!["a".into()], strings: vec![] });
        let added = Arc::new(Schema { topic: String::new(), numeric: vec!["n".into()], strings: vec![] });
        let r = |v: f64| Record::new(schema.clone(), None, vec![v], vec![]);
        assert!(r(1.0).same_layout(&r(2.0)));
        assert!(r(1.0).extend(added.clone(), vec![1.0]).same_layout(&r(2.0).extend(added.clone(), vec![3.0])));
        assert!(!r(1.0).same_layout(&r(1.0).extend(added.clone(), vec![1.0])));
        // equal names, another schema object: not the same layout (callers then compare names)
        let twin = Arc::new((*added).clone());
        assert!(!r(1.0).extend(added, vec![1.0]).same_layout(&r(1.0).extend(twin, vec![1.0])));
    }
}
