//! Request kinds as counted and labelled, and addresses compared across
//! IPv4 and IPv6.

use super::*;
use crate::engine::{Stats, RPC_LABELS};

const KINDS: [RpcKind; 6] =
    [RpcKind::Ping, RpcKind::Store, RpcKind::FindNode, RpcKind::FindValue, RpcKind::Stun, RpcKind::Extension];

#[test]
fn each_kind_is_counted_under_its_own_label() {
    for kind in KINDS {
        let mut stats = Stats::default();
        stats.count_sent(kind);
        let slot = stats.sent.iter().position(|&n| n == 1).unwrap();
        assert_eq!(RPC_LABELS[slot], kind.label(), "{kind:?}");
    }
}

#[test]
fn plain_ipv6_is_left_alone_and_mapped_ipv4_is_the_same_endpoint() {
    let v6: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
    assert_eq!(normalize(v6), v6);
    assert!(same_endpoint(v6, v6));
    let mapped: SocketAddr = "[::ffff:10.0.0.1]:4000".parse().unwrap();
    assert!(same_endpoint(mapped, "10.0.0.1:4000".parse().unwrap()));
    assert!(!same_endpoint(v6, "10.0.0.1:4000".parse().unwrap()));
}
