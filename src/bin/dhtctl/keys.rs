//! `keygen` and `endorse`: the coordinator's side of endorsement mode
//! (`kadmesh::endorsement`), offline: no network is asked.

use ed25519_dalek::SigningKey;
use kadmesh::discovery::keys::{credential, parse_credential, public_hex};
use serde_json::json;

use crate::args::{EndorseArgs, Global};
use crate::output::Failure;

/// Prints a new coordinator key: the seed (keep it secret; `endorse` takes
/// it) and the public key (`dhtd --endorsement-key` takes it).
pub fn keygen(g: &Global) -> Result<(), Failure> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let (seed, public) = (credential(&key), public_hex(&key));
    if g.json {
        println!("{}", json!({"seed": seed, "public_key": public}));
    } else {
        println!("seed (secret):  {seed}\npublic key:     {public}");
    }
    Ok(())
}

/// Prints the certificate for a worker id and key, as register's
/// `endorsement` field takes it.
pub fn endorse(_g: &Global, a: &EndorseArgs) -> Result<(), Failure> {
    let coordinator =
        parse_credential(&a.coordinator_key).map_err(|e| Failure::BadInput(format!("coordinator key: {e}")))?;
    kadmesh::discovery::input::check_worker_id(&a.worker_id).map_err(|e| Failure::BadInput(e.0))?;
    let mut worker = [0u8; 32];
    hex::decode_to_slice(a.public_key.trim(), &mut worker)
        .map_err(|_| Failure::BadInput("the worker's public key must be 64 hex digits".into()))?;
    let now = kadmesh::node::Clock::new().unix_secs() as u64;
    let expires_at = now.saturating_add(a.days.saturating_mul(86_400));
    let cert = kadmesh::endorsement::endorse(&coordinator, &a.worker_id, &worker, expires_at);
    println!("{}", cert.to_json());
    Ok(())
}
