//! Nexmark's queries on the graph API, one file each, written as a user would
//! write them: a function from the stream of [`Event`]s to a stream or a view.
//! Each file quotes the reference SQL (Flink's Nexmark, which Feldera's DBSP
//! also follows) and says where vigil's answer has to choose.
//!
//! | query | what | how |
//! |---|---|---|
//! | [`q0`] | passthrough of the bids | `flat_map` |
//! | [`q1`] | bids in euros | `map` |
//! | [`q2`] | bids on every 123rd auction | `filter` |
//! | [`q3`] | local item suggestion: sellers in OR, ID, CA of category-10 auctions | differential join, upsert view |
//! | [`q4`] | average winning price per category | differential join + two reductions |
//! | [`q5`] | hot items: the most bid-on auctions of each sliding window | two keyed operators on event-time timers |
//! | [`q6`] | average selling price of each seller's last 10 auctions | two keyed operators on event-time timers |
//! | [`q7`] | the highest bids of each tumbling window | a keyed operator on event-time timers |
//! | [`q8`] | new people who opened an auction in their first window | a keyed operator |
//! | [`q9`] | the winning bid of each auction | differential join + top-1 reduction |
//!
//! ```
//! use vigil::graph::values_source::Values;
//! use vigil::graph::LocalRun;
//! use vigil::nexmark::{queries, Event, Generator, GeneratorConfig};
//!
//! let events: Vec<Event> = Generator::new(GeneratorConfig::default()).take(2_000).collect();
//! let bids = events.iter().filter(|e| e.bid().is_some()).count();
//! let out = LocalRun::new(2)
//!     .values("nexmark", vec![events])
//!     .run(|g| {
//!         let events = g.source_values(Values::new("nexmark", Event::date_time));
//!         queries::q0::query(&events).sink("q0");
//!         Ok(())
//!     })
//!     .unwrap();
//! assert_eq!(out.sink("q0").len(), bids);
//! ```

pub mod q0;
pub mod q1;
pub mod q2;
pub mod q3;
pub mod q4;
pub mod q5;
pub mod q6;
pub mod q7;
pub mod q8;
pub mod q9;

use super::Event;

/// The bids of the stream.
pub fn bids(e: Event) -> Option<super::Bid> {
    match e {
        Event::Bid(b) => Some(b),
        _ => None,
    }
}

/// The start of the tumbling window of `size` ms holding `t`.
pub fn window_start(t: i64, size: i64) -> i64 {
    t.div_euclid(size) * size
}
