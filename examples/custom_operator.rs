//! A user-defined stateful operator: impossible travel.
//!
//! A card used in two countries within an hour is suspicious. The operator keeps,
//! per card, the last country and time it was used; an event-time timer forgets a
//! card an hour after its last use, so state stays bounded by the active cards.
//! It runs on two timely workers (cards are spread by key), over transactions
//! read from two partitions with 5 s of allowed lateness.
//!
//! ```text
//! cargo run --release --example custom_operator
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::capture::Extract;
use timely::dataflow::operators::{vec::ToStream, Capture};
use vigil::graph::keyed::{keyed_operator, KeyContext, Keyed, KeyedOperator, Origin};

const HOUR_MS: i64 = 3_600_000;

/// A card transaction (the operator's input).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tx {
    country: String,
}

/// What a card's state remembers.
#[derive(Default, Serialize, Deserialize)]
struct LastSeen {
    country: String,
    time_ms: i64,
}

#[derive(Default)]
struct ImpossibleTravel;

impl KeyedOperator for ImpossibleTravel {
    type In = Tx;
    /// (card, time, from, to)
    type Out = (String, i64, String, String);
    type State = LastSeen;

    fn on_event(&mut self, tx: &Tx, last: &mut LastSeen, ctx: &mut KeyContext<'_, Self::Out>) {
        let seen_before = !last.country.is_empty();
        if seen_before && last.country != tx.country && ctx.time() - last.time_ms < HOUR_MS {
            ctx.emit((ctx.key().to_owned(), ctx.time(), last.country.clone(), tx.country.clone()));
        }
        if ctx.time() >= last.time_ms {
            *last = LastSeen { country: tx.country.clone(), time_ms: ctx.time() };
        }
        // forget the card an hour after its last use
        ctx.timer_at(last.time_ms + HOUR_MS);
    }

    fn on_timer(&mut self, timer: i64, last: &mut LastSeen, ctx: &mut KeyContext<'_, Self::Out>) {
        if timer >= last.time_ms + HOUR_MS {
            ctx.clear();
        }
    }
}

fn main() {
    // 2 partitions; card c lives on partition c % 2; times in order per partition,
    // except card 3's second use, 4 s late (within the 5 s lateness)
    let lateness = 5_000;
    let raw: Vec<(u32, &str, i64, &str)> = vec![
        (1, "card-1", 0, "FR"),
        (0, "card-2", 60_000, "FR"),
        (1, "card-3", 120_000, "DE"),
        (1, "card-1", 1_800_000, "BR"),   // 30 min later, another continent: alert
        (0, "card-2", 2 * HOUR_MS, "US"), // 2 h later: fine
        (1, "card-3", 124_000 + 3_000, "DE"),
        (1, "card-3", 123_000, "ES"), // 4 s late, still within an hour: alert
        (1, "card-5", 5 * HOUR_MS, "IT"),
    ];
    let mut max_time = [i64::MIN; 2];
    let events: Vec<Keyed<Tx>> = raw
        .into_iter()
        .map(|(p, card, time, country)| {
            max_time[p as usize] = max_time[p as usize].max(time);
            let watermark = max_time[p as usize] - lateness;
            Keyed { key: card.into(), origin: Origin { source: 0, partition: p }, watermark, time_ms: time, value: Tx { country: country.into() } }
        })
        .collect();
    let alerts = timely::execute(timely::Config::process(2), move |worker| {
        let (mine, index) = (events.clone(), worker.index());
        worker.dataflow::<u64, _, _>(|scope| {
            // worker 0 reads partition 0, worker 1 partition 1
            let input = mine.into_iter().filter(move |e| e.origin.partition as usize == index).to_stream(scope);
            keyed_operator(input, "impossible_travel", ImpossibleTravel).capture()
        })
    })
    .expect("timely runs")
    .join()
    .into_iter()
    .flat_map(|r| r.expect("a worker").extract())
    .flat_map(|(_, alerts)| alerts)
    .collect::<BTreeSet<_>>();
    for (card, time, from, to) in &alerts {
        println!("{card}: used in {to} at {}s, {from} less than an hour before", time / 1000);
    }
    let cards: Vec<&str> = alerts.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(cards, ["card-1", "card-3"], "the two impossible trips, and nothing else");
}
