//! What a registry-backed source knows of writer schema ids: each id's compiled
//! schema, fetched once, and whether the registry is down. Shared by the Avro and
//! Protobuf sources (the compiled form is theirs: `T`).
//!
//! A known id is served from memory, so a registry outage delays only ids not seen
//! yet. An id whose fetch failed for the source's whole `max_wait` dead-letters
//! its record as `unknown_schema`; for the next 10 s, so does every new id, at once
//! (each would wait as long again), then the registry is asked again. An id the
//! registry does not have is asked again after 10 s too (a producer may register it
//! late); a schema that does not fit the source's fields is remembered as such.
//!
//! ```
//! use vigil::decode::registry::Registry;
//! use vigil::decode::schema_cache::SchemaCache;
//! use vigil::spec::RegistrySettings;
//! use std::time::Duration;
//!
//! // nothing listens on port 1: the fetch fails for the whole (short) wait
//! let registry = Registry::new(&RegistrySettings::new("http://127.0.0.1:1").max_wait(Duration::from_millis(50)));
//! let cache: SchemaCache<usize> = SchemaCache::default();
//! let fetch = |id| registry.schema(id).map(|text| Ok(text.len()));
//! let first = cache.get(7, registry.url(), fetch).unwrap_err();
//! assert!(first.detail.contains("failed for"), "{}", first.detail);
//! // within 10 s, a new id is not fetched: its record is dead-lettered at once
//! let second = cache.get(8, registry.url(), |_| panic!("asked again")).unwrap_err();
//! assert!(second.detail.contains("unreachable"), "{}", second.detail);
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::decode::registry::Fetch;
use crate::types::{Reason, Rejection};

/// How long an id the registry did not have (or could not serve) is answered from
/// memory before it is asked again.
pub const RETRY_UNKNOWN: Duration = Duration::from_secs(10);

/// Most ids the registry did not know that are remembered (garbage bytes can
/// name any id).
const MAX_UNKNOWN: usize = 10_000;

/// What is known of one schema id.
enum Entry<T> {
    Ready(Arc<T>),
    Mismatch(String),
    Unknown { detail: String, until: Instant },
}

struct State<T> {
    ids: HashMap<u32, Entry<T>>,
    /// Set when a fetch failed for the whole wait.
    down_until: Option<Instant>,
}

/// Writer schemas by id, compiled (`T`), with the registry's state.
pub struct SchemaCache<T> {
    state: Mutex<State<T>>,
}

impl<T> Default for SchemaCache<T> {
    fn default() -> Self {
        SchemaCache { state: Mutex::new(State { ids: HashMap::new(), down_until: None }) }
    }
}

impl<T> SchemaCache<T> {
    /// The compiled schema of `id`, fetching it with `fetch` when it is not known
    /// (or was unknown more than 10 s ago). `fetch` answers the registry's verdict:
    /// `Ok(Ok(t))` a schema that fits, `Ok(Err(why))` one that does not (its records
    /// are `schema_mismatch`), `Err` no schema. `url` names the registry in messages.
    pub fn get(&self, id: u32, url: &str, fetch: impl FnOnce(u32) -> Result<Result<T, String>, Fetch>) -> Result<Arc<T>, Rejection> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let stale = match state.ids.get(&id) {
            None => true,
            Some(Entry::Unknown { until, .. }) => now >= *until,
            Some(_) => false,
        };
        if stale {
            if let Some(until) = state.down_until.filter(|u| now < *u) {
                return Err(Rejection::new(
                    Reason::UnknownSchema,
                    format!("schema id {id}: the registry at {url} is unreachable (tried again in {:.0?})", until - now),
                ));
            }
            let entry = match fetch(id) {
                Ok(Ok(compiled)) => {
                    tracing::info!(registry = url, id, "new writer schema fetched from the registry");
                    Entry::Ready(Arc::new(compiled))
                }
                Ok(Err(detail)) => {
                    tracing::error!(registry = url, id, error = %detail, "a writer schema cannot be read as the source's fields: its records go to the dead-letter topic");
                    Entry::Mismatch(detail)
                }
                Err(Fetch::Unknown(detail)) => Entry::Unknown { detail, until: Instant::now() + RETRY_UNKNOWN },
                Err(Fetch::Unavailable(detail)) => {
                    state.down_until = Some(Instant::now() + RETRY_UNKNOWN);
                    return Err(Rejection::new(Reason::UnknownSchema, detail));
                }
            };
            if state.ids.len() >= MAX_UNKNOWN {
                state.ids.retain(|_, e| !matches!(e, Entry::Unknown { .. }));
            }
            state.down_until = None;
            state.ids.insert(id, entry);
        }
        match &state.ids[&id] {
            Entry::Ready(compiled) => Ok(compiled.clone()),
            Entry::Mismatch(detail) => Err(Rejection::new(Reason::SchemaMismatch, format!("schema id {id}: {detail}"))),
            Entry::Unknown { detail, .. } => Err(Rejection::new(Reason::UnknownSchema, detail.clone())),
        }
    }
}
