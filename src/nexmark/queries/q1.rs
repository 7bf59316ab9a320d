//! Nexmark q1: currency conversion, a map over every bid.
//!
//! ```sql
//! SELECT auction, bidder, 0.908 * price as price, dateTime, extra FROM bid;
//! ```
//!
//! Prices are integer cents here, as in Beam's Query1 and DBSP's q1; the
//! converted price is `price * 908 / 1000`, truncated.

use crate::graph::Stream;
use crate::nexmark::{Bid, Event};

/// Every bid with its price in euros.
pub fn query<'s>(events: &Stream<'s, Event>) -> Stream<'s, Bid> {
    events.flat_map(super::bids).map(|b| Bid { price: b.price * 908 / 1000, ..b })
}
