//! Settings that reach the engine through [`Config`].

use super::*;
use crate::engine::providers::{ProviderEntry, ProviderLimits};

#[test]
fn provider_limits_set_in_config_bound_the_engines_provider_store() {
    let limits = ProviderLimits { max_per_set: 2, ..ProviderLimits::default() };
    let mut e = Engine::new(NodeId([1; 20]), Config { provider_limits: limits, ..Config::default() }, Time::ZERO);
    let key = NodeId::for_key("service:ocr");
    let entry = |id: &str| ProviderEntry {
        id: id.into(),
        version: 1,
        expires_at: Time::from_secs(300),
        load: None,
        gone: false,
        signature: None,
    };
    assert!(e.provider_upsert(Time::ZERO, key, entry("w1")));
    assert!(e.provider_upsert(Time::ZERO, key, entry("w2")));
    assert!(!e.provider_upsert(Time::ZERO, key, entry("w3")), "a third entry in a set of at most two");
    assert_eq!(e.providers().live(&key, Time::ZERO), 2);
    // The default engine takes all three.
    let mut d = Engine::new(NodeId([1; 20]), Config::default(), Time::ZERO);
    assert!(["w1", "w2", "w3"].iter().all(|w| d.provider_upsert(Time::ZERO, key, entry(w))));
}
