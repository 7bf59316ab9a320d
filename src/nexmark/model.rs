//! Nexmark's three kinds of event, as the reference implementations name their
//! fields: people who sell and bid, auctions, and bids on auctions. Times are
//! epoch milliseconds; prices are in cents.
//!
//! On the wire (a topic, a file) an event is one JSON object with one member
//! naming its kind, the same shape Flink's Nexmark reads as three nullable
//! rows:
//!
//! ```
//! use vigil::nexmark::{Bid, Event};
//! let e = Event::Bid(Bid { auction: 1000, bidder: 1001, price: 250, date_time: 1436918400010, extra: String::new() });
//! assert_eq!(
//!     serde_json::to_string(&e).unwrap(),
//!     r#"{"bid":{"auction":1000,"bidder":1001,"price":250,"dateTime":1436918400010,"extra":""}}"#
//! );
//! ```

use serde::{Deserialize, Serialize};

/// A person: a seller or a bidder.
#[derive(Clone, Default, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub email_address: String,
    pub credit_card: String,
    pub city: String,
    pub state: String,
    pub date_time: i64,
    pub extra: String,
}

/// An auction of one item by one seller, open from `date_time` to `expires`.
#[derive(Clone, Default, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Auction {
    pub id: i64,
    pub item_name: String,
    pub description: String,
    pub initial_bid: i64,
    pub reserve: i64,
    pub date_time: i64,
    pub expires: i64,
    pub seller: i64,
    pub category: i64,
    pub extra: String,
}

/// A bid on an auction.
#[derive(Clone, Default, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub date_time: i64,
    pub extra: String,
}

/// One event of the Nexmark stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

impl Event {
    /// The event time.
    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
    pub fn person(&self) -> Option<&Person> {
        match self {
            Event::Person(p) => Some(p),
            _ => None,
        }
    }
    pub fn auction(&self) -> Option<&Auction> {
        match self {
            Event::Auction(a) => Some(a),
            _ => None,
        }
    }
    pub fn bid(&self) -> Option<&Bid> {
        match self {
            Event::Bid(b) => Some(b),
            _ => None,
        }
    }
}
