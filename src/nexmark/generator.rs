//! The Nexmark event generator, as Apache Beam's reference implementation
//! (`org.apache.beam.sdk.nexmark.sources.generator`) defines it, field for
//! field: the same events from the same configuration.
//!
//! - Event `n` (counting from the configuration's first event number) has id
//!   `first_event_id + n` and is computed from that id alone: a fresh
//!   `java.util.Random` seeded with it ([`JavaRandom`]), so any worker can
//!   generate any slice of the stream.
//! - Kinds in proportion 1:3:46: id `% 50 == 0` is a person, `1..=3` an
//!   auction, the rest bids.
//! - Hot items: 3 of 4 auctions are sold by the current hot seller, half of the
//!   bids go to the current hot auction and 3 of 4 come from the hot bidder;
//!   otherwise ids are drawn among the 1,000 most recent people and the 100 most
//!   recent auctions (with a lead of 10 ids past the newest: a bid may name an
//!   auction that appears a little later, as in the reference).
//! - Event time: `base_time + n * delay / 1000` ms, `delay` the inter-event
//!   delay in microseconds (`rate_to_period(first_event_rate) *
//!   num_event_generators`); an auction expires within twice the time 1,666
//!   events take.
//! - Strings: names, emails, cities and states from the reference's lists;
//!   `extra` pads each event to its kind's average size (±20%).
//!
//! Checked against Beam's Java generator: the first 1,000 events of two
//! configurations equal the reference's output in every field
//! (`tests/nexmark_generator.rs`, fixtures in `tests/data/nexmark`). Only the
//! constant-rate shape is built (Beam's default; its sine and square rate
//! shapes are not). Flink's and Feldera's generators are ports with other
//! random number generators and do not reproduce these events.
//!
//! ```
//! use vigil::nexmark::{Event, Generator, GeneratorConfig};
//! let events: Vec<Event> = Generator::new(GeneratorConfig::default()).take(50).collect();
//! assert_eq!(events.iter().filter(|e| e.person().is_some()).count(), 1);
//! assert_eq!(events.iter().filter(|e| e.auction().is_some()).count(), 3);
//! assert_eq!(events[0].person().unwrap().name, "Peter Jones");
//! ```

use super::java_random::JavaRandom;
use super::model::{Auction, Bid, Event, Person};

const PROPORTION_DENOMINATOR: i64 = 50;
const PERSON_PROPORTION: i64 = 1;
const AUCTION_PROPORTION: i64 = 3;
const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: i32 = 5;
const PERSON_ID_LEAD: i64 = 10;
const AUCTION_ID_LEAD: i64 = 10;
const HOT_SELLER_RATIO: i64 = 100;
const HOT_AUCTION_RATIO: i64 = 100;
const HOT_BIDDER_RATIO: i64 = 100;

const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];
const FIRST_NAMES: [&str; 11] = ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES: [&str; 9] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];

/// Beam's `NexmarkUtils.BASE_TIME`: 2015-07-15T00:00:00Z.
pub const BEAM_BASE_TIME: i64 = 1_436_918_400_000;

/// What the generator makes; the defaults are Beam's `NexmarkConfiguration.DEFAULT`
/// with its `BASE_TIME`.
#[derive(Clone, Debug)]
pub struct GeneratorConfig {
    /// Event time of the first event (epoch ms).
    pub base_time: i64,
    /// The id (and random seed) of the first event.
    pub first_event_id: i64,
    /// The number of the first event (its time is `base_time` plus this many delays).
    pub first_event_number: i64,
    /// Events per second of event time, summed over `num_event_generators`.
    pub first_event_rate: i64,
    /// Generators sharing the rate (Beam's default 100, so one generator's events
    /// are 10 ms apart at 10,000 events/s; Flink's Nexmark uses 1).
    pub num_event_generators: i64,
    pub avg_person_byte_size: i32,
    pub avg_auction_byte_size: i32,
    pub avg_bid_byte_size: i32,
    pub hot_auction_ratio: i32,
    pub hot_sellers_ratio: i32,
    pub hot_bidders_ratio: i32,
    pub num_in_flight_auctions: i64,
    pub num_active_people: i64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            base_time: BEAM_BASE_TIME,
            first_event_id: 0,
            first_event_number: 0,
            first_event_rate: 10_000,
            num_event_generators: 100,
            avg_person_byte_size: 200,
            avg_auction_byte_size: 500,
            avg_bid_byte_size: 100,
            hot_auction_ratio: 2,
            hot_sellers_ratio: 4,
            hot_bidders_ratio: 4,
            num_in_flight_auctions: 100,
            num_active_people: 1000,
        }
    }
}

impl GeneratorConfig {
    /// Microseconds between two events of one generator.
    pub fn inter_event_delay_us(&self) -> i64 {
        let rate = self.first_event_rate.max(1);
        (1_000_000 + rate / 2) / rate * self.num_event_generators
    }

    /// The event time of event number `n` (counted from zero, not from
    /// `first_event_number`).
    pub fn timestamp(&self, n: i64) -> i64 {
        self.timestamp_of_number(self.first_event_number + n)
    }

    fn timestamp_of_number(&self, number: i64) -> i64 {
        self.base_time + number * self.inter_event_delay_us() / 1000
    }
}

/// The events of a configuration in order; see the module docs.
#[derive(Clone, Debug)]
pub struct Generator {
    config: GeneratorConfig,
    next: i64,
}

impl Generator {
    pub fn new(config: GeneratorConfig) -> Self {
        Generator { config, next: 0 }
    }

    /// Event `n` of the configuration (the `n`-th the iterator yields).
    pub fn event(&self, n: i64) -> Event {
        event(&self.config, n)
    }
}

impl Iterator for Generator {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        let e = event(&self.config, self.next);
        self.next += 1;
        Some(e)
    }
}

/// Event `n` of `config`.
pub fn event(config: &GeneratorConfig, n: i64) -> Event {
    let number = config.first_event_number + n;
    let id = config.first_event_id + number;
    let time = config.timestamp_of_number(number);
    let mut random = JavaRandom::new(id);
    let rem = id % PROPORTION_DENOMINATOR;
    if rem < PERSON_PROPORTION {
        Event::Person(person(id, &mut random, time, config))
    } else if rem < PERSON_PROPORTION + AUCTION_PROPORTION {
        Event::Auction(auction(number, id, &mut random, time, config))
    } else {
        Event::Bid(bid(id, &mut random, time, config))
    }
}

fn last_base0_person_id(event_id: i64) -> i64 {
    event_id / PROPORTION_DENOMINATOR
}

fn next_base0_person_id(event_id: i64, random: &mut JavaRandom, config: &GeneratorConfig) -> i64 {
    let num_people = last_base0_person_id(event_id) + 1;
    let active = num_people.min(config.num_active_people);
    num_people - active + next_long(random, active + PERSON_ID_LEAD)
}

fn last_base0_auction_id(event_id: i64) -> i64 {
    let (mut epoch, mut offset) = (event_id / PROPORTION_DENOMINATOR, event_id % PROPORTION_DENOMINATOR);
    if offset < PERSON_PROPORTION {
        epoch -= 1;
        offset = AUCTION_PROPORTION - 1;
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + offset
}

fn next_base0_auction_id(event_id: i64, random: &mut JavaRandom, config: &GeneratorConfig) -> i64 {
    let max = last_base0_auction_id(event_id);
    let min = (max - config.num_in_flight_auctions).max(0);
    min + next_long(random, max - min + 1 + AUCTION_ID_LEAD)
}

/// Beam's `LongGenerator.nextLong`.
fn next_long(random: &mut JavaRandom, n: i64) -> i64 {
    if n < i32::MAX as i64 {
        random.next_int_bounded(n as i32) as i64
    } else {
        (random.next_long() % n).abs()
    }
}

fn person(id: i64, random: &mut JavaRandom, time: i64, config: &GeneratorConfig) -> Person {
    let name = format!("{} {}", FIRST_NAMES[random.next_int_bounded(11) as usize], LAST_NAMES[random.next_int_bounded(9) as usize]);
    let email_address = format!("{}@{}.com", next_string(random, 7), next_string(random, 5));
    let credit_card = (0..4).map(|_| format!("{:04}", random.next_int_bounded(10_000))).collect::<Vec<_>>().join(" ");
    let city = US_CITIES[random.next_int_bounded(10) as usize].to_owned();
    let state = US_STATES[random.next_int_bounded(6) as usize].to_owned();
    let size = 8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
    let extra = next_extra(random, size as i32, config.avg_person_byte_size);
    Person { id: last_base0_person_id(id) + FIRST_PERSON_ID, name, email_address, credit_card, city, state, date_time: time, extra }
}

fn auction(number: i64, id: i64, random: &mut JavaRandom, time: i64, config: &GeneratorConfig) -> Auction {
    let seller = if random.next_int_bounded(config.hot_sellers_ratio) > 0 {
        last_base0_person_id(id) / HOT_SELLER_RATIO * HOT_SELLER_RATIO
    } else {
        next_base0_person_id(id, random, config)
    } + FIRST_PERSON_ID;
    let category = FIRST_CATEGORY_ID + random.next_int_bounded(NUM_CATEGORIES) as i64;
    let initial_bid = next_price(random);
    // the horizon: twice the time the next 1,666 events take (by event number, not id)
    let horizon = config.timestamp_of_number(number + config.num_in_flight_auctions * PROPORTION_DENOMINATOR / AUCTION_PROPORTION) - time;
    let expires = time + 1 + next_long(random, (horizon * 2).max(1));
    let item_name = next_string(random, 20);
    let description = next_string(random, 100);
    let reserve = initial_bid + next_price(random);
    let size = 8 + item_name.len() + description.len() + 8 + 8 + 8 + 8 + 8;
    let extra = next_extra(random, size as i32, config.avg_auction_byte_size);
    Auction {
        id: last_base0_auction_id(id) + FIRST_AUCTION_ID,
        item_name,
        description,
        initial_bid,
        reserve,
        date_time: time,
        expires,
        seller,
        category,
        extra,
    }
}

fn bid(id: i64, random: &mut JavaRandom, time: i64, config: &GeneratorConfig) -> Bid {
    let auction = if random.next_int_bounded(config.hot_auction_ratio) > 0 {
        last_base0_auction_id(id) / HOT_AUCTION_RATIO * HOT_AUCTION_RATIO
    } else {
        next_base0_auction_id(id, random, config)
    } + FIRST_AUCTION_ID;
    let bidder = if random.next_int_bounded(config.hot_bidders_ratio) > 0 {
        // + 1: the hot bidder is not the hot seller
        last_base0_person_id(id) / HOT_BIDDER_RATIO * HOT_BIDDER_RATIO + 1
    } else {
        next_base0_person_id(id, random, config)
    } + FIRST_PERSON_ID;
    let price = next_price(random);
    let extra = next_extra(random, 32, config.avg_bid_byte_size);
    Bid { auction, bidder, price, date_time: time, extra }
}

/// Beam's `PriceGenerator.nextPrice`: cents, log-uniform from 1 to 1,000,000 dollars.
fn next_price(random: &mut JavaRandom) -> i64 {
    // Java's Math.round rounds half up, exactly: `round` (half away from zero) on a positive value
    (10f64.powf(random.next_double() * 6.0) * 100.0).round() as i64
}

/// Beam's `StringsGenerator.nextString`: 3 to `max - 1` letters, one in 13 a
/// space, trimmed.
fn next_string(random: &mut JavaRandom, max: i32) -> String {
    let len = 3 + random.next_int_bounded(max - 3);
    let mut s = String::with_capacity(len as usize);
    for _ in 0..len {
        if random.next_int_bounded(13) == 0 {
            s.push(' ');
        } else {
            s.push((b'a' + random.next_int_bounded(26) as u8) as char);
        }
    }
    s.trim_matches(' ').to_owned()
}

/// Beam's `StringsGenerator.nextExactString`: six characters from each
/// `nextInt()`, with Java's signed remainder (so `H`..`z`).
fn next_exact_string(random: &mut JavaRandom, length: i32) -> String {
    let mut s = String::with_capacity(length as usize);
    let (mut rnd, mut left) = (0i32, 0);
    for _ in 0..length {
        if left == 0 {
            rnd = random.next_int();
            left = 6;
        }
        s.push((b'a' as i32 + rnd % 26) as u8 as char);
        rnd /= 26;
        left -= 1;
    }
    s
}

/// Beam's `StringsGenerator.nextExtra`: padding to the average size, ±20%.
fn next_extra(random: &mut JavaRandom, current: i32, average: i32) -> String {
    if current > average {
        return String::new();
    }
    let wanted = average - current;
    // Java's Math.round on a non-negative value
    let delta = (wanted as f64 * 0.2).round() as i32;
    let size = wanted - delta + if delta == 0 { 0 } else { random.next_int_bounded(2 * delta) };
    next_exact_string(random, size)
}
