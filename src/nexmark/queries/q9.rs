//! Nexmark q9: the winning bid of each auction, a top-1 per auction over a
//! join that changes as bids arrive.
//!
//! ```sql
//! SELECT id, itemName, description, initialBid, reserve, dateTime, expires, seller, category, extra,
//!        auction, bidder, price, bid_dateTime, bid_extra
//! FROM (
//!   SELECT A.*, B.auction, B.bidder, B.price, B.dateTime AS bid_dateTime, B.extra AS bid_extra,
//!     ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC) AS rownum
//!   FROM auction A, bid B
//!   WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
//! )
//! WHERE rownum <= 1;
//! ```
//!
//! Semantics: as the SQL says, over everything seen so far: an auction's row is
//! its best bid within its time span so far (highest price, then earliest), and
//! a better bid replaces it (a retraction and an insertion in the view). Ties
//! on both price and time, which the SQL leaves open, go to the least bid in
//! field order (bidder, then extra).
//!
//! How: a keyed operator per auction ([`OpenAuction`]) keeps the auction and
//! its best bid, and writes each change of the winner as a changelog (the old
//! row retracted, the new one inserted) into a differential view. Once the
//! watermark passes the auction's `expires` the winner is final and the state
//! goes. A differential join of all auctions with all bids and a top-1 per
//! auction (the SQL as written, and this query's first version) kept every bid
//! for ever and ran at 0.74x of DBSP.

use super::open_auction::{auction_key, OpenAuction, Rule};
use crate::graph::{KeyContext, KeyedOperator, Stream, View};
use crate::nexmark::{Auction, Bid, Event};

/// Auction id -> the auction and its winning bid so far.
pub fn query<'s>(events: &Stream<'s, Event>) -> View<'s, (i64, (Auction, Bid))> {
    events.filter(|e| e.person().is_none()).key_by(auction_key).stateful_global("q9_winning_bids", Winner).view_changes("q9_winners", |r| r.value.clone())
}

/// The SQL as written, the query's first version: a differential join of every
/// auction with every bid and a top-1 per auction, kept for comparison
/// (`nexmark-bench` runs both). Equal results; every bid stays arranged for
/// ever.
pub fn query_join<'s>(events: &Stream<'s, Event>) -> View<'s, (i64, (Auction, Bid))> {
    // the join and the top-1 carry the auction's time span only; the whole
    // auction joins back onto the winners (far fewer changes than bids)
    let spans = events.flat_map(|e| e.auction().map(|a| (a.id, (a.date_time, a.expires)))).view("q9_join_spans", |r| r.value);
    let bids = events.flat_map(|e| e.bid().map(|b| (b.auction, b.clone()))).view("q9_join_bids", |r| r.value.clone());
    let winners =
        spans.join(&bids).filter(|(_, ((start, end), b))| *start <= b.date_time && b.date_time <= *end).map(|(id, (_, b))| (id, b)).reduce(|_, bids, out| {
            let best = bids.iter().map(|(b, _)| *b).min_by(|x, y| y.price.cmp(&x.price).then(x.date_time.cmp(&y.date_time)).then(x.cmp(y)));
            if let Some(best) = best {
                out.push((best.clone(), 1));
            }
        });
    let auctions = events.flat_map(|e| e.auction().map(|a| (a.id, a.clone()))).view("q9_join_auctions", |r| r.value.clone());
    auctions.join(&winners)
}

/// A row of the view and its change.
type Change = ((i64, (Auction, Bid)), isize);

/// Per auction: its row whenever the winning bid changes, the old one
/// retracted.
struct Winner;

impl KeyedOperator for Winner {
    type In = Event;
    type Out = Change;
    type State = OpenAuction;
    fn on_event(&mut self, e: &Event, open: &mut OpenAuction, ctx: &mut KeyContext<'_, Change>) {
        let Some(before) = open.on_event(e, Rule::InSpan, ctx) else { return };
        let (Some(a), Some(new)) = (&open.auction, &open.best) else { return };
        if let Some(old) = before {
            ctx.emit(((a.id, (a.clone(), old)), -1));
        }
        ctx.emit(((a.id, (a.clone(), new.clone())), 1));
    }
    fn on_timer(&mut self, at: i64, open: &mut OpenAuction, ctx: &mut KeyContext<'_, Change>) {
        open.on_timer(at, ctx);
    }
}
