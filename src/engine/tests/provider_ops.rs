//! The provider operations: `provider_write` (batching as an engine
//! deadline, local copy, writes to kadmesh peers) and `provider_read`
//! (paged reads from replicas, merge, a second round when they disagree).

use super::*;
use crate::engine::providers::client::Announce;

const KEY: Key = NodeId([0x5a; 20]);

fn item(id: &str, version: u64) -> Announce {
    Announce { id: id.into(), version, ttl: Duration::from_secs(600), load: None, signature: None }
}

fn write(net: &mut Net, node: usize, items: Vec<Announce>, remove: bool) -> ProviderWriteOutcome {
    let f = |e: &mut Engine, now| e.provider_write(now, KEY, items, remove, Duration::ZERO);
    match net.run(node, f, Duration::from_secs(60)) {
        Outcome::ProviderWrite(w) => w,
        o => panic!("unexpected {o:?}"),
    }
}

fn read(net: &mut Net, node: usize, replicas: usize) -> ProviderReadOutcome {
    match net.run(node, |e, now| e.provider_read(now, KEY, replicas), Duration::from_secs(60)) {
        Outcome::ProviderRead(r) => r,
        o => panic!("unexpected {o:?}"),
    }
}

fn live(r: &ProviderReadOutcome) -> Vec<String> {
    let mut ids: Vec<String> = r.entries.values().filter(|e| e.is_live()).map(|e| e.id.clone()).collect();
    ids.sort();
    ids
}

/// Nodes holding `id` in the set under [`KEY`].
fn holding(net: &Net, id: &str) -> usize {
    net.nodes.iter().filter(|e| e.providers().range(&KEY, None, net.now).any(|p| p.id == id)).count()
}

#[test]
fn a_write_reaches_the_closest_kadmesh_peers_and_any_node_reads_it_back() {
    let mut net = Net::new(20, small);
    net.bootstrap_all();
    let w = write(&mut net, 3, vec![item("w1", 1), item("w2", 1)], false);
    assert!(w.acked >= 4, "acked by {}", w.acked);
    assert_eq!(holding(&net, "w1"), w.acked, "every ack is a replica holding the entry");
    let r = read(&mut net, 11, 3);
    assert_eq!(live(&r), ["w1", "w2"]);
    assert!(r.replicas >= 3, "{} replicas read completely", r.replicas);
    assert_eq!(r.pages_failed, 0);
    // A tombstone with a newer version removes it for readers.
    let _ = write(&mut net, 5, vec![item("w1", 2)], true);
    assert_eq!(live(&read(&mut net, 17, 3)), ["w2"]);
}

#[test]
fn writes_within_the_window_travel_in_one_batch_and_all_get_its_result() {
    let mut net = Net::new(20, small);
    net.bootstrap_all();
    let window = Duration::from_millis(200);
    let now = net.now;
    let a = net.nodes[3].provider_write(now, KEY, vec![item("a", 1)], false, window);
    let b = net.nodes[3].provider_write(now, KEY, vec![item("b", 1)], false, window);
    let other = net.nodes[3].provider_write(now, KEY, vec![item("c", 1)], true, window);
    assert_eq!(net.nodes[3].poll_timeout(), Some(now + window), "the batch's deadline is the engine's next timer");
    assert_eq!(net.nodes[3].ops_in_progress(), 0, "nothing runs before the window closes");
    net.advance(Duration::from_secs(10));
    let outcome = |q: QueryId| {
        let pos = net.events.iter().position(|(n, e)| *n == 3 && e.id == q).expect("reported");
        match &net.events[pos].1.outcome {
            Outcome::ProviderWrite(w) => *w,
            o => panic!("unexpected {o:?}"),
        }
    };
    let (wa, wb) = (outcome(a), outcome(b));
    assert_eq!(wa.acked, wb.acked, "the joined write reports the batch's replicas");
    assert!(wa.sent > 0 && wb.sent == 0, "requests are counted once, by the batch's first write");
    assert!(wa.acked >= 4);
    let _ = outcome(other);
    assert_eq!((holding(&net, "a"), holding(&net, "b")), (wa.acked, wa.acked), "one batch, same replicas");
}

#[test]
fn stock_peers_get_no_writes_and_are_never_read() {
    let mut net = Net::new(12, small);
    net.bootstrap_all();
    // Node 0 takes everyone for a stock peer.
    let ids: Vec<NodeId> = net.nodes.iter().map(Engine::id).collect();
    for id in &ids {
        net.nodes[0].peers.insert(*id, PeerKind::Base);
    }
    let w = write(&mut net, 0, vec![item("w", 1)], false);
    assert_eq!((w.sent, w.acked), (0, holding(&net, "w")));
    let r = read(&mut net, 0, 3);
    assert_eq!(r.pages_sent, 0);
}

/// Nodes by distance to [`KEY`], closest first.
fn by_distance(net: &Net) -> Vec<usize> {
    let mut order: Vec<usize> = (0..net.nodes.len()).collect();
    order.sort_by_key(|&i| net.nodes[i].id().distance(&KEY));
    order
}

#[test]
fn replicas_that_disagree_bring_a_second_round() {
    let mut net = Net::new(20, small);
    net.bootstrap_all();
    let order = by_distance(&net);
    let (lost, reader) = (order[0], order[19]);
    let _ = write(&mut net, 3, vec![item("w1", 1)], false);
    let agreed = read(&mut net, reader, 2);
    assert_eq!((live(&agreed), agreed.pages_sent), (vec!["w1".to_string()], 2), "replicas that agree: one round");
    // The closest replica misses the second write.
    net.down.insert(lost);
    let _ = write(&mut net, 3, vec![item("w2", 1)], false);
    net.down.remove(&lost);
    let at_lost = |net: &Net, id: &str| net.nodes[lost].providers().range(&KEY, None, net.now).any(|p| p.id == id);
    assert!(at_lost(&net, "w1") && !at_lost(&net, "w2"));
    let r = read(&mut net, reader, 2);
    assert_eq!(live(&r), ["w1", "w2"]);
    assert_eq!(r.pages_sent, 4, "a replica that lacked a merged entry brings a second round");
}

#[test]
fn a_replica_that_never_answers_fails_its_page_and_the_read_still_ends() {
    let mut net = Net::new(20, small);
    net.bootstrap_all();
    let _ = write(&mut net, 3, vec![item("w1", 1)], false);
    let reader = 19;
    let dead = net.by_addr[&net.nodes[reader].closest(&KEY, 1)[0].addr];
    if dead != reader {
        net.down.insert(dead);
    }
    let r = read(&mut net, reader, 3);
    assert_eq!(live(&r), ["w1"]);
}
