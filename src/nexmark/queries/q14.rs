//! Nexmark q14: a filter and a calculation with a user function over every bid.
//!
//! ```sql
//! SELECT auction, bidder, 0.908 * price as price,
//!     CASE
//!         WHEN HOUR(dateTime) >= 8 AND HOUR(dateTime) <= 18 THEN 'dayTime'
//!         WHEN HOUR(dateTime) <= 6 OR HOUR(dateTime) >= 20 THEN 'nightTime'
//!         ELSE 'otherTime'
//!     END AS bidTimeType,
//!     dateTime, extra, count_char(extra, 'c') AS c_counts
//! FROM bid
//! WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000;
//! ```
//!
//! Prices are integer cents: the filter compares the exact product `0.908 *
//! price` (in integers: `price * 908` against the bounds times 1,000), and the
//! row's price is it truncated to a cent, as in [`super::q1`]. The hour is the
//! UTC hour of `dateTime`; `count_char` counts the character `c` in `extra`.
//!
//! ```
//! use vigil::nexmark::queries::q14::{row, TimeOfDay};
//! use vigil::nexmark::Bid;
//! let at_nine = 9 * 3_600_000;
//! let b = Bid { auction: 1, bidder: 2, price: 2_000_000, date_time: at_nine, extra: "cacc".into() };
//! let r = row(&b).unwrap();
//! assert_eq!((r.price, r.bid_time_type, r.c_counts), (1_816_000, TimeOfDay::DayTime, 3));
//! assert!(row(&Bid { price: 100, ..b }).is_none());
//! ```

use serde::{Deserialize, Serialize};

use crate::graph::Stream;
use crate::nexmark::{Bid, Event};

/// When in the (UTC) day a bid was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TimeOfDay {
    DayTime,
    NightTime,
    OtherTime,
}

/// A row of q14's result.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Q14 {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub bid_time_type: TimeOfDay,
    pub date_time: i64,
    pub extra: String,
    pub c_counts: i64,
}

/// The bids in the price band, each with its time of day and its count of `c`s.
pub fn query<'s>(events: &Stream<'s, Event>) -> Stream<'s, Q14> {
    events.flat_map(|e| e.bid().and_then(row))
}

/// q14's row of one bid, or `None` where the filter drops it.
///
/// ```
/// use vigil::nexmark::queries::q14::{row, TimeOfDay};
/// use vigil::nexmark::Bid;
/// let at = |hour: i64| Bid { auction: 1, bidder: 2, price: 2_000_000, date_time: hour * 3_600_000, extra: String::new() };
/// let kinds: Vec<TimeOfDay> = [6, 7, 8, 18, 19, 20, 23].into_iter().map(|h| row(&at(h)).unwrap().bid_time_type).collect();
/// use TimeOfDay::*;
/// assert_eq!(kinds, vec![NightTime, OtherTime, DayTime, DayTime, OtherTime, NightTime, NightTime]);
/// // 0.908 * 1,101,322 = 1,000,000.376: above the bound, a price of 1,000,000 cents
/// assert_eq!(row(&Bid { price: 1_101_322, ..at(9) }).unwrap().price, 1_000_000);
/// assert!(row(&Bid { price: 1_101_321, ..at(9) }).is_none());
/// ```
pub fn row(b: &Bid) -> Option<Q14> {
    let exact = i128::from(b.price) * 908;
    if exact <= 1_000_000_000 || exact >= 50_000_000_000 {
        return None;
    }
    let price = (exact / 1000) as i64;
    let hour = b.date_time.div_euclid(3_600_000).rem_euclid(24);
    let bid_time_type = match hour {
        8..=18 => TimeOfDay::DayTime,
        0..=6 | 20.. => TimeOfDay::NightTime,
        _ => TimeOfDay::OtherTime,
    };
    let c_counts = b.extra.bytes().filter(|c| *c == b'c').count() as i64;
    Some(Q14 { auction: b.auction, bidder: b.bidder, price, bid_time_type, date_time: b.date_time, extra: b.extra.clone(), c_counts })
}
