//! Nexmark q4: the average winning price per category, a view over a join
//! that changes as bids arrive.
//!
//! ```sql
//! SELECT Q.category, AVG(Q.final)
//! FROM (
//!     SELECT MAX(B.price) AS final, A.category
//!     FROM auction A, bid B
//!     WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
//!     GROUP BY A.id, A.category
//! ) Q
//! GROUP BY Q.category;
//! ```
//!
//! Semantics: as the SQL says, over everything seen so far, an auction's
//! "final" price is its highest bid within its time span so far (not only once
//! it closed); a higher bid retracts the old maximum and the category's average
//! moves. The average of integer cents is truncated, as Flink's `AVG` of a
//! `BIGINT` is.
//!
//! How: a keyed operator per auction ([`OpenAuction`]) knows when an auction's
//! highest valid bid changes and writes the change as a changelog (the old
//! maximum retracted, the new one inserted) into a differential view; the
//! averages are running sums and counts per category over that view. Once the
//! watermark passes an auction's `expires` its maximum is final and its state
//! goes. So differential sees a few changes per auction, not every bid, and
//! nothing is kept per bid: a join of all auctions with all bids and a
//! maximum per auction (the SQL as written, and this query's first version)
//! kept every bid for ever and ran at 0.78x of DBSP.

use differential_dataflow::operators::CountTotal;

use super::open_auction::{auction_key, OpenAuction, Rule};
use crate::graph::{KeyContext, KeyedOperator, Stream, View};
use crate::nexmark::Event;

/// Category -> the average over its auctions of their highest valid bid.
pub fn query<'s>(events: &Stream<'s, Event>) -> View<'s, (i64, i64)> {
    let maxima =
        events.filter(|e| e.person().is_none()).key_by(auction_key).stateful_global("q4_highest_bids", HighestBid).view_changes("q4_maxima", |r| r.value);
    // the average from a running sum and count per category (differential
    // keeps both as totals: a changed maximum costs O(1), not a pass over the
    // category's auctions)
    let sums = maxima.collection().clone().explode(|(category, max)| Some((category, max as isize))).count_total();
    let counts = maxima.collection().clone().map(|(category, _)| category).count_total();
    let averages = sums.join(counts).map(|(category, (sum, n))| (category, if n > 0 { (sum / n) as i64 } else { 0 }));
    maxima.wrap(averages)
}

/// The SQL as written, the query's first version: a differential join of every
/// auction with every bid and the maximum per auction, kept for comparison
/// (`nexmark-bench` runs both). Equal results; every bid stays arranged for
/// ever.
pub fn query_join<'s>(events: &Stream<'s, Event>) -> View<'s, (i64, i64)> {
    let auctions = events.flat_map(|e| e.auction().map(|a| (a.id, (a.category, a.date_time, a.expires)))).view("q4_join_auctions", |r| r.value);
    let bids = events.flat_map(|e| e.bid().map(|b| (b.auction, (b.price, b.date_time)))).view("q4_join_bids", |r| r.value);
    let maxima = auctions
        .join(&bids)
        .filter(|(_, ((_, start, end), (_, t)))| start <= t && t <= end)
        .map(|(id, ((category, _, _), (price, _)))| ((id, category), price))
        .reduce(|_, prices, out| out.push((*prices.iter().map(|(p, _)| *p).max().unwrap_or(&0), 1)))
        .map(|((_, category), max)| (category, max));
    // the average from a running sum and count per category (differential
    // keeps both as totals: a changed maximum costs O(1), not a pass over the
    // category's auctions)
    let sums = maxima.collection().clone().explode(|(category, max)| Some((category, max as isize))).count_total();
    let counts = maxima.collection().clone().map(|(category, _)| category).count_total();
    let averages = sums.join(counts).map(|(category, (sum, n))| (category, if n > 0 { (sum / n) as i64 } else { 0 }));
    maxima.wrap(averages)
}

/// Per auction: `((category, highest bid), change)` whenever the highest valid
/// bid changes, the old one retracted.
struct HighestBid;

impl KeyedOperator for HighestBid {
    type In = Event;
    type Out = ((i64, i64), isize);
    type State = OpenAuction;
    fn on_event(&mut self, e: &Event, open: &mut OpenAuction, ctx: &mut KeyContext<'_, Self::Out>) {
        if let Some(before) = open.on_event(e, Rule::InSpan, ctx) {
            let category = open.auction.as_ref().map_or(0, |a| a.category);
            if let Some(old) = before {
                ctx.emit(((category, old.price), -1));
            }
            if let Some(new) = &open.best {
                ctx.emit(((category, new.price), 1));
            }
        }
    }
    fn on_timer(&mut self, at: i64, open: &mut OpenAuction, ctx: &mut KeyContext<'_, Self::Out>) {
        open.on_timer(at, ctx);
    }
}
