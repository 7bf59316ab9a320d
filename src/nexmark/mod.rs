//! Nexmark, the streaming benchmark of online auctions (people, auctions,
//! bids), on vigil's public graph API: the reference generator and the queries.
//!
//! - [`model`]: the events, as the reference implementations name their fields;
//! - [`generator`]: Apache Beam's generator, event for event ([`java_random`]
//!   is the `java.util.Random` it seeds per event);
//! - [`queries`]: the queries on the graph API, one file each, with the
//!   reference SQL;
//! - [`kafka`]: the events on a Kafka topic, published and read back.

pub mod generator;
pub mod java_random;
pub mod kafka;
pub mod model;
pub mod queries;

pub use generator::{Generator, GeneratorConfig};
pub use model::{Auction, Bid, Event, Person};
