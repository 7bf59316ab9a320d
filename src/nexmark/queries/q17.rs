//! Nexmark q17: auction statistics per day, a view of running aggregates.
//!
//! ```sql
//! SELECT auction, DATE_FORMAT(dateTime, 'yyyy-MM-dd') as `day`,
//!      count(*) AS total_bids,
//!      count(*) filter (where price < 10000) AS rank1_bids,
//!      count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
//!      count(*) filter (where price >= 1000000) AS rank3_bids,
//!      min(price) AS min_price, max(price) AS max_price,
//!      avg(price) AS avg_price, sum(price) AS sum_price
//! FROM bid
//! GROUP BY auction, DATE_FORMAT(dateTime, 'yyyy-MM-dd');
//! ```
//!
//! Semantics: as the SQL says, over everything seen so far: each (auction, UTC
//! day) row changes with every bid of that day (the old row retracted, the new
//! one inserted). The average of integer cents is truncated, as Flink's `AVG`
//! of a `BIGINT` is.
//!
//! How: a keyed operator per (auction, day) keeps the running aggregates and
//! writes each change of its row as a changelog into a differential view, so
//! nothing is kept per bid. Once the stream's watermark passes the day's end
//! the row is final and the key's state goes; a bid of that day that still
//! comes (a partition that was idle and resumes behind the others) is dropped,
//! as a closed window drops a late event, where the SQL's unbounded `GROUP BY`
//! would change the row again.

use serde::{Deserialize, Serialize};

use crate::graph::{KeyContext, KeyedOperator, Stream, View};
use crate::nexmark::{Bid, Event};

const DAY_MS: i64 = 86_400_000;

/// The aggregates of one (auction, day).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q17 {
    pub total_bids: i64,
    pub rank1_bids: i64,
    pub rank2_bids: i64,
    pub rank3_bids: i64,
    pub min_price: i64,
    pub max_price: i64,
    pub avg_price: i64,
    pub sum_price: i64,
}

impl Q17 {
    /// The row with one more bid at `price`.
    pub fn with(&self, price: i64) -> Q17 {
        let first = self.total_bids == 0;
        let (total_bids, sum_price) = (self.total_bids + 1, self.sum_price + price);
        Q17 {
            total_bids,
            rank1_bids: self.rank1_bids + i64::from(price < 10_000),
            rank2_bids: self.rank2_bids + i64::from((10_000..1_000_000).contains(&price)),
            rank3_bids: self.rank3_bids + i64::from(price >= 1_000_000),
            min_price: if first { price } else { self.min_price.min(price) },
            max_price: if first { price } else { self.max_price.max(price) },
            avg_price: sum_price / total_bids,
            sum_price,
        }
    }
}

/// `yyyy-MM-dd` of a time in epoch milliseconds (UTC).
pub fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
}

/// (auction, day) -> its aggregates so far.
pub fn query<'s>(events: &Stream<'s, Event>) -> View<'s, ((i64, String), Q17)> {
    events
        .flat_map(super::bids)
        .key_by(|b| format!("{}/{}", b.auction, b.date_time.div_euclid(DAY_MS)))
        .stateful_global("q17_daily", Daily)
        .view_changes("q17_rows", |r| r.value.clone())
}

/// A row of the view and its change.
type Change = (((i64, String), Q17), isize);

/// Per (auction, day): the running aggregates.
struct Daily;

impl KeyedOperator for Daily {
    type In = Bid;
    type Out = Change;
    type State = Q17;
    fn on_event(&mut self, b: &Bid, row: &mut Q17, ctx: &mut KeyContext<'_, Change>) {
        let day_end = b.date_time.div_euclid(DAY_MS) * DAY_MS + DAY_MS - 1;
        if ctx.watermark() > day_end {
            // the day's row is final and its state gone: a fresh row would stand beside it
            return;
        }
        let key = (b.auction, day(b.date_time));
        if row.total_bids > 0 {
            ctx.emit(((key.clone(), row.clone()), -1));
        }
        *row = row.with(b.price);
        ctx.emit(((key, row.clone()), 1));
        ctx.timer_at(day_end);
    }
    fn on_timer(&mut self, _at: i64, _row: &mut Q17, ctx: &mut KeyContext<'_, Change>) {
        ctx.clear();
    }
}
