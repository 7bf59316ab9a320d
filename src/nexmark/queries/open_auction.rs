//! One auction's state while it can still take bids, shared by the queries that
//! find winning bids (q4, q6, q9): the auction once it has come, its best valid
//! bid so far, and the bids that came before it (another partition may deliver
//! a bid before its auction).
//!
//! Kept by a keyed operator per auction id on the stream's watermark
//! ([`crate::graph::Stream::stateful_global`]), it needs two timers: the
//! auction's `expires` (once the watermark passes it no valid bid can still
//! come, so the best bid is final and the state can go) and, before the
//! auction, the earliest early bid's time (once the watermark passes it, its
//! auction, which starts no later, can no longer come: the bid can never be
//! valid). Unlike a differential join
//! and reduction, which keep every bid for ever, the state is one auction and
//! one bid per open auction.
//!
//! ```
//! use vigil::graph::keyed::{KeyContext, KeyedOperator, KeyedRuntime, Origin};
//! use vigil::nexmark::queries::open_auction::{OpenAuction, Rule};
//! use vigil::nexmark::{Auction, Bid, Event};
//!
//! /// Says each new best bid of an auction.
//! struct Best;
//! impl KeyedOperator for Best {
//!     type In = Event;
//!     type Out = i64;
//!     type State = OpenAuction;
//!     fn on_event(&mut self, e: &Event, open: &mut OpenAuction, ctx: &mut KeyContext<'_, i64>) {
//!         if open.on_event(e, Rule::InSpan, ctx).is_some() {
//!             let price = open.best.as_ref().map_or(0, |b| b.price);
//!             ctx.emit(price);
//!         }
//!     }
//!     fn on_timer(&mut self, at: i64, open: &mut OpenAuction, ctx: &mut KeyContext<'_, i64>) {
//!         open.on_timer(at, ctx);
//!     }
//! }
//!
//! let auction = Event::Auction(Auction { id: 7, date_time: 1_000, expires: 5_000, ..Default::default() });
//! let bid = |price: i64, t: i64| Event::Bid(Bid { auction: 7, price, date_time: t, ..Default::default() });
//! let mut rt = KeyedRuntime::new("best", Best);
//! let (p0, mut out) = (Origin { source: 0, partition: 0 }, Vec::new());
//! // a bid before its auction waits for it; a lower bid changes nothing; a bid after the close is not valid
//! for (t, e) in [(1_500, bid(10, 1_500)), (1_000, auction), (2_000, bid(8, 2_000)), (3_000, bid(12, 3_000)), (6_000, bid(99, 6_000))] {
//!     rt.on_event("7", p0, 0, t, &e, &mut out);
//! }
//! assert_eq!(out, vec![10, 12]);
//! ```

use serde::{Deserialize, Serialize};

use crate::graph::KeyContext;
use crate::nexmark::{Auction, Bid, Event};

/// One auction's state; see the module docs.
#[derive(Default, Serialize, Deserialize)]
pub struct OpenAuction {
    pub auction: Option<Auction>,
    /// The best valid bid so far.
    pub best: Option<Bid>,
    /// Bids that came before their auction.
    early: Vec<Bid>,
}

/// Which bids of an auction may win.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Bids within the auction's time span (q4, q9).
    InSpan,
    /// Bids within its span at or above its reserve price (q6).
    InSpanAtReserve,
}

impl OpenAuction {
    /// Applies an auction or a bid of this auction (people are ignored) and
    /// sets the timers it needs. When the best bid changed, returns the one
    /// before (`Some(None)`: there was none).
    pub fn on_event<O>(&mut self, e: &Event, rule: Rule, ctx: &mut KeyContext<'_, O>) -> Option<Option<Bid>> {
        let mut before = None;
        match e {
            Event::Auction(a) => {
                self.auction = Some(a.clone());
                ctx.timer_at(a.expires);
                for b in std::mem::take(&mut self.early) {
                    self.offer(&b, rule, &mut before);
                }
            }
            Event::Bid(b) if self.auction.is_some() => self.offer(b, rule, &mut before),
            Event::Bid(b) => {
                // one timer for the earliest early bid (a bid may name an
                // auction up to 10 ids ahead of the generator's last: many do)
                if self.early.iter().all(|x| x.date_time > b.date_time) {
                    ctx.timer_at(b.date_time);
                }
                self.early.push(b.clone());
            }
            Event::Person(_) => {}
        }
        before
    }

    fn offer(&mut self, b: &Bid, rule: Rule, before: &mut Option<Option<Bid>>) {
        let Some(a) = &self.auction else { return };
        let valid = a.date_time <= b.date_time && b.date_time <= a.expires && (rule == Rule::InSpan || b.price >= a.reserve);
        if valid && self.best.as_ref().is_none_or(|x| beats(b, x)) {
            let old = self.best.replace(b.clone());
            before.get_or_insert(old);
        }
    }

    /// A timer of the key is due at `at`. True when the auction has closed: its
    /// best bid is final, the key is cleared (once the caller's `on_timer`
    /// returns: the caller may still read the state to emit it). Early bids
    /// whose time has passed without their auction are dropped here (and the
    /// key cleared when none is left).
    pub fn on_timer<O>(&mut self, at: i64, ctx: &mut KeyContext<'_, O>) -> bool {
        match &self.auction {
            Some(a) if at >= a.expires => {
                ctx.clear();
                true
            }
            Some(_) => false,
            None => {
                self.early.retain(|b| b.date_time > at);
                match self.early.iter().map(|b| b.date_time).min() {
                    Some(next) => ctx.timer_at(next),
                    None => ctx.clear(),
                }
                false
            }
        }
    }
}

/// Whether bid `b` beats bid `x`: a higher price, then the earlier, then (a
/// tie the SQL leaves open) the lesser in field order.
pub fn beats(b: &Bid, x: &Bid) -> bool {
    (b.price, -b.date_time) > (x.price, -x.date_time) || ((b.price, b.date_time) == (x.price, x.date_time) && b < x)
}

/// The key of an auction's events: its id (people get the empty key; filter
/// them out before keying).
pub fn auction_key(e: &Event) -> String {
    match e {
        Event::Auction(a) => a.id.to_string(),
        Event::Bid(b) => b.auction.to_string(),
        Event::Person(_) => String::new(),
    }
}
