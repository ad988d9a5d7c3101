//! Workers that bring their own key: they keep their Ed25519 secret to
//! themselves and send records they signed (`proto-spec/EXTENSIONS.md` §5.6).
//!
//! Register, heartbeat and unregister bodies may carry `signed_record`, a
//! worker record signed as in §5.1, and `entry_signatures`, the worker's
//! signatures of its provider entries (§3.5), one per service:
//! `{"<service>": {"expires_at": <Unix seconds>, "sig": "<128 hex>"}}`. The
//! node checks the record (it verifies, its `tunnel_url` is normalised and
//! allowed, its lifetime is bounded, it is newer than and signed by the key
//! of any live record of the id) and then publishes the text verbatim, and
//! re-publishes it on every refresh until the next one arrives: it cannot
//! re-sign, so liveness comes from the worker's own heartbeats. An entry
//! signature is attached when it verifies for the entry the node publishes
//! (version = the record's `seq`, load = its `load`); without one the entry
//! goes out unsigned and the record alone protects the worker.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value as Json;

use super::input::Heartbeat;
use super::input::{check_url, InvalidInput};
use super::owner::{self, Live};
use super::publish::{HeartbeatOutcome, RegisterOutcome};
use super::record::{WorkerRecord, MAX_RECORD_BYTES, STATUS_OFFLINE};
use super::registry::Urgency;
use super::wire::Announce;
use super::{Discovery, DiscoveryError};
use crate::engine::providers::signature::{verify, Signed};
use crate::engine::providers::EntrySignature;
use crate::id::Key;
use crate::signed::{self, MAX_SEQ_AHEAD};
use crate::wire::Value;

/// A registration signed by the worker's own key.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfSigned {
    /// The signed record text, published verbatim.
    pub text: String,
    /// The record it says (`version` = its `seq`, `verified`).
    pub record: WorkerRecord,
    /// The worker's public key.
    pub public_key: [u8; 32],
    /// Entry signatures by service: (`expires_at`, signature).
    pub entries: HashMap<String, (u64, [u8; 64])>,
}

impl SelfSigned {
    /// Checks a `signed_record` (and its `entry_signatures`) received at
    /// `now` (Unix seconds): `tombstone` for an unregistration (status
    /// `offline`), else a live record expiring within `max_life` seconds.
    pub fn parse(
        text: &str,
        entries: Option<&Json>,
        now: f64,
        max_life: f64,
        tombstone: bool,
    ) -> Result<SelfSigned, InvalidInput> {
        let bad = |m: &str| InvalidInput(format!("field \"signed_record\": {m}"));
        if text.len() > MAX_RECORD_BYTES {
            return Err(bad(&format!("longer than {MAX_RECORD_BYTES} bytes")));
        }
        let info = signed::verify(text).map_err(|e| bad(&e.to_string()))?;
        let mut record = WorkerRecord::from_value(&Value::from(text)).ok_or_else(|| bad("not a worker record"))?;
        super::input::check_worker_id(&record.worker_id)?;
        if info.seq > (now * 1000.0) as u64 + MAX_SEQ_AHEAD {
            return Err(bad("seq is more than 24 h in the future"));
        }
        if (record.status == STATUS_OFFLINE) != tombstone {
            return Err(bad(if tombstone {
                "an unregistration needs status \"offline\""
            } else {
                "status is offline"
            }));
        }
        let expires = record.expires_at.ok_or_else(|| bad("no expires_at"))?;
        let bounded = expires > now && expires <= now + max_life;
        if !tombstone && !bounded {
            return Err(bad(&format!("expires_at must be in the next {max_life} seconds")));
        }
        if check_url(&record.tunnel_url)? != record.tunnel_url {
            return Err(bad("tunnel_url must be normalised (no trailing slash, lowercase scheme and host)"));
        }
        record.version = Some(info.seq);
        let entries = parse_entry_signatures(entries)?;
        Ok(SelfSigned { text: text.to_owned(), record, public_key: info.public_key, entries })
    }

    /// `item` (an entry of this worker for the set `set`) with the worker's
    /// signature attached when one verifies for it; unsigned otherwise.
    pub fn attach(&self, mut item: Announce, set: &Key, service: &str, gone: bool) -> Announce {
        item.signature = None;
        let Some(&(expires_at, sig)) = self.entries.get(service) else { return item };
        let load = if gone { None } else { item.load };
        let e = Signed { key: set, id: &item.id, version: item.version, gone, load, expires_at };
        let s = EntrySignature { public_key: self.public_key, expires_at, sig };
        if verify(&e, &s) {
            item.load = load;
            item.signature = Some(s);
        }
        item
    }
}

/// Reads `{"<service>": {"expires_at": uint, "sig": "<128 hex>"}}`.
fn parse_entry_signatures(v: Option<&Json>) -> Result<HashMap<String, (u64, [u8; 64])>, InvalidInput> {
    let bad = || {
        InvalidInput(
            "field \"entry_signatures\" must map services to {\"expires_at\": uint, \"sig\": <128 hex>}".into(),
        )
    };
    let mut out = HashMap::new();
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(out) };
    let o = v.as_object().filter(|o| o.len() <= super::input::MAX_SERVICES).ok_or_else(bad)?;
    for (service, e) in o {
        let expires_at = e.get("expires_at").and_then(Json::as_u64).ok_or_else(bad)?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(e.get("sig").and_then(Json::as_str).ok_or_else(bad)?, &mut sig).map_err(|_| bad())?;
        out.insert(service.clone(), (expires_at, sig));
    }
    Ok(out)
}

/// The self-signed registrations of this node, by worker id.
#[derive(Debug, Default)]
pub struct SelfSignedStore(Mutex<HashMap<String, SelfSigned>>);

impl SelfSignedStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SelfSigned>> {
        // Every update is one insert or remove; a panic cannot tear one.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registration of `id`.
    pub fn get(&self, id: &str) -> Option<SelfSigned> {
        self.lock().get(id).cloned()
    }

    /// Keeps `s` as the registration of its worker.
    pub fn set(&self, s: SelfSigned) {
        self.lock().insert(s.record.worker_id.clone(), s);
    }

    /// Forgets `id`.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

impl Discovery {
    /// Registers a worker from a record it signed itself, or takes its next
    /// one (a heartbeat): refused when another key's record of the id is
    /// live or the `seq` is not above the live record's.
    pub async fn register_signed(&self, text: &str, entries: Option<&Json>) -> Result<RegisterOutcome, DiscoveryError> {
        let cfg = &self.inner.config;
        let max_life = (cfg.worker_ttl + cfg.refresh_interval).as_secs_f64();
        let now = self.now();
        let own = SelfSigned::parse(text, entries, now, max_life, false)?;
        if cfg.refuse_private_urls {
            super::input::refuse_private(&own.record.tunnel_url)?;
        }
        let id = own.record.worker_id.clone();
        let live = self.live_owner(&id).await;
        owner::check_self_signed(live.as_ref(), &hex::encode(own.public_key), own.record.version.unwrap_or(0))
            .map_err(DiscoveryError::Forbidden)?;
        self.inner.keys.remove(&id);
        self.inner.self_signed.set(own.clone());
        let (record, report) = self.install(own.record, now).await;
        Ok(RegisterOutcome { record, report, credential: None })
    }

    /// Takes the next signed record of a worker registered here with its
    /// own key, as a heartbeat: published at once only when it changes what
    /// readers rank or filter by (as `heartbeat`), else by the refresher.
    pub async fn heartbeat_signed(
        &self,
        text: &str,
        entries: Option<&Json>,
    ) -> Result<HeartbeatOutcome, DiscoveryError> {
        let cfg = &self.inner.config;
        let now = self.now();
        let own = SelfSigned::parse(text, entries, now, (cfg.worker_ttl + cfg.refresh_interval).as_secs_f64(), false)?;
        self.check_registered(&own)?;
        let r = &own.record;
        let hb = Heartbeat {
            worker_id: r.worker_id.clone(),
            status: Some(r.status.clone()),
            load: Some(r.load),
            available_memory: r.available_memory,
            gpu_utilization: r.gpu_utilization,
            active_requests: r.active_requests,
            loaded_models: Some(r.loaded_models.clone()),
        };
        let id = r.worker_id.clone();
        self.inner.self_signed.set(own);
        let (record, urgency) =
            self.inner.registry.heartbeat(&hb, now, cfg).ok_or_else(|| DiscoveryError::UnknownWorker(id.clone()))?;
        let published = urgency == Urgency::Now;
        if published {
            self.publish_bounded(&id).await;
        }
        Ok(HeartbeatOutcome { record, published })
    }

    /// Refuses `own` unless its worker is registered here and it is signed
    /// by the registered key with a higher `seq`.
    fn check_registered(&self, own: &SelfSigned) -> Result<(), DiscoveryError> {
        let id = &own.record.worker_id;
        let current = self.inner.registry.get(id).ok_or_else(|| DiscoveryError::UnknownWorker(id.clone()))?;
        let live = Live {
            public_key: current.public_key.clone().unwrap_or_default(),
            tunnel_url: current.tunnel_url,
            seq: current.seq.or(current.version).unwrap_or(0),
        };
        owner::check_self_signed(Some(&live), &hex::encode(own.public_key), own.record.version.unwrap_or(0))
            .map_err(DiscoveryError::Forbidden)
    }

    /// Unregisters a worker registered here with its own key, from its
    /// signed tombstone record (status `offline`, a higher `seq`).
    pub async fn unregister_signed(
        &self,
        worker_id: &str,
        text: &str,
        entries: Option<&Json>,
    ) -> Result<WorkerRecord, DiscoveryError> {
        let own = SelfSigned::parse(text, entries, self.now(), 0.0, true)?;
        if own.record.worker_id != worker_id {
            return Err(InvalidInput("the signed record is for another worker id".to_owned()).into());
        }
        self.check_registered(&own)?;
        self.inner.self_signed.set(own);
        self.retire(worker_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    const NOW: f64 = 1_800_000_000.0;

    fn text(status: &str, expires: f64, url: &str) -> String {
        let k = SigningKey::from_bytes(&[4; 32]);
        let pk = hex::encode(k.verifying_key().to_bytes());
        let t = format!(
            r#"{{"worker_id":"w1","tunnel_url":"{url}","services":["ocr"],"status":"{status}","expires_at":{expires},"load":0.5,"public_key":"{pk}","seq":1800000000000}}"#
        );
        signed::sign(&t, &k).unwrap()
    }

    #[test]
    fn only_a_verified_bounded_normalised_record_is_taken() {
        let ok = SelfSigned::parse(&text("healthy", NOW + 300.0, "https://a.example"), None, NOW, 600.0, false);
        let ok = ok.unwrap();
        assert_eq!(ok.record.version, Some(1_800_000_000_000));
        assert_eq!(ok.public_key, SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes());
        let parse = |t: &str, tomb| SelfSigned::parse(t, None, NOW, 600.0, tomb);
        assert!(parse(&text("healthy", NOW + 3600.0, "https://a.example"), false).is_err(), "too long a life");
        assert!(parse(&text("healthy", NOW - 1.0, "https://a.example"), false).is_err(), "expired");
        assert!(parse(&text("healthy", NOW + 300.0, "https://a.example/"), false).is_err(), "not normalised");
        assert!(parse(&text("healthy", NOW + 300.0, "http://169.254.169.254"), false).is_err(), "metadata host");
        assert!(parse(&text("offline", NOW, "https://a.example"), false).is_err(), "a tombstone to register");
        assert!(parse(&text("offline", NOW, "https://a.example"), true).is_ok());
        assert!(parse(&text("healthy", NOW + 300.0, "https://a.example"), true).is_err(), "not a tombstone");
        let forged = text("healthy", NOW + 300.0, "https://a.example").replace("a.example", "b.example");
        assert!(parse(&forged, false).is_err(), "tampered");
    }

    #[test]
    fn an_entry_signature_is_attached_only_when_it_verifies() {
        let k = SigningKey::from_bytes(&[4; 32]);
        let set = Key::for_key("service:ocr");
        let item = Announce {
            id: "w1".into(),
            version: 7,
            ttl: std::time::Duration::from_secs(60),
            load: Some(0.5),
            signature: None,
        };
        let e = Signed { key: &set, id: "w1", version: 7, gone: false, load: Some(0.5), expires_at: 99 };
        let sig = crate::engine::providers::signature::sign(&e, &k);
        let body = serde_json::json!({"ocr": {"expires_at": 99, "sig": hex::encode(sig.sig)}});
        let s = SelfSigned::parse(&text("healthy", NOW + 300.0, "https://a.example"), Some(&body), NOW, 600.0, false)
            .unwrap();
        assert_eq!(s.attach(item.clone(), &set, "ocr", false).signature, Some(sig));
        assert_eq!(s.attach(Announce { version: 8, ..item.clone() }, &set, "ocr", false).signature, None);
        assert_eq!(s.attach(item.clone(), &Key::for_key("service:llm"), "llm", false).signature, None);
        assert!(SelfSigned::parse("{}", Some(&serde_json::json!({"ocr": 1})), NOW, 600.0, false).is_err());
    }
}
