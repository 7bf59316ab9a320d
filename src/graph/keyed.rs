//! User-defined stateful operators: one state per key, event-time timers, and a
//! state the engine can checkpoint under the operator's name.
//!
//! A [`KeyedOperator`] is what Flink calls a `KeyedProcessFunction`: the engine
//! hands it each event of a key with that key's state, and calls it back when an
//! event-time timer of the key is due. [`KeyedRuntime`] runs one on the keys of
//! one worker.
//!
//! Semantics, which make the output of a key depend on the input alone (not on
//! batching, worker count or thread timing):
//! - Each event carries its *origin* (the source partition it was read from) and
//!   that origin's watermark after it (no later event of the origin is older). The
//!   events of an origin arrive in offset order.
//! - A key belongs to the origin of its events (input keyed by entity: one key's
//!   events share a partition). Its timers fire when its origin's watermark passes
//!   them: a timer at `t` fires once the watermark is above `t` (an event exactly
//!   at the watermark is still on time), before the event that moved the
//!   watermark, in (time, key) order. At the end of a bounded input every timer
//!   fires.
//! - One timer per (key, time): setting it twice fires it once. A timer set below
//!   the key's watermark fires as soon as the call that set it returns.
//! - So each key sees the same sequence of events and timers at any worker count.
//!   In `on_event`, [`KeyContext::watermark`] is the event's own (its origin's
//!   watermark after it). In `on_timer` it is above the timer; its exact value
//!   depends on which event moved it, which another key's event may have done on
//!   one worker and not on another: base outputs on [`KeyContext::time`] instead.
//! - [`KeyContext::clear`] drops the key's state and its timers.
//!
//! ```
//! use vigil::graph::keyed::{KeyContext, KeyedOperator, KeyedRuntime, Origin};
//!
//! /// Counts a key's events and says how many it saw once 10 s pass without one.
//! #[derive(Default)]
//! struct Sessions;
//!
//! impl KeyedOperator for Sessions {
//!     type In = ();
//!     type Out = (String, u32);
//!     type State = u32;
//!     fn on_event(&mut self, _: &(), count: &mut u32, ctx: &mut KeyContext<'_, (String, u32)>) {
//!         *count += 1;
//!         ctx.timer_at(ctx.time() + 10_000); // the session ends 10 s after its last event
//!     }
//!     fn on_timer(&mut self, timer: i64, count: &mut u32, ctx: &mut KeyContext<'_, (String, u32)>) {
//!         if !ctx.has_timer_after(timer) {
//!             ctx.emit((ctx.key().to_owned(), *count));
//!             ctx.clear();
//!         }
//!     }
//! }
//!
//! let mut rt = KeyedRuntime::new("sessions", Sessions);
//! let mut out = Vec::new();
//! let p0 = Origin { source: 0, partition: 0 };
//! for (t, key) in [(1_000, "a"), (2_000, "a"), (5_000, "b"), (30_000, "c")] {
//!     // the watermark of partition 0 follows the events (no lateness here)
//!     rt.on_event(key, p0, t, t, &(), &mut out);
//! }
//! assert_eq!(out, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
//! rt.finish(&mut out); // the end of the input: c's session ends too
//! assert_eq!(out.last(), Some(&("c".to_string(), 1)));
//! ```

use std::collections::BTreeSet;

// keyed state is looked up per event: FxHash, as the operators crate's windows
use rustc_hash::FxHashMap as HashMap;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Where an event was read: the source (topic) and its partition. Watermarks are
/// per origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    pub source: u32,
    pub partition: u32,
}

/// A stateful operator on keyed events; see the module docs.
pub trait KeyedOperator: Send + 'static {
    type In;
    type Out;
    /// One key's state. It is checkpointed with the operator's name and
    /// [`KeyedOperator::STATE_VERSION`].
    type State: Serialize + DeserializeOwned + Default;
    /// The version of `State`'s encoding: a checkpoint of another version is
    /// refused with a message naming the operator.
    const STATE_VERSION: u32 = 1;

    /// An event of the key (`ctx.time()` is its event time).
    fn on_event(&mut self, event: &Self::In, state: &mut Self::State, ctx: &mut KeyContext<'_, Self::Out>);

    /// A timer of the key set at `timer` is due (`ctx.time()` is `timer`).
    fn on_timer(&mut self, timer: i64, state: &mut Self::State, ctx: &mut KeyContext<'_, Self::Out>) {
        let _ = (timer, state, ctx);
    }
}

/// What an operator may do while it handles one key.
pub struct KeyContext<'a, Out> {
    key: &'a str,
    time: i64,
    watermark: i64,
    out: &'a mut Vec<Out>,
    timers: &'a KeyTimers,
    set: Vec<i64>,
    cleared: bool,
}

impl<Out> KeyContext<'_, Out> {
    pub fn key(&self) -> &str {
        self.key
    }
    /// The event's time, or the due timer's.
    pub fn time(&self) -> i64 {
        self.time
    }
    /// The watermark of the key's origin (no later event of it is older).
    pub fn watermark(&self) -> i64 {
        self.watermark
    }
    pub fn emit(&mut self, out: Out) {
        self.out.push(out);
    }
    /// Calls `on_timer` once the key's watermark passes `time` (once per time).
    pub fn timer_at(&mut self, time: i64) {
        self.set.push(time);
    }
    /// Whether the key has a timer after `time` (set before this call or during it).
    pub fn has_timer_after(&self, time: i64) -> bool {
        self.set.iter().any(|t| *t > time) || self.timers.of_key(self.key).any(|t| t > time)
    }
    /// Drops the key's state and timers once this call returns.
    pub fn clear(&mut self) {
        self.cleared = true;
        self.set.clear();
    }
}

/// Timers by (origin, time, key), and each key's times.
#[derive(Default, Serialize, Deserialize)]
struct KeyTimers {
    due: BTreeSet<(Origin, i64, String)>,
    by_key: HashMap<String, BTreeSet<i64>>,
}

impl KeyTimers {
    fn of_key<'a>(&'a self, key: &str) -> impl Iterator<Item = i64> + 'a {
        self.by_key.get(key).into_iter().flatten().copied()
    }
    fn set(&mut self, origin: Origin, key: &str, time: i64) {
        let fresh = match self.by_key.get_mut(key) {
            Some(times) => times.insert(time),
            None => self.by_key.insert(key.to_owned(), BTreeSet::from([time])).is_none(),
        };
        if fresh {
            self.due.insert((origin, time, key.to_owned()));
        }
    }
    fn clear_key(&mut self, origin: Origin, key: &str) {
        for t in self.by_key.remove(key).into_iter().flatten() {
            self.due.remove(&(origin, t, key.to_owned()));
        }
    }
    /// The first timer of `origin` below `watermark`, removed.
    fn pop_due(&mut self, origin: Origin, watermark: i64) -> Option<(i64, String)> {
        // the first timer of all is the first of its origin: no search (the
        // one origin of a stream's watermark, checked at every event)
        let first = match self.due.first() {
            Some(f) if f.0 == origin => f,
            _ => self.due.range((origin, i64::MIN, String::new())..).next()?,
        };
        if first.0 != origin || first.1 >= watermark {
            return None;
        }
        let (o, t, key) = first.clone();
        self.due.remove(&(o, t, key.clone()));
        if let Some(times) = self.by_key.get_mut(&key) {
            times.remove(&t);
            if times.is_empty() {
                self.by_key.remove(&key);
            }
        }
        Some((t, key))
    }
}

/// Everything a checkpoint keeps of one worker's operator.
#[derive(Serialize, Deserialize)]
struct Snapshot<S> {
    states: Vec<(String, S)>,
    origins: Vec<(String, Origin)>,
    watermarks: Vec<(Origin, i64)>,
    timers: Vec<(String, i64)>,
}

/// Runs one [`KeyedOperator`] on the keys of one worker; see the module docs.
pub struct KeyedRuntime<O: KeyedOperator> {
    name: String,
    op: O,
    states: HashMap<String, O::State>,
    /// The origin of each key with state or timers.
    origins: HashMap<String, Origin>,
    watermarks: HashMap<Origin, i64>,
    timers: KeyTimers,
    /// Which key and time produced the outputs, where the caller asked (graph streams).
    stamps: Option<Vec<Stamp>>,
}

/// The key, time and origin of the call that produced `out[..end]` (after the
/// previous stamp's end).
#[derive(Clone, Debug, PartialEq)]
pub struct Stamp {
    pub key: String,
    pub time: i64,
    pub origin: Origin,
    pub end: usize,
}

impl<O: KeyedOperator> KeyedRuntime<O> {
    /// `name` is the operator's stable name: its state is checkpointed under it.
    pub fn new(name: &str, op: O) -> Self {
        KeyedRuntime {
            name: name.to_owned(),
            op,
            states: HashMap::default(),
            origins: HashMap::default(),
            watermarks: HashMap::default(),
            timers: KeyTimers::default(),
            stamps: None,
        }
    }

    /// Also records which call produced each output (see [`KeyedRuntime::take_stamps`]).
    pub fn with_stamps(mut self) -> Self {
        self.stamps = Some(Vec::new());
        self
    }

    /// The stamps of the outputs produced since the last call, for an `out` that
    /// was empty then; `end` indexes into it.
    pub fn take_stamps(&mut self) -> Vec<Stamp> {
        self.stamps.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keys with state.
    pub fn keys(&self) -> usize {
        self.states.len()
    }

    /// Pending timers.
    pub fn timers(&self) -> usize {
        self.timers.due.len()
    }

    /// An event of `key` at `time`, read from `origin`, whose watermark is then
    /// `watermark`: fires the origin's timers below it first, then the event.
    pub fn on_event(&mut self, key: &str, origin: Origin, watermark: i64, time: i64, event: &O::In, out: &mut Vec<O::Out>) {
        self.advance(origin, watermark, out);
        if self.origins.get(key) != Some(&origin) {
            if let Some(old) = self.origins.insert(key.to_owned(), origin) {
                // the key moved (input not keyed by partition): its timers follow it
                let times: Vec<i64> = self.timers.of_key(key).collect();
                self.timers.clear_key(old, key);
                times.into_iter().for_each(|t| self.timers.set(origin, key, t));
            }
        }
        let wm = self.watermarks[&origin];
        self.call(key, origin, time, wm, out, |op, state, ctx| op.on_event(event, state, ctx));
        // timers set at or below the watermark are due now
        self.fire(origin, wm, out);
    }

    /// Moves `origin`'s watermark to `watermark` (if later) and fires what is due.
    pub fn advance(&mut self, origin: Origin, watermark: i64, out: &mut Vec<O::Out>) {
        let wm = self.watermarks.entry(origin).or_insert(watermark);
        *wm = (*wm).max(watermark);
        let wm = *wm;
        self.fire(origin, wm, out);
    }

    /// A watermark for every origin at once (a stream's watermark: no later event
    /// of any origin is older): fires what is due, in (origin, time, key) order.
    pub fn advance_all(&mut self, watermark: i64, out: &mut Vec<O::Out>) {
        let origins: BTreeSet<Origin> = self.watermarks.keys().copied().chain(self.timers.due.iter().map(|(o, _, _)| *o)).collect();
        for origin in origins {
            self.advance(origin, watermark, out);
        }
    }

    /// The end of a bounded input: every watermark goes to the end of time and
    /// every timer fires.
    pub fn finish(&mut self, out: &mut Vec<O::Out>) {
        let origins: BTreeSet<Origin> = self.timers.due.iter().map(|(o, _, _)| *o).collect();
        for origin in origins {
            self.advance(origin, i64::MAX, out);
        }
    }

    fn fire(&mut self, origin: Origin, watermark: i64, out: &mut Vec<O::Out>) {
        while let Some((time, key)) = self.timers.pop_due(origin, watermark) {
            self.call(&key, origin, time, watermark, out, |op, state, ctx| op.on_timer(time, state, ctx));
        }
    }

    fn call(
        &mut self,
        key: &str,
        origin: Origin,
        time: i64,
        watermark: i64,
        out: &mut Vec<O::Out>,
        f: impl FnOnce(&mut O, &mut O::State, &mut KeyContext<'_, O::Out>),
    ) {
        // the key is copied only when it is new, not at every call
        if !self.states.contains_key(key) {
            self.states.insert(key.to_owned(), O::State::default());
        }
        let Some(state) = self.states.get_mut(key) else { return };
        let start = out.len();
        let mut ctx = KeyContext { key, time, watermark, out, timers: &self.timers, set: Vec::new(), cleared: false };
        f(&mut self.op, state, &mut ctx);
        let (set, cleared) = (std::mem::take(&mut ctx.set), ctx.cleared);
        if let Some(stamps) = self.stamps.as_mut().filter(|_| out.len() > start) {
            stamps.push(Stamp { key: key.to_owned(), time, origin, end: out.len() });
        }
        if cleared {
            self.states.remove(key);
            self.timers.clear_key(origin, key);
            self.origins.remove(key);
            return;
        }
        for t in set {
            self.timers.set(origin, key, t);
        }
    }

    /// The operator's state, encoded: a header naming the operator and its state
    /// version, then every key's state, origin and timers, and the watermarks.
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        let snap = Snapshot {
            states: self.states.iter().map(|(k, s)| (k.clone(), s)).collect(),
            origins: self.origins.iter().map(|(k, o)| (k.clone(), *o)).collect(),
            watermarks: self.watermarks.iter().map(|(o, w)| (*o, *w)).collect(),
            timers: self.timers.by_key.iter().flat_map(|(k, ts)| ts.iter().map(move |t| (k.clone(), *t))).collect(),
        };
        let mut bytes = Vec::new();
        bincode::serialize_into(&mut bytes, &(&self.name, O::STATE_VERSION)).context("encoding the operator header")?;
        bincode::serialize_into(&mut bytes, &snap).with_context(|| format!("encoding the state of operator {}", self.name))?;
        Ok(bytes)
    }

    /// Adds the keys of a snapshot (any worker's) for which `keep` holds, e.g. the
    /// keys this worker owns after a change of worker count. Watermarks merge by
    /// maximum. Refuses a snapshot of another operator or state version.
    pub fn restore(&mut self, bytes: &[u8], keep: impl Fn(&str) -> bool) -> Result<()> {
        let mut reader = bytes;
        let (name, version): (String, u32) = bincode::deserialize_from(&mut reader).context("reading an operator state header")?;
        if name != self.name {
            bail!("the checkpoint holds the state of operator `{name}`, not of `{}`", self.name);
        }
        if version != O::STATE_VERSION {
            bail!("operator `{name}`: the checkpoint has state version {version}, this build reads version {} only", O::STATE_VERSION);
        }
        let snap: Snapshot<O::State> = bincode::deserialize_from(&mut reader).with_context(|| format!("decoding the state of operator `{name}`"))?;
        for (origin, wm) in snap.watermarks {
            let mine = self.watermarks.entry(origin).or_insert(wm);
            *mine = (*mine).max(wm);
        }
        let origins: HashMap<String, Origin> = snap.origins.into_iter().filter(|(k, _)| keep(k)).collect();
        for (key, time) in snap.timers.into_iter().filter(|(k, _)| keep(k)) {
            let Some(origin) = origins.get(&key) else { bail!("operator `{name}`: a timer of key {key:?} without an origin") };
            self.timers.set(*origin, &key, time);
        }
        self.states.extend(snap.states.into_iter().filter(|(k, _)| keep(k)));
        self.origins.extend(origins);
        Ok(())
    }
}

/// An event on its way to a keyed operator: its key, where it was read, that
/// origin's watermark after it, its event time and its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Keyed<T> {
    pub key: String,
    pub origin: Origin,
    pub watermark: i64,
    pub time_ms: i64,
    pub value: T,
}

/// Runs `op` on `stream` in a timely dataflow: events go to the worker owning
/// their key (`types::key_hash`), each worker runs a [`KeyedRuntime`], outputs
/// leave at the time (epoch) of the event or timer that produced them, and at the
/// end of the input every timer fires.
///
/// ```
/// use timely::dataflow::operators::{vec::ToStream, Capture, capture::Extract};
/// use vigil::graph::keyed::{keyed_operator, KeyContext, Keyed, KeyedOperator, Origin};
///
/// /// The running total of each key's amounts.
/// #[derive(Default)]
/// struct Total;
/// impl KeyedOperator for Total {
///     type In = i64;
///     type Out = (String, i64);
///     type State = i64;
///     fn on_event(&mut self, amount: &i64, total: &mut i64, ctx: &mut KeyContext<'_, (String, i64)>) {
///         *total += amount;
///         ctx.emit((ctx.key().to_owned(), *total));
///     }
/// }
///
/// let totals = timely::example(|scope| {
///     let origin = Origin { source: 0, partition: 0 };
///     let events = [("a", 1), ("b", 2), ("a", 3)]
///         .into_iter()
///         .enumerate()
///         .map(move |(i, (key, value))| Keyed { key: key.to_string(), origin, watermark: i as i64, time_ms: i as i64, value });
///     keyed_operator(events.to_stream(scope), "totals", Total).capture()
/// });
/// let mut out: Vec<(String, i64)> = totals.extract().into_iter().flat_map(|(_, v)| v).collect();
/// out.sort();
/// assert_eq!(out, vec![("a".into(), 1), ("a".into(), 4), ("b".into(), 2)]);
/// ```
pub fn keyed_operator<'s, O>(stream: timely::dataflow::Stream<'s, u64, Vec<Keyed<O::In>>>, name: &str, op: O) -> timely::dataflow::Stream<'s, u64, Vec<O::Out>>
where
    O: KeyedOperator,
    O::In: timely::ExchangeData + Clone,
    O::Out: Clone + 'static,
{
    use timely::dataflow::channels::pact::Exchange;
    use timely::dataflow::operators::generic::Operator;

    let mut rt = KeyedRuntime::new(name, op);
    let pact = Exchange::new(|e: &Keyed<O::In>| crate::types::key_hash(&e.key));
    stream.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<O::Out>>, _, _, _>(pact, name, move |cap, _info| {
        // kept at the input frontier, for what the end of the input fires
        let mut end_cap = Some(cap);
        let mut out = Vec::new();
        move |(input, frontier), output| {
            input.for_each(|time, data| {
                for e in data.drain(..) {
                    rt.on_event(&e.key, e.origin, e.watermark, e.time_ms, &e.value, &mut out);
                }
                if !out.is_empty() {
                    output.session(&time).give_container(&mut out);
                }
            });
            match frontier.frontier().as_option().copied() {
                Some(f) => {
                    if let Some(c) = end_cap.as_mut().filter(|c| *c.time() < f) {
                        c.downgrade(&f);
                    }
                }
                None => {
                    if let Some(c) = end_cap.take() {
                        rt.finish(&mut out);
                        output.session(&c).give_container(&mut out);
                    }
                }
            }
        }
    })
}
