//! Shared by the graph API's tests: a user operator with timers and a seeded
//! two-topic input (transactions and logins keyed by card).
#![allow(dead_code)]

use vigil::graph::{KeyContext, KeyedOperator, Record};
use vigil::types::key_hash;

pub const T0: i64 = 1_700_000_000_000;

/// Sessions with a gap: a session closes (the card and its count of events)
/// once `gap_ms` pass without an event of its key.
pub struct Sessions {
    pub gap_ms: i64,
}

impl KeyedOperator for Sessions {
    type In = Record;
    type Out = (String, u32);
    type State = u32;
    fn on_event(&mut self, _: &Record, n: &mut u32, ctx: &mut KeyContext<'_, (String, u32)>) {
        *n += 1;
        ctx.timer_at(ctx.time() + self.gap_ms);
    }
    fn on_timer(&mut self, timer: i64, n: &mut u32, ctx: &mut KeyContext<'_, (String, u32)>) {
        if !ctx.has_timer_after(timer) {
            ctx.emit((ctx.key().to_owned(), *n));
            ctx.clear();
        }
    }
}

/// What to generate.
pub struct Topics {
    pub seed: u64,
    pub events: i64,
    pub cards: i64,
    /// Event time between transactions, ms (each also gets up to 300 ms of disorder).
    pub step_ms: i64,
    pub tx_partitions: usize,
    pub login_partitions: usize,
    /// Every this many transactions, one record of invalid UTF-8 in `transactions`
    /// and one with an unreadable time in `logins`.
    pub garbage_every: i64,
}

/// Transactions (`card`, `ts`, `id`, `merchant`, 7 merchants) and, for about a
/// quarter of them, a login of the card up to 400 ms earlier (`card`, `ts`,
/// `id`, `country`); each card in one partition of each topic.
pub fn card_topics(t: &Topics) -> (Vec<Vec<Vec<u8>>>, Vec<Vec<Vec<u8>>>) {
    let mut tx = vec![Vec::new(); t.tx_partitions];
    let mut logins = vec![Vec::new(); t.login_partitions];
    let mut state = t.seed;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as i64
    };
    for i in 0..t.events {
        let card = format!("c{}", next() % t.cards);
        let ts = T0 + i * t.step_ms + next() % 300;
        let merchant = next() % 7;
        tx[key_hash(&card) as usize % t.tx_partitions].push(format!(r#"{{"card":"{card}","ts":{ts},"id":"t{i}","merchant":"m{merchant}"}}"#).into_bytes());
        if next() % 4 == 0 {
            let country = ["FR", "DE", "IT"][(next() % 3) as usize];
            let at = ts - next() % 400;
            logins[key_hash(&card) as usize % t.login_partitions]
                .push(format!(r#"{{"card":"{card}","ts":{at},"id":"l{i}","country":"{country}"}}"#).into_bytes());
        }
        if i % t.garbage_every == 0 {
            tx[(i as usize) % t.tx_partitions].push(b"\xff\xfe".to_vec());
            logins[(i as usize) % t.login_partitions].push(format!(r#"{{"card":"{card}","ts":"yesterday"}}"#).into_bytes());
        }
    }
    (tx, logins)
}
