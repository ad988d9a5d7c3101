//! A contact: a node id and the UDP address it answers on.

use std::net::SocketAddr;

use crate::id::NodeId;

/// A peer we can send datagrams to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Contact {
    /// The peer's id.
    pub id: NodeId,
    /// The address its replies came from (never an address it claimed).
    pub addr: SocketAddr,
}

impl Contact {
    /// A contact from its parts.
    pub fn new(id: NodeId, addr: SocketAddr) -> Self {
        Contact { id, addr }
    }
}
