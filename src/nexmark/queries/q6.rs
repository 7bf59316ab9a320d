//! Nexmark q6: the average selling price of each seller's last 10 closed
//! auctions, updated as each auction closes.
//!
//! ```sql
//! SELECT Q.seller, AVG(Q.final) OVER
//!   (PARTITION BY Q.seller ORDER BY Q.dateTime ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
//! FROM (
//!   SELECT MAX(B.price) AS final, A.seller, B.dateTime
//!   FROM auction AS A, bid AS B
//!   WHERE A.id = B.auction and B.dateTime between A.dateTime and A.expires
//!   GROUP BY A.id, A.seller
//! ) AS Q;
//! ```
//!
//! Flink's Nexmark lists this SQL but cannot run it (an over window on a
//! non-time ordering), and DBSP's has no q6; vigil follows the query as Beam's
//! Query6 defines it: an auction closes at its `expires`; its winning bid is
//! its highest bid within `[dateTime, expires]` at or above the reserve
//! (earliest first on a tie); auctions without one are not sold. Per seller, at
//! each close (in order of close time, then auction id), the average of the
//! last 10 selling prices (fewer until 10 have closed), truncated to cents.
//!
//! Two keyed operators on the stream's watermark: per auction, its bids until
//! it closes (a bid that comes before its auction waits until the watermark
//! passes its time: by then the auction, which starts no later, has come if it
//! ever will); per seller, the closed auctions in order of close.

use std::collections::{BTreeMap, VecDeque};

use super::open_auction::{auction_key, OpenAuction, Rule};
use crate::graph::{KeyContext, KeyedOperator, Stream};
use crate::nexmark::Event;

/// Prices averaged per seller.
pub const LAST: usize = 10;

/// A seller's average selling price after one of their auctions closed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct SellerAverage {
    pub seller: i64,
    /// When the auction closed (its `expires`).
    pub closed: i64,
    pub auction: i64,
    pub average: i64,
}

/// Each seller's running average at each of their auctions' close.
pub fn query<'s>(events: &Stream<'s, Event>) -> Stream<'s, SellerAverage> {
    events
        .filter(|e| e.person().is_none())
        .key_by(auction_key)
        .stateful_global("q6_winning_bids", WinningBid)
        .key_by(|s| s.seller.to_string())
        .stateful_global("q6_seller_average", SellerPrices)
}

/// Per auction: the winning bid (at or above the reserve), written when the
/// auction closes.
struct WinningBid;

impl KeyedOperator for WinningBid {
    type In = Event;
    type Out = SellerAverage;
    type State = OpenAuction;
    fn on_event(&mut self, e: &Event, open: &mut OpenAuction, ctx: &mut KeyContext<'_, SellerAverage>) {
        open.on_event(e, Rule::InSpanAtReserve, ctx);
    }
    fn on_timer(&mut self, at: i64, open: &mut OpenAuction, ctx: &mut KeyContext<'_, SellerAverage>) {
        if open.on_timer(at, ctx) {
            if let (Some(a), Some(b)) = (&open.auction, &open.best) {
                ctx.emit(SellerAverage { seller: a.seller, closed: a.expires, auction: a.id, average: b.price });
            }
        }
    }
}

/// Per seller: the closed auctions waiting for their turn (by close time and
/// id), and the last selling prices.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Prices {
    waiting: BTreeMap<(i64, i64), i64>,
    last: VecDeque<i64>,
}

struct SellerPrices;

impl KeyedOperator for SellerPrices {
    type In = SellerAverage;
    type Out = SellerAverage;
    type State = Prices;
    fn on_event(&mut self, s: &SellerAverage, p: &mut Prices, ctx: &mut KeyContext<'_, SellerAverage>) {
        // `average` carries the auction's selling price on the way in
        p.waiting.insert((s.closed, s.auction), s.average);
        ctx.timer_at(s.closed);
    }
    fn on_timer(&mut self, at: i64, p: &mut Prices, ctx: &mut KeyContext<'_, SellerAverage>) {
        let seller = ctx.key().parse().unwrap_or_default();
        while let Some(entry) = p.waiting.first_entry().filter(|e| e.key().0 <= at) {
            let ((closed, auction), price) = entry.remove_entry();
            if p.last.len() == LAST {
                p.last.pop_front();
            }
            p.last.push_back(price);
            let average = p.last.iter().sum::<i64>() / p.last.len() as i64;
            ctx.emit(SellerAverage { seller, closed, auction, average });
        }
    }
}
