//! The online learner in a cluster of processes: each process runs a replica of
//! the learner, and every scorer's predictions and watermark reports reach
//! every replica through the dataflow.
//!
//! An online model's learner lives in its process (it owns the model that the
//! process's scorers read). With several processes ([`crate::kafka::KafkaRun::cluster`]),
//! each process starts one, and each reads the whole labels topic. A scorer
//! does not hand its predictions and reports to its own process's learner
//! directly, as it does alone: it puts them in an outbox that a source operator
//! sends, one copy per process, to the first worker of each process, which
//! hands them to its learner and its event-time gate. So every replica trains
//! on every prediction and label, and sees every scorer's watermark.
//!
//! With event-time consistency the replicas build the same model for each step
//! of event time (a model depends on which labels and predictions came before
//! the step, not on their arrival order), so every process scores an event as
//! a single process would: the same scores, versions and champion. With
//! `latest` consistency each replica trains on the same data in its own arrival
//! order. Only process 0's learner writes its labeled monitors' findings (concept
//! drift, fairness) to their sink; the others keep them in their metrics.
//!
//! Between one scorer and one replica, messages keep their order (one timely
//! channel), so a report never overtakes the predictions it counts.
//!
//! ```
//! use vigil::graph::learn_route::LearnMsg;
//! let m = LearnMsg::Report { worker: 3, low: 1_700_000_000_000, accepted: vec![(42, 7)] };
//! let bytes = bincode::serialize(&m).unwrap();
//! assert_eq!(bincode::deserialize::<LearnMsg>(&bytes).unwrap(), m);
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::generic::Operator;
use timely::scheduling::Activator;

use super::checkpoint::{Checkpoints, Part};
use crate::learner::{LearnerLink, Pending};
use crate::monitor::interner::{Interner, OTHER};

/// What a scorer tells the learner replicas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LearnMsg {
    /// Predictions waiting for their labels, with the names of their fairness
    /// groups (ids are per process: the receiver maps each name to its own id).
    Predictions { pending: Vec<Pending>, groups: Vec<(u32, String)> },
    /// Scorer `worker`'s watermark, and the events with an id it accepted per
    /// step of event time since its last report (for the event-time gate).
    Report { worker: usize, low: i64, accepted: Vec<(i64, u64)> },
    /// With checkpoints: scorer `worker` has sent every prediction of epochs up
    /// to `epoch` (`last`: of every epoch); handed to the process's checkpoint
    /// coordinator once the predictions before it are with the learner.
    Fed { worker: usize, epoch: u64, last: bool },
}

/// A scorer's messages waiting to be sent.
#[derive(Default)]
pub(crate) struct Outbox {
    items: RefCell<Vec<LearnMsg>>,
    ended: Cell<bool>,
    activator: RefCell<Option<Activator>>,
}

impl Outbox {
    pub(crate) fn push(&self, m: LearnMsg) {
        self.items.borrow_mut().push(m);
        self.wake();
    }
    /// The scorer's input ended: the outbox sends what it has, then stops.
    pub(crate) fn end(&self) {
        self.ended.set(true);
        self.wake();
    }
    fn wake(&self) {
        if let Some(a) = self.activator.borrow().as_ref() {
            a.activate();
        }
    }
}

/// Builds, in `scope`, the route from this worker's scorer to the learner
/// replica of every process (`replicas` processes of `peers` workers in all),
/// and hands what arrives here (on the first worker of a process) to `link`.
pub(crate) fn route(
    scope: timely::dataflow::Scope<'_, u64>,
    name: &str,
    replicas: usize,
    peers: usize,
    link: LearnerLink,
    groups: Option<Arc<Interner>>,
    checkpoints: Option<Arc<Checkpoints>>,
) -> Rc<Outbox> {
    let model = name.to_owned();
    let outbox = Rc::new(Outbox::default());
    let per_process = (peers / replicas.max(1)).max(1) as u64;
    let out = outbox.clone();
    let sent = source::<_, timely::container::CapacityContainerBuilder<Vec<(u64, LearnMsg)>>, _, _>(scope, &format!("LearnOut({name})"), move |cap, info| {
        *out.activator.borrow_mut() = Some(scope.activator_for(info.address.clone()));
        let mut cap = Some(cap);
        move |output| {
            let Some(c) = cap.as_ref() else { return };
            let items = std::mem::take(&mut *out.items.borrow_mut());
            if !items.is_empty() {
                let mut session = output.session(c);
                for m in items {
                    for r in 0..replicas as u64 {
                        session.give((r * per_process, m.clone()));
                    }
                }
            }
            if out.ended.get() && out.items.borrow().is_empty() {
                cap = None;
            }
        }
    });
    let mut accepted = BTreeMap::new();
    sent.sink(Exchange::new(|(target, _): &(u64, LearnMsg)| *target), &format!("LearnIn({name})"), move |(input, _)| {
        input.for_each(|_, data| {
            for (_, m) in data.drain(..) {
                match m {
                    // the learner may be gone at shutdown: the predictions are moot then
                    LearnMsg::Predictions { mut pending, groups: names } => {
                        if let Some(ids) = &groups {
                            let local: HashMap<u32, u32> =
                                names.into_iter().map(|(id, name)| (id, if id == OTHER { OTHER } else { ids.id(Some(&name)) })).collect();
                            pending.iter_mut().for_each(|p| p.group = local.get(&p.group).copied().unwrap_or(p.group));
                        }
                        drop(link.tx.send(pending))
                    }
                    LearnMsg::Report { worker, low, accepted: steps } => {
                        if let Some(g) = &link.gate {
                            accepted.extend(steps);
                            g.report_source(worker, low, &mut accepted);
                        }
                    }
                    LearnMsg::Fed { worker, epoch, last } => {
                        if let Some(c) = &checkpoints {
                            c.send(Part::Fed { worker, model: model.clone(), epoch, last });
                        }
                    }
                }
            }
        });
    });
    outbox
}
