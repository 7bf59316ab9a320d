//! Nexmark q0: passthrough, the engine's cost of moving a bid through.
//!
//! ```sql
//! SELECT auction, bidder, price, dateTime, extra FROM bid;
//! ```

use crate::graph::Stream;
use crate::nexmark::{Bid, Event};

/// Every bid, unchanged.
pub fn query<'s>(events: &Stream<'s, Event>) -> Stream<'s, Bid> {
    events.flat_map(super::bids)
}
