//! Nexmark q18: the last bid of each bidder on each auction, a deduplication.
//!
//! ```sql
//! SELECT auction, bidder, price, channel, url, dateTime, extra
//! FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY dateTime DESC) AS rank_number
//!       FROM bid)
//! WHERE rank_number <= 1;
//! ```
//!
//! Semantics: over everything seen so far, the row of (bidder, auction) is its
//! bid with the latest `dateTime`; a later bid replaces it (a retraction and an
//! insertion). Ties on time, which the SQL leaves open, go to the greatest bid
//! in field order. vigil's bids have no `channel` and `url` (Beam's generator,
//! which this one follows, has none): the row is the bid.
//!
//! How: a keyed operator per (bidder, auction) keeps its latest bid and writes
//! each change as a changelog into a view. The state is one bid per pair, kept
//! for as long as the job runs (the SQL's answer never becomes final).

use crate::graph::{KeyContext, KeyedOperator, Stream, View};
use crate::nexmark::{Bid, Event};

/// (bidder, auction) -> its latest bid.
pub fn query<'s>(events: &Stream<'s, Event>) -> View<'s, ((i64, i64), Bid)> {
    events
        .flat_map(super::bids)
        .key_by(|b| format!("{}/{}", b.bidder, b.auction))
        .stateful_global("q18_last_bids", LastBid)
        .view_changes("q18_rows", |r| r.value.clone())
}

/// A row of the view and its change.
type Change = (((i64, i64), Bid), isize);

/// Per (bidder, auction): its latest bid.
struct LastBid;

impl KeyedOperator for LastBid {
    type In = Bid;
    type Out = Change;
    type State = Option<Bid>;
    fn on_event(&mut self, b: &Bid, last: &mut Option<Bid>, ctx: &mut KeyContext<'_, Change>) {
        let key = (b.bidder, b.auction);
        match last {
            Some(old) if (old.date_time, &*old) >= (b.date_time, b) => return,
            Some(old) => ctx.emit(((key, old.clone()), -1)),
            None => {}
        }
        *last = Some(b.clone());
        ctx.emit(((key, b.clone()), 1));
    }
}
