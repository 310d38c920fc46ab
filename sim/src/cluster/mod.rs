//! The checked cluster model: nodes, namespaces, pods, services, external names and
//! NetworkPolicies, with every reference resolved and every name unique.
//!
//! Contract: a [`Cluster`] is built only through [`ClusterBuilder`], which checks it; after
//! that nothing about it can be wrong (no dangling namespace, duplicate pod or unparsed
//! CIDR), so evaluation over it cannot fail. This module knows no file formats: the
//! syntax layer turns YAML into builder calls.

mod builder;
mod endpoint;
mod model;
mod policy;
mod selector;

pub use builder::{BuildError, ClusterBuilder, PodSpec, ServiceSpec};
pub use endpoint::{Endpoint, Flow};
pub use model::{
    Cluster, ContainerPort, Namespace, NodeInfo, Overlay, Pod, Service, ServicePort, TargetPort,
};
pub use model::{NodeId, NsId, PodId, PolicyId, SvcId};
pub use policy::{Direction, Peer, Policy, PortMatch, PortRef, Rule};
pub use selector::{Requirement, Selector};
