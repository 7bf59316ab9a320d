//! The offline log's rows: one per scored event, in columns, and their Arrow schema.
//!
//! Columns: `key` (utf8), `event_id` (utf8, null when the source has none),
//! `event_time` (timestamp ms, UTC), `source_partition` (int32), `source_offset`
//! (int64), then one nullable float64 per feature, named as in the job. A feature
//! without a value (a mean over nothing, non-finite) is null, as in `scores`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The names of the columns before the features.
pub const FIXED_COLUMNS: [&str; 5] = ["key", "event_id", "event_time", "source_partition", "source_offset"];

/// The log's schema for a job with these feature names.
pub fn schema(features: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("event_id", DataType::Utf8, true),
        Field::new("event_time", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("source_partition", DataType::Int32, false),
        Field::new("source_offset", DataType::Int64, false),
    ];
    fields.extend(features.iter().map(|n| Field::new(n, DataType::Float64, true)));
    Arc::new(Schema::new(fields))
}

/// Rows of scored events, in columns; what a worker sends per activation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OfflineRows {
    /// The checkpoint epoch of the rows (settled once they are on disk).
    pub epoch: u64,
    pub keys: Vec<String>,
    pub event_ids: Vec<Option<String>>,
    pub times_ms: Vec<i64>,
    pub partitions: Vec<u32>,
    pub offsets: Vec<i64>,
    /// One column per feature.
    pub values: Vec<Vec<Option<f64>>>,
}

impl OfflineRows {
    pub fn new(features: usize) -> Self {
        OfflineRows { values: vec![Vec::new(); features], ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Appends one scored event.
    pub fn push(&mut self, key: &str, event_id: Option<&str>, time_ms: i64, partition: u32, offset: i64, features: &[Option<f64>]) {
        self.keys.push(key.to_owned());
        self.event_ids.push(event_id.map(str::to_owned));
        self.times_ms.push(time_ms);
        self.partitions.push(partition);
        self.offsets.push(offset);
        for (column, v) in self.values.iter_mut().zip(features) {
            column.push(v.filter(|v| v.is_finite()));
        }
    }

    /// Moves row `i` of `other` to the end of `self`.
    pub fn push_row_of(&mut self, other: &OfflineRows, i: usize) {
        self.keys.push(other.keys[i].clone());
        self.event_ids.push(other.event_ids[i].clone());
        self.times_ms.push(other.times_ms[i]);
        self.partitions.push(other.partitions[i]);
        self.offsets.push(other.offsets[i]);
        for (column, from) in self.values.iter_mut().zip(&other.values) {
            column.push(from[i]);
        }
    }

    /// The rows as an Arrow batch of [`schema`].
    pub fn to_batch(&self, schema: &SchemaRef) -> arrow::error::Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(&self.keys)),
            Arc::new(StringArray::from(self.event_ids.clone())),
            Arc::new(TimestampMillisecondArray::from(self.times_ms.clone()).with_timezone("UTC")),
            Arc::new(Int32Array::from_iter_values(self.partitions.iter().map(|p| *p as i32))),
            Arc::new(Int64Array::from(self.offsets.clone())),
        ];
        columns.extend(self.values.iter().map(|c| Arc::new(Float64Array::from(c.clone())) as ArrayRef));
        RecordBatch::try_new(schema.clone(), columns)
    }
}
