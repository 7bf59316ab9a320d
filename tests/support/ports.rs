//! Ports for the servers a test starts (brokers, registries, cluster peers).
//!
//! A port the kernel hands out for `bind(":0")` comes from the ephemeral range,
//! the same range that outgoing connections take their local ports from: between
//! the test reading it and a JVM binding it seconds later, a Kafka client's
//! connection may take it. These ports come from below that range instead, at
//! random, free when chosen, and never twice in one test process.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The low end of the kernel's ephemeral port range (32768 where unknown).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32_768)
}

/// A port on 127.0.0.1 that is free now, outside the ephemeral range, not given
/// before in this process.
pub fn quiet_port() -> u16 {
    let low = 15_000u16;
    let high = ephemeral_low().max(low + 2_000);
    let mut given = GIVEN.lock().unwrap();
    let given = given.get_or_insert_with(HashSet::new);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64 ^ (std::process::id() as u64) << 32;
    let mut x = seed | 1;
    for _ in 0..10_000 {
        // xorshift: a different sequence per process and start
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = low + (x % (high - low) as u64) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("0.0.0.0", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port in {low}..{high}");
}

/// `n` addresses `127.0.0.1:PORT` for the processes of a timely cluster, each
/// port a [`quiet_port`].
pub fn loopback_hosts(n: usize) -> Vec<String> {
    (0..n).map(|_| format!("127.0.0.1:{}", quiet_port())).collect()
}
