//! The reply-size budget towards an address that has not answered one of
//! our own queries (BEP 5's "good" node; the routing table's *verified*
//! contact). A request's source address is not authenticated, so a large
//! reply to a forged address turns this node into an amplifier. Towards
//! such an address every reply is kept within [`MAX_UNVERIFIED_RATIO`]
//! times the request's size; a verified address gets full replies.
//!
//! What each procedure does to fit (`proto-spec/PROTOCOL.md`, "Reply size
//! bounds", has the worst cases): `find_node` and the contact form of
//! `find_value` send fewer contacts; `find_value` holding a value too large
//! answers with contacts instead; `kadmesh_providers` sends a shorter page.

/// Largest reply/request byte ratio towards an unverified address.
pub const MAX_UNVERIFIED_RATIO: usize = 10;

/// The bound on a reply's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyBudget {
    /// The source has answered us: no bound beyond the protocol's own.
    Unbounded,
    /// At most this many bytes.
    Bytes(usize),
}

impl ReplyBudget {
    /// The budget for a request of `request_len` bytes from a source that
    /// has (`verified`) or has not answered one of our queries;
    /// `ratio` is the bound (zero: none).
    pub fn for_request(request_len: usize, verified: bool, ratio: usize) -> ReplyBudget {
        if verified || ratio == 0 {
            ReplyBudget::Unbounded
        } else {
            ReplyBudget::Bytes(request_len.saturating_mul(ratio))
        }
    }

    /// Whether a reply of `len` bytes fits.
    pub fn fits(self, len: usize) -> bool {
        match self {
            ReplyBudget::Unbounded => true,
            ReplyBudget::Bytes(max) => len <= max,
        }
    }

    /// The longest prefix of `items` whose encoding (by `encode`, which
    /// gets a prefix and returns its encoded length) fits; `items.len()`
    /// when everything fits. Encodes O(log n) times.
    pub fn longest_fitting<T>(self, items: &[T], mut encode: impl FnMut(&[T]) -> usize) -> usize {
        if self.fits(encode(items)) {
            return items.len();
        }
        let (mut lo, mut hi) = (0, items.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.fits(encode(&items[..mid])) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unverified_sources_get_ten_times_their_request() {
        assert_eq!(ReplyBudget::for_request(60, false, MAX_UNVERIFIED_RATIO), ReplyBudget::Bytes(600));
        assert!(ReplyBudget::for_request(60, true, MAX_UNVERIFIED_RATIO).fits(60_000));
        assert!(!ReplyBudget::for_request(60, false, MAX_UNVERIFIED_RATIO).fits(601));
        assert_eq!(ReplyBudget::for_request(60, false, 0), ReplyBudget::Unbounded);
    }

    #[test]
    fn longest_fitting_prefix_is_found() {
        let items: Vec<usize> = (0..20).collect();
        let size = |p: &[usize]| 30 + 40 * p.len();
        for (budget, want) in [(30, 0), (69, 0), (70, 1), (500, 11), (830, 20), (10_000, 20)] {
            assert_eq!(ReplyBudget::Bytes(budget).longest_fitting(&items, size), want, "budget {budget}");
        }
        assert_eq!(ReplyBudget::Unbounded.longest_fitting(&items, size), 20);
    }
}
