//! Endpoints and flows, resolved against a cluster.

use super::model::{Cluster, NodeId, PodId, SvcId};
use crate::values::Protocol;
use std::net::IpAddr;

/// One end of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Pod(PodId),
    /// The node's own address (host network).
    Node(NodeId),
    /// The service's cluster IP; traffic is translated to its endpoints.
    Service(SvcId),
    /// An address outside the cluster, with the `externals` name it was given, if any.
    External(IpAddr, Option<String>),
}

impl Endpoint {
    /// The endpoint as a scenario writes it.
    pub fn display(&self, cluster: &Cluster) -> String {
        match self {
            Endpoint::Pod(p) => cluster.pod_name(*p),
            Endpoint::Node(n) => format!("node:{}", cluster.nodes[*n as usize].name),
            Endpoint::Service(s) => format!("svc:{}", cluster.service_name(*s)),
            Endpoint::External(_, Some(name)) => format!("ext:{name}"),
            Endpoint::External(ip, None) => ip.to_string(),
        }
    }

    /// The address the endpoint has on the wire (a service without cluster IP has none).
    pub fn ip(&self, cluster: &Cluster) -> Option<IpAddr> {
        match self {
            Endpoint::Pod(p) => Some(cluster.pods[*p as usize].ip),
            Endpoint::Node(n) => Some(cluster.nodes[*n as usize].ip),
            Endpoint::Service(s) => cluster.services[*s as usize].cluster_ip,
            Endpoint::External(ip, _) => Some(*ip),
        }
    }

    /// The endpoint a literal address denotes: a pod, node or service that owns it, or else
    /// an external address.
    pub fn from_ip(cluster: &Cluster, ip: IpAddr) -> Endpoint {
        use super::model::IpOwner;
        match cluster.ip_index.get(&ip) {
            Some(IpOwner::Pod(p)) => Endpoint::Pod(*p),
            Some(IpOwner::Node(n)) => Endpoint::Node(*n),
            Some(IpOwner::Service(s)) => Endpoint::Service(*s),
            None => Endpoint::External(ip, None),
        }
    }
}

/// A connection attempt: `from -> to:port/protocol`. `port` is None only for ICMP.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub from: Endpoint,
    pub to: Endpoint,
    pub port: Option<u16>,
    pub protocol: Protocol,
}

impl Flow {
    pub fn display(&self, cluster: &Cluster) -> String {
        let to = self.to.display(cluster);
        let to = match (&self.to, self.port) {
            (Endpoint::External(IpAddr::V6(_), None), Some(_)) => format!("[{to}]"),
            _ => to,
        };
        match self.port {
            Some(p) => format!(
                "{} -> {}:{}/{}",
                self.from.display(cluster),
                to,
                p,
                self.protocol
            ),
            None => format!("{} -> {}/{}", self.from.display(cluster), to, self.protocol),
        }
    }
}
