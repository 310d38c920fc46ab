//! The cluster's objects, indexed by dense ids.

use super::policy::Policy;
use crate::values::{Cidr, Labels, Protocol};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::net::IpAddr;

pub type NodeId = u32;
pub type NsId = u32;
pub type PodId = u32;
pub type SvcId = u32;
pub type PolicyId = u32;

/// How cross-node pod traffic travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlay {
    Ipip,
    Vxlan,
    None,
}

#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    pub ip: IpAddr,
    pub pod_cidr: Option<Cidr>,
}

#[derive(Clone, Debug)]
pub struct Namespace {
    pub name: String,
    /// Includes `kubernetes.io/metadata.name`.
    pub labels: Labels,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Clone, Debug)]
pub struct Pod {
    pub ns: NsId,
    pub name: String,
    pub labels: Labels,
    pub node: NodeId,
    pub ip: IpAddr,
    pub ports: Vec<ContainerPort>,
}

impl Pod {
    /// The number of the container port named `name` for `protocol`, if the pod has one.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.protocol == protocol && p.name.as_deref() == Some(name))
            .map(|p| p.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Clone, Debug)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target: TargetPort,
    pub protocol: Protocol,
}

#[derive(Clone, Debug)]
pub struct Service {
    pub ns: NsId,
    pub name: String,
    pub cluster_ip: Option<IpAddr>,
    /// None: a service without selector (endpoints managed by hand: none are modelled).
    pub selector: Option<Labels>,
    pub ports: Vec<ServicePort>,
}

/// A checked cluster. Ids index the vectors; names are unique.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub overlay: Option<Overlay>,
    pub nodes: Vec<NodeInfo>,
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    pub externals: IndexMap<String, IpAddr>,
    pub policies: Vec<Policy>,
    pub(super) ns_index: HashMap<String, NsId>,
    pub(super) pod_index: HashMap<(NsId, String), PodId>,
    pub(super) node_index: HashMap<String, NodeId>,
    pub(super) svc_index: HashMap<(NsId, String), SvcId>,
    pub(super) ip_index: HashMap<IpAddr, IpOwner>,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum IpOwner {
    Pod(PodId),
    Node(NodeId),
    Service(SvcId),
}

impl Cluster {
    pub fn namespace(&self, name: &str) -> Option<NsId> {
        self.ns_index.get(name).copied()
    }

    pub fn node(&self, name: &str) -> Option<NodeId> {
        self.node_index.get(name).copied()
    }

    /// `ns/name`.
    pub fn pod(&self, qualified: &str) -> Option<PodId> {
        let (ns, name) = qualified.split_once('/')?;
        let ns = self.namespace(ns)?;
        self.pod_index.get(&(ns, name.to_string())).copied()
    }

    /// `ns/name`.
    pub fn service(&self, qualified: &str) -> Option<SvcId> {
        let (ns, name) = qualified.split_once('/')?;
        let ns = self.namespace(ns)?;
        self.svc_index.get(&(ns, name.to_string())).copied()
    }

    pub fn pod_name(&self, pod: PodId) -> String {
        let p = &self.pods[pod as usize];
        format!("{}/{}", self.namespaces[p.ns as usize].name, p.name)
    }

    pub fn service_name(&self, svc: SvcId) -> String {
        let s = &self.services[svc as usize];
        format!("{}/{}", self.namespaces[s.ns as usize].name, s.name)
    }

    pub fn policy_name(&self, policy: PolicyId) -> String {
        let p = &self.policies[policy as usize];
        format!("{}/{}", self.namespaces[p.ns as usize].name, p.name)
    }

    /// The pods a service sends traffic to: pods of its namespace matching its selector.
    pub fn service_endpoints(&self, svc: SvcId) -> Vec<PodId> {
        let s = &self.services[svc as usize];
        let Some(selector) = &s.selector else {
            return Vec::new();
        };
        if selector.is_empty() {
            // An empty selector selects nothing for Services (unlike label selectors).
            return Vec::new();
        }
        (0..self.pods.len() as PodId)
            .filter(|&p| {
                let pod = &self.pods[p as usize];
                pod.ns == s.ns && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
            })
            .collect()
    }
}
