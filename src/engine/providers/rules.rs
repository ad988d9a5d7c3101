//! The replica rules: what an incoming provider entry does to the entry a
//! replica holds for the same id in the same set.
//!
//! Unsigned entries follow the original merge rule (higher `(version,
//! gone)` wins, an equal one extends the lifetime). A **signed** entry binds
//! its id to its signer's key for as long as it lives:
//! - it is replaced or removed only by an entry signed by the same key with
//!   a higher `(version, gone)`;
//! - an unsigned add or remove never replaces it (a signed tombstone
//!   included), and an entry signed by another key is refused;
//! - except that a signed **tombstone** frees the id for other keys, as an
//!   unregistered worker record does (`proto-spec/EXTENSIONS.md` §5.2): an
//!   entry signed by another key with a higher version replaces it, so a
//!   worker that unregisters and registers again under a new key is served
//!   at once;
//! - a replay (same key, same or older version) changes nothing, not even
//!   the lifetime: a signed entry's lifetime is its signed `expires_at`;
//! - a signed entry replaces any unsigned one, whatever its version, so a
//!   forged unsigned tombstone with a huge version cannot shadow the real
//!   worker once its signed entry arrives.
//!
//! Checks on the entry alone (a signature that verifies, a version at most
//! [`MAX_VERSION_AHEAD`] past `now`) are done before these rules, in
//! [`admissible`]. Pure: no I/O, no clock.

use std::cmp::Ordering;

use super::signature::{verify, Signed};
use super::ProviderEntry;
use crate::id::Key;
use crate::time::Time;

/// How far past `now` (Unix milliseconds) a signed entry's version may be;
/// the same bound as a signed record's `seq` ([`crate::signed::MAX_SEQ_AHEAD`]).
pub const MAX_VERSION_AHEAD: u64 = crate::signed::MAX_SEQ_AHEAD;

/// What an incoming entry does to the held one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing live is held for the id: store the entry as new.
    Insert,
    /// The entry replaces the held one.
    Replace,
    /// Same unsigned entry again: the held one lives as long as the longer.
    Extend,
    /// The replica already holds the same or newer state from the same
    /// writer: nothing changes, and the write counts as accepted.
    Ignore,
    /// The entry may not touch the held one: refused, not counted.
    Refuse,
}

/// Whether `entry` for the set `key` may be considered at all at `now`: an
/// unsigned entry always; a signed one when its signature verifies and its
/// version is at most [`MAX_VERSION_AHEAD`] past `now`.
pub fn admissible(key: &Key, entry: &ProviderEntry, now: Time) -> bool {
    let Some(s) = &entry.signature else { return true };
    let signed = Signed {
        key,
        id: &entry.id,
        version: entry.version,
        gone: entry.gone,
        load: entry.load,
        expires_at: s.expires_at,
    };
    entry.version <= now.as_millis().saturating_add(MAX_VERSION_AHEAD) && verify(&signed, s)
}

/// The rule (module doc) for `new` against what is `held` for its id.
pub fn judge(held: Option<&ProviderEntry>, new: &ProviderEntry, now: Time) -> Verdict {
    let Some(h) = held.filter(|h| h.expires_at > now) else { return Verdict::Insert };
    let order = (new.version, new.gone).cmp(&(h.version, h.gone));
    match (&h.signature, &new.signature) {
        (Some(hs), Some(ns)) if hs.public_key != ns.public_key => {
            if h.gone && new.version > h.version {
                Verdict::Replace
            } else {
                Verdict::Refuse
            }
        }
        (Some(_), Some(_)) if order == Ordering::Greater => Verdict::Replace,
        (Some(_), Some(_)) => Verdict::Ignore,
        (Some(_), None) => Verdict::Refuse,
        (None, Some(_)) => Verdict::Replace,
        (None, None) => match order {
            Ordering::Greater => Verdict::Replace,
            Ordering::Equal => Verdict::Extend,
            Ordering::Less => Verdict::Ignore,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::signature::{sign, EntrySignature};
    use super::*;
    use ed25519_dalek::SigningKey;

    const NOW: Time = Time::from_secs(1_800_000_000);

    fn key() -> Key {
        Key::for_key("service:ocr")
    }

    fn unsigned(version: u64, gone: bool) -> ProviderEntry {
        ProviderEntry {
            id: "w1".into(),
            version,
            expires_at: NOW + std::time::Duration::from_secs(300),
            load: None,
            gone,
            signature: None,
        }
    }

    fn signed(by: u8, version: u64, gone: bool) -> ProviderEntry {
        let mut e = unsigned(version, gone);
        let expires_at = e.expires_at.as_secs();
        let k = key();
        let s = Signed { key: &k, id: &e.id, version, gone, load: None, expires_at };
        e.signature = Some(sign(&s, &SigningKey::from_bytes(&[by; 32])));
        e
    }

    #[test]
    fn only_a_valid_signature_with_a_near_version_is_admissible() {
        assert!(admissible(&key(), &unsigned(u64::MAX, true), NOW), "unsigned entries are judged by the rules");
        assert!(admissible(&key(), &signed(1, NOW.as_millis(), false), NOW));
        let ahead = NOW.as_millis() + MAX_VERSION_AHEAD;
        assert!(admissible(&key(), &signed(1, ahead, false), NOW));
        assert!(!admissible(&key(), &signed(1, ahead + 1, false), NOW), "far future");
        assert!(!admissible(&Key::for_key("service:llm"), &signed(1, 5, false), NOW), "another set");
        let mut forged = signed(1, 5, false);
        forged.gone = true;
        assert!(!admissible(&key(), &forged, NOW), "an add turned into a removal");
        let mut stretched = signed(1, 5, false);
        if let Some(s) = stretched.signature.as_mut() {
            s.expires_at += 3600;
        }
        assert!(!admissible(&key(), &stretched, NOW), "a lifetime the signer did not ask for");
        let mut loaded = signed(1, 5, false);
        loaded.load = Some(0.0);
        assert!(!admissible(&key(), &loaded, NOW), "a load the signer did not announce");
        let mut bad = signed(1, 5, false);
        bad.signature = Some(EntrySignature { sig: [0; 64], ..bad.signature.clone().unwrap() });
        assert!(!admissible(&key(), &bad, NOW));
    }

    #[test]
    fn nothing_live_held_means_insert() {
        assert_eq!(judge(None, &unsigned(1, false), NOW), Verdict::Insert);
        let mut expired = signed(1, 9, false);
        expired.expires_at = NOW;
        assert_eq!(
            judge(Some(&expired), &signed(2, 1, false), NOW),
            Verdict::Insert,
            "an expired binding frees the id"
        );
    }

    #[test]
    fn a_signed_entry_is_bound_to_its_key() {
        let held = signed(1, 10, false);
        assert_eq!(judge(Some(&held), &signed(2, 11, false), NOW), Verdict::Refuse, "another key");
        assert_eq!(judge(Some(&held), &signed(2, u64::MAX, true), NOW), Verdict::Refuse, "another key's removal");
        assert_eq!(judge(Some(&held), &signed(1, 11, false), NOW), Verdict::Replace, "same key, newer");
        assert_eq!(judge(Some(&held), &signed(1, 11, true), NOW), Verdict::Replace, "same key's removal");
        assert_eq!(judge(Some(&held), &signed(1, 10, true), NOW), Verdict::Replace, "a tombstone wins a tie");
    }

    #[test]
    fn a_signed_tombstone_frees_the_id_for_a_newer_key() {
        let removed = signed(1, 10, true);
        assert_eq!(judge(Some(&removed), &signed(2, 11, false), NOW), Verdict::Replace, "registered again, new key");
        assert_eq!(judge(Some(&removed), &signed(2, 10, false), NOW), Verdict::Refuse, "not newer");
        assert_eq!(judge(Some(&removed), &unsigned(11, false), NOW), Verdict::Refuse, "unsigned never");
    }

    #[test]
    fn unsigned_writes_never_touch_a_signed_entry() {
        for held in [signed(1, 10, false), signed(1, 10, true)] {
            assert_eq!(judge(Some(&held), &unsigned(11, false), NOW), Verdict::Refuse);
            assert_eq!(judge(Some(&held), &unsigned(i64::MAX as u64, true), NOW), Verdict::Refuse);
        }
    }

    #[test]
    fn a_replay_changes_nothing() {
        let held = signed(1, 10, false);
        assert_eq!(judge(Some(&held), &held.clone(), NOW), Verdict::Ignore, "the same entry again");
        assert_eq!(judge(Some(&held), &signed(1, 9, false), NOW), Verdict::Ignore, "an older entry");
        assert_eq!(judge(Some(&signed(1, 10, true)), &signed(1, 10, false), NOW), Verdict::Ignore, "older add");
    }

    #[test]
    fn a_signed_entry_replaces_any_unsigned_one() {
        let forged = unsigned(i64::MAX as u64, true);
        assert_eq!(judge(Some(&forged), &signed(1, 10, false), NOW), Verdict::Replace);
    }

    #[test]
    fn unsigned_entries_keep_the_original_merge() {
        let held = unsigned(5, false);
        assert_eq!(judge(Some(&held), &unsigned(6, false), NOW), Verdict::Replace);
        assert_eq!(judge(Some(&held), &unsigned(5, true), NOW), Verdict::Replace);
        assert_eq!(judge(Some(&held), &unsigned(5, false), NOW), Verdict::Extend);
        assert_eq!(judge(Some(&held), &unsigned(4, true), NOW), Verdict::Ignore);
    }
}
