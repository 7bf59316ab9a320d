//! Nexmark q3: local item suggestion, an incremental join of people and
//! auctions (who sells in category 10 from Oregon, Idaho or California).
//!
//! ```sql
//! SELECT P.name, P.city, P.state, A.id
//! FROM auction AS A INNER JOIN person AS P on A.seller = P.id
//! WHERE A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
//! ```
//!
//! The result is a view keyed by auction id: an auction joins whenever its
//! seller is known, whichever of the two came first; nothing is ever retracted
//! (both inputs only grow).

use crate::graph::{Stream, View};
use crate::nexmark::Event;

/// Auction id -> the seller's (name, city, state).
pub fn query<'s>(events: &Stream<'s, Event>) -> View<'s, (i64, (String, String, String))> {
    let people = events
        .flat_map(|e| e.person().filter(|p| matches!(p.state.as_str(), "OR" | "ID" | "CA")).map(|p| (p.id, (p.name.clone(), p.city.clone(), p.state.clone()))))
        .view("q3_people", |r| r.value.clone());
    let auctions = events.flat_map(|e| e.auction().filter(|a| a.category == 10).map(|a| (a.seller, a.id))).view("q3_auctions", |r| r.value);
    auctions.join(&people).map(|(_seller, (auction, person))| (auction, person))
}
