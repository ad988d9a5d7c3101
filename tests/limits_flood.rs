//! Floods on loopback, each from its own /24 of 127.0.0.0/8 with the
//! loopback exemption off: one source pinging at full speed is throttled
//! while a peer elsewhere keeps >= 95% of its pings answered; a store flood
//! and a provider flood from one source leave every legitimate record and
//! provider readable and report "0 accepted" once the quota is used up.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::{limited, Raw};
use kadmesh::engine::providers::ADD;
use kadmesh::id::NodeId;
use kadmesh::limits::{Limits, RateLimits};
use kadmesh::node::{Node, NodeHandle};
use kadmesh::wire::{self, Call, Datagram, Value};

async fn node(limits: Limits) -> NodeHandle {
    Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), limited(limits)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_is_throttled_while_another_peer_keeps_its_answers() {
    let n = node(Limits::default()).await;
    let to = n.local_addr();
    let flooder = Raw::bind([127, 0, 1, 1]).await;
    let ping = Raw::request(0, Call::Ping { sender: flooder.id });
    let flood = async {
        // Bounded: 30,000 datagrams, or 6 s, whichever comes first.
        let started = tokio::time::Instant::now();
        let mut sent = 0u32;
        while sent < 30_000 && started.elapsed() < Duration::from_secs(6) {
            flooder.sock.send_to(&ping, to).await.unwrap();
            sent += 1;
            if sent.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
        }
        sent
    };
    let good = Raw::bind([127, 0, 2, 1]).await;
    let serve_good = async {
        let mut answered = 0;
        for i in 0..100u32 {
            let (_, reply) = good.call(to, i, Call::Ping { sender: good.id }, Duration::from_secs(1)).await;
            answered += usize::from(reply.is_some());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        answered
    };
    let (sent, answered) = tokio::join!(flood, serve_good);
    let replies = flooder.drain(Duration::from_millis(500)).await;
    let flood_answered = replies.iter().filter(|d| matches!(wire::decode(d), Ok(Datagram::Response { .. }))).count();
    let stats = n.with_engine(|e, _| e.limit_stats()).await.unwrap();
    eprintln!("flood: {sent} sent, {flood_answered} answered; good peer: {answered}/100; {stats:?}");
    assert!(answered >= 95, "the good peer got {answered}/100 answers during the flood");
    assert!(stats.rate.dropped_ip > 0, "{stats:?}");
    assert!(
        flood_answered as u64 <= u64::from(sent) / 2,
        "the flooder got {flood_answered} of {sent} answered: most of its excess should be dropped"
    );
}

fn store(sender: NodeId, key: u32, bytes: usize) -> Call {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&key.to_be_bytes());
    Call::Store { sender, key: NodeId(k), value: Value::Bin(vec![7; bytes]) }
}

fn no_rate_limit() -> Limits {
    Limits { rate: RateLimits { enabled: false, ..RateLimits::default() }, ..Limits::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_flood_from_one_source_leaves_every_legitimate_record() {
    let n = node(no_rate_limit()).await;
    let to = n.local_addr();
    let mut legit = Vec::new();
    for (i, src) in (0..20u8).enumerate() {
        let peer = Raw::bind([127, 0, 10 + src, 1]).await;
        let (_, reply) =
            peer.call(to, i as u32, store(peer.id, 1_000_000 + i as u32, 4000), Duration::from_secs(2)).await;
        assert!(reply.is_some(), "legitimate store {i} unanswered");
        legit.push(1_000_000 + i as u32);
    }
    let flooder = Raw::bind([127, 0, 3, 1]).await;
    let quota = Limits::default().records.per_ip;
    let mut accepted = 0;
    for i in 0..3_000u32 {
        let (_, reply) = flooder.call(to, i, store(flooder.id, i, 8000), Duration::from_secs(2)).await;
        let body = match reply.map(|r| wire::decode(&r)) {
            Some(Ok(Datagram::Response { body, .. })) => body,
            other => panic!("store {i}: {other:?}"),
        };
        accepted += usize::from(body == Value::Bool(true));
    }
    let (held, refused) = n
        .with_engine(move |e, now| {
            let keys = legit.iter().map(|k| {
                let mut key = [0u8; 20];
                key[..4].copy_from_slice(&k.to_be_bytes());
                NodeId(key)
            });
            (keys.filter(|k| e.store().get(k, now).is_some()).count(), e.limit_stats().record_quota_refusals)
        })
        .await
        .unwrap();
    eprintln!("store flood: {accepted} of 3000 accepted (per-IP share: {quota:?}), {refused} refused");
    assert_eq!(held, 20, "a legitimate record was pushed out");
    assert!(accepted <= quota.bytes / 8000 + 1 && accepted <= quota.items, "{accepted} accepted");
    assert_eq!(refused as usize, 3_000 - accepted, "every refusal is a quota refusal, answered false");
}

fn provider_add(sender: NodeId, key: NodeId, ids: impl Iterator<Item = String>) -> Call {
    let entries = ids.map(|id| Value::Array(vec![Value::from(id), Value::Int(1), Value::Int(3600), Value::F64(0.1)]));
    let args = vec![Value::Bin(sender.0.to_vec()), Value::Bin(key.0.to_vec()), Value::Array(entries.collect())];
    Call::Other { name: ADD.into(), args }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_flood_from_one_source_leaves_every_legitimate_provider() {
    let n = node(no_rate_limit()).await;
    let to = n.local_addr();
    let service = NodeId::for_key("service:ocr");
    let worker = Raw::bind([127, 0, 20, 1]).await;
    let legit: Vec<String> = (0..20).map(|i| format!("real-worker-{i}")).collect();
    let (_, reply) =
        worker.call(to, 0, provider_add(worker.id, service, legit.iter().cloned()), Duration::from_secs(2)).await;
    assert!(reply.is_some());
    let flooder = Raw::bind([127, 0, 4, 1]).await;
    let mut counts = Vec::new();
    for i in 0..100u32 {
        let ids = (0..256).map(|j| format!("ghost-{i}-{j}"));
        let key = if i % 2 == 0 { service } else { NodeId::for_key(&format!("service:s{i}")) };
        let (_, reply) = flooder.call(to, i, provider_add(flooder.id, key, ids), Duration::from_secs(2)).await;
        let Some(Ok(Datagram::Response { body: Value::Int(n), .. })) = reply.map(|r| wire::decode(&r)) else {
            panic!("provider write {i} unanswered")
        };
        counts.push(n);
    }
    let accepted: i64 = counts.iter().sum();
    let quota = Limits::default().providers.per_ip.items as i64;
    eprintln!("provider flood: {accepted} of 25,600 ghost entries accepted (per-IP share {quota})");
    assert_eq!(accepted, quota, "the flooder got exactly its share");
    assert_eq!(counts.last(), Some(&0), "a write past the quota reports 0 accepted");
    let live: Vec<String> = n
        .with_engine(move |e, now| e.providers().range(&service, None, now).map(|p| p.id.clone()).collect())
        .await
        .unwrap();
    assert!(legit.iter().all(|id| live.contains(id)), "a legitimate provider was pushed out");
}
