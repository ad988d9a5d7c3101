//! Who may change a worker's registration over HTTP.
//!
//! A worker id belongs to the key of its live signed record (one whose
//! `expires_at` has not passed and that is not a tombstone). The rules:
//! - **Register** an id with no live signed record (never seen, unsigned
//!   only, expired or unregistered): anyone; the node uses the presented
//!   credential's key, else makes a new one, and answers the credential.
//! - **Register** a live id with the owner's credential: any change, through
//!   any node (that node signs with the derived key, with a higher `seq`).
//! - **Register** a live id without a credential: only with the same
//!   `tunnel_url`, and only at a node that holds the owner's key (the one it
//!   registered through); the credential is not answered then. A wrong
//!   credential is always refused.
//! - **Heartbeat** without a credential: liveness and load only; a status
//!   change needs the credential. **Unregister** needs the credential.
//!
//! Refusals are [`DiscoveryError::Forbidden`](super::DiscoveryError) (HTTP 403).

use ed25519_dalek::SigningKey;

use super::input::Heartbeat;
use super::keys::public_hex;
use super::record::{WorkerRecord, STATUS_OFFLINE};
use super::Discovery;

/// The live signed record that owns an id.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Live {
    /// Its public key (hex).
    pub public_key: String,
    /// Its tunnel URL.
    pub tunnel_url: String,
    /// Its `seq`, which the next record must exceed.
    pub seq: u64,
}

/// The key a registration is signed with, and how it was granted.
#[derive(Debug)]
pub(crate) enum Grant {
    /// The id was free: the presented or a new key.
    Fresh(SigningKey),
    /// The owner presented its credential.
    Owner(SigningKey),
    /// No credential, same URL, and this node holds the owner's key.
    Held(SigningKey),
}

impl Grant {
    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        match self {
            Grant::Fresh(k) | Grant::Owner(k) | Grant::Held(k) => k,
        }
    }

    /// Whether the answer may carry the credential: never to a caller that
    /// did not prove it already or take a free id.
    pub fn reveals(&self) -> bool {
        !matches!(self, Grant::Held(_))
    }
}

/// Applies the registration rules (module doc). `fresh` makes a new key.
pub(crate) fn decide_register(
    live: Option<&Live>,
    presented: Option<SigningKey>,
    held: Option<SigningKey>,
    url: &str,
    fresh: impl FnOnce() -> SigningKey,
) -> Result<Grant, String> {
    let Some(live) = live else { return Ok(Grant::Fresh(presented.unwrap_or_else(fresh))) };
    match presented {
        Some(k) if public_hex(&k) == live.public_key => Ok(Grant::Owner(k)),
        Some(_) => Err("the credential does not match the key that owns this worker id".to_owned()),
        None if live.tunnel_url != url => {
            Err("this worker id is registered with another tunnel_url; changing it needs the worker's credential"
                .to_owned())
        }
        None => match held.filter(|k| public_hex(k) == live.public_key) {
            Some(k) => Ok(Grant::Held(k)),
            None => Err("this worker id is registered through another node; present the worker's credential \
                 or wait until its record expires"
                .to_owned()),
        },
    }
}

/// Checks a presented credential against the registered `record`: a wrong
/// one is always refused, a missing one when `needed`.
pub(crate) fn check_credential(
    record: &WorkerRecord,
    presented: Option<&SigningKey>,
    needed: bool,
) -> Result<(), String> {
    match presented {
        Some(k) if record.public_key.as_deref() == Some(public_hex(k).as_str()) => Ok(()),
        Some(_) => Err("the credential does not match the key that owns this worker id".to_owned()),
        None if needed => Err("this change needs the worker's credential (X-Kadmesh-Credential header)".to_owned()),
        None => Ok(()),
    }
}

/// Checks a record the worker signed itself (`own_key`) against the live
/// one: the same key, and a higher `seq` (a replay is refused).
pub(crate) fn check_self_signed(live: Option<&Live>, public_key: &str, seq: u64) -> Result<(), String> {
    match live {
        Some(l) if l.public_key != public_key => {
            Err("another key owns this worker id until its signed record expires".to_owned())
        }
        Some(l) if seq <= l.seq => {
            Err(format!("the record's seq {seq} is not above the live record's {} (a replay?)", l.seq))
        }
        _ => Ok(()),
    }
}

/// Whether a heartbeat changes the worker's reported status.
pub(crate) fn changes_status(record: &WorkerRecord, hb: &Heartbeat) -> bool {
    hb.status.as_ref().is_some_and(|s| *s != record.status)
}

impl Discovery {
    /// The live signed record that owns `id` now: this node's registration
    /// or the newest verified one in the DHT.
    pub(crate) async fn live_owner(&self, id: &str) -> Option<Live> {
        let remote = self.fetch_remote(id).await;
        let r = self.reconcile(id, remote)?;
        let now = self.now();
        let live = r.verified && r.status != STATUS_OFFLINE && r.expires_at.is_some_and(|e| e > now);
        live.then(|| Live {
            public_key: r.public_key.unwrap_or_default(),
            tunnel_url: r.tunnel_url,
            seq: r.seq.or(r.version).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn live(n: u8) -> Live {
        Live { public_key: public_hex(&k(n)), tunnel_url: "https://a".into(), seq: 5 }
    }

    #[test]
    fn a_free_id_takes_the_presented_or_a_new_key() {
        let g = decide_register(None, None, None, "https://x", || k(7)).unwrap();
        assert!(matches!(g, Grant::Fresh(_)) && g.reveals() && g.key().to_bytes() == [7; 32]);
        let g = decide_register(None, Some(k(2)), None, "https://x", || k(7)).unwrap();
        assert_eq!(g.key().to_bytes(), [2; 32]);
    }

    #[test]
    fn a_live_id_needs_its_credential_to_move() {
        let l = live(1);
        assert!(matches!(decide_register(Some(&l), Some(k(1)), None, "https://b", || k(7)), Ok(Grant::Owner(_))));
        assert!(decide_register(Some(&l), Some(k(2)), Some(k(1)), "https://a", || k(7)).is_err(), "wrong key");
        assert!(decide_register(Some(&l), None, Some(k(1)), "https://b", || k(7)).is_err(), "new URL");
        let same = decide_register(Some(&l), None, Some(k(1)), "https://a", || k(7)).unwrap();
        assert!(matches!(same, Grant::Held(_)) && !same.reveals(), "same URL where the key is held");
        assert!(decide_register(Some(&l), None, None, "https://a", || k(7)).is_err(), "key held elsewhere");
        assert!(decide_register(Some(&l), None, Some(k(3)), "https://a", || k(7)).is_err(), "stale held key");
    }

    #[test]
    fn a_self_signed_record_needs_the_owners_key_and_a_newer_seq() {
        let l = live(1);
        assert!(check_self_signed(None, &public_hex(&k(2)), 1).is_ok(), "a free id");
        assert!(check_self_signed(Some(&l), &public_hex(&k(1)), 6).is_ok());
        assert!(check_self_signed(Some(&l), &public_hex(&k(1)), 5).is_err(), "a replay");
        assert!(check_self_signed(Some(&l), &public_hex(&k(2)), 99).is_err(), "another key");
    }

    #[test]
    fn changes_need_the_matching_credential() {
        let mut r = WorkerRecord::from_json(r#"{"worker_id": "w", "tunnel_url": "https://a"}"#).unwrap();
        r.public_key = Some(public_hex(&k(1)));
        assert!(check_credential(&r, Some(&k(1)), true).is_ok());
        assert!(check_credential(&r, Some(&k(2)), false).is_err());
        assert!(check_credential(&r, None, true).is_err());
        assert!(check_credential(&r, None, false).is_ok());
        let hb =
            |s: Option<&str>| Heartbeat { worker_id: "w".into(), status: s.map(str::to_owned), ..Default::default() };
        assert!(!changes_status(&r, &hb(None)) && !changes_status(&r, &hb(Some("healthy"))));
        assert!(changes_status(&r, &hb(Some("busy"))));
    }
}
