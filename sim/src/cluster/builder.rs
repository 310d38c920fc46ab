//! Building a checked [`Cluster`]: names resolved, duplicates refused, addresses allocated.
//!
//! Choices (documented in ARCHITECTURE.md):
//! - With no node declared, the cluster has one node `node-1`, 192.168.0.1, 10.244.1.0/24.
//! - A pod without `node` goes to the nodes in turn (declaration order).
//! - A pod without `ip` gets the next free address of its node's podCIDR, in declaration
//!   order, starting at the CIDR's second host address: the first (`.1`) is the node's
//!   bridge or gateway address, as Flannel's cni0 and host-local IPAM have it.
//! - Every namespace carries `kubernetes.io/metadata.name=<name>`.

use super::model::{
    Cluster, ContainerPort, IpOwner, Namespace, NodeId, NodeInfo, Overlay, Pod, Service,
    ServicePort,
};
use super::policy::{Policy, Rule};
use super::selector::Selector;
use crate::values::{Cidr, Labels, Site};
use indexmap::IndexMap;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

/// Something wrong with the cluster as declared, and where it was declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    pub site: Site,
    pub message: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.site, self.message)
    }
}

#[derive(Clone, Debug)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub node: Option<String>,
    pub ip: Option<IpAddr>,
    pub ports: Vec<ContainerPort>,
    pub site: Site,
}

#[derive(Clone, Debug)]
pub struct ServiceSpec {
    pub namespace: String,
    pub name: String,
    pub cluster_ip: Option<IpAddr>,
    pub selector: Option<Labels>,
    pub ports: Vec<ServicePort>,
    pub site: Site,
}

struct PolicySpec {
    namespace: String,
    name: String,
    pod_selector: Selector,
    ingress: Option<Vec<Rule>>,
    egress: Option<Vec<Rule>>,
    types_given: bool,
    site: Site,
}

/// Collects declarations in order; [`ClusterBuilder::build`] checks them all.
#[derive(Default)]
pub struct ClusterBuilder {
    overlay: Option<Overlay>,
    nodes: Vec<(NodeInfo, Site)>,
    namespaces: Vec<(String, Labels, Site)>,
    pods: Vec<PodSpec>,
    services: Vec<ServiceSpec>,
    externals: Vec<(String, IpAddr, Site)>,
    policies: Vec<PolicySpec>,
}

pub const METADATA_NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl ClusterBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn overlay(&mut self, overlay: Overlay) {
        self.overlay = Some(overlay);
    }

    pub fn node(&mut self, name: String, ip: IpAddr, pod_cidr: Option<Cidr>, site: Site) {
        self.nodes.push((NodeInfo { name, ip, pod_cidr }, site));
    }

    pub fn namespace(&mut self, name: String, labels: Labels, site: Site) {
        self.namespaces.push((name, labels, site));
    }

    pub fn pod(&mut self, pod: PodSpec) {
        self.pods.push(pod);
    }

    pub fn service(&mut self, service: ServiceSpec) {
        self.services.push(service);
    }

    pub fn external(&mut self, name: String, ip: IpAddr, site: Site) {
        self.externals.push((name, ip, site));
    }

    /// `types_given`: the policy gave its `policyTypes` (else `ingress` / `egress` are the
    /// defaults applied).
    #[allow(clippy::too_many_arguments)]
    pub fn policy(
        &mut self,
        namespace: String,
        name: String,
        pod_selector: Selector,
        ingress: Option<Vec<Rule>>,
        egress: Option<Vec<Rule>>,
        types_given: bool,
        site: Site,
    ) {
        self.policies.push(PolicySpec {
            namespace,
            name,
            pod_selector,
            ingress,
            egress,
            types_given,
            site,
        });
    }

    /// Check everything and build the cluster, or return every error found.
    pub fn build(self) -> Result<Cluster, Vec<BuildError>> {
        let mut errors = Vec::new();
        let mut err = |site: &Site, message: String| {
            errors.push(BuildError {
                site: site.clone(),
                message,
            })
        };

        // Nodes.
        let mut nodes: Vec<NodeInfo> = Vec::new();
        let mut node_index = HashMap::new();
        let mut ip_index: HashMap<IpAddr, IpOwner> = HashMap::new();
        let mut ip_sites: HashMap<IpAddr, String> = HashMap::new();
        let mut node_sites = Vec::new();
        let mut declared_nodes = self.nodes;
        if declared_nodes.is_empty() {
            declared_nodes.push((
                NodeInfo {
                    name: "node-1".into(),
                    ip: "192.168.0.1".parse().unwrap(),
                    pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
                },
                Site::default_for_builtin(),
            ));
        }
        for (node, site) in declared_nodes {
            if node_index.contains_key(&node.name) {
                err(&site, format!("duplicate node `{}`", node.name));
                continue;
            }
            if let Some(owner) = ip_sites.get(&node.ip) {
                err(
                    &site,
                    format!("address {} is already used by {owner}", node.ip),
                );
                continue;
            }
            let id = nodes.len() as NodeId;
            node_index.insert(node.name.clone(), id);
            ip_index.insert(node.ip, IpOwner::Node(id));
            ip_sites.insert(node.ip, format!("node `{}`", node.name));
            nodes.push(node);
            node_sites.push(site);
        }

        // Namespaces.
        let mut namespaces = Vec::new();
        let mut ns_index = HashMap::new();
        for (name, mut labels, site) in self.namespaces {
            if ns_index.contains_key(&name) {
                err(&site, format!("duplicate namespace `{name}`"));
                continue;
            }
            labels.insert(METADATA_NAME_LABEL.into(), name.clone());
            ns_index.insert(name.clone(), namespaces.len() as u32);
            namespaces.push(Namespace { name, labels });
        }

        // External names.
        let mut externals = IndexMap::new();
        for (name, ip, site) in self.externals {
            if externals.contains_key(&name) {
                err(&site, format!("duplicate external name `{name}`"));
                continue;
            }
            externals.insert(name, ip);
        }

        // Pods: first resolve names and explicit addresses, then allocate the rest.
        let mut pods: Vec<Pod> = Vec::new();
        let mut pod_index = HashMap::new();
        let mut unallocated = Vec::new();
        let mut turn = 0usize;
        let explicit: HashSet<IpAddr> = self.pods.iter().filter_map(|p| p.ip).collect();
        for spec in self.pods {
            let Some(&ns) = ns_index.get(&spec.namespace) else {
                err(
                    &spec.site,
                    format!(
                        "pod `{}/{}` is in namespace `{}`, which is not declared: declare it under `cluster.namespaces` or as a Namespace manifest",
                        spec.namespace, spec.name, spec.namespace
                    ),
                );
                continue;
            };
            if pod_index.contains_key(&(ns, spec.name.clone())) {
                err(
                    &spec.site,
                    format!("duplicate pod `{}/{}`", spec.namespace, spec.name),
                );
                continue;
            }
            let node = match &spec.node {
                Some(n) => match node_index.get(n) {
                    Some(&id) => id,
                    None => {
                        let known: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                        err(
                            &spec.site,
                            format!(
                                "pod `{}/{}` names node `{n}`, which is not declared (nodes: {})",
                                spec.namespace,
                                spec.name,
                                known.join(", ")
                            ),
                        );
                        continue;
                    }
                },
                None => {
                    let id = (turn % nodes.len().max(1)) as NodeId;
                    turn += 1;
                    id
                }
            };
            if nodes.is_empty() {
                continue;
            }
            let id = pods.len() as u32;
            let qualified = format!("{}/{}", spec.namespace, spec.name);
            let ip = match spec.ip {
                Some(ip) => {
                    if let Some(owner) = ip_sites.get(&ip) {
                        err(
                            &spec.site,
                            format!("pod `{qualified}` has address {ip}, already used by {owner}"),
                        );
                        continue;
                    }
                    ip_index.insert(ip, IpOwner::Pod(id));
                    ip_sites.insert(ip, format!("pod `{qualified}`"));
                    ip
                }
                None => {
                    unallocated.push((id, spec.site.clone()));
                    IpAddr::from([0, 0, 0, 0])
                }
            };
            pod_index.insert((ns, spec.name.clone()), id);
            pods.push(Pod {
                ns,
                name: spec.name,
                labels: spec.labels,
                node,
                ip,
                ports: spec.ports,
            });
        }
        let mut next: HashMap<NodeId, u128> = HashMap::new();
        for (id, site) in unallocated {
            let node = pods[id as usize].node;
            let info = &nodes[node as usize];
            let Some(cidr) = info.pod_cidr else {
                err(
                    &site,
                    format!(
                        "pod `{}` has no address and its node `{}` has no podCIDR to allocate one from",
                        format_args!("{}/{}", namespaces[pods[id as usize].ns as usize].name, pods[id as usize].name),
                        info.name
                    ),
                );
                continue;
            };
            let offset = next.entry(node).or_insert(2);
            let mut found = None;
            while let Some(ip) = nth_address(&cidr, *offset) {
                *offset += 1;
                if !explicit.contains(&ip) && !ip_sites.contains_key(&ip) {
                    found = Some(ip);
                    break;
                }
            }
            let Some(ip) = found else {
                err(
                    &site,
                    format!(
                        "node `{}`'s podCIDR {cidr} has no free address left",
                        info.name
                    ),
                );
                continue;
            };
            let qualified = format!(
                "{}/{}",
                namespaces[pods[id as usize].ns as usize].name, pods[id as usize].name
            );
            ip_index.insert(ip, IpOwner::Pod(id));
            ip_sites.insert(ip, format!("pod `{qualified}`"));
            pods[id as usize].ip = ip;
        }

        // Services.
        let mut services = Vec::new();
        let mut svc_index = HashMap::new();
        for spec in self.services {
            let Some(&ns) = ns_index.get(&spec.namespace) else {
                err(
                    &spec.site,
                    format!(
                        "service `{}/{}` is in namespace `{}`, which is not declared",
                        spec.namespace, spec.name, spec.namespace
                    ),
                );
                continue;
            };
            if svc_index.contains_key(&(ns, spec.name.clone())) {
                err(
                    &spec.site,
                    format!("duplicate service `{}/{}`", spec.namespace, spec.name),
                );
                continue;
            }
            let id = services.len() as u32;
            if let Some(ip) = spec.cluster_ip {
                if let Some(owner) = ip_sites.get(&ip) {
                    err(
                        &spec.site,
                        format!(
                            "service `{}/{}` has cluster IP {ip}, already used by {owner}",
                            spec.namespace, spec.name
                        ),
                    );
                    continue;
                }
                ip_index.insert(ip, IpOwner::Service(id));
                ip_sites.insert(ip, format!("service `{}/{}`", spec.namespace, spec.name));
            }
            let mut seen = HashSet::new();
            for p in &spec.ports {
                if !seen.insert((p.port, p.protocol)) {
                    err(
                        &spec.site,
                        format!(
                            "service `{}/{}` declares port {}/{} twice",
                            spec.namespace, spec.name, p.port, p.protocol
                        ),
                    );
                }
            }
            svc_index.insert((ns, spec.name.clone()), id);
            services.push(Service {
                ns,
                name: spec.name,
                cluster_ip: spec.cluster_ip,
                selector: spec.selector,
                ports: spec.ports,
            });
        }

        // Policies.
        let mut policies = Vec::new();
        let mut policy_names = HashSet::new();
        for spec in self.policies {
            let Some(&ns) = ns_index.get(&spec.namespace) else {
                err(
                    &spec.site,
                    format!(
                        "NetworkPolicy `{}/{}` is in namespace `{}`, which is not declared",
                        spec.namespace, spec.name, spec.namespace
                    ),
                );
                continue;
            };
            if !policy_names.insert((ns, spec.name.clone())) {
                err(
                    &spec.site,
                    format!("duplicate NetworkPolicy `{}/{}`", spec.namespace, spec.name),
                );
                continue;
            }
            policies.push(Policy {
                ns,
                name: spec.name,
                pod_selector: spec.pod_selector,
                ingress: spec.ingress,
                egress: spec.egress,
                types_given: spec.types_given,
            });
        }
        let _ = node_sites;

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Cluster {
            overlay: self.overlay,
            nodes,
            namespaces,
            pods,
            services,
            externals,
            policies,
            ns_index,
            pod_index,
            node_index,
            svc_index,
            ip_index,
        })
    }
}

/// The address `offset` places into `cidr`, if inside it (never the broadcast of IPv4).
fn nth_address(cidr: &Cidr, offset: u128) -> Option<IpAddr> {
    match cidr {
        Cidr::V4(net) => {
            let base = u32::from(net.network()) as u128;
            let size = 1u128 << (32 - net.prefix_len());
            (offset + 1 < size)
                .then(|| IpAddr::from(std::net::Ipv4Addr::from((base + offset) as u32)))
        }
        Cidr::V6(net) => {
            let base = u128::from(net.network());
            let bits = 128 - net.prefix_len() as u32;
            let fits = bits >= 128 || offset < (1u128 << bits);
            fits.then(|| IpAddr::from(std::net::Ipv6Addr::from(base + offset)))
        }
    }
}

impl Site {
    fn default_for_builtin() -> Site {
        Site {
            file: std::sync::Arc::new("<default node>".into()),
            loc: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn site() -> Site {
        Site::new(
            &Arc::new("t.yaml".into()),
            crate::values::Loc { line: 1, col: 1 },
        )
    }

    fn pod(ns: &str, name: &str, ip: Option<&str>) -> PodSpec {
        PodSpec {
            namespace: ns.into(),
            name: name.into(),
            labels: Labels::new(),
            node: None,
            ip: ip.map(|s| s.parse().unwrap()),
            ports: vec![],
            site: site(),
        }
    }

    #[test]
    fn allocation_skips_explicit_addresses_and_gateway() {
        let mut b = ClusterBuilder::new();
        b.namespace("x".into(), Labels::new(), site());
        b.pod(pod("x", "a", None));
        b.pod(pod("x", "b", Some("10.244.1.3")));
        b.pod(pod("x", "c", None));
        let c = b.build().unwrap();
        assert_eq!(c.pods[0].ip.to_string(), "10.244.1.2");
        assert_eq!(c.pods[2].ip.to_string(), "10.244.1.4");
        assert_eq!(c.namespaces[0].labels[METADATA_NAME_LABEL], "x".to_string());
    }

    #[test]
    fn undeclared_namespace_and_duplicates() {
        let mut b = ClusterBuilder::new();
        b.namespace("x".into(), Labels::new(), site());
        b.namespace("x".into(), Labels::new(), site());
        b.pod(pod("y", "a", None));
        b.pod(pod("x", "a", Some("10.0.0.1")));
        b.pod(pod("x", "a", None));
        b.pod(pod("x", "b", Some("10.0.0.1")));
        let errs = b.build().unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.message.clone()).collect();
        assert_eq!(errs.len(), 4, "{text:?}");
        assert!(text[0].contains("duplicate namespace"));
        assert!(text[1].contains("not declared"));
        assert!(text[2].contains("duplicate pod"));
        assert!(text[3].contains("already used by pod `x/a`"));
    }
}
