//! Nexmark q8: new users, the people who opened an auction in the same
//! tumbling 10 s window as they joined.
//!
//! ```sql
//! SELECT P.id, P.name, P.starttime
//! FROM (
//!   SELECT id, name, window_start AS starttime, window_end AS endtime
//!   FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!   GROUP BY id, name, window_start, window_end
//! ) P
//! JOIN (
//!   SELECT seller, window_start AS starttime, window_end AS endtime
//!   FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!   GROUP BY seller, window_start, window_end
//! ) A
//! ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;
//! ```
//!
//! One keyed operator on people and auctions keyed by person id (an auction by
//! its seller): a person is written once per window as soon as both their
//! joining and an auction of theirs in that window are seen; a window's state
//! goes once the window is complete.

use std::collections::BTreeMap;

use crate::graph::{KeyContext, KeyedOperator, Stream};
use crate::nexmark::Event;

pub const SIZE_MS: i64 = 10_000;

/// `(person id, name, window start)` of each new seller.
pub fn query<'s>(events: &Stream<'s, Event>) -> Stream<'s, (i64, String, i64)> {
    events
        .filter(|e| e.bid().is_none())
        .key_by(|e| match e {
            Event::Person(p) => p.id.to_string(),
            Event::Auction(a) => a.seller.to_string(),
            Event::Bid(_) => String::new(),
        })
        .stateful_global("q8_new_sellers", NewSellers)
}

/// Per window start: the person's name once they joined in it, whether they
/// sold in it, and whether the pair was written.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    name: Option<String>,
    sold: bool,
    written: bool,
}

struct NewSellers;

impl KeyedOperator for NewSellers {
    type In = Event;
    type Out = (i64, String, i64);
    type State = BTreeMap<i64, Seen>;
    fn on_event(&mut self, e: &Event, windows: &mut Self::State, ctx: &mut KeyContext<'_, Self::Out>) {
        let start = super::window_start(ctx.time(), SIZE_MS);
        let seen = windows.entry(start).or_default();
        match e {
            Event::Person(p) => seen.name = Some(p.name.clone()),
            Event::Auction(_) => seen.sold = true,
            Event::Bid(_) => return,
        }
        ctx.timer_at(start + SIZE_MS - 1);
        if let (Some(name), true, false) = (&seen.name, seen.sold, seen.written) {
            let id = ctx.key().parse().unwrap_or_default();
            let name = name.clone();
            seen.written = true;
            ctx.emit((id, name, start));
        }
    }
    fn on_timer(&mut self, at: i64, windows: &mut Self::State, ctx: &mut KeyContext<'_, Self::Out>) {
        windows.remove(&(at + 1 - SIZE_MS));
        if windows.is_empty() {
            ctx.clear();
        }
    }
}
