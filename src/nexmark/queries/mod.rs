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
//! | [`q4`] | average winning price per category | a keyed operator's changelog into a view, running sums |
//! | [`q5`] | hot items: the most bid-on auctions of each sliding window | two keyed operators on event-time timers |
//! | [`q6`] | average selling price of each seller's last 10 auctions | two keyed operators on event-time timers |
//! | [`q7`] | the highest bids of each tumbling window | a keyed operator on event-time timers |
//! | [`q8`] | new people who opened an auction in their first window | a keyed operator |
//! | [`q9`] | the winning bid of each auction | a keyed operator's changelog into a view |
//! | [`q11`] | each bidder's sessions of activity (10 s gap) | a keyed operator on the stream's watermark, sessions merged as bids come |
//! | [`q14`] | bids in a price band with their time of day and a user function | `flat_map` |
//! | [`q17`] | auction statistics per day | a keyed operator's changelog into a view |
//! | [`q18`] | the last bid of each bidder on each auction | a keyed operator's changelog into a view |
//! | [`q19`] | the ten highest bids of each auction | a keyed operator's changelog into a view |
//! | [`q20`] | bids of category-10 auctions with the auction | a keyed operator (a join of two growing streams) |
//!
//! Of q10-q22, these are not written: q10 (writes files), q12 (windows of
//! processing time), q13 (a side input from a file), q16, q21 and q22 (they
//! read the bid's `channel` and `url`, which Beam's generator, followed here,
//! does not make), and, not yet, q15 (bidding statistics per day, with
//! distinct bidders and auctions).
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

pub mod open_auction;
pub mod q0;
pub mod q1;
pub mod q11;
pub mod q14;
pub mod q17;
pub mod q18;
pub mod q19;
pub mod q2;
pub mod q20;
pub mod q3;
pub mod q4;
pub mod q5;
pub mod q6;
pub mod q7;
pub mod q8;
pub mod q9;

use super::Event;
use crate::graph::Stream;

/// The queries' names, in order.
pub const NAMES: [&str; 16] = ["q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q11", "q14", "q17", "q18", "q19", "q20"];

/// Other formulations of some queries, kept to be measured beside them:
/// `q4-join` and `q9-join` are the SQL as written (a differential join of every
/// auction with every bid), [`q4::query_join`] and [`q9::query_join`].
pub const VARIANTS: [&str; 2] = ["q4-join", "q9-join"];

/// Builds the query `name` (one of [`NAMES`] or [`VARIANTS`]) over `events`, its results to the sink `out`: a
/// stream's records with `sink`, a view's changes with `sink_upsert` (q3, q4,
/// q9, q17, q18, q19). An unknown name is an error naming the known ones.
pub fn sink_query(name: &str, events: &Stream<'_, Event>, out: &str) -> anyhow::Result<()> {
    match name {
        "q0" => q0::query(events).sink(out),
        "q1" => q1::query(events).sink(out),
        "q2" => q2::query(events).sink(out),
        "q3" => q3::query(events).sink_upsert(out),
        "q4" => q4::query(events).sink_upsert(out),
        "q5" => q5::query(events).sink(out),
        "q6" => q6::query(events).sink(out),
        "q7" => q7::query(events).sink(out),
        "q8" => q8::query(events).sink(out),
        "q9" => q9::query(events).sink_upsert(out),
        "q11" => q11::query(events).sink(out),
        "q14" => q14::query(events).sink(out),
        "q17" => q17::query(events).sink_upsert(out),
        "q18" => q18::query(events).sink_upsert(out),
        "q19" => q19::query(events).sink_upsert(out),
        "q20" => q20::query(events).sink(out),
        "q4-join" => q4::query_join(events).sink_upsert(out),
        "q9-join" => q9::query_join(events).sink_upsert(out),
        _ => anyhow::bail!("no Nexmark query `{name}` (there are {}, {})", NAMES.join(", "), VARIANTS.join(", ")),
    }
    Ok(())
}

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
