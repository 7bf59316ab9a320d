//! Nexmark q20: bids with their auction's details, for auctions of category 10.
//!
//! ```sql
//! SELECT auction, bidder, price, channel, url, B.dateTime, B.extra,
//!     itemName, description, initialBid, reserve, A.dateTime, expires, seller, category, A.extra
//! FROM bid AS B INNER JOIN auction AS A on B.auction = A.id
//! WHERE A.category = 10;
//! ```
//!
//! Semantics: the inner join of two streams that only grow, so its result
//! only grows too: a stream of (bid, auction) pairs, each pair once, whichever
//! of the two arrived first. (vigil's bids have no `channel` and `url`.)
//!
//! How: a keyed operator per auction: once its auction is known, a bid of a
//! category-10 auction leaves at once with it and a bid of another category
//! is dropped; bids that come before their auction wait for it. The state per
//! auction is its category and details (for category 10), kept for as long as
//! the job runs, as the SQL's join keeps both sides; a bid whose auction never
//! comes waits for ever.

use serde::{Deserialize, Serialize};

use super::open_auction::auction_key;
use crate::graph::{KeyContext, KeyedOperator, Stream};
use crate::nexmark::{Auction, Bid, Event};

/// What one auction's key holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub enum Side {
    /// Neither the auction nor any bid yet.
    #[default]
    Nothing,
    /// Bids that came before their auction.
    Waiting(Vec<Bid>),
    /// The auction, of category 10.
    Joining(Auction),
    /// The auction is of another category: its bids are dropped.
    Other,
}

/// Every bid of a category-10 auction, with the auction.
pub fn query<'s>(events: &Stream<'s, Event>) -> Stream<'s, (Bid, Auction)> {
    events.filter(|e| e.person().is_none()).key_by(auction_key).stateful_global("q20_category_10", Expand)
}

/// Per auction: the join's state.
struct Expand;

impl KeyedOperator for Expand {
    type In = Event;
    type Out = (Bid, Auction);
    type State = Side;
    fn on_event(&mut self, e: &Event, side: &mut Side, ctx: &mut KeyContext<'_, (Bid, Auction)>) {
        match (e, &mut *side) {
            (Event::Bid(b), Side::Joining(a)) => ctx.emit((b.clone(), a.clone())),
            (Event::Bid(_), Side::Other) => {}
            (Event::Bid(b), Side::Waiting(bids)) => bids.push(b.clone()),
            (Event::Bid(b), Side::Nothing) => *side = Side::Waiting(vec![b.clone()]),
            (Event::Auction(a), _) if a.category != 10 => *side = Side::Other,
            (Event::Auction(a), _) => {
                if let Side::Waiting(bids) = std::mem::take(side) {
                    for b in bids {
                        ctx.emit((b, a.clone()));
                    }
                }
                *side = Side::Joining(a.clone());
            }
            (Event::Person(_), _) => {}
        }
    }
}
