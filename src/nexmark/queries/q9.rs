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

use crate::graph::{Stream, View};
use crate::nexmark::{Auction, Bid, Event};

/// Auction id -> the auction and its winning bid so far.
pub fn query<'s>(events: &Stream<'s, Event>) -> View<'s, (i64, (Auction, Bid))> {
    // the join and the top-1 carry the auction's time span only; the whole
    // auction joins back onto the winners (far fewer changes than bids)
    let spans = events.flat_map(|e| e.auction().map(|a| (a.id, (a.date_time, a.expires)))).view("q9_spans", |r| r.value);
    let bids = events.flat_map(|e| e.bid().map(|b| (b.auction, b.clone()))).view("q9_bids", |r| r.value.clone());
    let winners =
        spans.join(&bids).filter(|(_, ((start, end), b))| *start <= b.date_time && b.date_time <= *end).map(|(id, (_, b))| (id, b)).reduce(|_, bids, out| {
            let best = bids.iter().map(|(b, _)| *b).min_by(|x, y| y.price.cmp(&x.price).then(x.date_time.cmp(&y.date_time)).then(x.cmp(y)));
            if let Some(best) = best {
                out.push((best.clone(), 1));
            }
        });
    let auctions = events.flat_map(|e| e.auction().map(|a| (a.id, a.clone()))).view("q9_auctions", |r| r.value.clone());
    auctions.join(&winners)
}
