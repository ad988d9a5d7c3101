//! Replicas outside a key's k closest (leftovers) under churn: the record
//! must reach the k closest before the last leftover lets it go, and a
//! replica must not take dead contacts in its table for closer holders.

use super::*;

const K: usize = 4;

fn cfg(_: usize) -> Config {
    Config {
        k: K,
        replicate_interval: Duration::from_secs(60),
        refresh_interval: Duration::from_secs(3600),
        republish_interval: Duration::from_secs(3600),
        ..Config::default()
    }
}

/// A joined network of 16 in which only the nodes ranked k to 2k - 1 by
/// distance to `key` hold `value`; the nodes by that distance.
fn held_past_the_k_closest(key: Key, value: &Value) -> (Net, Vec<usize>) {
    let mut net = Net::new(16, cfg);
    net.bootstrap_all();
    let mut ranked: Vec<usize> = (0..16).collect();
    ranked.sort_by_key(|&i| net.nodes[i].id().distance(&key));
    for &i in &ranked[K..2 * K] {
        net.nodes[i].store.put(key, value.clone(), None, net.now, Duration::from_secs(86_400)).unwrap();
    }
    (net, ranked)
}

fn holds(net: &Net, i: usize, key: &Key) -> bool {
    net.nodes[i].store().get(key, net.now).is_some()
}

#[test]
fn a_record_held_only_by_leftovers_reaches_the_k_closest_before_they_drop_it() {
    let key = NodeId::for_key("leftovers only");
    let value = Value::Str("still here".into());
    // The k closest joined without a handover (say, a chain of newcomers
    // each nearer than every holder): only the next k hold the record.
    let (mut net, ranked) = held_past_the_k_closest(key, &value);
    let (closest, leftovers) = (&ranked[..K], &ranked[K..2 * K]);
    net.advance(Duration::from_secs(200));
    for &i in closest {
        assert!(holds(&net, i, &key), "node of rank {} lacks the record", ranked.iter().position(|&r| r == i).unwrap());
    }
    // The k closest replicate to the k others nearest (rank k among
    // them); past that, leftovers let their copies go.
    for &i in &leftovers[1..] {
        assert!(!holds(&net, i, &key), "a leftover kept its copy");
    }
    let reader = ranked[15];
    assert_eq!(net.get(reader, key), Some(value));
    let handed: u64 = net.nodes.iter().map(|e| e.stats().handed_down).sum();
    assert!(handed >= K as u64, "handed down {handed} copies");
}

#[test]
fn a_replica_whose_closer_contacts_are_dead_keeps_and_re_replicates_its_copy() {
    let key = NodeId::for_key("ghosts");
    let value = Value::Str("kept".into());
    let (mut net, ranked) = held_past_the_k_closest(key, &value);
    let (dead, holders) = (&ranked[..K], &ranked[K..2 * K]);
    // The k closest die; the holders' tables still list them (each had
    // answered every holder: settled contacts, nothing to recheck).
    for &h in holders {
        for &d in dead {
            let contact = Contact::new(net.nodes[d].id(), addr(d));
            net.nodes[h].learn_answered(net.now, contact);
            net.nodes[h].svc.routing.mark_answered(&contact.id, net.now + crate::routing::freshness::SETTLE);
        }
        assert!(!net.nodes[h].routing().would_be_among_closest(&net.nodes[h].id(), &key, K));
    }
    for &i in dead {
        net.down.insert(i);
    }
    net.advance(Duration::from_secs(200));
    for &i in holders {
        assert!(holds(&net, i, &key), "a holder dropped its copy for dead contacts");
    }
    assert_eq!(net.get(ranked[15], key), Some(value));
}
