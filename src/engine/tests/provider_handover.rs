//! Provider sets handed to a contact that has just become one of a set's
//! k closest (`engine::provider_handover`): a node joining next to the key,
//! and a replica back after missing writes while it was unreachable.

use super::provider_ops::{holding, item, write, KEY};
use super::*;

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

/// Twenty nodes that know each other, and `n` providers written to the set
/// under [`KEY`] by node 3 (their ids returned).
fn with_set(n: usize) -> (Net, Vec<String>) {
    let mut net = Net::new(20, small);
    net.bootstrap_all();
    let ids = ids("w", n);
    let w = write(&mut net, 3, ids.iter().map(|id| item(id, 1)).collect(), false);
    assert!(w.acked >= 4);
    (net, ids)
}

/// An id nearer [`KEY`] than any node's of [`with_set`].
fn next_to_key() -> NodeId {
    let mut id = KEY;
    id.0[19] ^= 1;
    id
}

/// Whether node `i` holds every id of `ids` in the set under [`KEY`].
fn holds_all(net: &Net, i: usize, ids: &[String]) -> bool {
    let now = net.now;
    ids.iter().all(|id| net.nodes[i].providers().range(&KEY, None, now).any(|p| &p.id == id))
}

#[test]
fn a_node_joining_next_to_the_key_is_handed_the_set() {
    let (mut net, ids) = with_set(40);
    let newcomer = net.add_with_id(next_to_key(), small(0));
    let seed = [addr(0)];
    let _ = net.run(newcomer, |e, now| e.bootstrap(now, &seed), Duration::from_secs(30));
    net.advance(Duration::from_secs(5));
    assert!(holds_all(&net, newcomer, &ids), "the key's new closest node holds the set");
    assert!(net.nodes.iter().any(|e| e.stats().provider_handovers > 0));
}

#[test]
fn a_replica_back_from_an_outage_is_handed_what_was_written_meanwhile() {
    let (mut net, before) = with_set(1);
    let mut replicas: Vec<usize> = (0..20).filter(|&i| i != 3).collect();
    replicas.sort_by_key(|&i| net.nodes[i].id().distance(&KEY));
    let away = replicas[0];
    assert!(holding(&net, &before[0]) >= 4 && holds_all(&net, away, &before), "the key's closest is a replica");
    net.down.insert(away);
    let later = ids("later", 12);
    let _ = write(&mut net, 3, later.iter().map(|id| item(id, 1)).collect(), false);
    // The others notice it is gone (a write's timeout and its check ping) and forget it.
    net.advance(Duration::from_secs(30));
    assert!(!holds_all(&net, away, &later));
    net.down.remove(&away);
    // Lost contacts are asked again every 10 s; an answer brings it back.
    net.advance(Duration::from_secs(60));
    assert!(holds_all(&net, away, &later), "back among the key's closest, it holds what it missed");
}

#[test]
fn only_peers_that_speak_the_procedures_are_handed_sets_and_once_a_minute() {
    let (mut net, _) = with_set(10);
    let mut holders: Vec<usize> = (0..20).filter(|&i| net.nodes[i].providers().live(&KEY, net.now) > 0).collect();
    holders.sort_by_key(|&i| net.nodes[i].id().distance(&KEY));
    let r = holders[0];
    let id = next_to_key();
    let newcomer = Contact::new(id, SocketAddr::from(([10, 9, 9, 9], 8468)));
    let handed = |net: &mut Net| {
        let now = net.now;
        net.nodes[r].hand_over_providers(now, newcomer);
        let mut entries = 0;
        while let Some(t) = net.nodes[r].poll_transmit() {
            if let Ok(crate::wire::Datagram::Request { call: Call::Other { name, args }, .. }) =
                crate::wire::decode(&t.payload)
            {
                if t.to == newcomer.addr && name == crate::engine::providers::ADD {
                    entries += args.get(2).and_then(|v| v.as_array()).map_or(0, |a| a.len());
                }
            }
        }
        entries
    };
    net.nodes[r].peers.insert(id, PeerKind::Base);
    assert_eq!(handed(&mut net), 0, "a stock peer does not know the procedures");
    net.nodes[r].peers.insert(id, PeerKind::Extended);
    assert_eq!(handed(&mut net), 10, "the whole set, to one of ours");
    net.advance(Duration::from_secs(30));
    assert_eq!(handed(&mut net), 0, "not again within a minute");
    net.advance(Duration::from_secs(31));
    assert_eq!(handed(&mut net), 10);
}
