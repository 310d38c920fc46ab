//! Calico felix's iptables dataplane. Not built yet.

use super::iptables_out::Tables;
use super::net::ClusterNet;
use super::RenderError;
use crate::cluster::{Cluster, NodeId};

/// Add the node's felix rules to `t`; returns the node's `ipset save` text.
pub fn render(
    _cluster: &Cluster,
    _net: &ClusterNet,
    _node: NodeId,
    _t: &mut Tables,
) -> Result<String, RenderError> {
    Err("the calico-iptables renderer is not built yet"
        .to_string()
        .into())
}
