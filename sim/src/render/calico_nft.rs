//! Calico felix's nftables dataplane. Not built yet.

use super::net::ClusterNet;
use super::RenderError;
use crate::cluster::{Cluster, NodeId};

/// The node's `table ip calico`, as nft text.
pub fn render(_cluster: &Cluster, _net: &ClusterNet, _node: NodeId) -> Result<String, RenderError> {
    Err("the calico-nftables renderer is not built yet"
        .to_string()
        .into())
}
