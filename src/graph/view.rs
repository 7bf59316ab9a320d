//! Views: differential-dataflow collections over a graph's streams, for results
//! that change (counts per merchant, the latest profile per user, their join).
//!
//! A [`View`] is a collection whose time is the checkpoint epoch: its contents as
//! of epoch `e` follow from the events of epochs up to `e`, and each operator
//! (`count`, `distinct`, `join`, `reduce`) emits, per epoch, the changes to its
//! result: retractions included. Two ways in:
//! - [`Stream::view`]: every event adds one element (an append-only collection);
//! - [`Stream::upsert_table`]: the latest value per key (a compacted topic): a new
//!   value retracts the old one, `None` (a tombstone) deletes it.
//!
//! A view leaves the graph through [`View::sink_upsert`] (one record per changed
//! key and epoch, a tombstone when a key leaves), or as the differential
//! collection itself ([`View::collection`]) for any differential operator.
//!
//! Per-event "as of" features stay in the stream operators: differential pays for
//! its generality per update (measured ~200K updates/s per worker on a sliding
//! window here, against millions for a plain loop).
//!
//! ```
//! use vigil::graph::{LocalRun, Source};
//! use vigil::spec::FieldType;
//! let profile = |user: &str, ts: i64, country: &str| format!(r#"{{"key":"{user}","ts":{ts},"country":"{country}"}}"#).into_bytes();
//! let t = 1_700_000_000_000;
//! let out = LocalRun::new(2)
//!     .epoch_records(1) // one record per epoch: every change shows
//!     .topic("profiles", vec![vec![profile("u1", t, "FR"), profile("u2", t, "FR"), profile("u1", t + 1, "DE")]])
//!     .run(|g| {
//!         g.source(Source::json("profiles").field("country", FieldType::Str))
//!             .upsert_table("profiles", |r| r.value.str("country").map(str::to_owned))
//!             .map(|(_user, country)| country)
//!             .count()
//!             .sink_upsert("users_per_country");
//!         Ok(())
//!     })
//!     .unwrap();
//! let changes: Vec<(u64, &str, Option<&str>)> = out.sink("users_per_country").iter().map(|r| (r.epoch, r.key.as_str(), r.value.as_deref())).collect();
//! // FR: 1, then 2, then 1 again when u1 moves to DE
//! assert_eq!(changes, vec![(0, "FR", Some("1")), (1, "FR", Some("2")), (2, "DE", Some("1")), (2, "FR", Some("1"))]);
//! ```

use std::collections::HashMap;
use std::hash::Hash;
use std::rc::Rc;

use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::epochs::{EpochGate, Step};
use super::stream::{by_key, Msg, Rec, Shared, StateLink, Stream};
use crate::types::key_hash;

/// What a view may hold: differential's exchangeable data, hashable.
pub trait ViewData: differential_dataflow::ExchangeData + Hash {}
impl<T: differential_dataflow::ExchangeData + Hash> ViewData for T {}

/// A differential collection of a graph; see the module docs.
pub struct View<'s, D: 'static> {
    pub(crate) inner: VecCollection<'s, u64, D, isize>,
    pub(crate) shared: Rc<Shared>,
}

impl<'s, D: 'static> Clone for View<'s, D>
where
    D: Clone,
{
    fn clone(&self) -> Self {
        View { inner: self.inner.clone(), shared: self.shared.clone() }
    }
}

impl<'s, T: Clone + 'static> Stream<'s, T> {
    /// Each event adds `f(event)` to a collection, at the event's epoch. With
    /// checkpoints, the collection's contents are kept under `name` and sent
    /// again after a restore (the views built on it start from them).
    pub fn view<D: ViewData>(&self, name: &str, f: impl Fn(&Rec<T>) -> D + 'static) -> View<'s, D> {
        self.view_changes(name, move |r| (f(r), 1))
    }

    /// A changelog into a collection: each event applies `f(event)`, an element
    /// and the change of its count (`+1` inserts it, `-1` retracts it), at the
    /// event's epoch. This is how a keyed operator that knows when its result
    /// changes (a new maximum, a closed window) hands that result to differential
    /// without differential keeping the history behind it: emit the retraction
    /// of the old value and the new one. The changes of one epoch add up in any
    /// order; a count that goes below zero at the end of an epoch is the
    /// changelog's error. Checkpoints as [`Stream::view`].
    ///
    /// ```
    /// use vigil::graph::values_source::Values;
    /// use vigil::graph::LocalRun;
    /// // the highest reading so far of each sensor, as a changelog: retract the old maximum, insert the new
    /// let change = |sensor: &str, max: i64, diff: isize| (sensor.to_owned(), max, diff);
    /// let changes = vec![change("s1", 5, 1), change("s2", 3, 1), change("s1", 5, -1), change("s1", 9, 1)];
    /// let out = LocalRun::new(1)
    ///     .epoch_records(2)
    ///     .values("maxima", vec![changes])
    ///     .run(|g| {
    ///         g.source_values(Values::new("maxima", |_: &(String, i64, isize)| 1_700_000_000_000))
    ///             .view_changes("max_per_sensor", |r| ((r.value.0.clone(), r.value.1), r.value.2))
    ///             .sink_upsert("max");
    ///         Ok(())
    ///     })
    ///     .unwrap();
    /// let writes: Vec<(u64, &str, Option<&str>)> = out.sink("max").iter().map(|r| (r.epoch, r.key.as_str(), r.value.as_deref())).collect();
    /// assert_eq!(writes, vec![(0, "s1", Some("5")), (0, "s2", Some("3")), (1, "s1", Some("9"))]);
    /// ```
    pub fn view_changes<D: ViewData>(&self, name: &str, f: impl Fn(&Rec<T>) -> (D, isize) + 'static) -> View<'s, D> {
        self.shared.claim(name, 1);
        let link = StateLink::new(&self.shared, name);
        let start = self.shared.start_epoch();
        // what this worker sends again: every old worker's elements, spread by hash
        let mut contents: HashMap<D, isize> = HashMap::new();
        // several old workers may hold the same element: counts add up
        let shared = self.shared.clone();
        self.shared.restore_each(name, "view", |elements: Vec<(D, isize)>| {
            elements.into_iter().filter(|(d, _)| shared.owns(hash_of(d))).for_each(|(d, n)| *contents.entry(d).or_default() += n)
        });
        let inner = self.inner.clone().unary_frontier::<timely::container::CapacityContainerBuilder<Vec<(D, u64, isize)>>, _, _, _>(
            Pipeline,
            name,
            move |mut cap, _| {
                cap.downgrade(&start);
                let mut first = Some(cap);
                let mut gate = EpochGate::new(start);
                move |(input, frontier), output| {
                    if let Some(cap) = first.take() {
                        output.session(&cap).give_iterator(contents.iter().map(|(d, n)| (d.clone(), start, *n)));
                    }
                    input.for_each(|cap, data| {
                        let epoch = cap.least().copied().unwrap_or_default();
                        gate.push(epoch, || cap.delayed(&epoch, 0), data.drain(..));
                    });
                    gate.release(
                        frontier.frontier().as_option().copied(),
                        |e| link.is_checkpoint(e),
                        |step| match step {
                            Step::Records(epoch, cap, msgs) => {
                                let added = msgs.into_iter().filter_map(|m| match m {
                                    Msg::Event(r) => Some(f(&r)),
                                    Msg::Mark(_) => None,
                                });
                                let mut session = output.session(cap);
                                for (d, n) in added {
                                    if link.enabled() {
                                        add_to(&mut contents, &d, n);
                                    }
                                    session.give((d, epoch, n));
                                }
                            }
                            Step::Snapshot(epoch) => link.report(epoch, || bincode::serialize(&contents.iter().collect::<Vec<_>>()).map_err(Into::into)),
                            Step::Ended(epoch) => link.report_last(epoch, || bincode::serialize(&contents.iter().collect::<Vec<_>>()).map_err(Into::into)),
                        },
                    );
                }
            },
        );
        View { inner: inner.as_collection(), shared: self.shared.clone() }
    }
}

impl<'s, T: timely::ExchangeData + Clone> Stream<'s, T> {
    /// The latest value of each key: `f` gives an event's new value for its key, or
    /// `None` to delete the key. Each key's events apply in the stream's order
    /// (offset order, for a key that stays in one partition). `name` keys the
    /// table's state; after a restore the table is sent again.
    pub fn upsert_table<V: ViewData>(&self, name: &str, f: impl Fn(&Rec<T>) -> Option<V> + 'static) -> View<'s, (String, V)> {
        self.shared.claim(name, 1);
        let link = StateLink::new(&self.shared, name);
        let start = self.shared.start_epoch();
        let mut table: HashMap<String, V> = HashMap::new();
        let shared = self.shared.clone();
        self.shared.restore_each(name, "table", |rows: Vec<(String, V)>| table.extend(rows.into_iter().filter(|(k, _)| shared.owns(key_hash(k)))));
        let inner = self.inner.clone().unary_frontier::<timely::container::CapacityContainerBuilder<Vec<((String, V), u64, isize)>>, _, _, _>(
            by_key(),
            name,
            move |mut cap, _| {
                cap.downgrade(&start);
                let mut first = Some(cap);
                let mut gate = EpochGate::new(start);
                let mut changes = Vec::new();
                move |(input, frontier), output| {
                    if let Some(cap) = first.take() {
                        output.session(&cap).give_iterator(table.iter().map(|(k, v)| ((k.clone(), v.clone()), start, 1)));
                    }
                    input.for_each(|cap, data| {
                        let epoch = cap.least().copied().unwrap_or_default();
                        gate.push(epoch, || cap.delayed(&epoch, 0), data.drain(..));
                    });
                    gate.release(
                        frontier.frontier().as_option().copied(),
                        |e| link.is_checkpoint(e),
                        |step| match step {
                            Step::Records(epoch, cap, msgs) => {
                                for m in msgs {
                                    let Msg::Event(r) = m else { continue };
                                    let new = f(&r);
                                    let old = match &new {
                                        Some(v) if table.get(&r.key) == Some(v) => continue,
                                        Some(v) => table.insert(r.key.clone(), v.clone()),
                                        None => table.remove(&r.key),
                                    };
                                    if let Some(old) = old {
                                        changes.push(((r.key.clone(), old), epoch, -1));
                                    }
                                    if let Some(v) = new {
                                        changes.push(((r.key, v), epoch, 1));
                                    }
                                }
                                output.session(cap).give_iterator(changes.drain(..));
                            }
                            Step::Snapshot(epoch) => link.report(epoch, || bincode::serialize(&table.iter().collect::<Vec<_>>()).map_err(Into::into)),
                            Step::Ended(epoch) => link.report_last(epoch, || bincode::serialize(&table.iter().collect::<Vec<_>>()).map_err(Into::into)),
                        },
                    );
                }
            },
        );
        View { inner: inner.as_collection(), shared: self.shared.clone() }
    }
}

/// The hash that spreads a view's elements over workers on restore.
/// Adds `n` to `d`'s count; a count of zero leaves the map.
fn add_to<D: Hash + Eq + Clone>(contents: &mut HashMap<D, isize>, d: &D, n: isize) {
    match contents.get_mut(d) {
        Some(c) if *c + n == 0 => drop(contents.remove(d)),
        Some(c) => *c += n,
        None => drop(contents.insert(d.clone(), n)),
    }
}

pub(crate) fn hash_of<D: Hash>(d: &D) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    d.hash(&mut h);
    std::hash::Hasher::finish(&h)
}

impl<'s, D: ViewData> View<'s, D> {
    /// The differential collection, for any operator the API does not wrap.
    pub fn collection(&self) -> &VecCollection<'s, u64, D, isize> {
        &self.inner
    }
    /// A view from a differential collection (e.g. the result of an iterate).
    pub fn wrap(&self, inner: VecCollection<'s, u64, D, isize>) -> Self {
        View { inner, shared: self.shared.clone() }
    }
    pub fn map<D2: ViewData>(&self, f: impl Fn(D) -> D2 + 'static) -> View<'s, D2> {
        View { inner: self.inner.clone().map(f), shared: self.shared.clone() }
    }
    pub fn filter(&self, keep: impl Fn(&D) -> bool + 'static) -> View<'s, D> {
        View { inner: self.inner.clone().filter(keep), shared: self.shared.clone() }
    }
    /// Each distinct element with its multiplicity: `(element, count)`.
    pub fn count(&self) -> View<'s, (D, isize)> {
        View { inner: self.inner.clone().count(), shared: self.shared.clone() }
    }
    /// Each element once.
    pub fn distinct(&self) -> View<'s, D> {
        View { inner: self.inner.clone().distinct(), shared: self.shared.clone() }
    }
    /// Both views' elements.
    pub fn concat(&self, other: &View<'s, D>) -> View<'s, D> {
        View { inner: self.inner.clone().concat(other.inner.clone()), shared: self.shared.clone() }
    }
}

impl<'s, K: ViewData, V: ViewData> View<'s, (K, V)> {
    /// Pairs of values of the same key, one from each view.
    pub fn join<W: ViewData>(&self, other: &View<'s, (K, W)>) -> View<'s, (K, (V, W))> {
        View { inner: self.inner.clone().join(other.inner.clone()), shared: self.shared.clone() }
    }
    /// The number of elements per key.
    pub fn count_per_key(&self) -> View<'s, (K, isize)> {
        self.map(|(k, _)| k).count()
    }
    /// Per key, `logic` turns the key's values (with multiplicities) into output
    /// values (with multiplicities); re-run only for keys whose values changed.
    pub fn reduce<V2: ViewData>(&self, logic: impl FnMut(&K, &[(&V, isize)], &mut Vec<(V2, isize)>) + 'static) -> View<'s, (K, V2)> {
        View { inner: self.inner.clone().reduce(logic), shared: self.shared.clone() }
    }
}
