//! Where a worker's records come from: the [`RecordSource`] trait, partition
//! ownership, and an in-memory source for tests and benchmarks. The Kafka source
//! lives in `kafka::source`.

use crate::metrics::Metrics;

/// One input record, borrowed from the source's buffers.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    pub partition: u32,
    pub offset: i64,
    pub payload: Option<&'a [u8]>,
}

/// What one poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollStatus {
    /// Some records were read; poll again soon.
    Records(usize),
    /// Nothing to read right now.
    Idle,
    /// The source is exhausted (bounded runs only).
    Finished,
}

/// A worker's share of an input topic. `poll` must never block.
pub trait RecordSource {
    fn topic(&self) -> &str;
    /// The partitions this worker owns, in a fixed order.
    fn partitions(&self) -> &[u32];
    /// Reads up to `max` records, calling `each` for every one, in offset order per partition.
    fn poll(&mut self, max: usize, each: &mut dyn FnMut(RecordRef<'_>)) -> PollStatus;
    /// Periodic bookkeeping (consumer lag and the like).
    fn report(&mut self, _metrics: &Metrics) {}
    /// Installs `wake`, to be called from any thread when records arrive after
    /// the source was found empty; returns whether the source supports it (then an
    /// idle source need not poll often).
    fn set_wakeup(&mut self, _wake: Box<dyn Fn() + Send + Sync>) -> bool {
        false
    }
    /// Next offset to read per owned partition: what is safe to commit once every
    /// output derived from earlier offsets has been delivered.
    fn positions(&self) -> Vec<(u32, i64)>;
    /// Commits `positions()` for the source's consumer group, where it has one
    /// (the labels source; event sources are committed by the checkpoint coordinator).
    fn commit(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The partitions worker `index` of `peers` owns: `p % peers == index`. The rule
/// holds across processes too (timely numbers workers globally).
pub fn owned_partitions(partitions: u32, index: usize, peers: usize) -> Vec<u32> {
    (0..partitions).filter(|p| *p as usize % peers == index).collect()
}

/// An in-memory topic: payloads per partition, read round-robin in chunks.
pub struct MemorySource {
    topic: String,
    owned: Vec<u32>,
    data: Vec<std::sync::Arc<Vec<Option<Vec<u8>>>>>,
    next: Vec<usize>,
    turn: usize,
}

impl MemorySource {
    /// `topic_data[p]` holds partition `p`'s payloads in offset order; the worker
    /// reads only the partitions it owns.
    pub fn new(topic: &str, topic_data: &[std::sync::Arc<Vec<Option<Vec<u8>>>>], index: usize, peers: usize) -> Self {
        let owned = owned_partitions(topic_data.len() as u32, index, peers);
        let data = owned.iter().map(|p| topic_data[*p as usize].clone()).collect();
        MemorySource { topic: topic.to_owned(), next: vec![0; owned.len()], owned, data, turn: 0 }
    }
    /// Resumes the partitions named in `positions` at their next offsets (a
    /// restored checkpoint's); the others start at the beginning.
    pub fn starting_at(mut self, positions: &[(u32, i64)]) -> Self {
        for (p, offset) in positions {
            if let Some(slot) = self.owned.iter().position(|o| o == p) {
                self.next[slot] = (*offset).clamp(0, self.data[slot].len() as i64) as usize;
            }
        }
        self
    }
}

impl RecordSource for MemorySource {
    fn topic(&self) -> &str {
        &self.topic
    }
    fn partitions(&self) -> &[u32] {
        &self.owned
    }
    fn poll(&mut self, max: usize, each: &mut dyn FnMut(RecordRef<'_>)) -> PollStatus {
        let mut read = 0;
        for _ in 0..self.owned.len() {
            let slot = self.turn % self.owned.len();
            self.turn += 1;
            let records = &self.data[slot];
            let start = self.next[slot];
            let end = records.len().min(start + (max - read));
            for (i, payload) in records[start..end].iter().enumerate() {
                each(RecordRef { partition: self.owned[slot], offset: (start + i) as i64, payload: payload.as_deref() });
            }
            self.next[slot] = end;
            read += end - start;
            if read >= max {
                break;
            }
        }
        if read > 0 {
            PollStatus::Records(read)
        } else {
            PollStatus::Finished
        }
    }
    fn positions(&self) -> Vec<(u32, i64)> {
        self.owned.iter().zip(&self.next).map(|(p, n)| (*p, *n as i64)).collect()
    }
}

/// Records of one topic handed out over wall time: each record carries its
/// position in a publishing order shared by several sources (events and labels),
/// and a poll returns the records whose position the clock (`per_ms` positions per
/// millisecond since `start`) has reached; without a clock, all at once (a
/// backfill). For comparing a paced run with a burst over the same records.
pub struct PacedSource {
    topic: String,
    owned: Vec<u32>,
    data: Vec<std::sync::Arc<Vec<(usize, Vec<u8>)>>>,
    next: Vec<usize>,
    clock: Option<(std::time::Instant, f64)>,
}

impl PacedSource {
    /// `parts[p]`: partition `p`'s (position, payload) in offset order; the worker
    /// `index` of `peers` reads the partitions it owns.
    pub fn new(topic: &str, parts: &[std::sync::Arc<Vec<(usize, Vec<u8>)>>], index: usize, peers: usize, clock: Option<(std::time::Instant, f64)>) -> Self {
        let owned = owned_partitions(parts.len() as u32, index, peers);
        let data = owned.iter().map(|p| parts[*p as usize].clone()).collect();
        PacedSource { topic: topic.into(), next: vec![0; owned.len()], owned, data, clock }
    }
}

impl RecordSource for PacedSource {
    fn topic(&self) -> &str {
        &self.topic
    }
    fn partitions(&self) -> &[u32] {
        &self.owned
    }
    fn poll(&mut self, max: usize, each: &mut dyn FnMut(RecordRef<'_>)) -> PollStatus {
        let published = self.clock.map_or(usize::MAX, |(start, per_ms)| (start.elapsed().as_secs_f64() * 1000.0 * per_ms) as usize);
        // a share of `max` per partition, as a consumer fetches from each
        let share = (max / self.owned.len().max(1)).max(1);
        let mut read = 0;
        for slot in 0..self.owned.len() {
            let mut taken = 0;
            while read < max && taken < share {
                let Some((position, payload)) = self.data[slot].get(self.next[slot]) else { break };
                if *position > published {
                    break;
                }
                each(RecordRef { partition: self.owned[slot], offset: self.next[slot] as i64, payload: Some(payload) });
                self.next[slot] += 1;
                read += 1;
                taken += 1;
            }
        }
        let done = self.next.iter().zip(&self.data).all(|(n, d)| *n >= d.len());
        match (read, done) {
            (0, true) => PollStatus::Finished,
            (0, false) => PollStatus::Idle,
            _ => PollStatus::Records(read),
        }
    }
    fn positions(&self) -> Vec<(u32, i64)> {
        self.owned.iter().zip(&self.next).map(|(p, n)| (*p, *n as i64)).collect()
    }
}
