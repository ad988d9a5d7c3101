//! The machine's loopback round-trip ceiling, measured in the same run and
//! on the same tokio runtime as the Rust side, and where our lookups stand
//! against it.
//!
//! One echo task answers every 100-byte request with an 800-byte reply (a
//! `find_node` request and a reply of 20 contacts are about that size);
//! `in_flight` clients, each on its own socket as every node has one, send
//! a request and wait for its reply, again and again. The round trips per
//! second that gives, divided by the RPCs one lookup sends, is the most
//! lookups per second any implementation could do here with UDP and tokio.
//!
//! The same echo spread over as many sockets as there are nodes
//! ([`measure_spread`]), each answered by its own task, is the ceiling of a
//! process that hosts that many nodes: one echo socket drains many queued
//! requests per wakeup, while each of a thousand nodes wakes for about one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Bytes of each echo request.
pub const REQUEST: usize = 100;
/// Bytes of each echo reply.
pub const REPLY: usize = 800;
/// How long one client waits for a reply before sending the next request
/// (a datagram lost in an overflowing buffer must not stall it).
const REPLY_WAIT: Duration = Duration::from_millis(200);

/// What the echo measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ceiling {
    /// Round trips completed per second.
    pub round_trips_per_s: f64,
    /// Requests in flight.
    pub in_flight: usize,
    /// Seconds measured.
    pub secs: f64,
}

/// Runs the echo on `host` for `secs` with `in_flight` clients; must be
/// called inside a tokio runtime.
pub async fn measure(host: std::net::IpAddr, in_flight: usize, secs: f64) -> Result<Ceiling, String> {
    measure_spread(host, in_flight, secs, 1).await
}

/// [`measure`] with `servers` echo sockets, each on its own task; every
/// client sends each next request to the next server in turn.
pub async fn measure_spread(
    host: std::net::IpAddr,
    in_flight: usize,
    secs: f64,
    servers: usize,
) -> Result<Ceiling, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut echoes = JoinSet::new();
    let mut addrs = Vec::new();
    for _ in 0..servers.max(1) {
        let server = UdpSocket::bind(SocketAddr::new(host, 0)).await.map_err(|e| format!("echo bind: {e}"))?;
        addrs.push(server.local_addr().map_err(|e| e.to_string())?);
        echoes.spawn(echo(server, Arc::clone(&stop)));
    }
    let addrs: Arc<[SocketAddr]> = addrs.into();
    let mut clients = JoinSet::new();
    for i in 0..in_flight.max(1) {
        let socket = UdpSocket::bind(SocketAddr::new(host, 0)).await.map_err(|e| format!("client bind: {e}"))?;
        clients.spawn(client(socket, (Arc::clone(&addrs), i), Arc::clone(&stop), Arc::clone(&done)));
    }
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs.max(0.01))).await;
    let count = done.load(Ordering::Relaxed);
    let elapsed = began.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    // Clients stop within one REPLY_WAIT; the echoes are aborted (they may
    // be parked in recv with nobody left to send).
    while clients.join_next().await.is_some() {}
    echoes.abort_all();
    Ok(Ceiling { round_trips_per_s: count as f64 / elapsed.max(1e-9), in_flight: in_flight.max(1), secs: elapsed })
}

async fn echo(socket: UdpSocket, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 2048];
    let reply = [7u8; REPLY];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((_, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// Sends to the servers in turn, starting at the `start`-th.
async fn client(
    socket: UdpSocket,
    (servers, start): (Arc<[SocketAddr]>, usize),
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let request = [1u8; REQUEST];
    let mut buf = [0u8; 2048];
    let mut next = start;
    while !stop.load(Ordering::Relaxed) {
        let server = servers[next % servers.len()];
        next = next.wrapping_add(1);
        if socket.send_to(&request, server).await.is_err() {
            return;
        }
        if let Ok(Ok((REPLY, _))) = tokio::time::timeout(REPLY_WAIT, socket.recv_from(&mut buf)).await {
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Our lookups against the ceiling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Standing {
    /// Lookups (gets) per second we did.
    pub lookups_per_s: f64,
    /// Lookup requests (`find_node`, `find_value`) sent during the gets,
    /// per get: what the ceiling is divided by.
    pub rpcs_per_lookup: f64,
    /// Requests of every kind sent during the gets, per get (lookups plus
    /// contact checks, hellos, stores: every one a round trip too).
    pub requests_per_lookup: f64,
    /// Ceiling round trips per second divided by RPCs per lookup.
    pub ceiling_lookups_per_s: f64,
    /// `lookups_per_s / ceiling_lookups_per_s`.
    pub fraction: f64,
}

/// Where `gets` lookups in `wall_s` seconds that sent `rpcs` lookup requests
/// and `requests` requests in all stand against `ceiling`; zeros where a
/// figure is undefined.
pub fn standing(gets: usize, wall_s: f64, rpcs: u64, requests: u64, ceiling: &Ceiling) -> Standing {
    let lookups_per_s = if wall_s > 0.0 { gets as f64 / wall_s } else { 0.0 };
    let per_get = |n: u64| if gets > 0 { n as f64 / gets as f64 } else { 0.0 };
    let (rpcs_per_lookup, requests_per_lookup) = (per_get(rpcs), per_get(requests));
    let ceiling_lookups_per_s = if rpcs_per_lookup > 0.0 { ceiling.round_trips_per_s / rpcs_per_lookup } else { 0.0 };
    let fraction = if ceiling_lookups_per_s > 0.0 { lookups_per_s / ceiling_lookups_per_s } else { 0.0 };
    Standing { lookups_per_s, rpcs_per_lookup, requests_per_lookup, ceiling_lookups_per_s, fraction }
}

/// The most lookups per second nodes that did no work at all could reach
/// at `s`'s requests per lookup, each request a round trip at the spread
/// ceiling's rate, and that bound as a fraction of the one-socket ceiling
/// (the fraction [`Standing::fraction`] is judged against).
pub fn zero_work_bound(s: &Standing, spread: &Ceiling) -> (f64, f64) {
    if s.requests_per_lookup <= 0.0 || s.ceiling_lookups_per_s <= 0.0 {
        return (0.0, 0.0);
    }
    let lookups = spread.round_trips_per_s / s.requests_per_lookup;
    (lookups, lookups / s.ceiling_lookups_per_s)
}

/// The lines `versus` prints about the spread ceiling: every request a
/// node sends is one of its round trips, so requests of every kind per
/// lookup are what it is divided by. The second line bounds what any
/// speed-up of our own code could bring, at these requests per lookup.
pub fn report_spread(s: &Standing, c: &Ceiling, servers: usize) -> String {
    let per_s = s.lookups_per_s * s.requests_per_lookup;
    let share = if c.round_trips_per_s > 0.0 { per_s / c.round_trips_per_s } else { 0.0 };
    let (bound, bound_fraction) = zero_work_bound(s, c);
    format!(
        "spread ceiling: {:.0} round trips/s over {servers} echo sockets (one per node); our requests of every \
         kind made {per_s:.0} round trips/s, {share:.2} of it\n\
         with no work in our code, {:.2} requests per lookup at the spread ceiling allow at most {bound:.0} \
         lookups/s, {bound_fraction:.2} of the one-socket ceiling",
        c.round_trips_per_s, s.requests_per_lookup
    )
}

/// The lines `versus` prints about the ceiling.
pub fn report(s: &Standing, c: &Ceiling, threads: usize) -> String {
    format!(
        "loopback ceiling: {:.0} round trips/s ({REQUEST}-byte request, {REPLY}-byte reply, {} in flight, \
         {threads} tokio threads, {:.1} s)\n\
         lookups: {:.0}/s, {:.2} lookup RPCs per lookup, so the ceiling is {:.0} lookups/s; we reach {:.2} of it\n\
         requests of every kind sent during the gets, per lookup: {:.2}",
        c.round_trips_per_s,
        c.in_flight,
        c.secs,
        s.lookups_per_s,
        s.rpcs_per_lookup,
        s.ceiling_lookups_per_s,
        s.fraction,
        s.requests_per_lookup
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standing_divides_the_ceiling_by_rpcs_per_lookup() {
        let c = Ceiling { round_trips_per_s: 200_000.0, in_flight: 20, secs: 2.0 };
        let s = standing(2000, 0.2, 20_000, 50_000, &c);
        assert_eq!((s.lookups_per_s, s.rpcs_per_lookup, s.ceiling_lookups_per_s), (10_000.0, 10.0, 20_000.0));
        assert_eq!(s.requests_per_lookup, 25.0);
        assert!((s.fraction - 0.5).abs() < 1e-9);
        let none = standing(0, 0.0, 0, 0, &c);
        assert_eq!((none.lookups_per_s, none.rpcs_per_lookup, none.fraction), (0.0, 0.0, 0.0));
        assert!(report(&s, &c, 2).contains("we reach 0.50 of it"), "{}", report(&s, &c, 2));
    }

    #[test]
    fn the_spread_share_counts_requests_of_every_kind() {
        let c = Ceiling { round_trips_per_s: 100_000.0, in_flight: 20, secs: 2.0 };
        let s = standing(2000, 0.2, 20_000, 50_000, &c);
        let line = report_spread(&s, &c, 1000);
        assert!(line.contains("made 250000 round trips/s, 2.50 of it"), "{line}");
        assert!(line.contains("over 1000 echo sockets"), "{line}");
    }

    #[test]
    fn the_zero_work_bound_divides_the_spread_ceiling_by_requests_per_lookup() {
        let one = Ceiling { round_trips_per_s: 200_000.0, in_flight: 20, secs: 2.0 };
        let spread = Ceiling { round_trips_per_s: 125_000.0, in_flight: 20, secs: 2.0 };
        // 10 lookup RPCs and 12.5 requests per lookup: the one-socket ceiling is
        // 20,000 lookups/s, the spread one allows 10,000 of them, half of it.
        let s = standing(2000, 0.4, 20_000, 25_000, &one);
        assert_eq!(zero_work_bound(&s, &spread), (10_000.0, 0.5));
        let line = report_spread(&s, &spread, 1000);
        assert!(
            line.contains("12.50 requests per lookup at the spread ceiling allow at most 10000 lookups/s, 0.50 of"),
            "{line}"
        );
        assert_eq!(zero_work_bound(&standing(0, 0.0, 0, 0, &one), &spread), (0.0, 0.0));
    }

    #[test]
    fn a_spread_echo_completes_round_trips_on_loopback() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let c = rt.block_on(measure_spread("127.0.0.1".parse().unwrap(), 3, 0.2, 7)).unwrap();
        assert!(c.round_trips_per_s > 100.0, "{c:?}");
    }

    #[test]
    fn the_echo_completes_round_trips_on_loopback() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let c = rt.block_on(measure("127.0.0.1".parse().unwrap(), 4, 0.2)).unwrap();
        assert!(c.round_trips_per_s > 100.0, "{c:?}");
        assert_eq!(c.in_flight, 4);
    }
}
