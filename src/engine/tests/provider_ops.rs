//! The provider operations: `provider_write` (batching as an engine
//! deadline, local copy, writes to kadmesh peers) and `provider_read`
//! (paged reads from replicas, merge, a second round when they disagree).

use super::*;
use crate::engine::providers::client::Announce;
use crate::engine::providers::wire::Shard;

pub(super) const KEY: Key = NodeId([0x5a; 20]);

pub(super) fn item(id: &str, version: u64) -> Announce {
    Announce { id: id.into(), version, ttl: Duration::from_secs(600), load: None, signature: None }
}

pub(super) fn write(net: &mut Net, node: usize, items: Vec<Announce>, remove: bool) -> ProviderWriteOutcome {
    let f = |e: &mut Engine, now| e.provider_write(now, KEY, items, remove, Duration::ZERO);
    match net.run(node, f, Duration::from_secs(60)) {
        Outcome::ProviderWrite(w) => w,
        o => panic!("unexpected {o:?}"),
    }
}

pub(super) fn read(net: &mut Net, node: usize, replicas: usize) -> ProviderReadOutcome {
    match net.run(node, |e, now| e.provider_read(now, KEY, replicas), Duration::from_secs(60)) {
        Outcome::ProviderRead(r) => r,
        o => panic!("unexpected {o:?}"),
    }
}

pub(super) fn live(r: &ProviderReadOutcome) -> Vec<String> {
    let mut ids: Vec<String> = r.entries.values().filter(|e| e.is_live()).map(|e| e.id.clone()).collect();
    ids.sort();
    ids
}

/// Nodes holding `id` in the set under [`KEY`].
pub(super) fn holding(net: &Net, id: &str) -> usize {
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
    // Node 0 takes everyone for a stock peer (and their replies name nobody).
    net.unnamed = true;
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
fn replicas_that_disagree_bring_another_read() {
    let mut net = Net::new(20, no_spare);
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
    // A cold read: what the first read remembered is dropped (a read from
    // memory is tested below).
    net.nodes[reader].read_memory.forget(&KEY);
    let r = read(&mut net, reader, 2);
    assert_eq!(live(&r), ["w1", "w2"]);
    // It reported a smaller set than the other: a stand-in is read at once
    // (from the key's closest half the read chooses from).
    assert_eq!(r.pages_sent, 3, "a replica that lacked a merged entry brings another's read");
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

/// A read of 3 replicas with nobody else in line (the other contacts are
/// stock), its lookup answered, and a stall threshold well under the 2 s
/// extension timeout, as measured round trips give; the page requests sent.
fn three_replicas_and_nobody_else() -> (Engine, QueryId, Vec<(SocketAddr, MessageId, Call)>, Config) {
    let cfg = Config { lookup_stall: Duration::from_millis(300), ..small(0) };
    let mut e = engine_with_contacts(cfg.clone());
    for i in 0..CONTACTS.len() {
        e.peers.insert(contact_id(i), if i < 3 { PeerKind::Extended } else { PeerKind::Base });
    }
    let q = e.provider_read(Time::ZERO, id_at(0, 0), 3);
    let lists = answer_lookup(&mut e, Time::ZERO);
    (e, q, lists, cfg)
}

#[test]
fn a_replica_silent_through_every_try_with_nobody_to_stand_in_ends_the_read_before_its_timeout() {
    let (mut e, q, lists, cfg) = three_replicas_and_nobody_else();
    assert_eq!(lists.len(), 3);
    let w1 = vec!["w1".to_string()];
    for (to, id, _) in &lists[..2] {
        answer(&mut e, Time::ZERO, *to, *id, page(&w1, None, 1, None));
    }
    // The third never answers: it is asked again at each stall, and given
    // up once its last try stalled too, before the first try's timeout.
    let silent = lists[2].0;
    let mut tries = 1;
    for _ in 0..20 {
        let Some(at) = e.poll_timeout().filter(|t| *t < Time::ZERO + cfg.extension_timeout) else { break };
        e.handle_timeout(at);
        tries += sent_to(&mut e).iter().filter(|(t, _, c)| *t == silent && is_list(c)).count();
    }
    let r = read_outcome(&mut e, q);
    assert_eq!((live(&r), r.replicas), (w1, 2));
    assert_eq!(tries, 3, "every try asked before giving up");
}

#[test]
fn a_replica_that_answered_keeps_its_late_page_until_the_timeout() {
    // As above, but the third replica answers its first page (more to
    // come) and then goes quiet: its next page is asked again, never given
    // up early (its threshold is its own round trips; a late page must not
    // bring a second round).
    let (mut e, q, lists, cfg) = three_replicas_and_nobody_else();
    let both = vec!["w1".to_string(), "w2".to_string()];
    for (to, id, _) in &lists[..2] {
        answer(&mut e, Time::ZERO, *to, *id, page(&both, None, 2, None));
    }
    answer(&mut e, Time::ZERO, lists[2].0, lists[2].1, page(&both[..1], Some("w1"), 2, None));
    let mut ended = false;
    for _ in 0..20 {
        let Some(at) = e.poll_timeout().filter(|t| *t < Time::ZERO + cfg.extension_timeout) else { break };
        e.handle_timeout(at);
        let _ = sent_to(&mut e);
        while let Some(ev) = e.poll_event() {
            ended |= ev.id == q;
        }
    }
    assert!(!ended, "the read ended before the late page's timeout");
    e.handle_timeout(Time::ZERO + cfg.extension_timeout + Duration::from_millis(1));
    let r = read_outcome(&mut e, q);
    assert_eq!((live(&r), r.replicas), (both, 2));
}

/// A page as a replica sends it: `ids` live, version 1.
pub(super) fn page(ids: &[String], next: Option<&str>, live: u64, shard: Option<Shard>) -> Value {
    let entry = |id: &String| {
        Value::Array(vec![Value::from(id.as_str()), Value::Int(1), Value::Int(600), Value::Nil, Value::Bool(false)])
    };
    let mut map = vec![
        (Value::from("entries"), Value::Array(ids.iter().map(entry).collect())),
        (Value::from("next"), next.map_or(Value::Nil, Value::from)),
        (Value::from("live"), Value::from_u64(live)),
    ];
    map.extend(shard.map(|s| (Value::from("shard"), s.to_value())));
    Value::Map(map)
}

pub(super) fn is_list(c: &Call) -> bool {
    matches!(c, Call::Other { name, .. } if name == crate::engine::providers::LIST)
}

/// The hand-driven engine, its contacts of kind `kind(i)`, reading the set
/// at `id_at(0, 0)` from `replicas`: answers its lookup (no new contacts)
/// and returns the page requests it then sends.
pub(super) fn start_read(
    kind: impl Fn(usize) -> PeerKind,
    replicas: usize,
) -> (Engine, QueryId, Vec<(SocketAddr, MessageId, Call)>) {
    start_read_with(no_spare(0), kind, replicas)
}

/// [`small`] without a spare replica: a round reads exactly the replicas
/// it wants, as the tests of one round's workings (shards, stand-ins,
/// second rounds) assume. The spare has tests of its own.
pub(super) fn no_spare(seed: usize) -> Config {
    Config { provider_read_spare: 0, provider_read_racers: 0, ..small(seed) }
}

/// [`start_read`] on an engine configured by `cfg`.
pub(super) fn start_read_with(
    cfg: Config,
    kind: impl Fn(usize) -> PeerKind,
    replicas: usize,
) -> (Engine, QueryId, Vec<(SocketAddr, MessageId, Call)>) {
    let mut e = engine_with_contacts(cfg);
    for i in 0..CONTACTS.len() {
        e.peers.insert(contact_id(i), kind(i));
    }
    let q = e.provider_read(Time::ZERO, id_at(0, 0), replicas);
    let lists = answer_lookup(&mut e, Time::ZERO);
    (e, q, lists)
}

/// Answers a read's lookup queries at `now` with no new contacts until it
/// sends no more; returns the page requests sent meanwhile.
pub(super) fn answer_lookup(e: &mut Engine, now: Time) -> Vec<(SocketAddr, MessageId, Call)> {
    let mut lists = Vec::new();
    for _ in 0..10 {
        let (finds, other): (Vec<_>, Vec<_>) =
            sent_to(e).into_iter().partition(|(_, _, c)| matches!(c, Call::FindNode { .. }));
        lists.extend(other.into_iter().filter(|(_, _, c)| is_list(c)));
        if finds.is_empty() {
            break;
        }
        for (to, id, _) in finds {
            answer(e, now, to, id, Value::Array(vec![]));
        }
    }
    lists
}

pub(super) fn read_outcome(e: &mut Engine, q: QueryId) -> ProviderReadOutcome {
    while let Some(ev) = e.poll_event() {
        if let (true, Outcome::ProviderRead(r)) = (ev.id == q, ev.outcome) {
            return r;
        }
    }
    panic!("the read did not end");
}

#[test]
fn a_large_set_is_read_in_parallel_shards_after_its_first_page() {
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 1);
    assert_eq!(lists.len(), 1, "one replica, its first page");
    let all: Vec<String> = (0..400).map(|i| format!("w{i:03}")).collect();
    let (to, id, _) = &lists[0];
    answer(&mut e, Time::ZERO, *to, *id, page(&all[..40], Some("w039"), 400, None));
    let shards = sent_to(&mut e);
    // 360 entries left at 40 a page: at least nine parts, all asked at once.
    assert!(shards.len() >= 9 && shards.iter().all(|(t, _, c)| t == to && is_list(c)), "{} asked", shards.len());
    for (to, id, call) in shards {
        let Call::Other { args, .. } = &call else { unreachable!() };
        assert_eq!(args[2], Value::from("w039"), "every part continues after the first page");
        let s = Shard::parse(&args[4]).expect("a shard argument");
        let ids: Vec<String> = all[40..].iter().filter(|i| s.holds(i)).cloned().collect();
        answer(&mut e, Time::ZERO, to, id, page(&ids, None, 400, Some(s)));
    }
    let r = read_outcome(&mut e, q);
    assert_eq!(r.entries.len(), 400);
    assert_eq!((r.replicas, r.pages_failed), (1, 0));
}

#[test]
fn peers_of_unknown_kind_fill_the_replicas_a_reader_wants() {
    let kind = |i| if i == 0 { PeerKind::Extended } else { PeerKind::Unknown };
    let (_, _, lists) = start_read(kind, 3);
    let mut to: Vec<SocketAddr> = lists.iter().map(|(t, _, _)| *t).collect();
    to.dedup();
    assert_eq!(to.len(), 3, "one known extension peer and two not known either way");
    assert_eq!(to[0], known(0).addr, "the known extension peer first");
}

#[test]
fn a_replica_far_short_of_the_merge_brings_a_second_round_a_few_short_does_not() {
    let all: Vec<String> = (0..100).map(|i| format!("w{i:03}")).collect();
    for (lacking, second) in [(1, false), (10, true)] {
        let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 2);
        assert_eq!(lists.len(), 2);
        answer(&mut e, Time::ZERO, lists[0].0, lists[0].1, page(&all, None, 100, None));
        answer(&mut e, Time::ZERO, lists[1].0, lists[1].1, page(&all[lacking..], None, 100, None));
        let more = sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).count();
        assert_eq!(more > 0, second, "lacking {lacking} of 100");
        if !second {
            assert_eq!(read_outcome(&mut e, q).entries.len(), 100);
        }
    }
}

#[test]
fn a_replica_silent_past_the_stall_is_stood_in_for_and_not_waited_on() {
    let all: Vec<String> = (0..50).map(|i| format!("w{i:03}")).collect();
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 2);
    assert_eq!(lists.len(), 2);
    let (answered, silent) = (lists[0].0, lists[1].0);
    answer(&mut e, Time::ZERO, answered, lists[0].1, page(&all, None, 50, None));
    assert!(e.poll_event().is_none(), "the read waits for its second replica");
    // Past the stall threshold (at most `lookup_stall`), the silent one's
    // first page is asked again and a third replica is asked in its stead.
    let now = Time::ZERO + small(0).lookup_stall + Duration::from_millis(1);
    e.handle_timeout(now);
    let asked: Vec<_> = sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).collect();
    let stand_in: Vec<_> = asked.iter().filter(|(t, _, _)| *t != silent && *t != answered).collect();
    assert_eq!(stand_in.len(), 1, "one stand-in asked: {asked:?}");
    let (to, id, _) = stand_in[0];
    answer(&mut e, now, *to, *id, page(&all, None, 50, None));
    // The read ends at the stand-in's answer, not the silent one's timeout,
    // and no second round follows.
    let r = read_outcome(&mut e, q);
    assert_eq!((r.entries.len(), r.replicas), (50, 2));
    assert!(sent_to(&mut e).iter().all(|(t, _, c)| !is_list(c) || *t == silent));
}

/// `find_node` queries a read's lookup sends before its first page request,
/// every one answered with no new contacts. The key, `id_at(0x40, 0)`, has
/// the three `(0, i)` contacts closest, none deep enough to be read before
/// the lookup ends (see [`early`]).
fn lookup_queries_before_reading(replicas: usize, kind: PeerKind) -> usize {
    let mut e = engine_with_contacts(four());
    for i in 0..CONTACTS.len() {
        e.peers.insert(contact_id(i), kind);
    }
    let _ = e.provider_read(Time::ZERO, id_at(0x40, 0), replicas);
    let mut finds_sent = 0;
    for _ in 0..20 {
        let sent = sent_to(&mut e);
        // A page request beside the lookup's queries asks the set's size
        // (see `provider_sizer`); the read's own come once it ended.
        let finds = sent.iter().any(|(_, _, c)| matches!(c, Call::FindNode { .. }));
        if !finds && sent.iter().any(|(_, _, c)| is_list(c)) {
            return finds_sent;
        }
        for (to, id, c) in sent {
            if matches!(c, Call::FindNode { .. }) {
                finds_sent += 1;
                answer(&mut e, Time::ZERO, to, id, Value::Array(vec![]));
            }
        }
    }
    panic!("no page was asked");
}

/// k = 4, below the 5 contacts the hand-driven engine knows.
fn four() -> Config {
    Config { k: 4, ..small(0) }
}

#[test]
fn the_lookup_before_a_read_waits_for_three_closest_per_replica_not_all_k() {
    assert!(CONTACTS.len() > four().k, "the reader knows more than k contacts");
    // One replica wanted: its lookup ends once the 3 closest answered.
    assert_eq!(lookup_queries_before_reading(1, PeerKind::Extended), 3);
    // Three wanted: 9 closest, capped at k.
    assert_eq!(lookup_queries_before_reading(3, PeerKind::Extended), four().k);
}

#[test]
fn a_read_whose_few_closest_hold_no_extension_peer_looks_up_all_k() {
    // The 3 closest, then all 4 again (none is known to speak the
    // extension; a stock neighbourhood must not be read from blindly).
    assert_eq!(lookup_queries_before_reading(1, PeerKind::Unknown), 3 + four().k);
}

#[test]
fn a_read_whose_few_closest_answer_their_hellos_reads_them_before_the_lookup_of_all_k_ends() {
    // A reader new to the neighbourhood: the 3 closest are of unknown kind
    // when its first lookup ends. It looks up all k, and asks them what
    // they speak meanwhile (as each answered the lookup); their answers,
    // not the end of that lookup, let the read begin.
    let mut e = engine_with_contacts(four());
    for i in 0..CONTACTS.len() {
        e.peers.insert(contact_id(i), PeerKind::Unknown);
        e.peers.probed.remove(&contact_id(i));
    }
    let _ = e.provider_read(Time::ZERO, id_at(0x40, 0), 1);
    for (to, id, _) in sent_to(&mut e) {
        answer(&mut e, Time::ZERO, to, id, Value::Array(vec![]));
    }
    let sent = sent_to(&mut e);
    let is_hello = |c: &Call| matches!(c, Call::Other { name, .. } if name == HELLO);
    let finds: Vec<_> = sent.iter().filter(|(_, _, c)| matches!(c, Call::FindNode { .. })).cloned().collect();
    assert!(finds.len() >= 2, "the lookup of all k goes on meanwhile");
    assert!(!sent.iter().any(|(_, _, c)| is_list(c)), "no page before any kind is known");
    for (to, id, _) in sent.iter().filter(|(_, _, c)| is_hello(c)) {
        let i = (0..CONTACTS.len()).find(|&i| known(i).addr == *to).expect("a known contact");
        answer(&mut e, Time::ZERO, *to, *id, crate::engine::inbound::hello_body(contact_id(i)));
    }
    let (to, id, _) = &finds[0];
    answer(&mut e, Time::ZERO, *to, *id, Value::Array(vec![]));
    assert!(sent_to(&mut e).iter().any(|(_, _, c)| is_list(c)), "read after one more answer, not all k");
}

/// The hand-driven engine with k = 4, its contacts of kind `kind`, reading
/// the set at `id_at(0, 0)`. Its rank cap is 0 (its 4th closest contact
/// shares no leading bit with it), so the three `(0, i)` contacts, which
/// share over 150 bits with the key, are deep enough to be its replicas.
fn early(kind: PeerKind, replicas: usize) -> (Engine, QueryId, Vec<(SocketAddr, MessageId, Call)>) {
    let mut e = engine_with_contacts(four());
    for i in 0..CONTACTS.len() {
        e.peers.insert(contact_id(i), kind);
    }
    let q = e.provider_read(Time::ZERO, id_at(0, 0), replicas);
    let lists = sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).collect();
    (e, q, lists)
}

#[test]
fn a_read_starts_before_its_lookup_ends_once_enough_replicas_deep_enough_are_known() {
    for kind in [PeerKind::Extended, PeerKind::Unknown] {
        let (mut e, q, lists) = early(kind, 3);
        let mut to: Vec<SocketAddr> = lists.iter().map(|(t, _, _)| *t).collect();
        to.sort();
        assert_eq!(to, [known(0).addr, known(1).addr, known(2).addr], "{kind:?}: the three deep ones, at once");
        // No find_node is answered: the pages alone end the read.
        for (to, id, _) in lists {
            answer(&mut e, Time::ZERO, to, id, page(&["w1".to_string()], None, 1, None));
        }
        let r = read_outcome(&mut e, q);
        assert_eq!((live(&r), r.replicas, r.stats.duration), (vec!["w1".to_string()], 3, Duration::ZERO));
    }
    // Stock peers are never read, early or late.
    assert!(early(PeerKind::Base, 3).2.is_empty());
}

/// A page whose entries are in their last second: `ttl` 1 (pages round the
/// time left up) or 0 (older kadmesh rounded it down).
fn last_second_page(ids: &[String], ttl: i64) -> Value {
    ttl_page(ids, |_| ttl)
}

/// A page of `ids`, the `i`th with `ttl(i)` seconds left.
fn ttl_page(ids: &[String], ttl: impl Fn(usize) -> i64) -> Value {
    let entry = |(i, id): (usize, &String)| {
        Value::Array(vec![Value::from(id.as_str()), Value::Int(1), Value::Int(ttl(i)), Value::Nil, Value::Bool(false)])
    };
    let map = vec![
        (Value::from("entries"), Value::Array(ids.iter().enumerate().map(entry).collect())),
        (Value::from("next"), Value::Nil),
        (Value::from("live"), Value::from_u64(0)),
    ];
    Value::Map(map)
}

/// Answers every `find_node` `e` sends with no contacts and every page
/// request (except to `silent`) with a page of `ids`, until it sends
/// nothing more; returns where the page requests went.
fn look_up_and_read(e: &mut Engine, now: Time, ids: &[String], silent: Option<SocketAddr>) -> Vec<SocketAddr> {
    let mut read = Vec::new();
    for _ in 0..10 {
        let sent = sent_to(e);
        if sent.is_empty() {
            break;
        }
        for (to, id, c) in sent {
            if matches!(c, Call::FindNode { .. }) {
                answer(e, now, to, id, Value::Array(vec![]));
            } else if is_list(&c) && Some(to) != silent {
                read.push(to);
                answer(e, now, to, id, page(ids, None, 1, None));
            }
        }
    }
    read
}

#[test]
fn an_early_read_that_meets_only_entries_in_their_last_second_looks_up_the_closest_and_reads_them() {
    for ttl in [1, 0] {
        let w1 = vec!["w1".to_string()];
        let (mut e, q, lists) = early(PeerKind::Extended, 3);
        assert_eq!(lists.len(), 3);
        for (to, id, _) in lists {
            answer(&mut e, Time::ZERO, to, id, last_second_page(&w1, ttl));
        }
        assert!(e.poll_event().is_none(), "replicas that all let a live entry run out were not the writers' closest");
        // The whole lookup runs (its queries answered with no new contacts),
        // and the one of its k = 4 closest not read yet is read.
        assert_eq!(look_up_and_read(&mut e, Time::ZERO, &w1, None), [known(3).addr]);
        assert_eq!(live(&read_outcome(&mut e, q)), w1);
    }
}

#[test]
fn an_early_read_looks_up_the_closest_only_when_over_a_fiftieth_is_in_its_last_second() {
    // Providers that died run out at every replica alike (after a crash, by
    // the hundred); replicas the writers left let everything run out.
    let ids: Vec<String> = (0..60).map(|i| format!("w{i:02}")).collect();
    for (dying, falls_back) in [(1, false), (2, true)] {
        let (mut e, q, lists) = early(PeerKind::Extended, 3);
        for (to, id, _) in lists {
            answer(&mut e, Time::ZERO, to, id, ttl_page(&ids, |i| if i < dying { 1 } else { 300 }));
        }
        let looked_up = sent_to(&mut e).iter().any(|(_, _, c)| matches!(c, Call::FindNode { .. }));
        assert_eq!(looked_up, falls_back, "{dying} of 60 in their last second");
        if !falls_back {
            let r = read_outcome(&mut e, q);
            assert_eq!((live(&r), r.stats.duration), (ids.clone(), Duration::ZERO));
        }
    }
}

#[test]
fn a_replica_whose_first_page_is_late_is_asked_all_its_shards_from_another_replicas_size() {
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 2);
    assert_eq!(lists.len(), 2);
    let all: Vec<String> = (0..400).map(|i| format!("w{i:03}")).collect();
    let ((fast, fast_id, _), (late, late_id, _)) = (lists[0].clone(), lists[1].clone());
    answer(&mut e, Time::ZERO, fast, fast_id, page(&all[..40], Some("w039"), 400, None));
    let asked = sent_to(&mut e);
    let to_late = asked.iter().filter(|(t, _, c)| *t == late && is_list(c)).count();
    assert!(to_late >= 9, "the late replica's shards are asked at once: {to_late}");
    for (to, id, call) in asked {
        let Call::Other { args, .. } = &call else { unreachable!() };
        let s = Shard::parse(&args[4]).expect("a shard argument");
        // The late one's shards cover its whole set: its first page is not awaited.
        let from = if to == late { 0 } else { 40 };
        assert_eq!(args[2] == Value::Nil, to == late);
        let ids: Vec<String> = all[from..].iter().filter(|i| s.holds(i)).cloned().collect();
        answer(&mut e, Time::ZERO, to, id, page(&ids, None, 400, Some(s)));
    }
    let r = read_outcome(&mut e, q);
    assert_eq!((r.entries.len(), r.replicas, r.pages_failed), (400, 2, 0));
    // Its first page, when it comes, brings nothing more to ask.
    answer(&mut e, Time::ZERO, late, late_id, page(&all[..40], Some("w039"), 400, None));
    assert!(sent_to(&mut e).iter().all(|(_, _, c)| !is_list(c)));
}

#[test]
fn a_replica_that_reports_a_far_smaller_set_gets_a_stand_in_at_once() {
    let all: Vec<String> = (0..100).map(|i| format!("w{i:03}")).collect();
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 2);
    assert_eq!(lists.len(), 2);
    let ((full, full_id, _), (short, short_id, _)) = (lists[0].clone(), lists[1].clone());
    answer(&mut e, Time::ZERO, short, short_id, page(&all[..50], None, 50, None));
    answer(&mut e, Time::ZERO, full, full_id, page(&all, None, 100, None));
    let asked: Vec<_> = sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).collect();
    assert_eq!(asked.len(), 1, "one stand-in, asked before the round ends");
    let (stand_in, id, _) = asked[0].clone();
    assert!(stand_in != full && stand_in != short);
    assert!(e.poll_event().is_none(), "the round waits for the stand-in, not for a second round");
    answer(&mut e, Time::ZERO, stand_in, id, page(&all, None, 100, None));
    let r = read_outcome(&mut e, q);
    assert_eq!((r.entries.len(), r.rounds), (100, 1));
}

#[test]
fn a_shard_of_a_replica_that_answered_is_asked_again_after_its_own_round_trips() {
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 1);
    let (to, id, _) = lists[0].clone();
    let all: Vec<String> = (0..400).map(|i| format!("w{i:03}")).collect();
    let answered_at = Time::ZERO + Duration::from_millis(10);
    answer(&mut e, answered_at, to, id, page(&all[..40], Some("w039"), 400, None));
    let shards = sent_to(&mut e).len();
    assert!(shards >= 9);
    // Past this replica's own threshold (a few of its 10 ms round trips,
    // at least 50 ms), well before the read's (200 ms at least).
    let later = answered_at + Duration::from_millis(120);
    assert!(later < Time::ZERO + small(0).lookup_stall_min);
    e.handle_timeout(later);
    let again: Vec<_> = sent_to(&mut e).into_iter().filter(|(t, _, c)| *t == to && is_list(c)).collect();
    assert_eq!(again.len(), shards, "every unanswered shard is asked again");
    for (to, id, call) in again {
        let s = list_shard(&call);
        let ids: Vec<String> = all[40..].iter().filter(|i| s.holds(i)).cloned().collect();
        answer(&mut e, later, to, id, page(&ids, None, 400, Some(s)));
    }
    let r = read_outcome(&mut e, q);
    assert_eq!((r.entries.len(), r.pages_sent, r.pages_reasked), (400, 1 + 2 * shards, shards));
}

#[test]
fn an_early_read_gives_up_a_silent_replica_nobody_can_stand_in_for_and_looks_up_others() {
    let w1 = vec!["w1".to_string()];
    let (mut e, q, lists) = early(PeerKind::Extended, 3);
    assert_eq!(lists.len(), 3);
    for (to, id, _) in &lists[..2] {
        answer(&mut e, Time::ZERO, *to, *id, page(&w1, None, 1, None));
    }
    // Past the stall threshold, not the extension timeout: the whole
    // lookup runs and the one of its k = 4 closest not asked yet is read.
    let now = Time::ZERO + four().lookup_stall + Duration::from_millis(1);
    e.handle_timeout(now);
    assert_eq!(look_up_and_read(&mut e, now, &w1, Some(lists[2].0)), [known(3).addr]);
    assert_eq!(live(&read_outcome(&mut e, q)), w1);
}

#[test]
fn a_replica_claiming_a_huge_set_costs_stand_ins_not_the_others_entries() {
    // The honest replica alone holds `w400`; every other holds w000-w399.
    let all: Vec<String> = (0..=400).map(|i| format!("w{i:03}")).collect();
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 2);
    let ((honest, honest_id, _), (liar, liar_id, _)) = (lists[0].clone(), lists[1].clone());
    answer(&mut e, Time::ZERO, liar, liar_id, page(&all[..1], None, 1_000_000, None));
    answer(&mut e, Time::ZERO, honest, honest_id, page(&all[..40], Some("w039"), 401, None));
    // The honest replica now looks short: a stand-in is asked (and, as the
    // liar lacks most of the merge, a second round follows). The honest
    // replica's shards are held back meanwhile.
    let mut held = Vec::new();
    let mut asked = sent_to(&mut e);
    assert!(asked.iter().any(|(t, _, c)| *t != honest && *t != liar && is_list(c)), "a stand-in");
    while !asked.is_empty() {
        for (to, id, call) in asked {
            if to == honest {
                held.push((id, call));
                continue;
            }
            let s = list_shard(&call);
            let ids: Vec<String> = all[..400].iter().filter(|i| s.holds(i)).cloned().collect();
            answer(&mut e, Time::ZERO, to, id, page(&ids, None, 400, Some(s)));
        }
        asked = sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).collect();
    }
    assert!(e.poll_event().is_none(), "the read does not end with the honest replica's shards unread");
    for (id, call) in held {
        let s = list_shard(&call);
        let ids: Vec<String> = all[40..].iter().filter(|i| s.holds(i)).cloned().collect();
        answer(&mut e, Time::ZERO, honest, id, page(&ids, None, 401, Some(s)));
    }
    assert_eq!(read_outcome(&mut e, q).entries.len(), 401);
}

/// The shard a page request asks for.
pub(super) fn list_shard(call: &Call) -> Shard {
    let Call::Other { args, .. } = call else { panic!("not a page request: {call:?}") };
    Shard::parse(&args[4]).expect("a shard argument")
}

#[test]
fn the_pages_of_a_far_replica_are_asked_twice_at_once_and_either_answer_serves() {
    let all: Vec<String> = (0..400).map(|i| format!("w{i:03}")).collect();
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 2);
    let ((near, _, _), (far, far_id, _)) = (lists[0].clone(), lists[1].clone());
    // Its first page takes a second: its smoothed round trip passes 120 ms
    // (the near one's lookup answer came at once).
    answer(&mut e, Time::ZERO + Duration::from_secs(1), far, far_id, page(&all[..40], Some("w039"), 400, None));
    let asked: Vec<_> = sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).collect();
    let copies = |to: SocketAddr| {
        let mut n = std::collections::HashMap::new();
        for (_, _, c) in asked.iter().filter(|(t, _, _)| *t == to) {
            let s = list_shard(c);
            *n.entry((s.index, s.bits)).or_insert(0) += 1;
        }
        n
    };
    let (far_copies, near_copies) = (copies(far), copies(near));
    assert!(far_copies.len() >= 9 && near_copies.len() >= 9, "both read in shards: {far_copies:?} {near_copies:?}");
    assert!(far_copies.values().all(|&n| n == 2), "each page of the far replica twice: {far_copies:?}");
    assert!(near_copies.values().all(|&n| n == 1), "each page of the near one once: {near_copies:?}");
    let ids: std::collections::HashSet<_> = asked.iter().filter(|(t, _, _)| *t == far).map(|(_, id, _)| *id).collect();
    assert_eq!(ids.len(), 2 * far_copies.len(), "as separate requests");
    // Only the first request of each pair is answered (the copy, which
    // names no peer): the read still ends with the whole set.
    let mut answered = std::collections::HashSet::new();
    for (to, id, c) in &asked {
        let s = list_shard(c);
        if *to == far && !answered.insert((s.index, s.bits)) {
            continue;
        }
        let Call::Other { args, .. } = c else { unreachable!() };
        let after = args[2].as_str().unwrap_or("");
        let ids: Vec<String> = all.iter().filter(|i| s.holds(i) && i.as_str() > after).cloned().collect();
        answer(&mut e, Time::ZERO + Duration::from_secs(1), *to, *id, page(&ids, None, 400, Some(s)));
    }
    assert_eq!(live(&read_outcome(&mut e, q)), all);
}

#[test]
fn a_write_soon_after_joining_is_written_again_and_reaches_a_replica_the_first_missed() {
    use crate::engine::op::provider_write::{REWRITE_AFTER, YOUNG};
    for joined_long_ago in [false, true] {
        let mut net = Net::new(20, small);
        net.bootstrap_all();
        if joined_long_ago {
            net.advance(YOUNG);
        }
        // Node 19 joined last. The key's closest other node is down while
        // it writes, as if the writer's thin table had not found it.
        let closest = by_distance(&net).into_iter().find(|&i| i != 19).unwrap();
        net.down.insert(closest);
        let w = write(&mut net, 19, vec![item("w1", 1)], false);
        assert!(w.acked >= 1);
        net.down.remove(&closest);
        let reported = net.events.len();
        net.advance(REWRITE_AFTER + Duration::from_secs(10));
        let holds = net.nodes[closest].providers().range(&KEY, None, net.now).any(|p| p.id == "w1");
        assert_eq!(holds, !joined_long_ago, "joined long ago: {joined_long_ago}");
        assert!(net.events[reported..].iter().all(|(n, _)| *n != 19), "the repeat reports nothing");
    }
}

#[test]
fn a_young_write_no_other_node_acknowledged_is_written_again_within_seconds() {
    use crate::engine::op::provider_write::UNHEARD_REWRITE_AFTER;
    let mut net = Net::new(20, small);
    net.bootstrap_all();
    // Node 19 joined last. Every other node is down while it writes, so its
    // lookup finds nobody and it keeps the only copy.
    net.down.extend(0..19);
    let w = write(&mut net, 19, vec![item("w1", 1)], false);
    assert_eq!((w.acked, w.local), (1, true), "{w:?}");
    net.down.clear();
    let closest = by_distance(&net).into_iter().find(|&i| i != 19).unwrap();
    let holds = |net: &Net| net.nodes[closest].providers().range(&KEY, None, net.now).any(|p| p.id == "w1");
    assert!(!holds(&net));
    net.advance(UNHEARD_REWRITE_AFTER + Duration::from_secs(3));
    assert!(holds(&net), "written again long before the usual repeat");
}

#[test]
fn a_write_also_goes_to_a_closer_node_that_was_only_slow_in_its_lookup() {
    let mut e = engine_with_contacts(Config { k: 3, ..small(0) });
    for i in 0..CONTACTS.len() {
        e.peers.insert(contact_id(i), PeerKind::Extended);
    }
    let _ = e.provider_write(Time::ZERO, id_at(0, 0), vec![item("w1", 1)], false, Duration::ZERO);
    // The key's closest contact (0) is slow: its find_node is never
    // answered before it stalls. The others answer at once.
    let adds_to = |sent: &[(SocketAddr, MessageId, Call)]| -> Vec<SocketAddr> {
        let add = |c: &Call| matches!(c, Call::Other { name, .. } if name == crate::engine::providers::ADD);
        sent.iter().filter(|(_, _, c)| add(c)).map(|(to, _, _)| *to).collect()
    };
    let mut adds = Vec::new();
    for now in [Time::ZERO, Time::from_millis(1500), Time::from_millis(1500)] {
        e.handle_timeout(now);
        let sent = sent_to(&mut e);
        adds.extend(adds_to(&sent));
        for (to, id, c) in sent {
            if matches!(c, Call::FindNode { .. }) && to != addr(1) {
                answer(&mut e, now, to, id, Value::Array(vec![]));
            }
        }
        adds.extend(adds_to(&sent_to(&mut e)));
    }
    adds.sort();
    adds.dedup();
    assert_eq!(adds.len(), 4, "the 3 closest that answered and the slow one: {adds:?}");
    assert_eq!(adds[..3], [addr(1), addr(2), addr(3)], "the key's three closest");
}

#[test]
fn replies_naming_many_closer_nodes_that_never_answer_cost_at_most_k_extra_writes() {
    let config = Config { k: 3, rpc_timeout: Duration::from_secs(30), ..small(0) };
    let k = config.k;
    let mut e = engine_with_contacts(config);
    for i in 0..CONTACTS.len() {
        e.peers.insert(contact_id(i), PeerKind::Extended);
    }
    // Contact 0 names ten nodes closer to the key than anyone; none exists.
    let key = id_at(0, 0x80);
    let fakes: Vec<Contact> =
        (1..=10u8).map(|i| Contact::new(id_at(0, 0x80 ^ i), addr(100 + usize::from(i)))).collect();
    let listed = Value::Array(
        fakes
            .iter()
            .map(|c| {
                Value::Array(vec![Value::Bin(c.id.0.to_vec()), Value::Str(c.addr.ip().to_string()), Value::Int(8468)])
            })
            .collect(),
    );
    let _ = e.provider_write(Time::ZERO, key, vec![item("w1", 1)], false, Duration::ZERO);
    let mut to_fakes = 0;
    for step in 0..12u64 {
        let now = Time::from_millis(step * 1100);
        e.handle_timeout(now);
        for (to, id, c) in sent_to(&mut e) {
            let is_fake = fakes.iter().any(|f| f.addr == to);
            match c {
                Call::FindNode { .. } if to == addr(1) => answer(&mut e, now, to, id, listed.clone()),
                Call::FindNode { .. } if !is_fake => answer(&mut e, now, to, id, Value::Array(vec![])),
                Call::Other { name, .. } if is_fake && name == crate::engine::providers::ADD => to_fakes += 1,
                _ => {}
            }
        }
    }
    assert!(to_fakes >= 1, "slow nodes closer than the k that answered get the write");
    assert!(to_fakes <= k, "{to_fakes} writes to nodes that never answered");
}
