//! Plain values every layer shares: protocols, labels, addresses and CIDR blocks.
//!
//! Contract: these types are small, `Copy` where they can be, and carry no knowledge of
//! clusters, policies or rules.

mod labels;
mod net;
mod packet;
mod protocol;
mod site;

pub use labels::Labels;
pub use net::{parse_cidr, Cidr};
pub use packet::{CtState, Hook, Packet};
pub use protocol::Protocol;
pub use site::{Loc, Site};
