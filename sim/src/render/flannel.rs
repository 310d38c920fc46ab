//! Flannel's iptables rules. Not built yet.

use super::iptables_out::Tables;
use super::net::ClusterNet;
use super::RenderError;
use crate::cluster::{Cluster, NodeId};

/// Add the node's flanneld rules to `t`.
pub fn render(
    _cluster: &Cluster,
    _net: &ClusterNet,
    _node: NodeId,
    _t: &mut Tables,
) -> Result<(), RenderError> {
    Err("the flannel renderer is not built yet".to_string().into())
}
