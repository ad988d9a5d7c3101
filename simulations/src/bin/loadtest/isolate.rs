//! A loopback address of the run's own, so benchmark nodes hear only each
//! other.
//!
//! Other programs on the machine (test suites, other benchmarks) run DHT
//! nodes on 127.0.0.1 too. When one of their nodes stops, its peers keep
//! sending to its port, and the OS may hand that port to one of our nodes,
//! which then learns foreign contacts and waits on their timeouts. Binding
//! every node of a run to an address such as 127.83.41.1 (all of 127/8 is
//! loopback on Linux) keeps such strays out: they are addressed to 127.0.0.1.

use std::net::Ipv4Addr;

/// A loopback address drawn from `seed`, never in 127.0.0.0/16.
pub fn run_address(seed: u64) -> Ipv4Addr {
    let a = 1 + (seed % 254) as u8;
    let b = ((seed / 254) % 256) as u8;
    Ipv4Addr::new(127, a, b, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_addresses_are_loopback_and_avoid_127_0() {
        for seed in [0, 1, 253, 254, u64::MAX] {
            let ip = run_address(seed);
            assert!(ip.is_loopback() && ip.octets()[1] != 0, "{ip}");
        }
        assert_ne!(run_address(1), run_address(2));
    }
}
