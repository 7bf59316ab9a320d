//! Nexmark q2: selection, the bids on some auctions.
//!
//! ```sql
//! SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
//! ```

use crate::graph::Stream;
use crate::nexmark::Event;

/// `(auction, price)` of each bid on an auction whose id is a multiple of 123.
pub fn query<'s>(events: &Stream<'s, Event>) -> Stream<'s, (i64, i64)> {
    events.flat_map(super::bids).filter(|b| b.auction % 123 == 0).map(|b| (b.auction, b.price))
}
