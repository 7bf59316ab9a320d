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

use crate::graph::{Stream, View};
use crate::nexmark::Event;

/// Category -> the average over its auctions of their highest valid bid.
pub fn query<'s>(events: &Stream<'s, Event>) -> View<'s, (i64, i64)> {
    let auctions = events.flat_map(|e| e.auction().map(|a| (a.id, (a.category, a.date_time, a.expires)))).view("q4_auctions", |r| r.value);
    let bids = events.flat_map(|e| e.bid().map(|b| (b.auction, (b.price, b.date_time)))).view("q4_bids", |r| r.value);
    auctions
        .join(&bids)
        .filter(|(_, ((_, start, end), (_, t)))| start <= t && t <= end)
        .map(|(id, ((category, _, _), (price, _)))| ((id, category), price))
        .reduce(|_, prices, out| out.push((*prices.iter().map(|(p, _)| *p).max().unwrap_or(&0), 1)))
        .map(|((_, category), max)| (category, max))
        .reduce(|_, maxima, out| {
            let (sum, n) = maxima.iter().fold((0i64, 0i64), |(s, n), (m, c)| (s + **m * *c as i64, n + *c as i64));
            out.push((if n > 0 { sum / n } else { 0 }, 1))
        })
}
