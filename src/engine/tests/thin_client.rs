//! A client whose table is thin after joining looks itself up again
//! (`engine::maintenance`, `Maintenance::after_join`): nobody asks a client
//! anything, so nothing else would fill its table before the next bucket
//! refresh. `tests/relay_netns.rs` shows why a join can end thin: a young
//! network's answer to a client leaves out every contact being checked.

use super::*;
use crate::reach::ReachMode;

fn client() -> Config {
    let mut c = Config::default();
    c.reach.mode = ReachMode::Client;
    c
}

/// Six public nodes that know each other, and node 6 in `config` joined through node 0.
fn joined(config: Config) -> Net {
    let mut net = Net::new(6, |_| Config::default());
    net.bootstrap_all();
    let a = net.add(config);
    let seed = [addr(0)];
    let _ = net.run(a, |e, now| e.bootstrap(now, &seed), Duration::from_secs(30));
    net
}

#[test]
fn a_client_with_a_thin_table_looks_itself_up_again_ever_less_often() {
    let mut net = joined(client());
    let a = 6;
    assert!(net.nodes[a].routing().len() < net.nodes[a].config().k, "six nodes: thin for good");
    let rejoins = |net: &Net| net.nodes[a].stats().thin_rejoins;
    net.advance(Duration::from_secs(4));
    assert_eq!(rejoins(&net), 0, "not before 5 s");
    net.advance(Duration::from_secs(2));
    assert_eq!(rejoins(&net), 1, "at 5 s");
    // Then 10, 20 and 40 s later: four by 76 s, the fifth only at 155 s.
    net.advance(Duration::from_secs(70));
    assert_eq!(rejoins(&net), 4);
    net.advance(Duration::from_secs(60));
    assert_eq!(rejoins(&net), 4);
}

#[test]
fn a_public_node_or_a_full_table_never_looks_itself_up_again() {
    let mut public = joined(Config::default());
    public.advance(Duration::from_secs(60));
    assert_eq!(public.nodes[6].stats().thin_rejoins, 0, "others ask a public node: they fill its table");
    let mut full = joined(Config { k: 4, ..client() });
    full.advance(Duration::from_secs(60));
    assert_eq!(full.nodes[6].stats().thin_rejoins, 0, "six contacts fill buckets of four");
}
