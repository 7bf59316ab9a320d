//! The types every stage shares, in a leaf module (it imports nothing from the
//! crate but the leaf `health`): the event as it moves between workers, why a record was rejected,
//! the process's shutdown control, the key hash that routes keys to workers and
//! the wall clock.
//!
//! ```
//! use vigil::types::{key_hash, Reason};
//! // a key always goes to the same worker
//! assert_eq!(key_hash("card-1") % 4, key_hash("card-1") % 4);
//! assert_eq!(Reason::Late.as_str(), "late");
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Shared between the workers of a process and whoever drives them.
#[derive(Default)]
pub struct Control {
    shutdown: AtomicBool,
    positions: Mutex<Vec<(u32, i64)>>,
    health: crate::health::Health,
}

impl Control {
    pub fn new() -> Arc<Control> {
        Arc::new(Control::default())
    }
    /// Asks every source to stop reading; the dataflow then drains and ends.
    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }
    /// What the workers say about their progress (`/healthz`, `/readyz`).
    pub fn health(&self) -> &crate::health::Health {
        &self.health
    }
    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }
    /// The flag itself, for loops outside the dataflow (generators) that stop with the job.
    pub fn shutdown_flag(&self) -> &AtomicBool {
        &self.shutdown
    }
    /// A source stopped: the next offsets of its partitions.
    pub fn record_positions(&self, positions: impl IntoIterator<Item = (u32, i64)>) {
        self.positions.lock().unwrap_or_else(|e| e.into_inner()).extend(positions);
    }
    /// Next offsets of every partition read by this process's workers, recorded as
    /// each source stopped.
    pub fn positions(&self) -> Vec<(u32, i64)> {
        let mut p = self.positions.lock().unwrap_or_else(|e| e.into_inner()).clone();
        p.sort();
        p
    }
}

/// An accepted event on its way to its key's worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    pub key: String,
    pub event_id: Option<String>,
    pub time_ms: i64,
    pub partition: u32,
    pub offset: i64,
    /// The partition's watermark after this event (no later event of the partition is older).
    pub watermark: i64,
    pub numeric: Vec<f64>,
    /// The string fields the job keeps for monitoring (`JobSpec::kept_strings`).
    pub strings: Vec<Option<String>>,
    /// Wall clock at consumption, microseconds since the Unix epoch.
    pub consumed_us: u64,
}

/// Why a record went to the dead-letter topic. The set is closed and documented in
/// the README; metrics and DLQ records use [`Reason::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The record has no payload, or an empty one.
    Empty,
    /// Larger than the configured maximum; rejected before parsing.
    Oversize,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not JSON (syntax error, truncated, nesting too deep, number out of range).
    NotJson,
    /// Valid JSON whose top level is not an object.
    NotObject,
    /// A declared field, the key or the event time has the wrong JSON type.
    WrongType,
    /// A required field, the key or the event time is absent or null.
    MissingField,
    /// A declared field appears twice in the object.
    DuplicateField,
    /// The key is empty or longer than the key limit.
    BadKey,
    /// The event time cannot be read, is before 2000, or is implausibly far ahead.
    BadTimestamp,
    /// Older than its partition's watermark (max event time minus allowed lateness).
    Late,
    /// A numeric field's magnitude is above `decode::MAX_ABS_VALUE` (sums must stay exact),
    /// or it is not a finite number.
    OutOfRange,
    /// Avro bytes that do not decode under their writer schema (truncated, a bad
    /// length or union branch, trailing bytes), or no Confluent framing where the
    /// source expects it.
    NotAvro,
    /// Bytes that are not a message of the source's Protobuf type (a truncated
    /// varint or length, a reserved wire type, a declared field on the wire with
    /// another wire type, a string that is not UTF-8).
    NotProtobuf,
    /// The record's writer schema cannot be read as the source's declared fields (a
    /// declared field of another type, a required one missing): the registry's
    /// compatibility rules were bypassed or the job's declaration is stale.
    SchemaMismatch,
    /// The record names a schema id that the registry does not know, or a schema
    /// that is not Avro, or the registry stayed unreachable past the source's wait.
    UnknownSchema,
    /// A declared field's value fails one of the source's data-quality
    /// expectations in `dlq` mode (the detail names the expectation).
    Expectation,
}

impl Reason {
    pub const ALL: [Reason; 17] = [
        Reason::Empty,
        Reason::Oversize,
        Reason::InvalidUtf8,
        Reason::NotJson,
        Reason::NotObject,
        Reason::WrongType,
        Reason::MissingField,
        Reason::DuplicateField,
        Reason::BadKey,
        Reason::BadTimestamp,
        Reason::Late,
        Reason::OutOfRange,
        Reason::NotAvro,
        Reason::NotProtobuf,
        Reason::SchemaMismatch,
        Reason::UnknownSchema,
        Reason::Expectation,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::Oversize => "oversize",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::NotJson => "not_json",
            Reason::NotObject => "not_object",
            Reason::WrongType => "wrong_type",
            Reason::MissingField => "missing_field",
            Reason::DuplicateField => "duplicate_field",
            Reason::BadKey => "bad_key",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::Late => "late",
            Reason::OutOfRange => "out_of_range",
            Reason::NotAvro => "not_avro",
            Reason::NotProtobuf => "not_protobuf",
            Reason::SchemaMismatch => "schema_mismatch",
            Reason::UnknownSchema => "unknown_schema",
            Reason::Expectation => "expectation",
        }
    }
}

/// A record that did not become an event, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection { reason, detail: detail.into() }
    }
}

/// Key hash for the exchange: FNV-1a, identical in every process.
pub fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Wall clock, microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}
