//! The `captured` dataplane: a cluster's flows walked through the rules its nodes really
//! hold (their snapshots, `crate::snapshot`), along the path the nodes' own devices and
//! routes give, with no renderer involved.
//!
//! Contract:
//! - [`layout`] builds the cluster's [`ClusterNet`] from one snapshot per node, never from
//!   fwsim's model of a CNI: the node's uplink is the device holding its address; a pod's
//!   interface is the device of the node's route to the pod's address (Calico's `cali*` /32
//!   routes; a bridge such as Flannel's `cni0`); the tunnel is the device of the routes to
//!   other nodes' pods when `ip -d link` says it is one (`vxlan`, `ipip`); whether bridged
//!   traffic crosses iptables is `net.bridge.bridge-nf-call-iptables`.
//! - It fails, with the reason, when the snapshots cannot describe the cluster at all (a
//!   node without a snapshot, a snapshot without the node's address or without routes):
//!   every flow is then skipped with that reason. A pod whose interface is not found is
//!   left unplaced, with the reason: flows from or to it are not decided, never guessed.
//! - [`path`] is the cluster packet path on those parts (`crate::path`): each node's walk
//!   runs every table the snapshot holds, with the snapshot's host model, and the node's
//!   routing (reverse-path filtering) drops what it drops.
//!
//! Choices (docs/snapshots.md, "The captured dataplane"):
//! - The main routing table decides the path (policy rules are not consulted past the
//!   first routing decision, as in `fwsim trace --node`).
//! - An encapsulated packet goes to the peer node's own address (the snapshot holds no
//!   FDB or neighbour entries to say otherwise; Calico and Flannel use the node address).
//! - fwsim's kernel lab stands in for `ipip` with a TUN device where the kernel has no
//!   `ipip` driver; it marks it with the alias [`IPIP_STAND_IN`], read as `ipip`.

use crate::cluster::{Cluster, NodeId, Overlay, PodId};
use crate::netfilter::ir::Ruleset;
use crate::path::ClusterPath;
use crate::render::net::{pod_network, ClusterNet, Cni, NodeNet, Tunnel};
use crate::snapshot::Snapshot;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The alias (`ip link set DEV alias ...`) of a TUN device that emulates an IPIP tunnel.
pub const IPIP_STAND_IN: &str = "fwsim: ipip tunnel stand-in";

/// The tunnel a device is, if it is one.
fn tunnel_of(s: &Snapshot, dev: &str) -> Option<Result<Tunnel, String>> {
    let link = s.links.iter().find(|l| l.name == dev)?;
    match link.kind.as_deref() {
        Some("ipip") => Some(Ok(Tunnel::Ipip)),
        Some("tun") if link.alias.as_deref() == Some(IPIP_STAND_IN) => Some(Ok(Tunnel::Ipip)),
        Some("vxlan") => Some(match link.vxlan_port {
            Some(p) => Ok(Tunnel::Vxlan(p)),
            None => Err(format!(
                "the VXLAN device {dev} has no UDP port in ip-link.json"
            )),
        }),
        _ => None,
    }
}

/// The layout of `cluster` from its nodes' snapshots (`snaps[n]` is node n's).
pub fn layout(cluster: &Cluster, snaps: &[&Snapshot]) -> Result<ClusterNet, String> {
    if snaps.len() != cluster.nodes.len() {
        return Err(format!(
            "{} node snapshots for {} nodes",
            snaps.len(),
            cluster.nodes.len()
        ));
    }
    let mut nodes = Vec::new();
    let mut pod_iface = vec![String::new(); cluster.pods.len()];
    let mut unplaced: BTreeMap<PodId, String> = BTreeMap::new();
    let mut any_bridge = false;
    let mut overlay = Overlay::None;
    for (i, (node, s)) in cluster.nodes.iter().zip(snaps).enumerate() {
        let id = i as NodeId;
        let at = || format!("node {}'s snapshot ({})", node.name, s.dir.display());
        if s.routing.routes.is_empty() {
            return Err(format!(
                "{}: routes were not collected (ip-route.json)",
                at()
            ));
        }
        let uplink = s
            .addrs
            .iter()
            .find(|a| a.addr == node.ip)
            .map(|a| a.dev.clone())
            .ok_or_else(|| {
                format!(
                    "{}: no device holds the node's address {} (ip-addr.json): is it this node's snapshot?",
                    at(),
                    node.ip
                )
            })?;
        let host = &s.host;
        // The tunnel: the device routes to other nodes' pods (or podCIDRs) leave by.
        let mut tunnel = None;
        for (j, other) in cluster.nodes.iter().enumerate() {
            if j == i {
                continue;
            }
            let remote: Vec<IpAddr> = cluster
                .pods
                .iter()
                .filter(|p| p.node as usize == j)
                .map(|p| p.ip)
                .chain(other.pod_cidr.map(|c| c.addr()))
                .collect();
            for a in remote {
                if let Some(dev) = host.route(a) {
                    if let Some(t) = tunnel_of(s, dev) {
                        tunnel.get_or_insert((t.map_err(|e| format!("{}: {e}", at()))?, dev));
                    }
                }
            }
        }
        let (tunnel, tunnel_dev) = match tunnel {
            Some((t, d)) => (Some(t), Some(d.to_string())),
            None => (None, None),
        };
        if let Some(t) = tunnel {
            overlay = match t {
                Tunnel::Ipip => Overlay::Ipip,
                Tunnel::Vxlan(_) => Overlay::Vxlan,
            };
        }
        let tunnel_addr = tunnel_dev.as_ref().and_then(|d| {
            s.addrs
                .iter()
                .find(|a| &a.dev == d && a.addr.is_ipv4() == node.ip.is_ipv4())
                .map(|a| a.addr)
        });
        let mut bridges = Vec::new();
        for (p, pod) in cluster.pods.iter().enumerate() {
            if pod.node != id {
                continue;
            }
            let name = cluster.pod_name(p as PodId);
            let why = match host.route(pod.ip) {
                _ if host.addresses.contains(&pod.ip) => Some(format!(
                    "pod {name}: {} is the node's own address (a host-network pod?)",
                    pod.ip
                )),
                None | Some("") => Some(format!(
                    "pod {name}: node {} has no route to {} (ip-route.json)",
                    node.name, pod.ip
                )),
                Some(dev) if dev == uplink || Some(dev) == tunnel_dev.as_deref() => {
                    Some(format!(
                        "pod {name}: node {}'s route to {} leaves by {dev}, not by a pod interface",
                        node.name, pod.ip
                    ))
                }
                Some(dev) if !s.links.is_empty() && !s.links.iter().any(|l| l.name == dev) => {
                    Some(format!(
                        "pod {name}: node {}'s route to {} names {dev}, a device ip-link.json does not list",
                        node.name, pod.ip
                    ))
                }
                Some(dev) => {
                    if s
                        .links
                        .iter()
                        .any(|l| l.name == dev && l.kind.as_deref() == Some("bridge"))
                        && !bridges.iter().any(|b| b == dev)
                    {
                        bridges.push(dev.to_string());
                    }
                    pod_iface[p] = dev.to_string();
                    None
                }
            };
            if let Some(why) = why {
                unplaced.insert(p as PodId, why);
            }
        }
        any_bridge |= !bridges.is_empty();
        let bridge_nf_call = if s.sysctl.is_empty() {
            None
        } else {
            // Without br_netfilter the key does not exist: bridged traffic skips iptables.
            Some(s.sysctl("net.bridge.bridge-nf-call-iptables") == Some("1"))
        };
        nodes.push(NodeNet {
            node: id,
            cni: Cni::Calico,
            tunnel,
            tunnel_dev,
            tunnel_addr,
            bridge_addr: None,
            addresses: host.addresses.clone(),
            routes: host.routes.clone(),
            iface_addrs: host.iface_addrs.clone(),
            uplink,
            bridges,
            bridge_nf_call,
        });
    }
    let cni = if any_bridge {
        Cni::Flannel
    } else {
        Cni::Calico
    };
    for n in &mut nodes {
        n.cni = cni;
    }
    Ok(ClusterNet {
        cni,
        overlay,
        pod_network: pod_network(cluster),
        nodes,
        pod_iface,
        unplaced,
    })
}

/// The cluster packet path through the captured nodes (`snaps[n]` is node n's).
pub fn path<'c>(cluster: &'c Cluster, snaps: &[&'c Snapshot]) -> Result<ClusterPath<'c>, String> {
    let net = layout(cluster, snaps)?;
    let rulesets: Vec<Ruleset> = snaps.iter().map(|s| s.ruleset.clone()).collect();
    let hosts = snaps.iter().map(|s| s.host.clone()).collect();
    Ok(ClusterPath::from_parts(
        cluster,
        net,
        rulesets,
        hosts,
        snaps.iter().map(|s| Some(*s)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Endpoint, Flow};
    use crate::reference::Verdict;
    use crate::values::Protocol;

    const CLUSTER: &str = "apiVersion: fwsim/v1\nkind: Scenario\nname: t\ncluster:\n  nodes:\n    - {name: node-1, ip: 192.168.0.1, podCIDR: 10.244.1.0/24}\n  namespaces: {x: {}}\n  pods:\n    - {name: x/a, node: node-1, ip: 10.244.1.10}\n    - {name: x/b, node: node-1, ip: 10.244.1.11}\n    - {name: x/c, node: node-1, ip: 10.244.1.12}\nexpect: []\n";

    /// A bridge node as `ip -j` prints it: pods on `cni0`, x/c's address routed out of
    /// eth0 (no pod interface), FORWARD dropping everything.
    fn bridge_node(dir: &std::path::Path, sysctl: Option<&str>) -> Snapshot {
        let files = [
            (
                "ip-addr.json",
                r#"[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},{"ifname":"eth0","addr_info":[{"family":"inet","local":"192.168.0.1","prefixlen":24}]},{"ifname":"cni0","addr_info":[{"family":"inet","local":"10.244.1.1","prefixlen":24}]}]"#,
            ),
            (
                "ip-link.json",
                r#"[{"ifname":"lo","flags":["LOOPBACK","UP"]},{"ifname":"eth0","flags":["UP"]},{"ifname":"cni0","flags":["UP"],"linkinfo":{"info_kind":"bridge"}},{"ifname":"veth1","flags":["UP"],"master":"cni0","linkinfo":{"info_kind":"veth"}}]"#,
            ),
            (
                "ip-route.json",
                r#"[{"dst":"default","gateway":"192.168.0.254","dev":"eth0"},{"dst":"10.244.1.0/24","dev":"cni0"},{"dst":"10.244.1.12","gateway":"192.168.0.254","dev":"eth0"},{"dst":"192.168.0.0/24","dev":"eth0"},{"type":"local","dst":"192.168.0.1","dev":"eth0","table":"local"},{"type":"local","dst":"10.244.1.1","dev":"cni0","table":"local"}]"#,
            ),
            (
                "iptables-legacy-save.txt",
                "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
            ),
        ];
        std::fs::create_dir_all(dir).unwrap();
        for (f, t) in files {
            std::fs::write(dir.join(f), t).unwrap();
        }
        if let Some(s) = sysctl {
            std::fs::write(dir.join("sysctl.txt"), s).unwrap();
        }
        crate::snapshot::read(dir).unwrap_or_else(|d| panic!("{d}"))
    }

    fn verdict(c: &Cluster, s: &Snapshot, from: &str, to: &str) -> Result<Verdict, String> {
        let p = path(c, &[s]).unwrap();
        let f = Flow {
            from: Endpoint::Pod(c.pod(from).unwrap()),
            to: Endpoint::Pod(c.pod(to).unwrap()),
            port: Some(80),
            protocol: Protocol::Tcp,
        };
        p.flow(&f).verdict
    }

    #[test]
    fn bridged_pod_traffic_crosses_iptables_only_with_bridge_nf_call_iptables() {
        let c = crate::testing::cluster_of(CLUSTER);
        let tmp = tempfile::tempdir().unwrap();
        let on = bridge_node(
            &tmp.path().join("on"),
            Some("net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n"),
        );
        let net = layout(&c, &[&on]).unwrap();
        assert_eq!(net.nodes[0].uplink, "eth0");
        assert_eq!(net.nodes[0].bridges, vec!["cni0".to_string()]);
        assert_eq!(net.pod_iface[0], "cni0");
        // FORWARD drops it: br_netfilter hands bridged packets to iptables.
        assert_eq!(verdict(&c, &on, "x/a", "x/b"), Ok(Verdict::Deny));
        // Without br_netfilter (no such key) the bridge forwards it unseen.
        let off = bridge_node(&tmp.path().join("off"), Some("net.ipv4.ip_forward = 1\n"));
        assert_eq!(verdict(&c, &off, "x/a", "x/b"), Ok(Verdict::Allow));
        // Not collected: not decided.
        let unknown = bridge_node(&tmp.path().join("unknown"), None);
        let v = verdict(&c, &unknown, "x/a", "x/b");
        assert!(
            v.as_ref()
                .is_err_and(|e| e.contains("bridge-nf-call-iptables")),
            "{v:?}"
        );
        // A pod whose route leaves by the uplink has no interface: skipped, with why.
        let v = verdict(&c, &on, "x/a", "x/c");
        assert!(
            v.as_ref()
                .is_err_and(|e| e.contains("pod x/c") && e.contains("eth0")),
            "{v:?}"
        );
    }
}
