//! Nexmark q5: hot items, the auctions with the most bids in each sliding
//! window (10 s long, every 2 s).
//!
//! ```sql
//! SELECT AuctionBids.auction, AuctionBids.num
//! FROM (
//!   SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
//!   FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//!   GROUP BY auction, window_start, window_end
//! ) AS AuctionBids
//! JOIN (
//!   SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
//!   FROM (
//!     SELECT count(*) AS num, window_start AS starttime, window_end AS endtime
//!     FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//!     GROUP BY auction, window_start, window_end
//!   ) AS CountBids
//!   GROUP BY CountBids.starttime, CountBids.endtime
//! ) AS MaxBids
//! ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
//!    AND AuctionBids.num >= MaxBids.maxn;
//! ```
//!
//! Two keyed operators on the stream's watermark, a two-phase aggregation (as
//! Flink's planner makes of this query): the auctions are spread over
//! [`BUCKETS`] keys; per bucket, the bids of each of its auctions per window,
//! and once a window is complete the bucket's most bid-on auctions of it (all
//! of them on a tie); per window, the greatest of the buckets' candidates (all
//! of them on a tie), emitted once every bucket's are in. The second phase sees
//! at most a few records per bucket and window instead of one per auction and
//! window. Windows are `[start, start + 10 s)`.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::graph::{KeyContext, KeyedOperator, Stream};
use crate::nexmark::Event;

pub const SIZE_MS: i64 = 10_000;
pub const SLIDE_MS: i64 = 2_000;
/// The keys of the first phase: auction ids modulo this.
pub const BUCKETS: i64 = 64;

/// One hot auction of a window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Hot {
    pub window_start: i64,
    pub auction: i64,
    pub bids: u64,
}

/// `(window start, auction, bids)` for each window's most bid-on auctions.
pub fn query<'s>(events: &Stream<'s, Event>) -> Stream<'s, Hot> {
    events
        .flat_map(super::bids)
        .map(|b| b.auction)
        .key_by(|a| a.rem_euclid(BUCKETS).to_string())
        .stateful_global("q5_bids_per_auction", CountPerWindow)
        .key_by(|h| h.window_start.to_string())
        .stateful_global("q5_hottest", Hottest)
}

/// Per bucket of auctions: the bids of each auction per window start.
struct CountPerWindow;

impl KeyedOperator for CountPerWindow {
    type In = i64;
    type Out = Hot;
    type State = BTreeMap<i64, FxHashMap<i64, u64>>;
    fn on_event(&mut self, auction: &i64, counts: &mut Self::State, ctx: &mut KeyContext<'_, Hot>) {
        let t = ctx.time();
        let mut start = super::window_start(t, SLIDE_MS);
        while start > t - SIZE_MS {
            let window = counts.entry(start).or_insert_with(|| {
                // the window's first bid in this bucket: its end is due once
                ctx.timer_at(start + SIZE_MS - 1);
                FxHashMap::default()
            });
            *window.entry(*auction).or_default() += 1;
            start -= SLIDE_MS;
        }
    }
    fn on_timer(&mut self, at: i64, counts: &mut Self::State, ctx: &mut KeyContext<'_, Hot>) {
        let start = at + 1 - SIZE_MS;
        if let Some(per_auction) = counts.remove(&start) {
            let most = per_auction.values().copied().max().unwrap_or(0);
            let mut best: Vec<i64> = per_auction.into_iter().filter(|(_, n)| *n == most).map(|(a, _)| a).collect();
            best.sort_unstable();
            for auction in best {
                ctx.emit(Hot { window_start: start, auction, bids: most });
            }
        }
        if counts.is_empty() {
            ctx.clear();
        }
    }
}

/// Per window: the auctions with the most bids, once all counts are in.
struct Hottest;

impl KeyedOperator for Hottest {
    type In = Hot;
    type Out = Hot;
    type State = Vec<Hot>;
    fn on_event(&mut self, h: &Hot, best: &mut Vec<Hot>, ctx: &mut KeyContext<'_, Hot>) {
        match best.first().map(|b| b.bids) {
            Some(n) if n > h.bids => return,
            Some(n) if n < h.bids => best.clear(),
            _ => {}
        }
        best.push(h.clone());
        ctx.timer_at(h.window_start + SIZE_MS - 1);
    }
    fn on_timer(&mut self, _: i64, best: &mut Vec<Hot>, ctx: &mut KeyContext<'_, Hot>) {
        best.sort();
        for h in best.drain(..) {
            ctx.emit(h);
        }
        ctx.clear();
    }
}
