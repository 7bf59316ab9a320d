//! Nexmark q11: user sessions, the bids of each bidder's session of activity.
//!
//! ```sql
//! SELECT
//!     B.bidder,
//!     count(*) as bid_count,
//!     SESSION_START(B.dateTime, INTERVAL '10' SECOND) as starttime,
//!     SESSION_END(B.dateTime, INTERVAL '10' SECOND) as endtime
//! FROM bid B
//! GROUP BY B.bidder, SESSION(B.dateTime, INTERVAL '10' SECOND);
//! ```
//!
//! Semantics, Flink's session windows: each bid opens the window
//! `[dateTime, dateTime + 10 s)`; a bidder's windows that overlap or touch
//! merge into one session (so a bid at most 10 s after the previous one
//! extends its session), whatever order the bids arrive in. A session is
//! emitted once, when it is final: the stream's watermark has passed its end
//! (no later bid can extend or merge it); at the end of the input every open
//! session is.
//!
//! How: a keyed operator per bidder on the stream's watermark
//! (`stateful_global`: a bidder's bids come from every partition) keeps its
//! open sessions and a timer at each one's end.
//!
//! ```
//! use vigil::graph::values_source::Values;
//! use vigil::graph::LocalRun;
//! use vigil::nexmark::queries::q11;
//! use vigil::nexmark::{Bid, Event};
//!
//! let t0 = 1_436_918_400_000; // 2015-07-15, the generator's base time
//! let bid = |bidder: i64, s: i64| Event::Bid(Bid { auction: 1, bidder, price: 1, date_time: t0 + s * 1_000, extra: String::new() });
//! // bidder 1: bids at 0, 5 and 15 s form one session; the bid at 26 s another
//! let parts = vec![vec![bid(1, 0), bid(2, 3), bid(1, 15)], vec![bid(1, 5), bid(1, 26)]];
//! let out = LocalRun::new(1)
//!     .values("nexmark", parts)
//!     .run(|g| {
//!         q11::query(&g.source_values(Values::new("nexmark", Event::date_time))).sink("q11");
//!         Ok(())
//!     })
//!     .unwrap();
//! let mut rows: Vec<(i64, i64, i64, i64)> = out.values("q11").iter().map(|v| serde_json::from_str(v).unwrap()).collect();
//! rows.sort();
//! assert_eq!(rows, vec![(1, 1, t0 + 26_000, t0 + 36_000), (1, 3, t0, t0 + 25_000), (2, 1, t0 + 3_000, t0 + 13_000)]);
//! ```

use serde::{Deserialize, Serialize};

use crate::graph::{KeyContext, KeyedOperator, Stream};
use crate::nexmark::{Bid, Event};

/// The session gap: 10 s.
pub const GAP_MS: i64 = 10_000;

/// A bidder's session: (bidder, bid_count, starttime, endtime), times in ms.
pub type Session = (i64, i64, i64, i64);

/// Every bidder's sessions, each once it is final.
pub fn query<'s>(events: &Stream<'s, Event>) -> Stream<'s, Session> {
    events.flat_map(super::bids).key_by(|b| b.bidder.to_string()).stateful_global("q11_sessions", Sessions)
}

/// One bidder's open sessions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Open {
    /// (start, end, bids), disjoint and not touching, in start order.
    sessions: Vec<(i64, i64, i64)>,
}

/// Per bidder: its sessions, merged as bids come.
struct Sessions;

impl KeyedOperator for Sessions {
    type In = Bid;
    type Out = Session;
    type State = Open;
    fn on_event(&mut self, b: &Bid, open: &mut Open, ctx: &mut KeyContext<'_, Session>) {
        let (mut start, mut end, mut bids) = (b.date_time, b.date_time + GAP_MS, 1);
        // every open session this bid's window overlaps or touches merges into it
        open.sessions.retain(|&(s, e, n)| {
            let merges = s <= end && e >= start;
            if merges {
                (start, end, bids) = (start.min(s), end.max(e), bids + n);
            }
            !merges
        });
        let at = open.sessions.partition_point(|&(s, _, _)| s < start);
        open.sessions.insert(at, (start, end, bids));
        ctx.timer_at(end);
    }
    fn on_timer(&mut self, at: i64, open: &mut Open, ctx: &mut KeyContext<'_, Session>) {
        let bidder: i64 = ctx.key().parse().unwrap_or_default();
        // a merged session's earlier end fires too: only sessions ending by now are final
        open.sessions.retain(|&(s, e, n)| {
            let done = e <= at;
            if done {
                ctx.emit((bidder, n, s, e));
            }
            !done
        });
        if open.sessions.is_empty() {
            ctx.clear();
        }
    }
}
