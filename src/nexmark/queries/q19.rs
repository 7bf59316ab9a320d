//! Nexmark q19: the ten highest bids of each auction, a top-k.
//!
//! ```sql
//! SELECT * FROM
//! (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
//! WHERE rank_number <= 10;
//! ```
//!
//! Semantics: over everything seen so far, the rows of an auction are its ten
//! highest bids, keyed by (auction, rank), rank 1 the highest; a bid that
//! enters the ten moves those below it down a rank (each moved rank retracted
//! and inserted again) and, once ten are kept, pushes out the tenth. Ties on price, which the SQL
//! leaves open, rank the earlier bid first, then the least in field order.
//!
//! How: a keyed operator per auction keeps its ten best bids (nothing else)
//! and writes the ranks that changed as a changelog into a view.

use crate::graph::{KeyContext, KeyedOperator, Stream, View};
use crate::nexmark::{Bid, Event};

/// How many bids each auction ranks.
pub const TOP: usize = 10;

/// (auction, rank) -> the bid at that rank (1 the highest).
pub fn query<'s>(events: &Stream<'s, Event>) -> View<'s, ((i64, i64), Bid)> {
    events.flat_map(super::bids).key_by(|b| b.auction.to_string()).stateful_global("q19_top_bids", TopBids).view_changes("q19_rows", |r| r.value.clone())
}

/// Whether `a` ranks before `b`: a higher price, then earlier, then the least.
pub fn ranks_before(a: &Bid, b: &Bid) -> bool {
    (std::cmp::Reverse(a.price), a.date_time, a) < (std::cmp::Reverse(b.price), b.date_time, b)
}

/// A row of the view and its change.
type Change = (((i64, i64), Bid), isize);

/// Per auction: its best bids, best first.
struct TopBids;

impl KeyedOperator for TopBids {
    type In = Bid;
    type Out = Change;
    type State = Vec<Bid>;
    fn on_event(&mut self, b: &Bid, top: &mut Vec<Bid>, ctx: &mut KeyContext<'_, Change>) {
        let at = top.iter().position(|x| ranks_before(b, x)).unwrap_or(top.len());
        if at >= TOP {
            return;
        }
        // the ranks from `at` down move: retract them, insert them anew
        for (i, old) in top.iter().enumerate().skip(at) {
            ctx.emit((((b.auction, i as i64 + 1), old.clone()), -1));
        }
        top.insert(at, b.clone());
        top.truncate(TOP);
        for (i, new) in top.iter().enumerate().skip(at) {
            ctx.emit((((b.auction, i as i64 + 1), new.clone()), 1));
        }
    }
}
