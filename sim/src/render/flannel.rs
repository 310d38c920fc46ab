//! Flannel's iptables rules, as flanneld (iptables mode, `--ip-masq`, the kube-flannel
//! manifest's default) writes them: flannel-io/flannel `pkg/trafficmngr/iptables/iptables.go`,
//! functions `masqRules` and `forwardRules` (docs/dataplanes.md).
//!
//! Contract:
//! - Two chains: filter `FLANNEL-FWD` (accepts forwarded traffic from and to the flannel
//!   network) and nat `FLANNEL-POSTRTG` (no NAT inside the network, MASQUERADE of pod
//!   traffic leaving it and of host traffic entering it; kube-proxy-marked traffic is left
//!   to kube-proxy). flanneld *appends* the jumps (`-A FORWARD`, `-A POSTROUTING`), so they
//!   sit below the host firewall's rules and below kube-proxy's inserted jumps.
//! - The network is [`ClusterNet::pod_network`]; the node's lease is its podCIDR.
//! - Flannel enforces no NetworkPolicy, and writes no rule for its VXLAN port (UDP 8472):
//!   the host firewall must let it through.
//! - IPv4 only: without an IPv4 pod network or podCIDR, rendering fails naming it.

use super::iptables_out::Tables;
use super::net::ClusterNet;
use super::RenderError;
use crate::cluster::{Cluster, NodeId};
use crate::values::Cidr;

/// Add the node's flanneld rules to `t`.
pub fn render(
    cluster: &Cluster,
    net: &ClusterNet,
    node: NodeId,
    t: &mut Tables,
) -> Result<(), RenderError> {
    let node_info = &cluster.nodes[node as usize];
    let network = match net.pod_network {
        Some(c @ Cidr::V4(_)) => c,
        _ => {
            return Err(
                "flannel: the cluster has no IPv4 pod network (IPv6 flannel is not modelled)"
                    .to_string()
                    .into(),
            )
        }
    };
    let subnet = match node_info.pod_cidr {
        Some(c @ Cidr::V4(_)) => c,
        _ => {
            return Err(format!(
                "flannel: node `{}` has no IPv4 podCIDR, which flannel leases its subnet from",
                node_info.name
            )
            .into())
        }
    };
    for table in ["nat", "filter"] {
        for c in crate::syntax::iptables::builtin_chains(table) {
            t.declare(table, c);
        }
    }

    // forwardRules.
    let fwd = "-m comment --comment \"flanneld forward\"";
    t.declare("filter", "FLANNEL-FWD");
    t.append("filter", "FORWARD", format!("{fwd} -j FLANNEL-FWD"));
    t.push(
        "filter",
        "FLANNEL-FWD",
        format!("-s {network} {fwd} -j ACCEPT"),
    );
    t.push(
        "filter",
        "FLANNEL-FWD",
        format!("-d {network} {fwd} -j ACCEPT"),
    );

    // masqRules (iptables with --random-fully, flannel's ipMasqRandomFullyDisable unset).
    let masq = "-m comment --comment \"flanneld masq\"";
    let mark = super::kube_proxy::MASQ_MARK;
    t.declare("nat", "FLANNEL-POSTRTG");
    t.append("nat", "POSTROUTING", format!("{masq} -j FLANNEL-POSTRTG"));
    for rule in [
        // Traffic kube-proxy marked is kube-proxy's to masquerade.
        format!("-m mark --mark {mark:#x}/{mark:#x} {masq} -j RETURN"),
        // Within the flannel network: no NAT.
        format!("-s {subnet} -d {network} {masq} -j RETURN"),
        format!("-s {network} -d {subnet} {masq} -j RETURN"),
        // From outside to this node's pods: keep the source.
        format!("! -s {network} -d {subnet} {masq} -j RETURN"),
        // Pods to the outside (not multicast): masquerade.
        format!("-s {network} ! -d 224.0.0.0/4 {masq} -j MASQUERADE --random-fully"),
        // The host (or anything outside) to other nodes' pods: masquerade.
        format!("! -s {network} -d {network} {masq} -j MASQUERADE --random-fully"),
    ] {
        t.push("nat", "FLANNEL-POSTRTG", rule);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterBuilder, PodSpec, Selector, ServicePort, ServiceSpec, TargetPort};
    use crate::netfilter::interp::{walk_on, Fate, Walk};
    use crate::render::net::Cni;
    use crate::render::{Flavor, HostFirewall};
    use crate::values::{CtState, Hook, Labels, Loc, Packet, Protocol, Site};
    use std::sync::Arc;

    fn site() -> Site {
        Site::new(&Arc::new("t.yaml".into()), Loc { line: 1, col: 1 })
    }

    fn pod(name: &str, node: &str, ip: &str) -> PodSpec {
        PodSpec {
            namespace: "x".into(),
            name: name.into(),
            labels: [("app".to_string(), name.to_string())].into(),
            node: Some(node.into()),
            ip: Some(ip.parse().unwrap()),
            ports: vec![],
            site: site(),
        }
    }

    /// Two nodes, a pod on each, a service in front of the pod on node-2, and a
    /// NetworkPolicy denying all ingress and egress in the namespace.
    fn cluster() -> Cluster {
        let mut b = ClusterBuilder::new();
        b.node(
            "node-1".into(),
            "192.168.0.1".parse().unwrap(),
            Some("10.244.1.0/24".parse().unwrap()),
            site(),
        );
        b.node(
            "node-2".into(),
            "192.168.0.2".parse().unwrap(),
            Some("10.244.2.0/24".parse().unwrap()),
            site(),
        );
        b.namespace("x".into(), Labels::new(), site());
        b.pod(pod("a", "node-1", "10.244.1.2"));
        b.pod(pod("b", "node-2", "10.244.2.2"));
        b.service(ServiceSpec {
            namespace: "x".into(),
            name: "b".into(),
            cluster_ip: Some("10.96.0.50".parse().unwrap()),
            selector: Some([("app".to_string(), "b".to_string())].into()),
            ports: vec![ServicePort {
                name: None,
                port: 80,
                target: TargetPort::Number(8080),
                protocol: Protocol::Tcp,
            }],
            site: site(),
        });
        b.policy(
            "x".into(),
            "deny-all".into(),
            Selector::default(),
            Some(vec![]),
            Some(vec![]),
            true,
            site(),
        );
        b.build().unwrap()
    }

    const FORWARD_DROP: &str =
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

    /// Node-1's rules: kube-proxy's and flannel's (or kube-proxy's only), below a host
    /// firewall whose FORWARD policy is DROP.
    fn node1(with_flannel: bool) -> (ClusterNet, crate::netfilter::ir::Ruleset) {
        let c = cluster();
        let net = ClusterNet::new(&c, Cni::Flannel);
        let mut t = Tables::new();
        t.add_host(&crate::syntax::iptables::parse(FORWARD_DROP).unwrap())
            .unwrap();
        crate::render::kube_proxy::render(&c, &net, 0, &mut t).unwrap();
        if with_flannel {
            render(&c, &net, 0, &mut t).unwrap();
        }
        let rs = crate::netfilter::read_ruleset(&t.text()).unwrap();
        (net, rs)
    }

    fn forward(src: &str, dst: &str, iif: &str, oif: &str) -> Packet {
        Packet {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: 6,
            sport: Some(40000),
            dport: Some(8080),
            iif: Some(iif.into()),
            oif: Some(oif.into()),
            hook: Hook::Forward,
            ctstate: CtState::New,
            mark: 0,
        }
    }

    fn masqueraded_by(w: &Walk, chain: &str) -> bool {
        w.trace
            .iter()
            .any(|s| s.chain == chain && s.effect == "match: masquerade")
    }

    #[test]
    fn pod_traffic_is_forwarded_and_no_policy_is_enforced() {
        let (net, rs) = node1(true);
        let host = net.host(0);
        // Pod a to pod b on node-2, through the VXLAN device, despite FORWARD DROP and
        // the deny-all policy (Flannel enforces none); not masqueraded inside the network.
        let p = forward("10.244.1.2", "10.244.2.2", "cni0", "flannel.1");
        let w = walk_on(&rs, &p, Some(&host));
        assert_eq!(w.fate, Fate::Accept, "{w}");
        assert!(w.trace.iter().any(|s| s.chain == "FLANNEL-FWD"), "{w}");
        assert!(!masqueraded_by(&w, "FLANNEL-POSTRTG"), "{w}");
        // Coming back from node-2 to pod a.
        let p = forward("10.244.2.2", "10.244.1.2", "flannel.1", "cni0");
        assert_eq!(walk_on(&rs, &p, Some(&host)).fate, Fate::Accept);
        // Without flanneld's rules the host firewall's policy drops both.
        let (net, rs) = node1(false);
        let p = forward("10.244.1.2", "10.244.2.2", "cni0", "flannel.1");
        assert_eq!(walk_on(&rs, &p, Some(&net.host(0))).fate, Fate::Drop);
    }

    #[test]
    fn pod_traffic_leaving_the_network_is_masqueraded() {
        let (net, rs) = node1(true);
        let host = net.host(0);
        let p = forward("10.244.1.2", "203.0.113.7", "cni0", "eth0");
        let w = walk_on(&rs, &p, Some(&host));
        assert_eq!(w.fate, Fate::Accept, "{w}");
        assert!(masqueraded_by(&w, "FLANNEL-POSTRTG"), "{w}");
        // Multicast is not.
        let p = forward("10.244.1.2", "239.1.2.3", "cni0", "eth0");
        let w = walk_on(&rs, &p, Some(&host));
        assert!(!masqueraded_by(&w, "FLANNEL-POSTRTG"), "{w}");
        // From outside to a pod of this node: accepted, source kept.
        let p = forward("203.0.113.7", "10.244.1.2", "eth0", "cni0");
        let w = walk_on(&rs, &p, Some(&host));
        assert_eq!(w.fate, Fate::Accept, "{w}");
        assert!(!masqueraded_by(&w, "FLANNEL-POSTRTG"), "{w}");
    }

    /// Through `render::render`: pod a to the service whose endpoint is on node-2 is
    /// DNATed by kube-proxy and forwarded by flannel's rules over the tunnel.
    #[test]
    fn the_flannel_flavor_renders_and_walks() {
        let c = cluster();
        let hosts = [HostFirewall {
            node: "*".into(),
            origin: "test".into(),
            text: FORWARD_DROP.into(),
        }];
        let r = crate::render::render(&c, Flavor::Flannel, &hosts).unwrap();
        assert_eq!(r.nodes.len(), 2);
        let text = r.nodes[0].iptables.as_deref().unwrap();
        let rs = crate::netfilter::read_ruleset(text).unwrap();
        // The node's own subnet in its RETURN rules.
        assert!(text.contains("-s 10.244.1.0/24 -d 10.244.0.0/16"), "{text}");
        assert!(r.nodes[1]
            .iptables
            .as_deref()
            .unwrap()
            .contains("-s 10.244.2.0/24"));
        let mut p = forward("10.244.1.2", "10.96.0.50", "cni0", "eth0");
        p.dport = Some(80);
        let w = walk_on(&rs, &p, Some(&r.net.host(0)));
        assert_eq!(w.fate, Fate::Accept, "{w}");
        assert!(
            w.trace.iter().any(|s| s.effect == "match: dnat"
                && s.text.contains("--to-destination 10.244.2.2:8080")),
            "{w}"
        );
        assert!(w.trace.iter().any(|s| s.chain == "FLANNEL-FWD"), "{w}");
    }

    #[test]
    fn a_node_without_a_pod_cidr_is_refused() {
        let mut b = ClusterBuilder::new();
        b.node("n".into(), "192.168.0.1".parse().unwrap(), None, site());
        b.node(
            "m".into(),
            "192.168.0.2".parse().unwrap(),
            Some("10.244.2.0/24".parse().unwrap()),
            site(),
        );
        let c = b.build().unwrap();
        let net = ClusterNet::new(&c, Cni::Flannel);
        let e = render(&c, &net, 0, &mut Tables::new()).unwrap_err();
        assert!(e.message.contains("podCIDR"), "{e}");
    }
}
