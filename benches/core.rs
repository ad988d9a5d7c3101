//! Micro-benchmarks of the hot paths of the core: the wire codec, routing
//! table queries, the lookup state machine and signed worker records.
//!
//! Run with `cargo bench --bench core`; `cargo bench --bench core -- --test`
//! runs each once as a smoke test.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use kadmesh::contact::Contact;
use kadmesh::id::NodeId;
use kadmesh::lookup::{Lookup, LookupKind, Next, ALPHA};
use kadmesh::routing::{RoutingTable, K};
use kadmesh::time::Time;
use kadmesh::wire::{contacts_value, decode, Call, Datagram, MessageId, Value};
use rand::{rngs::StdRng, SeedableRng};

fn contacts(n: usize, seed: u64) -> Vec<Contact> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8468));
            Contact::new(NodeId::random(&mut rng), addr)
        })
        .collect()
}

/// A worker announcement of about 1 KiB, as the platform's workers write them.
fn json_1k() -> String {
    let mut s =
        String::from(r#"{"worker_id":"worker-gpu-001","tunnel_url":"https://w1.tunnel.example.net","services":["#);
    while s.len() < 1000 {
        s.push_str(r#""service-name","#);
    }
    s.push_str(r#""ocr"],"last_seen":1700000000}"#);
    s
}

fn codec(c: &mut Criterion) {
    let reply = Datagram::Response { id: MessageId([7; 20]), body: contacts_value(&contacts(20, 1)) };
    let reply_bytes = reply.encode().expect("reply encodes");
    c.bench_function("wire/encode find_node reply (20 contacts)", |b| b.iter(|| black_box(&reply).encode()));
    c.bench_function("wire/decode find_node reply (20 contacts)", |b| b.iter(|| decode(black_box(&reply_bytes))));

    let id = NodeId([1; 20]);
    let call = Call::Store { sender: id, key: NodeId::for_key("worker:worker-gpu-001"), value: Value::Str(json_1k()) };
    let store = Datagram::Request { id: MessageId([9; 20]), call };
    let store_bytes = store.encode().expect("store encodes");
    c.bench_function("wire/encode store request (1 KiB JSON)", |b| b.iter(|| black_box(&store).encode()));
    c.bench_function("wire/decode store request (1 KiB JSON)", |b| b.iter(|| decode(black_box(&store_bytes))));
}

fn table_with(local: NodeId, all: &[Contact]) -> RoutingTable {
    let mut t = RoutingTable::new(local, K, Time::ZERO);
    for c in all {
        // Full buckets park the rest in replacement caches, as in a live node.
        let _ = t.insert(*c, Time::ZERO);
    }
    t
}

fn routing(c: &mut Criterion) {
    let all = contacts(2000, 2);
    let table = table_with(NodeId([0x55; 20]), &all);
    let targets: Vec<NodeId> = contacts(64, 3).into_iter().map(|c| c.id).collect();
    let mut i = 0;
    c.bench_function(&format!("routing/closest 20 of {} contacts (2000 offered)", table.len()), |b| {
        b.iter(|| {
            i = (i + 1) % targets.len();
            table.closest(black_box(&targets[i]), K)
        })
    });
}

/// 1000 nodes, each with a real routing table of the others: every query is
/// answered at once with the responder's 20 closest contacts.
struct IdealNet {
    nodes: Vec<Contact>,
    tables: Vec<RoutingTable>,
}

impl IdealNet {
    fn new(n: usize) -> Self {
        let nodes = contacts(n, 4);
        let tables = nodes.iter().map(|c| table_with(c.id, &nodes)).collect();
        IdealNet { nodes, tables }
    }

    /// Runs one lookup from node 0 for `target`; returns the hops taken.
    fn run(&self, target: NodeId, index: &[(NodeId, usize)]) -> u32 {
        let me = &self.tables[0];
        let seeds = me.closest(&target, K);
        let mut lookup = Lookup::new(target, me.local_id(), LookupKind::FindNode, K, ALPHA, Duration::from_secs(1))
            .with_seeds(seeds);
        let now = Time::ZERO;
        let mut asked = Vec::new();
        loop {
            asked.clear();
            while let Next::Query(c) = lookup.next(now) {
                asked.push(c);
            }
            if asked.is_empty() {
                break;
            }
            for c in &asked {
                let i = index.binary_search_by_key(&c.id, |e| e.0).map_or(0, |p| index[p].1);
                lookup.on_nodes(&c.id, self.tables[i].closest(&target, K));
            }
        }
        lookup.finish().hops
    }
}

fn lookup(c: &mut Criterion) {
    let net = IdealNet::new(1000);
    let mut index: Vec<(NodeId, usize)> = net.nodes.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    index.sort();
    let targets: Vec<NodeId> = contacts(64, 5).into_iter().map(|c| c.id).collect();
    let mut i = 0;
    c.bench_function("lookup/full find_node over ideal 1000-node network", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % targets.len();
                targets[i]
            },
            |target| net.run(target, &index),
            BatchSize::SmallInput,
        )
    });
}

/// What signing costs: a publisher signs each record write once; every
/// replica checks each store it receives (`admits`), and readers verify.
fn signed(c: &mut Criterion) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let pk = hex::encode(key.verifying_key().to_bytes());
    let body = json_1k();
    let t = format!("{},\"public_key\":\"{pk}\",\"seq\":1800000000000}}", &body[..body.len() - 1]);
    let text = kadmesh::signed::sign(&t, &key).unwrap();
    let wkey = NodeId::for_key("worker:worker-gpu-001");
    let held = Value::Str(text.clone());
    let newer_t = t.replace("1800000000000", "1800000000001");
    let newer = Value::Str(kadmesh::signed::sign(&newer_t, &key).unwrap());
    c.bench_function("signed/sign 1 KiB record", |b| b.iter(|| kadmesh::signed::sign(black_box(&t), &key)));
    c.bench_function("signed/verify 1 KiB record", |b| b.iter(|| kadmesh::signed::verify(black_box(&text))));
    c.bench_function("signed/admits newer over held", |b| {
        b.iter(|| kadmesh::signed::admits(&wkey, Some(&held), black_box(&newer), 1_800_000_000_000))
    });
    let plain = Value::Str(body.clone());
    c.bench_function("signed/admits unsigned value (no signature)", |b| {
        b.iter(|| kadmesh::signed::admits(&wkey, None, black_box(&plain), 1_800_000_000_000))
    });
}

criterion_group!(benches, codec, routing, lookup, signed);
criterion_main!(benches);
