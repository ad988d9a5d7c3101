//! Where the engine applies [`crate::limits`]: the rate check on every
//! incoming request (before it is decoded), the reply budget towards the
//! request's source, and the counters `/metrics` shows.
//!
//! Only requests are rate-limited: a reply is matched against a request we
//! sent (by message id and address) or dropped as unmatched, so it cannot
//! make us do more than we asked for.

use std::net::SocketAddr;

use super::Engine;
use crate::contact::Contact;
use crate::id::NodeId;
use crate::limits::reply::ReplyBudget;
use crate::limits::RateStats;
use crate::time::Time;

/// rpcudp's first byte of a request datagram.
const REQUEST_TYPE: u8 = 0x00;

/// What the limits refused and how much state they hold, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitStats {
    /// Requests dropped or passed by the rate limiter.
    pub rate: RateStats,
    /// Record writes refused for their source's quota.
    pub record_quota_refusals: u64,
    /// Provider entries refused for their source's quota.
    pub provider_quota_refusals: u64,
    /// Replies cut to fit the budget towards an unverified address.
    pub replies_trimmed: u64,
    /// Peers whose kind / probe time is remembered (bounded).
    pub peer_state: (usize, usize),
    /// Source IPs and prefixes the rate limiter tracks (bounded).
    pub rate_sources: (usize, usize),
    /// New node ids not learned because their source introduced too many.
    pub churn_refusals: u64,
    /// Source IPs and prefixes the churn bound tracks (bounded).
    pub churn_sources: (usize, usize),
    /// Records waiting to be handed over, and contacts they wait for.
    pub handover_queued: (usize, usize),
}

impl Engine {
    /// Whether the datagram from `from` may be handled: requests pass the
    /// rate limiter unless their source is exempt; everything else passes.
    pub(super) fn admit(&mut self, now: Time, from: SocketAddr, data: &[u8]) -> bool {
        if data.first() != Some(&REQUEST_TYPE) || !self.svc.config.limits.applies_to(from.ip()) {
            return true;
        }
        self.limiter.check(now, from.ip()).is_ok()
    }

    /// Whether `contact` may be learned (routing table, peer maps): a
    /// contact the table holds always, a new id only within its source's
    /// churn allowance ([`crate::limits::churn`]).
    pub(super) fn admit_id(&mut self, now: Time, contact: Contact) -> bool {
        let ip = contact.addr.ip();
        contact.id == self.svc.id
            || self.svc.routing.contains(&contact.id)
            || !self.svc.config.limits.applies_to(ip)
            || self.churn.admit(now, ip, contact.id)
    }

    /// The budget of a reply to a request of `len` bytes from `from`,
    /// claiming to be `sender`: unbounded when that contact answered one of
    /// our queries from this very address, else `reply_ratio` times `len`.
    pub(super) fn reply_budget(&self, from: SocketAddr, sender: Option<NodeId>, len: usize) -> ReplyBudget {
        let routing = &self.svc.routing;
        let verified =
            sender.is_some_and(|id| routing.get(&id).is_some_and(|c| c.addr == from) && routing.is_verified(&id));
        let limits = &self.svc.config.limits;
        ReplyBudget::for_request(len, verified || !limits.applies_to(from.ip()), limits.reply_ratio)
    }

    /// What the limits refused and hold.
    pub fn limit_stats(&self) -> LimitStats {
        LimitStats {
            rate: self.limiter.stats(),
            record_quota_refusals: self.store.quota_refusals(),
            provider_quota_refusals: self.providers.quota_refusals(),
            replies_trimmed: self.svc.stats.replies_trimmed,
            peer_state: self.peers.sizes(),
            rate_sources: self.limiter.tracked(),
            churn_refusals: self.churn.refused(),
            churn_sources: self.churn.tracked(),
            handover_queued: self.handover.queued(),
        }
    }
}
