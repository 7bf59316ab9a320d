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

use differential_dataflow::operators::CountTotal;

use crate::graph::{Stream, View};
use crate::nexmark::Event;

/// Category -> the average over its auctions of their highest valid bid.
pub fn query<'s>(events: &Stream<'s, Event>) -> View<'s, (i64, i64)> {
    let auctions = events.flat_map(|e| e.auction().map(|a| (a.id, (a.category, a.date_time, a.expires)))).view("q4_auctions", |r| r.value);
    let bids = events.flat_map(|e| e.bid().map(|b| (b.auction, (b.price, b.date_time)))).view("q4_bids", |r| r.value);
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
