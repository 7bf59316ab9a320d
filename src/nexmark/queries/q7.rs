//! Nexmark q7: the highest bid of each tumbling 10 s window.
//!
//! ```sql
//! SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra
//! from bid B
//! JOIN (
//!   SELECT MAX(price) AS maxprice, window_end as dateTime
//!   FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!   GROUP BY window_start, window_end
//! ) B1
//! ON B.price = B1.maxprice
//! WHERE B.dateTime BETWEEN B1.dateTime - INTERVAL '10' SECOND AND B1.dateTime;
//! ```
//!
//! Semantics: the bids of window `[start, start + 10 s)` whose price is that
//! window's maximum (all of them on a tie), once the window is complete. (The
//! SQL's `BETWEEN` also takes a bid at exactly the window's end, which belongs
//! to the next window, when it matches the earlier window's maximum; vigil keeps
//! to the window.)

use crate::graph::{KeyContext, KeyedOperator, Stream};
use crate::nexmark::{Bid, Event};

pub const SIZE_MS: i64 = 10_000;

/// The highest bids of each window, with the window's start.
pub fn query<'s>(events: &Stream<'s, Event>) -> Stream<'s, (i64, Bid)> {
    events.flat_map(super::bids).key_by(|b| super::window_start(b.date_time, SIZE_MS).to_string()).stateful_global("q7_highest", Highest)
}

/// Per window: the bids at the highest price so far.
struct Highest;

impl KeyedOperator for Highest {
    type In = Bid;
    type Out = (i64, Bid);
    type State = Vec<Bid>;
    fn on_event(&mut self, b: &Bid, best: &mut Vec<Bid>, ctx: &mut KeyContext<'_, (i64, Bid)>) {
        match best.first().map(|x| x.price) {
            Some(p) if p > b.price => return,
            Some(p) if p < b.price => best.clear(),
            _ => {}
        }
        best.push(b.clone());
        ctx.timer_at(super::window_start(b.date_time, SIZE_MS) + SIZE_MS - 1);
    }
    fn on_timer(&mut self, at: i64, best: &mut Vec<Bid>, ctx: &mut KeyContext<'_, (i64, Bid)>) {
        best.sort();
        for b in best.drain(..) {
            ctx.emit((at + 1 - SIZE_MS, b));
        }
        ctx.clear();
    }
}
