//! The protocol subcommands: ping, get, put, find-node, find-value, stun.
//! Each runs through the library's client node; nothing here builds or
//! parses datagrams beyond calling `wire`'s own reply parsers.

use std::net::SocketAddr;

use kadmesh::contact::Contact;
use kadmesh::id::{Key, NodeId, ID_BITS};
use kadmesh::wire::{self, Call, FindValueReply, Value};
use serde_json::{json, Value as Json};
use tokio::time::Instant;

use crate::args::{FindNodeArgs, FindValueArgs, Global, KeyArgs, PingArgs, PutArgs, StunArgs};
use crate::net;
use crate::output::{
    emit, emit_json, ms, ms_json, parse_value, record, value_json, value_text, value_type, Failure, Table,
};

pub async fn ping(g: &Global, a: &PingArgs) -> Result<(), Failure> {
    let addr = net::target(&a.target).await?;
    let node = net::solo(g, addr).await?;
    let sent = Instant::now();
    let reply = node.ping(addr).await;
    // Timed here: the engine's clock counts whole milliseconds.
    let rtt = sent.elapsed();
    node.shutdown().await;
    let reply = reply?.ok_or_else(|| unanswered(g, addr))?;
    if g.json {
        emit_json(&json!({ "address": addr.to_string(), "id": reply.id.to_hex(), "rtt_ms": ms_json(rtt) }));
    } else {
        emit(&record(&[("node", reply.id.to_hex()), ("address", addr.to_string()), ("rtt", ms(rtt))]));
    }
    Ok(())
}

pub async fn get(g: &Global, a: &KeyArgs) -> Result<(), Failure> {
    let (label, key) = net::key(a)?;
    let joined = net::join(g).await?;
    let got = joined.node.get(key).await;
    joined.node.shutdown().await;
    let Some(value) = got?.value else { return Err(not_found(&label, key)) };
    if g.json {
        let doc =
            json!({ "key": label, "digest": key.to_hex(), "type": value_type(&value), "value": value_json(&value) });
        emit_json(&doc);
    } else {
        emit(&value_text(&value));
    }
    Ok(())
}

fn not_found(label: &str, key: Key) -> Failure {
    if label == key.to_hex() {
        Failure::NotFound(format!("no value under key {label}"))
    } else {
        Failure::NotFound(format!("no value under {label:?} (digest {})", key.to_hex()))
    }
}

pub async fn put(g: &Global, a: &PutArgs) -> Result<(), Failure> {
    let (label, key, text) = match (&a.raw_key, a.args.as_slice()) {
        (Some(hex), [value]) => (hex.clone(), net::raw_key(hex)?, value),
        (None, [key, value]) => (key.clone(), NodeId::for_key(key), value),
        (Some(_), _) => return Err(Failure::BadInput("with --raw-key give only VALUE".into())),
        (None, _) => return Err(Failure::BadInput("give KEY and VALUE".into())),
    };
    let value = parse_value(&a.kind, text)?;
    let joined = net::join(g).await?;
    let put = joined.node.put(key, value).await;
    joined.node.shutdown().await;
    let put = put?;
    if put.stored == 0 {
        let why = format!("no node acknowledged the store ({} asked)", put.attempted);
        return Err(Failure::Unreachable(why));
    }
    if g.json {
        emit_json(&json!({ "key": label, "digest": key.to_hex(), "stored": put.stored, "attempted": put.attempted }));
    } else {
        emit(&format!("stored {label:?} (digest {}) at {} of {} nodes", key.to_hex(), put.stored, put.attempted));
    }
    Ok(())
}

pub async fn find_node(g: &Global, a: &FindNodeArgs) -> Result<(), Failure> {
    let target = net::node_id(&a.id)?;
    let contacts = match &a.node {
        Some(node) => ask_one(g, node, |me| Call::FindNode { sender: me, key: target }).await?,
        None => {
            let joined = net::join(g).await?;
            let found = joined.node.find_node(target).await;
            joined.node.shutdown().await;
            FindValueReply::Nodes(found?)
        }
    };
    match contacts {
        FindValueReply::Nodes(c) => print_contacts(g, &target, &c),
        FindValueReply::Value(_) => Err(Failure::Other("find_node was answered with a value".into())),
    }
}

/// One request to one node, built with our client's id as the sender.
async fn ask_one(g: &Global, text: &str, call: impl FnOnce(NodeId) -> Call) -> Result<FindValueReply, Failure> {
    let addr = net::target(text).await?;
    let node = net::solo(g, addr).await?;
    let call = call(node.id());
    let is_value = matches!(call, Call::FindValue { .. });
    let body = node.call(addr, call).await;
    node.shutdown().await;
    let body = body?.ok_or_else(|| unanswered(g, addr))?;
    let parsed = if is_value {
        wire::parse_find_value_reply(&body)
    } else {
        wire::parse_find_node_reply(&body).map(FindValueReply::Nodes)
    };
    parsed.map_err(|e| Failure::Other(format!("{addr}: {e}")))
}

fn unanswered(g: &Global, addr: SocketAddr) -> Failure {
    Failure::Unreachable(format!("{addr} did not answer within {:.1?}", net::rpc_timeout(g)))
}

fn print_contacts(g: &Global, target: &NodeId, contacts: &[Contact]) -> Result<(), Failure> {
    let log2 = |c: &Contact| (ID_BITS - target.distance(&c.id).leading_zeros()).checked_sub(1);
    if g.json {
        let list: Vec<_> = contacts
            .iter()
            .map(|c| json!({ "id": c.id.to_hex(), "address": c.addr.to_string(), "distance_log2": log2(c) }))
            .collect();
        emit_json(&json!({ "target": target.to_hex(), "nodes": list }));
    } else {
        let mut t = Table::new(&["ID", "ADDRESS", "DISTANCE"]);
        for c in contacts {
            let d = log2(c).map_or_else(|| "0".to_owned(), |b| format!("2^{b}"));
            t.row(vec![c.id.to_hex(), c.addr.to_string(), d]);
        }
        emit(&t.render());
    }
    Ok(())
}

pub async fn find_value(g: &Global, a: &FindValueArgs) -> Result<(), Failure> {
    let (label, key) = net::key(&a.key)?;
    if let Some(node) = &a.node {
        return match ask_one(g, node, |me| Call::FindValue { sender: me, key }).await? {
            FindValueReply::Value(v) => print_value(g, &label, key, &v, &[]),
            FindValueReply::Nodes(c) => {
                // Its referrals are the useful part of the answer: stdout.
                print_contacts(g, &key, &c)?;
                let digest = key.to_hex();
                let why =
                    format!("{node} holds no value under {label:?} (digest {digest}); listed its {} nearest", c.len());
                Err(Failure::NotFound(why))
            }
        };
    }
    let joined = net::join(g).await?;
    let started = Instant::now();
    let got = joined.node.get(key).await;
    // Timed here: the engine's own figure counts whole milliseconds.
    let took = started.elapsed();
    joined.node.shutdown().await;
    let got = got?;
    let Some(value) = got.value else { return Err(not_found(&label, key)) };
    let s = got.stats;
    // Nodes hand a newcomer the records it is now close to, so a value can
    // already be here when the lookup starts.
    let source = if got.local { "handed to us while joining" } else { "network lookup" };
    let stats = [
        ("source", json!(source)),
        ("hops", json!(s.hops)),
        ("queried", json!(s.queried)),
        ("failed", json!(s.failed)),
        ("time_ms", ms_json(took)),
    ];
    print_value(g, &label, key, &value, &stats)
}

fn print_value(g: &Global, label: &str, key: Key, v: &Value, stats: &[(&str, Json)]) -> Result<(), Failure> {
    if g.json {
        let mut doc = json!({ "key": label, "digest": key.to_hex(), "type": value_type(v), "value": value_json(v) });
        for (k, s) in stats {
            doc[*k] = s.clone();
        }
        emit_json(&doc);
    } else {
        let mut pairs = vec![("key", label.to_owned()), ("digest", key.to_hex()), ("type", value_type(v).to_owned())];
        pairs.push(("value", value_text(v)));
        pairs.extend(stats.iter().map(|(k, s)| (*k, s.as_str().map_or_else(|| s.to_string(), str::to_owned))));
        emit(&record(&pairs));
    }
    Ok(())
}

pub async fn stun(g: &Global, a: &StunArgs) -> Result<(), Failure> {
    let addr = match &a.target {
        Some(t) => net::target(t).await?,
        None => {
            let seeds = net::seeds(g).await?;
            let first = seeds.first().ok_or(Failure::BadInput("give HOST:PORT or a seed".into()))?;
            net::target(&first.to_string()).await?
        }
    };
    let node = net::solo(g, addr).await?;
    let seen = node.stun(addr).await;
    node.shutdown().await;
    let seen = seen?.ok_or_else(|| unanswered(g, addr))?;
    if g.json {
        emit_json(&json!({ "node": addr.to_string(), "seen_as": seen.to_string() }));
    } else {
        emit(&record(&[("seen as", seen.to_string()), ("by", addr.to_string())]));
    }
    Ok(())
}
