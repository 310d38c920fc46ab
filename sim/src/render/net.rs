//! The network of each node as a CNI lays it out: interface names, addresses and routes.
//!
//! Renderers name interfaces in their rules and the packet path walks packets in and out of
//! the same interfaces; both take them from here, so they cannot drift apart.
//!
//! Choices (each from the CNI's own code or documentation; see ARCHITECTURE.md):
//! - Every node has one uplink, `eth0`, holding the node's address; other nodes and every
//!   address outside the cluster are reached through it. (A captured node's layout,
//!   `crate::captured`, fills the same structure from the node's own devices and routes.)
//! - Calico: each pod has a host-side veth `cali` + the first 11 hex digits of
//!   SHA-1(`<namespace>.<pod>`) (Calico's CNI plugin, `VethNameForWorkload`), routed (no
//!   bridge), no address on it. IPIP: `tunl0`; VXLAN: `vxlan.calico`; the tunnel device has
//!   the first host address of the node's podCIDR (Calico allocates the tunnel address from
//!   the node's block), and host-originated packets to remote pods leave with it as source.
//! - Flannel: pods hang on the bridge `cni0` (the podCIDR's first host address, the pods'
//!   gateway); netfilter sees pod traffic on `cni0` (bridged traffic between two pods of one
//!   node crosses FORWARD too, as `br_netfilter`, which Kubernetes requires, makes it). VXLAN
//!   device `flannel.1` with the podCIDR's network address.
//! - Overlay `none`: other nodes' podCIDRs are routed through `eth0` (direct routing).

use crate::cluster::{Cluster, NodeId, Overlay, PodId};
use crate::values::Cidr;
use std::net::IpAddr;

/// The CNI whose layout a node has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cni {
    Calico,
    Flannel,
}

/// How encapsulated pod traffic crosses the wire between nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// IP-in-IP, protocol 4 (Calico IPIP).
    Ipip,
    /// VXLAN on this UDP port (4789 Calico, 8472 Flannel).
    Vxlan(u16),
}

pub const UPLINK: &str = "eth0";

/// Calico's host-side interface name for a pod.
pub fn calico_iface(namespace: &str, pod: &str) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::digest(format!("{namespace}.{pod}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cali{}", &hex[..11])
}

/// One node's interfaces, addresses and routes.
#[derive(Clone, Debug)]
pub struct NodeNet {
    pub node: NodeId,
    pub cni: Cni,
    /// The tunnel to other nodes, if the overlay has one.
    pub tunnel: Option<Tunnel>,
    /// The tunnel device's name (`tunl0`, `vxlan.calico`, `flannel.1`).
    pub tunnel_dev: Option<String>,
    /// The tunnel device's address, the source of host packets to remote pods.
    pub tunnel_addr: Option<IpAddr>,
    /// Flannel's bridge address.
    pub bridge_addr: Option<IpAddr>,
    /// Every address of the node.
    pub addresses: Vec<IpAddr>,
    /// (destination, device); the longest prefix wins; `0.0.0.0/0` goes to the uplink.
    pub routes: Vec<(Cidr, String)>,
    /// (device, its address), for MASQUERADE's choice of source.
    pub iface_addrs: Vec<(String, IpAddr)>,
    /// The device holding the node's address: other nodes and the outside are reached
    /// through it (`eth0` in every rendered layout).
    pub uplink: String,
    /// The bridges pods hang on (Flannel's `cni0`).
    pub bridges: Vec<String>,
    /// Whether traffic bridged between two ports of one of `bridges` crosses iptables
    /// (`net.bridge.bridge-nf-call-iptables`, with `br_netfilter` loaded); None: not known
    /// (the path cannot decide such traffic).
    pub bridge_nf_call: Option<bool>,
}

/// The whole cluster's layout for one CNI.
#[derive(Clone, Debug)]
pub struct ClusterNet {
    pub cni: Cni,
    pub overlay: Overlay,
    /// The pod network (Calico's IP pool, Flannel's network, kube-proxy's cluster CIDR).
    pub pod_network: Option<Cidr>,
    pub nodes: Vec<NodeNet>,
    /// Per pod, the interface netfilter sees its traffic on (on its own node).
    pub pod_iface: Vec<String>,
    /// Pods whose interface is not known (a captured node without a route to the pod):
    /// why. The path does not decide flows from or to them.
    pub unplaced: std::collections::BTreeMap<PodId, String>,
}

impl ClusterNet {
    pub fn new(cluster: &Cluster, cni: Cni) -> ClusterNet {
        let overlay = cluster.overlay.unwrap_or(match cni {
            Cni::Calico => Overlay::Ipip,
            Cni::Flannel => Overlay::Vxlan,
        });
        let tunnel = match (overlay, cni) {
            (Overlay::None, _) => None,
            (Overlay::Ipip, _) => Some(Tunnel::Ipip),
            (Overlay::Vxlan, Cni::Calico) => Some(Tunnel::Vxlan(4789)),
            (Overlay::Vxlan, Cni::Flannel) => Some(Tunnel::Vxlan(8472)),
        };
        let tunnel_dev = tunnel.map(|t| match (t, cni) {
            (Tunnel::Ipip, _) => "tunl0".to_string(),
            (Tunnel::Vxlan(_), Cni::Calico) => "vxlan.calico".to_string(),
            (Tunnel::Vxlan(_), Cni::Flannel) => "flannel.1".to_string(),
        });
        let pod_network = pod_network(cluster);
        let pod_iface: Vec<String> = cluster
            .pods
            .iter()
            .map(|p| match cni {
                Cni::Calico => calico_iface(&cluster.namespaces[p.ns as usize].name, &p.name),
                Cni::Flannel => "cni0".to_string(),
            })
            .collect();
        let nth = |c: &Cidr, n: u32| -> Option<IpAddr> {
            match c {
                Cidr::V4(v) => Some(IpAddr::V4((u32::from(v.network()) + n).into())),
                Cidr::V6(v) => Some(IpAddr::V6((u128::from(v.network()) + n as u128).into())),
            }
        };
        let nodes = cluster
            .nodes
            .iter()
            .enumerate()
            .map(|(id, n)| {
                let id = id as NodeId;
                let mut addresses = vec![n.ip];
                let mut iface_addrs = vec![(UPLINK.to_string(), n.ip)];
                let mut routes: Vec<(Cidr, String)> = Vec::new();
                let default: Cidr = if n.ip.is_ipv4() {
                    "0.0.0.0/0".parse().expect("cidr")
                } else {
                    "::/0".parse().expect("cidr")
                };
                routes.push((default, UPLINK.to_string()));
                let (tunnel_addr, bridge_addr) = match (cni, n.pod_cidr.as_ref(), &tunnel_dev) {
                    (Cni::Calico, Some(c), Some(_)) => (nth(c, 1), None),
                    (Cni::Flannel, Some(c), Some(_)) => (nth(c, 0), nth(c, 1)),
                    (Cni::Flannel, Some(c), None) => (None, nth(c, 1)),
                    _ => (None, None),
                };
                if let (Some(a), Some(dev)) = (tunnel_addr, &tunnel_dev) {
                    addresses.push(a);
                    iface_addrs.push((dev.clone(), a));
                }
                if let Some(a) = bridge_addr {
                    addresses.push(a);
                    iface_addrs.push(("cni0".to_string(), a));
                }
                // Local pods.
                match cni {
                    Cni::Calico => {
                        for (p, pod) in cluster.pods.iter().enumerate() {
                            if pod.node == id {
                                routes.push((Cidr::from(pod.ip), pod_iface[p].clone()));
                            }
                        }
                    }
                    Cni::Flannel => {
                        if let Some(c) = n.pod_cidr {
                            routes.push((c, "cni0".to_string()));
                        }
                    }
                }
                // Other nodes' pods: through the tunnel, or the uplink.
                for (other, o) in cluster.nodes.iter().enumerate() {
                    if other as NodeId == id {
                        continue;
                    }
                    routes.push((Cidr::from(o.ip), UPLINK.to_string()));
                    if let Some(c) = o.pod_cidr {
                        let dev = tunnel_dev.clone().unwrap_or_else(|| UPLINK.to_string());
                        routes.push((c, dev));
                    }
                }
                NodeNet {
                    node: id,
                    cni,
                    tunnel,
                    tunnel_dev: tunnel_dev.clone(),
                    tunnel_addr,
                    bridge_addr,
                    addresses,
                    routes,
                    iface_addrs,
                    uplink: UPLINK.to_string(),
                    bridges: match cni {
                        Cni::Flannel => vec!["cni0".to_string()],
                        Cni::Calico => Vec::new(),
                    },
                    // Kubernetes requires br_netfilter with bridge-nf-call-iptables = 1.
                    bridge_nf_call: Some(true),
                }
            })
            .collect();
        ClusterNet {
            cni,
            overlay,
            pod_network,
            nodes,
            pod_iface,
            unplaced: Default::default(),
        }
    }

    /// The node a pod runs on and the interface its traffic is seen on there.
    pub fn pod_port(&self, cluster: &Cluster, pod: PodId) -> (NodeId, &str) {
        (
            cluster.pods[pod as usize].node,
            self.pod_iface[pod as usize].as_str(),
        )
    }

    /// The host model the netfilter walk of `node` needs (addresses, networks, routes).
    pub fn host(&self, node: NodeId) -> crate::netfilter::interp::Host {
        let n = &self.nodes[node as usize];
        crate::netfilter::interp::Host {
            addresses: n.addresses.clone(),
            networks: n.addresses.iter().map(|a| Cidr::from(*a)).collect(),
            routes: n.routes.clone(),
            iface_addrs: n.iface_addrs.clone(),
            complete: false,
            no_forwarding: (false, false),
        }
    }
}

/// The pod network: the shortest common prefix of every node's podCIDR and every pod
/// address, and never longer than /16 (kube-proxy's and Flannel's usual `10.244.0.0/16`).
/// None without any IPv4 pod or podCIDR.
pub fn pod_network(cluster: &Cluster) -> Option<Cidr> {
    let mut addrs: Vec<(u32, u8)> = Vec::new();
    for n in &cluster.nodes {
        if let Some(Cidr::V4(c)) = n.pod_cidr {
            addrs.push((u32::from(c.network()), c.prefix_len()));
        }
    }
    for p in &cluster.pods {
        if let IpAddr::V4(a) = p.ip {
            addrs.push((u32::from(a), 32));
        }
    }
    let (first, _) = *addrs.first()?;
    let mut len: u8 = addrs.iter().map(|a| a.1).min().unwrap_or(32).min(16);
    while len > 0 {
        let mask = u32::MAX << (32 - len);
        if addrs.iter().all(|(a, _)| a & mask == first & mask) {
            break;
        }
        len -= 1;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some(Cidr::V4(
        ipnet::Ipv4Net::new((first & mask).into(), len).expect("prefix"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calico_interface_names_follow_the_cni_plugin() {
        // SHA-1("default.nginx") = c440f455693b69cd... (Python's hashlib).
        assert_eq!(calico_iface("default", "nginx"), "calic440f455693");
        assert_ne!(
            calico_iface("default", "nginx"),
            calico_iface("default", "nginx2")
        );
    }
}
