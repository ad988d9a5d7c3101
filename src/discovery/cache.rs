//! A short-lived answer cache that keeps hot discover lookups off the
//! network.
//!
//! Entries live `ttl` (tokio time, so paused-time tests control it); a zero
//! `ttl` disables the cache. The map is bounded: when full, expired entries
//! are dropped first, then the oldest. Keys start with the service name and
//! a `?`, so [`Cache::invalidate`] can drop every answer about one service
//! when a local registration changes it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Most answers held.
pub const MAX_ENTRIES: usize = 1024;

/// Answers by key, each until its deadline.
#[derive(Debug)]
pub struct Cache<V> {
    ttl: Duration,
    map: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> Cache<V> {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Cache { ttl, map: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, V)>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live answer under `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        let now = Instant::now();
        self.lock().get(key).filter(|(t, _)| *t > now).map(|(_, v)| v.clone())
    }

    /// Keeps `value` under `key` for the cache's ttl.
    pub fn insert(&self, key: String, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (t, _)| *t > now);
        }
        if map.len() >= MAX_ENTRIES {
            if let Some(oldest) = map.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(key, (now + self.ttl, value));
    }

    /// Drops every answer about `service`.
    pub fn invalidate(&self, service: &str) {
        let prefix = format!("{service}?");
        self.lock().retain(|k, _| !k.starts_with(&prefix));
    }

    /// Live answers held.
    pub fn values(&self) -> Vec<V> {
        let now = Instant::now();
        self.lock().values().filter(|(t, _)| *t > now).map(|(_, v)| v.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_and_invalidate_by_service() {
        let c = Cache::new(Duration::from_secs(5));
        c.insert("ocr?a".into(), 1);
        c.insert("ocr-x?a".into(), 2);
        assert_eq!(c.get("ocr?a"), Some(1));
        c.invalidate("ocr");
        assert_eq!((c.get("ocr?a"), c.get("ocr-x?a")), (None, Some(2)));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(c.get("ocr-x?a"), None);
        let off = Cache::new(Duration::ZERO);
        off.insert("k".into(), 1);
        assert_eq!(off.get("k"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn stays_bounded() {
        let c = Cache::new(Duration::from_secs(5));
        for i in 0..MAX_ENTRIES + 10 {
            c.insert(format!("s{i}?"), i);
        }
        assert_eq!(c.values().len(), MAX_ENTRIES);
    }
}
