//! Calico felix's iptables dataplane: the filter, nat, raw and mangle chains felix keeps on
//! one node, and the IP sets they match on.
//!
//! Contract: [`render`] adds the node's felix chains to `t` (jumps inserted at the top of the
//! built-in chains, the two FORWARD rules appended) and returns the node's `ipset save`
//! text. The layout follows docs/netfilter-semantics.md §11 (F1–F11); docs/dataplanes.md
//! ("calico-iptables") lists it rule by rule with its felix source, and every deliberate
//! difference (no rpfilter, no policy groups, flat dispatch chains, IPv4 only...).
//! Policies come from [`super::calico`]; nothing here reads the reference engine.

use super::calico::{self, CalicoPolicy, CalicoRule, NamedPortSet, SelectorSet};
use super::iptables_out::Tables;
use super::net::{ClusterNet, Tunnel};
use super::RenderError;
use crate::cluster::{Cluster, Direction, NodeId, PodId};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Felix's mark bits (IptablesMarkMask 0xffff0000, allocated from the low end).
pub const MARK_ACCEPT: u32 = 0x10000;
pub const MARK_PASS: u32 = 0x20000;
pub const MARK_SCRATCH0: u32 = 0x80000;
pub const MARK_SCRATCH1: u32 = 0x100000;
/// Accept, pass and both scratch bits: "all Calico bits".
pub const MARK_ALL: u32 = MARK_ACCEPT | MARK_PASS | MARK_SCRATCH0 | MARK_SCRATCH1;

/// iptables' longest chain name.
const MAX_CHAIN: usize = 28;

pub const SET_ALL_POOLS: &str = "cali40all-ipam-pools";
pub const SET_MASQ_POOLS: &str = "cali40masq-ipam-pools";
pub const SET_ALL_HOSTS: &str = "cali40all-hosts-net";
pub const SET_ALL_VXLAN: &str = "cali40all-vxlan-net";

/// The node's IP sets: name → (type, members as `ipset add` writes them).
#[derive(Default)]
struct Sets {
    sets: BTreeMap<String, (&'static str, Vec<String>)>,
}

impl Sets {
    fn add(&mut self, name: String, ty: &'static str, mut members: Vec<String>) -> String {
        members.sort();
        members.dedup();
        self.sets.insert(name.clone(), (ty, members));
        name
    }

    fn selector(&mut self, s: &SelectorSet) -> String {
        let name = format!("cali40s:{}", calico::short_hash(&s.id, 22));
        let members = s.members.iter().map(|a| a.to_string()).collect();
        self.add(name, "hash:net", members)
    }

    fn named_port(&mut self, s: &NamedPortSet) -> String {
        let name = format!("cali40n:{}", calico::short_hash(&s.id, 22));
        let members = s
            .members
            .iter()
            .map(|(a, p, n)| format!("{a},{}:{n}", p.as_str().to_ascii_lowercase()))
            .collect();
        self.add(name, "hash:ip,port", members)
    }

    fn save(&self) -> String {
        let mut out = String::new();
        for (name, (ty, members)) in &self.sets {
            out.push_str(&format!(
                "create {name} {ty} family inet hashsize 1024 maxelem 1048576\n"
            ));
            for m in members {
                out.push_str(&format!("add {name} {m}\n"));
            }
        }
        out
    }
}

fn set_mark(value: u32, mask: u32) -> String {
    format!("-j MARK --set-xmark {value:#x}/{mask:#x}")
}

fn mark_is(value: u32, mask: u32) -> String {
    format!("-m mark --mark {value:#x}/{mask:#x}")
}

fn comment(text: &str) -> String {
    format!("-m comment --comment \"{text}\"")
}

/// Chain names of policies and profiles.
pub fn policy_chain(p: &CalicoPolicy, dir: Direction) -> String {
    let prefix = match dir {
        Direction::Ingress => "cali-pi-",
        Direction::Egress => "cali-po-",
    };
    calico::limited_name(prefix, &p.id(), MAX_CHAIN)
}

pub fn profile_chain(profile: &str, dir: Direction) -> String {
    let prefix = match dir {
        Direction::Ingress => "cali-pri-",
        Direction::Egress => "cali-pro-",
    };
    calico::limited_name(prefix, profile, MAX_CHAIN)
}

/// Felix's `SplitPortList`: multiport takes 15 ports, a range counting as two.
pub fn split_ports(ports: &[(u16, u16)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut weight = 0;
    for &(a, b) in ports {
        let w = if a == b { 1 } else { 2 };
        if weight + w > 15 {
            out.push(cur.join(","));
            cur.clear();
            weight = 0;
        }
        cur.push(if a == b {
            a.to_string()
        } else {
            format!("{a}:{b}")
        });
        weight += w;
    }
    if !cur.is_empty() {
        out.push(cur.join(","));
    }
    out
}

/// One Calico allow rule as felix's `ProtoRuleToIptablesRules` renders it: the match
/// blocks (ports or CIDRs that do not fit one rule, combined in the scratch bits), the
/// rule setting the accept bit, and the RETURN when it is set.
fn rule_lines(r: &CalicoRule, dir: Direction, sets: &mut Sets) -> Vec<String> {
    let (peer_dir, peer_flag) = match dir {
        Direction::Ingress => ("src", "-s"),
        Direction::Egress => ("dst", "-d"),
    };
    let proto = r
        .protocol
        .map(|p| format!("-p {} ", p.as_str().to_ascii_lowercase()))
        .unwrap_or_default();
    let mut blocks: Vec<String> = Vec::new();
    let mut using_blocks = false;
    let mut first_positive_done = false;
    let all_pass = MARK_SCRATCH0;
    let this_pass = MARK_SCRATCH1;
    let init = |blocks: &mut Vec<String>, using: &mut bool, bits: u32| {
        if !*using {
            blocks.push(set_mark(bits, all_pass | this_pass));
            *using = true;
        }
    };

    // Destination ports: a block when numeric splits and named ports are more than one.
    let splits = split_ports(&r.ports);
    let named: Vec<String> = r.named_ports.iter().map(|n| sets.named_port(n)).collect();
    let (mut main_ports, mut main_named) = (None, None);
    if splits.len() + named.len() > 1 {
        init(&mut blocks, &mut using_blocks, 0);
        let bit = all_pass; // the first positive block writes the all-blocks bit
        for s in &splits {
            blocks.push(format!(
                "{proto}-m multiport --dports {s} {}",
                set_mark(bit, bit)
            ));
        }
        for n in &named {
            blocks.push(format!(
                "-m set --match-set {n} dst,dst {}",
                set_mark(bit, bit)
            ));
        }
        first_positive_done = true;
    } else {
        main_ports = splits.first().cloned();
        main_named = named.first().cloned();
    }

    // Positive nets: a block when more than one.
    let mut main_net = None;
    if r.nets.len() > 1 {
        init(&mut blocks, &mut using_blocks, 0);
        let bit = if first_positive_done {
            this_pass
        } else {
            all_pass
        };
        for n in &r.nets {
            blocks.push(format!("{peer_flag} {n} {}", set_mark(bit, bit)));
        }
        if first_positive_done {
            blocks.push(format!(
                "{} {}",
                mark_is(0, this_pass),
                set_mark(0, all_pass)
            ));
        }
    } else {
        main_net = r.nets.first();
    }
    // Negated nets: a block when they and the positive net do not fit one rule.
    let mut main_not_net = None;
    if main_net.is_some() as usize + r.not_nets.len() > 1 {
        init(&mut blocks, &mut using_blocks, all_pass);
        for n in &r.not_nets {
            blocks.push(format!("{peer_flag} {n} {}", set_mark(0, all_pass)));
        }
    } else {
        main_not_net = r.not_nets.first();
    }

    // The rule itself (felix's CalculateRuleMatch order).
    let mut m = proto.clone();
    if let Some(n) = main_net {
        m.push_str(&format!("{peer_flag} {n} "));
    }
    if let Some(s) = &r.selector {
        let name = sets.selector(s);
        m.push_str(&format!("-m set --match-set {name} {peer_dir} "));
    }
    if let Some(p) = main_ports {
        m.push_str(&format!("-m multiport --dports {p} "));
    }
    if let Some(n) = main_named {
        m.push_str(&format!("-m set --match-set {n} dst,dst "));
    }
    if let Some(n) = main_not_net {
        m.push_str(&format!("! {peer_flag} {n} "));
    }
    if using_blocks {
        m.push_str(&format!("{} ", mark_is(all_pass, all_pass)));
    }
    blocks.push(format!("{m}{}", set_mark(MARK_ACCEPT, MARK_ACCEPT)));
    blocks.push(format!("{} -j RETURN", mark_is(MARK_ACCEPT, MARK_ACCEPT)));
    blocks
}

/// A workload's endpoint chain (`cali-tw-…` for its ingress, `cali-fw-…` for its egress),
/// as felix's `endpointIptablesChain` renders it.
fn endpoint_chain(
    policies: &[&CalicoPolicy],
    profile: &str,
    dir: Direction,
    net: &ClusterNet,
) -> Vec<String> {
    let _ = net;
    let mut rules = vec![
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_string(),
        "-m conntrack --ctstate INVALID -j DROP".to_string(),
        set_mark(0, MARK_ACCEPT | MARK_PASS),
    ];
    if crate::planted::is(crate::planted::Bug::EstablishedNotAccepted) {
        // Planted: no accept for established and related traffic.
        rules.remove(0);
    }
    if dir == Direction::Egress {
        // AllowVXLANPacketsFromWorkloads / AllowIPIPPacketsFromWorkloads default false.
        rules.push(format!(
            "-p udp -m multiport --dports 4789 {} -j DROP",
            comment("Drop VXLAN encapped packets originating in workloads")
        ));
        rules.push(format!(
            "-p 4 {} -j DROP",
            comment("Drop IPinIP encapped packets originating in workloads")
        ));
    }
    if !policies.is_empty() {
        rules.push(format!(
            "{} {}",
            comment(&format!("Start of tier {}", calico::TIER)),
            set_mark(0, MARK_PASS)
        ));
        for p in policies {
            rules.push(format!(
                "{} -j {}",
                mark_is(0, MARK_PASS),
                policy_chain(p, dir)
            ));
            rules.push(format!(
                "{} {} -j RETURN",
                comment("Return if policy accepted"),
                mark_is(MARK_ACCEPT, MARK_ACCEPT)
            ));
        }
        rules.push(format!(
            "{} {} -j DROP",
            comment(&format!(
                "End of tier {}. Drop if no policies passed packet",
                calico::TIER
            )),
            mark_is(0, MARK_PASS)
        ));
    }
    rules.push(format!("-j {}", profile_chain(profile, dir)));
    rules.push(format!(
        "{} {} -j RETURN",
        comment("Return if profile accepted"),
        mark_is(MARK_ACCEPT, MARK_ACCEPT)
    ));
    rules.push(format!(
        "{} -j DROP",
        comment("Drop if no profiles matched")
    ));
    rules
}

/// The node's pods, ordered by interface name (the order felix's dispatch chains have).
pub fn local_pods(cluster: &Cluster, net: &ClusterNet, node: NodeId) -> Vec<PodId> {
    let mut v: Vec<PodId> = (0..cluster.pods.len() as PodId)
        .filter(|&p| cluster.pods[p as usize].node == node)
        .collect();
    v.sort_by(|a, b| net.pod_iface[*a as usize].cmp(&net.pod_iface[*b as usize]));
    v
}

/// Add the node's felix rules to `t`; returns the node's `ipset save` text.
pub fn render(
    cluster: &Cluster,
    net: &ClusterNet,
    node: NodeId,
    policies: &[calico::CalicoPolicy],
    t: &mut Tables,
) -> Result<String, RenderError> {
    let n = &net.nodes[node as usize];
    if !cluster.nodes[node as usize].ip.is_ipv4() {
        return Err(format!(
            "calico-iptables renders IPv4 only: node {} has the IPv6 address {}",
            cluster.nodes[node as usize].name, cluster.nodes[node as usize].ip
        )
        .into());
    }
    let local = local_pods(cluster, net, node);
    let mut sets = Sets::default();

    // Pools and hosts.
    let pools: Vec<String> = net.pod_network.iter().map(|c| c.to_string()).collect();
    sets.add(SET_ALL_POOLS.into(), "hash:net", pools.clone());
    sets.add(SET_MASQ_POOLS.into(), "hash:net", pools);
    let hosts: Vec<String> = cluster
        .nodes
        .iter()
        .filter_map(|h| match h.ip {
            IpAddr::V4(a) => Some(a.to_string()),
            IpAddr::V6(_) => None,
        })
        .collect();
    match n.tunnel {
        Some(Tunnel::Ipip) => {
            sets.add(SET_ALL_HOSTS.into(), "hash:net", hosts);
        }
        Some(Tunnel::Vxlan(_)) => {
            sets.add(SET_ALL_VXLAN.into(), "hash:net", hosts);
        }
        None => {}
    }

    let accept_marked = mark_is(MARK_ACCEPT, MARK_ACCEPT);
    let clear_all = set_mark(0, MARK_ALL);

    // ---- raw ----
    t.insert("raw", "PREROUTING", vec!["-j cali-PREROUTING".into()]);
    t.insert("raw", "OUTPUT", vec!["-j cali-OUTPUT".into()]);
    for c in [
        "cali-PREROUTING",
        "cali-OUTPUT",
        "cali-rpf-skip",
        "cali-from-host-endpoint",
        "cali-to-host-endpoint",
    ] {
        t.declare("raw", c);
    }
    t.push("raw", "cali-PREROUTING", clear_all.clone());
    if let Some(Tunnel::Vxlan(port)) = n.tunnel {
        t.push(
            "raw",
            "cali-PREROUTING",
            format!("-p udp -m udp --dport {port} -j NOTRACK"),
        );
    }
    t.push(
        "raw",
        "cali-PREROUTING",
        format!("-i cali+ {}", set_mark(MARK_SCRATCH0, MARK_SCRATCH0)),
    );
    t.push(
        "raw",
        "cali-PREROUTING",
        format!("{} -j cali-rpf-skip", mark_is(MARK_SCRATCH0, MARK_SCRATCH0)),
    );
    // Left out: `-m mark --mark 0x80000/0x80000 -m rpfilter --validmark --invert -j DROP`.
    t.push(
        "raw",
        "cali-PREROUTING",
        format!("{} -j cali-from-host-endpoint", mark_is(0, MARK_SCRATCH0)),
    );
    t.push(
        "raw",
        "cali-PREROUTING",
        format!("{accept_marked} -j ACCEPT"),
    );
    t.push("raw", "cali-OUTPUT", clear_all.clone());
    t.push("raw", "cali-OUTPUT", "-j cali-to-host-endpoint");
    if let Some(Tunnel::Vxlan(port)) = n.tunnel {
        t.push(
            "raw",
            "cali-OUTPUT",
            format!("-p udp -m udp --dport {port} -j NOTRACK"),
        );
    }
    t.push("raw", "cali-OUTPUT", format!("{accept_marked} -j ACCEPT"));

    // ---- mangle ----
    t.insert("mangle", "PREROUTING", vec!["-j cali-PREROUTING".into()]);
    t.insert("mangle", "POSTROUTING", vec!["-j cali-POSTROUTING".into()]);
    for c in [
        "cali-PREROUTING",
        "cali-POSTROUTING",
        "cali-from-host-endpoint",
        "cali-to-host-endpoint",
    ] {
        t.declare("mangle", c);
    }
    t.push(
        "mangle",
        "cali-PREROUTING",
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    );
    t.push(
        "mangle",
        "cali-PREROUTING",
        format!("{accept_marked} -j ACCEPT"),
    );
    t.push("mangle", "cali-PREROUTING", "-j cali-from-host-endpoint");
    t.push(
        "mangle",
        "cali-PREROUTING",
        format!(
            "{} {accept_marked} -j ACCEPT",
            comment("Host endpoint policy accepted packet.")
        ),
    );
    t.push(
        "mangle",
        "cali-POSTROUTING",
        format!("{accept_marked} -j RETURN"),
    );
    t.push("mangle", "cali-POSTROUTING", clear_all.clone());
    t.push(
        "mangle",
        "cali-POSTROUTING",
        "-m conntrack --ctstate DNAT -j cali-to-host-endpoint",
    );
    t.push(
        "mangle",
        "cali-POSTROUTING",
        format!(
            "{} {accept_marked} -j RETURN",
            comment("Host endpoint policy accepted packet.")
        ),
    );

    // ---- nat ----
    t.insert("nat", "PREROUTING", vec!["-j cali-PREROUTING".into()]);
    t.insert("nat", "OUTPUT", vec!["-j cali-OUTPUT".into()]);
    t.insert("nat", "POSTROUTING", vec!["-j cali-POSTROUTING".into()]);
    for c in [
        "cali-PREROUTING",
        "cali-OUTPUT",
        "cali-POSTROUTING",
        "cali-fip-dnat",
        "cali-fip-snat",
        "cali-nat-outgoing",
    ] {
        t.declare("nat", c);
    }
    t.push("nat", "cali-PREROUTING", "-j cali-fip-dnat");
    t.push("nat", "cali-OUTPUT", "-j cali-fip-dnat");
    t.push("nat", "cali-POSTROUTING", "-j cali-fip-snat");
    t.push("nat", "cali-POSTROUTING", "-j cali-nat-outgoing");
    if let (Some(dev), Some(tun_addr)) = (&n.tunnel_dev, n.tunnel_addr) {
        // Host-originated packets leaving through the tunnel get the tunnel's address
        // (with VXLAN, UDP first, keeping source ports off the VXLAN port). Felix writes
        // `-m addrtype ! --src-type LOCAL --limit-iface-out` ("the source is not an address
        // of the tunnel device"); fwsim does not model addrtype's interface limit, and the
        // tunnel device has exactly one address, so the same test is `! -s <that>/32`.
        let masq_match = format!("-o {dev} ! -s {tun_addr}/32 -m addrtype --src-type LOCAL");
        if let Some(Tunnel::Vxlan(port)) = n.tunnel {
            let (lo, hi) = (1024u32, 65535u32);
            let port = port as u32;
            let range = if port - lo >= hi - port {
                format!("{lo}-{}", port - 1)
            } else {
                format!("{}-{hi}", port + 1)
            };
            t.push(
                "nat",
                "cali-POSTROUTING",
                format!("-p udp {masq_match} -j MASQUERADE --to-ports {range} --random-fully"),
            );
        }
        t.push(
            "nat",
            "cali-POSTROUTING",
            format!("{masq_match} -j MASQUERADE --random-fully"),
        );
    }
    if net.pod_network.is_some() {
        t.push(
            "nat",
            "cali-nat-outgoing",
            format!("-m set --match-set {SET_MASQ_POOLS} src -m set ! --match-set {SET_ALL_POOLS} dst -j MASQUERADE --random-fully"),
        );
    }

    // ---- filter ----
    t.insert("filter", "INPUT", vec!["-j cali-INPUT".into()]);
    t.insert("filter", "FORWARD", vec!["-j cali-FORWARD".into()]);
    t.insert("filter", "OUTPUT", vec!["-j cali-OUTPUT".into()]);
    t.append(
        "filter",
        "FORWARD",
        format!(
            "{} {accept_marked} -j ACCEPT",
            comment("Policy explicitly accepted packet.")
        ),
    );
    t.append("filter", "FORWARD", set_mark(MARK_ACCEPT, MARK_ACCEPT));
    for c in [
        "cali-FORWARD",
        "cali-INPUT",
        "cali-OUTPUT",
        "cali-cidr-block",
        "cali-from-hep-forward",
        "cali-from-host-endpoint",
        "cali-from-wl-dispatch",
        "cali-to-hep-forward",
        "cali-to-host-endpoint",
        "cali-to-wl-dispatch",
        "cali-wl-to-host",
    ] {
        t.declare("filter", c);
    }
    // cali-INPUT
    match n.tunnel {
        Some(Tunnel::Ipip) => {
            if !crate::planted::is(crate::planted::Bug::IpipNotAllowed) {
                t.push(
                    "filter",
                    "cali-INPUT",
                    format!(
                        "-p 4 {} -m set --match-set {SET_ALL_HOSTS} src -m addrtype --dst-type LOCAL -j ACCEPT",
                        comment("Allow IPIP packets from Calico hosts")
                    ),
                );
            }
            t.push(
                "filter",
                "cali-INPUT",
                format!(
                    "-p 4 {} -j DROP",
                    comment("Drop IPIP packets from non-Calico hosts")
                ),
            );
        }
        Some(Tunnel::Vxlan(port)) => {
            t.push(
                "filter",
                "cali-INPUT",
                format!(
                    "-p udp {} -m multiport --dports {port} -m set --match-set {SET_ALL_VXLAN} src -m addrtype --dst-type LOCAL -j ACCEPT",
                    comment("Allow IPv4 VXLAN packets from allowed hosts")
                ),
            );
            t.push(
                "filter",
                "cali-INPUT",
                format!(
                    "-p udp {} -m multiport --dports {port} -m addrtype --dst-type LOCAL -j DROP",
                    comment("Drop IPv4 VXLAN packets from non-allowed hosts")
                ),
            );
        }
        None => {}
    }
    t.push("filter", "cali-INPUT", "-i cali+ -g cali-wl-to-host");
    t.push("filter", "cali-INPUT", format!("{accept_marked} -j ACCEPT"));
    t.push("filter", "cali-INPUT", clear_all.clone());
    t.push("filter", "cali-INPUT", "-j cali-from-host-endpoint");
    t.push(
        "filter",
        "cali-INPUT",
        format!(
            "{} {accept_marked} -j ACCEPT",
            comment("Host endpoint policy accepted packet.")
        ),
    );
    // cali-FORWARD
    t.push(
        "filter",
        "cali-FORWARD",
        set_mark(0, MARK_ALL & !MARK_ACCEPT),
    );
    t.push(
        "filter",
        "cali-FORWARD",
        format!("{} -j cali-from-hep-forward", mark_is(0, MARK_ACCEPT)),
    );
    t.push(
        "filter",
        "cali-FORWARD",
        "-i cali+ -j cali-from-wl-dispatch",
    );
    t.push("filter", "cali-FORWARD", "-o cali+ -j cali-to-wl-dispatch");
    t.push("filter", "cali-FORWARD", "-j cali-to-hep-forward");
    t.push("filter", "cali-FORWARD", "-j cali-cidr-block");
    // cali-OUTPUT
    t.push(
        "filter",
        "cali-OUTPUT",
        format!("{accept_marked} -j ACCEPT"),
    );
    t.push("filter", "cali-OUTPUT", "-o cali+ -j RETURN");
    match n.tunnel {
        Some(Tunnel::Ipip) => t.push(
            "filter",
            "cali-OUTPUT",
            format!(
                "-p 4 {} -m set --match-set {SET_ALL_HOSTS} dst -m addrtype --src-type LOCAL -j ACCEPT",
                comment("Allow IPIP packets to other Calico hosts")
            ),
        ),
        Some(Tunnel::Vxlan(port)) => t.push(
            "filter",
            "cali-OUTPUT",
            format!(
                "-p udp {} -m multiport --dports {port} -m addrtype --src-type LOCAL -m set --match-set {SET_ALL_VXLAN} dst -j ACCEPT",
                comment("Allow IPv4 VXLAN packets to other allowed hosts")
            ),
        ),
        None => {}
    }
    t.push("filter", "cali-OUTPUT", clear_all.clone());
    t.push(
        "filter",
        "cali-OUTPUT",
        "-m conntrack ! --ctstate DNAT -j cali-to-host-endpoint",
    );
    t.push(
        "filter",
        "cali-OUTPUT",
        format!(
            "{} {accept_marked} -j ACCEPT",
            comment("Host endpoint policy accepted packet.")
        ),
    );
    // cali-wl-to-host, DefaultEndpointToHostAction ACCEPT (Calico's Kubernetes manifests).
    t.push("filter", "cali-wl-to-host", "-j cali-from-wl-dispatch");
    t.push(
        "filter",
        "cali-wl-to-host",
        format!(
            "{} -j ACCEPT",
            comment("Configured DefaultEndpointToHostAction")
        ),
    );

    // Dispatch and endpoint chains.
    for &p in &local {
        let iface = &net.pod_iface[p as usize];
        let fw = calico::limited_name("cali-fw-", iface, MAX_CHAIN);
        let tw = calico::limited_name("cali-tw-", iface, MAX_CHAIN);
        t.push(
            "filter",
            "cali-from-wl-dispatch",
            format!("-i {iface} -g {fw}"),
        );
        t.push(
            "filter",
            "cali-to-wl-dispatch",
            format!("-o {iface} -g {tw}"),
        );
    }
    t.push(
        "filter",
        "cali-from-wl-dispatch",
        format!("{} -j DROP", comment("Unknown interface")),
    );
    t.push(
        "filter",
        "cali-to-wl-dispatch",
        format!("{} -j DROP", comment("Unknown interface")),
    );

    let mut active: Vec<&CalicoPolicy> = Vec::new();
    let mut profiles: Vec<String> = Vec::new();
    for &p in &local {
        let iface = &net.pod_iface[p as usize];
        let profile = calico::profile_name(cluster, p);
        if !profiles.contains(&profile) {
            profiles.push(profile.clone());
        }
        for (dir, prefix) in [
            (Direction::Ingress, "cali-tw-"),
            (Direction::Egress, "cali-fw-"),
        ] {
            let pols = calico::policies_for(policies, p, dir);
            for q in &pols {
                if !active.iter().any(|a| std::ptr::eq(*a, *q)) {
                    active.push(q);
                }
            }
            let chain = calico::limited_name(prefix, iface, MAX_CHAIN);
            t.declare("filter", &chain);
            for r in endpoint_chain(&pols, &profile, dir, net) {
                t.push("filter", &chain, r);
            }
        }
    }
    // Policy chains (both directions of every policy an endpoint here uses), by name.
    active.sort_by_key(|p| p.id());
    for p in &active {
        for dir in [Direction::Ingress, Direction::Egress] {
            let chain = policy_chain(p, dir);
            t.declare("filter", &chain);
            for r in p.rules(dir).unwrap_or(&[]) {
                for line in rule_lines(r, dir, &mut sets) {
                    t.push("filter", &chain, line);
                }
            }
        }
    }
    // Profiles: kns.<namespace> allows everything both ways.
    profiles.sort();
    for prof in &profiles {
        for dir in [Direction::Ingress, Direction::Egress] {
            let chain = profile_chain(prof, dir);
            t.declare("filter", &chain);
            t.push("filter", &chain, set_mark(MARK_ACCEPT, MARK_ACCEPT));
            t.push("filter", &chain, format!("{accept_marked} -j RETURN"));
        }
    }
    Ok(sets.save())
}

#[cfg(test)]
pub(crate) mod tests {
    //! Verdicts written from the Kubernetes NetworkPolicy documentation, checked by walking
    //! packets through the rendered text with fwsim's own parser and interpreter, for both
    //! felix dataplanes (calico-iptables and calico-nftables), which must agree.

    use super::super::{render as render_all, Flavor, Rendered};
    use crate::cluster::{
        Cluster, ClusterBuilder, ContainerPort, Peer, PodSpec, PortMatch, PortRef, Rule, Selector,
    };
    use crate::netfilter::interp::{walk_on, Fate};
    use crate::values::{CtState, Hook, Labels, Loc, Packet, Protocol, Site};
    use std::net::IpAddr;
    use std::path::PathBuf;
    use std::sync::Arc;

    pub(crate) fn site() -> Site {
        Site::new(&Arc::new(PathBuf::from("test.yaml")), Loc::default())
    }

    pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(crate) fn sel(pairs: &[(&str, &str)]) -> Selector {
        Selector {
            match_labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            expressions: vec![],
        }
    }

    pub(crate) fn tcp(port: u16) -> PortMatch {
        PortMatch {
            protocol: Protocol::Tcp,
            port: Some(PortRef::Number(port)),
            end_port: None,
        }
    }

    /// A policy: (namespace, name, podSelector, ingress, egress).
    pub(crate) type Pol = (
        &'static str,
        &'static str,
        Selector,
        Option<Vec<Rule>>,
        Option<Vec<Rule>>,
    );

    /// Two nodes; namespaces x (team=blue), y (team=red), z; pods:
    /// x/server n1 10.244.1.10 app=server, ports http 8080/TCP, sig 7000/SCTP;
    /// x/client n1 .11; y/client n1 .12; z/free n1 .13 (no policy selects it);
    /// y/far n2 10.244.2.10 app=server, port http 9090/TCP.
    pub(crate) fn cluster(policies: Vec<Pol>) -> Cluster {
        let mut b = ClusterBuilder::new();
        b.node(
            "n1".into(),
            "192.168.0.1".parse().unwrap(),
            Some("10.244.1.0/24".parse().unwrap()),
            site(),
        );
        b.node(
            "n2".into(),
            "192.168.0.2".parse().unwrap(),
            Some("10.244.2.0/24".parse().unwrap()),
            site(),
        );
        b.namespace("x".into(), labels(&[("team", "blue")]), site());
        b.namespace("y".into(), labels(&[("team", "red")]), site());
        b.namespace("z".into(), labels(&[]), site());
        let port = |name: &str, port: u16, protocol| ContainerPort {
            name: Some(name.into()),
            port,
            protocol,
        };
        for (ns, name, node, ip, l, ports) in [
            (
                "x",
                "server",
                "n1",
                "10.244.1.10",
                vec![("app", "server")],
                vec![
                    port("http", 8080, Protocol::Tcp),
                    port("sig", 7000, Protocol::Sctp),
                ],
            ),
            (
                "x",
                "client",
                "n1",
                "10.244.1.11",
                vec![("app", "client")],
                vec![],
            ),
            (
                "y",
                "client",
                "n1",
                "10.244.1.12",
                vec![("app", "client")],
                vec![],
            ),
            ("z", "free", "n1", "10.244.1.13", vec![], vec![]),
            (
                "y",
                "far",
                "n2",
                "10.244.2.10",
                vec![("app", "server")],
                vec![port("http", 9090, Protocol::Tcp)],
            ),
        ] {
            b.pod(PodSpec {
                namespace: ns.into(),
                name: name.into(),
                labels: labels(&l),
                node: Some(node.into()),
                ip: Some(ip.parse().unwrap()),
                ports,
                site: site(),
            });
        }
        for (ns, name, s, ingress, egress) in policies {
            b.policy(ns.into(), name.into(), s, ingress, egress, true, site());
        }
        b.build().expect("cluster")
    }

    /// Every node's rules, read back by fwsim's parsers (ipsets attached).
    pub(crate) fn rulesets(r: &Rendered) -> Vec<crate::netfilter::ir::Ruleset> {
        r.nodes
            .iter()
            .map(|n| {
                if let Some(text) = n.nft.as_deref() {
                    let rs = crate::netfilter::read_ruleset(text)
                        .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
                    assert!(rs.unsupported().is_empty(), "{:?}", rs.unsupported());
                    return rs;
                }
                let text = n.iptables.as_deref().unwrap();
                let mut rs = crate::netfilter::read_ruleset(text)
                    .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
                assert!(rs.unsupported().is_empty(), "{:?}", rs.unsupported());
                let sets =
                    crate::netfilter::read_ipsets(n.ipsets.as_deref().unwrap_or("")).unwrap();
                crate::netfilter::attach_ipsets(&mut rs, sets).unwrap();
                rs
            })
            .collect()
    }

    pub(crate) struct Probe {
        pub protocol: Protocol,
        pub dport: u16,
        pub ct: CtState,
    }

    pub(crate) fn probe(protocol: Protocol, dport: u16) -> Probe {
        Probe {
            protocol,
            dport,
            ct: CtState::New,
        }
    }

    /// The fate of a packet from pod `src` to `dst` (a pod `ns/name` or an address outside
    /// the cluster), walked through the forward path of every node it crosses.
    pub(crate) fn fate_with(
        c: &Cluster,
        r: &Rendered,
        walk: &dyn Fn(usize, &Packet) -> Fate,
        src: &str,
        dst: &str,
        p: &Probe,
    ) -> Fate {
        let net = &r.net;
        let s = c.pod(src).unwrap();
        let (snode, siface) = net.pod_port(c, s);
        let src_ip = c.pods[s as usize].ip;
        let (dst_ip, dnode): (IpAddr, Option<(u32, String)>) = match c.pod(dst) {
            Some(d) => {
                let (n, i) = net.pod_port(c, d);
                (c.pods[d as usize].ip, Some((n, i.to_string())))
            }
            None => (dst.parse().unwrap(), None),
        };
        let packet = |iif: &str, oif: &str| Packet {
            src: src_ip,
            dst: dst_ip,
            protocol: p.protocol.number(),
            sport: Some(40000),
            dport: p.protocol.has_ports().then_some(p.dport),
            iif: Some(iif.into()),
            oif: Some(oif.into()),
            hook: Hook::Forward,
            ctstate: p.ct,
            mark: 0,
        };
        let out_of = |node: u32| {
            net.host(node)
                .route(dst_ip)
                .unwrap_or(super::super::net::UPLINK)
                .to_string()
        };
        match dnode {
            Some((dn, diface)) if dn == snode => walk(snode as usize, &packet(siface, &diface)),
            Some((dn, diface)) => {
                let first = walk(snode as usize, &packet(siface, &out_of(snode)));
                if first != Fate::Accept {
                    return first;
                }
                let tunnel = net.nodes[dn as usize]
                    .tunnel_dev
                    .clone()
                    .unwrap_or_else(|| super::super::net::UPLINK.into());
                walk(dn as usize, &packet(&tunnel, &diface))
            }
            None => walk(snode as usize, &packet(siface, &out_of(snode))),
        }
    }

    /// The fate on every flavor rendered; they must agree.
    fn fate(c: &Cluster, rs: &[Rendered], src: &str, dst: &str, p: &Probe) -> Fate {
        let fates: Vec<Fate> = rs
            .iter()
            .map(|r| {
                let sets = rulesets(r);
                let walk = |node: usize, pkt: &Packet| {
                    let host = r.net.host(node as u32);
                    let w = walk_on(&sets[node], pkt, Some(&host));
                    if let Fate::Inconclusive(why) = &w.fate {
                        panic!("{:?}: inconclusive: {why}\n{pkt}", r.flavor);
                    }
                    w.fate
                };
                fate_with(c, r, &walk, src, dst, p)
            })
            .collect();
        assert!(
            fates.iter().all(|f| *f == fates[0]),
            "{src} -> {dst}: the flavors disagree: {fates:?}"
        );
        fates[0].clone()
    }

    /// The cluster rendered as felix's iptables and as its nftables dataplane.
    fn rendered(c: &Cluster) -> Vec<Rendered> {
        [Flavor::CalicoIptables, Flavor::CalicoNftables]
            .into_iter()
            .map(|f| render_all(c, f, &[]).unwrap())
            .collect()
    }

    fn pods_peer(ns: Option<Selector>, pods: Option<Selector>) -> Peer {
        Peer::Pods {
            namespaces: ns,
            pods,
        }
    }

    use Fate::{Accept, Drop};

    #[test]
    fn no_policy_allows_everything() {
        let c = cluster(vec![]);
        let r = rendered(&c);
        let http = probe(Protocol::Tcp, 8080);
        assert_eq!(fate(&c, &r, "x/client", "x/server", &http), Accept);
        assert_eq!(fate(&c, &r, "x/client", "y/far", &http), Accept);
        assert_eq!(fate(&c, &r, "y/far", "x/server", &http), Accept);
        assert_eq!(fate(&c, &r, "x/client", "203.0.113.5", &http), Accept);
    }

    #[test]
    fn default_deny_ingress_and_established_replies() {
        let c = cluster(vec![("x", "deny", Selector::default(), Some(vec![]), None)]);
        let r = rendered(&c);
        let http = probe(Protocol::Tcp, 8080);
        assert_eq!(fate(&c, &r, "x/client", "x/server", &http), Drop);
        assert_eq!(fate(&c, &r, "y/client", "x/server", &http), Drop);
        assert_eq!(fate(&c, &r, "y/far", "x/server", &http), Drop);
        // Egress of x is not isolated; ingress of y is not either.
        assert_eq!(fate(&c, &r, "x/server", "y/client", &http), Accept);
        assert_eq!(fate(&c, &r, "x/server", "y/far", &http), Accept);
        // A reply of an allowed connection is allowed back (established).
        let reply = Probe {
            ct: CtState::Established,
            ..probe(Protocol::Tcp, 40000)
        };
        assert_eq!(fate(&c, &r, "y/client", "x/server", &reply), Accept);
        // A pod no policy selects.
        assert_eq!(fate(&c, &r, "x/client", "z/free", &http), Accept);
        assert_eq!(fate(&c, &r, "z/free", "y/client", &http), Accept);
    }

    #[test]
    fn allow_from_a_namespace() {
        let c = cluster(vec![(
            "x",
            "from-red",
            sel(&[("app", "server")]),
            Some(vec![Rule {
                peers: Some(vec![pods_peer(Some(sel(&[("team", "red")])), None)]),
                ports: None,
            }]),
            None,
        )]);
        let r = rendered(&c);
        let http = probe(Protocol::Tcp, 8080);
        assert_eq!(fate(&c, &r, "y/client", "x/server", &http), Accept);
        assert_eq!(fate(&c, &r, "y/far", "x/server", &http), Accept);
        assert_eq!(
            fate(&c, &r, "y/far", "x/server", &probe(Protocol::Udp, 53)),
            Accept
        );
        assert_eq!(fate(&c, &r, "x/client", "x/server", &http), Drop);
        assert_eq!(fate(&c, &r, "z/free", "x/server", &http), Drop);
        // x/client is not selected: open.
        assert_eq!(fate(&c, &r, "z/free", "x/client", &http), Accept);
    }

    #[test]
    fn pod_selector_without_namespace_selector_means_own_namespace() {
        let c = cluster(vec![(
            "x",
            "from-clients",
            sel(&[("app", "server")]),
            Some(vec![Rule {
                peers: Some(vec![pods_peer(None, Some(sel(&[("app", "client")])))]),
                ports: Some(vec![tcp(8080)]),
            }]),
            None,
        )]);
        let r = rendered(&c);
        let http = probe(Protocol::Tcp, 8080);
        assert_eq!(fate(&c, &r, "x/client", "x/server", &http), Accept);
        assert_eq!(fate(&c, &r, "y/client", "x/server", &http), Drop);
        assert_eq!(
            fate(&c, &r, "x/client", "x/server", &probe(Protocol::Tcp, 8081)),
            Drop
        );
    }

    #[test]
    fn egress_ip_block_with_except() {
        let c = cluster(vec![(
            "x",
            "egress",
            sel(&[("app", "client")]),
            None,
            Some(vec![Rule {
                peers: Some(vec![Peer::IpBlock {
                    cidr: "10.244.0.0/16".parse().unwrap(),
                    except: vec![
                        "10.244.1.12/32".parse().unwrap(),
                        "10.244.2.0/24".parse().unwrap(),
                    ],
                }]),
                ports: None,
            }]),
        )]);
        let r = rendered(&c);
        let http = probe(Protocol::Tcp, 8080);
        assert_eq!(fate(&c, &r, "x/client", "x/server", &http), Accept);
        assert_eq!(fate(&c, &r, "x/client", "z/free", &http), Accept);
        assert_eq!(fate(&c, &r, "x/client", "y/client", &http), Drop);
        assert_eq!(fate(&c, &r, "x/client", "y/far", &http), Drop);
        assert_eq!(fate(&c, &r, "x/client", "203.0.113.5", &http), Drop);
        // x/server is not selected by the egress policy.
        assert_eq!(fate(&c, &r, "x/server", "203.0.113.5", &http), Accept);
    }

    #[test]
    fn named_port_ingress_and_egress() {
        let named = |n: &str| PortMatch {
            protocol: Protocol::Tcp,
            port: Some(PortRef::Name(n.into())),
            end_port: None,
        };
        let c = cluster(vec![
            (
                "x",
                "in-http",
                sel(&[("app", "server")]),
                Some(vec![Rule {
                    peers: None,
                    ports: Some(vec![named("http")]),
                }]),
                None,
            ),
            (
                "y",
                "out-http",
                sel(&[("app", "client")]),
                None,
                Some(vec![Rule {
                    peers: Some(vec![pods_peer(Some(Selector::default()), None)]),
                    ports: Some(vec![named("http")]),
                }]),
            ),
        ]);
        let r = rendered(&c);
        // Ingress: x/server's http is 8080.
        assert_eq!(
            fate(&c, &r, "x/client", "x/server", &probe(Protocol::Tcp, 8080)),
            Accept
        );
        // 9090 is another pod's http: not x/server's.
        assert_eq!(
            fate(&c, &r, "x/client", "x/server", &probe(Protocol::Tcp, 9090)),
            Drop
        );
        assert_eq!(
            fate(&c, &r, "x/client", "x/server", &probe(Protocol::Udp, 8080)),
            Drop
        );
        // Egress from y/client: each destination's own http port.
        assert_eq!(
            fate(&c, &r, "y/client", "y/far", &probe(Protocol::Tcp, 9090)),
            Accept
        );
        assert_eq!(
            fate(&c, &r, "y/client", "y/far", &probe(Protocol::Tcp, 8080)),
            Drop
        );
        assert_eq!(
            fate(&c, &r, "y/client", "x/server", &probe(Protocol::Tcp, 8080)),
            Accept
        );
        assert_eq!(
            fate(&c, &r, "y/client", "z/free", &probe(Protocol::Tcp, 8080)),
            Drop
        );
    }

    #[test]
    fn end_port_range_mixed_with_a_named_port_and_sctp() {
        let c = cluster(vec![(
            "x",
            "ranges",
            sel(&[("app", "server")]),
            Some(vec![Rule {
                peers: Some(vec![
                    pods_peer(None, Some(sel(&[("app", "client")]))),
                    pods_peer(Some(sel(&[("team", "red")])), None),
                ]),
                ports: Some(vec![
                    PortMatch {
                        protocol: Protocol::Tcp,
                        port: Some(PortRef::Number(1000)),
                        end_port: Some(2000),
                    },
                    PortMatch {
                        protocol: Protocol::Tcp,
                        port: Some(PortRef::Name("http".into())),
                        end_port: None,
                    },
                    PortMatch {
                        protocol: Protocol::Sctp,
                        port: Some(PortRef::Number(7000)),
                        end_port: None,
                    },
                ]),
            }]),
            None,
        )]);
        let r = rendered(&c);
        for (src, port, proto, want) in [
            ("x/client", 1000, Protocol::Tcp, Accept),
            ("x/client", 1500, Protocol::Tcp, Accept),
            ("x/client", 2000, Protocol::Tcp, Accept),
            ("x/client", 2001, Protocol::Tcp, Drop),
            ("x/client", 999, Protocol::Tcp, Drop),
            ("x/client", 8080, Protocol::Tcp, Accept),
            ("y/far", 8080, Protocol::Tcp, Accept),
            ("y/far", 7000, Protocol::Sctp, Accept),
            ("y/far", 7000, Protocol::Tcp, Drop),
            ("y/far", 1500, Protocol::Sctp, Drop),
            ("z/free", 1500, Protocol::Tcp, Drop),
            ("z/free", 7000, Protocol::Sctp, Drop),
        ] {
            assert_eq!(
                fate(&c, &r, src, "x/server", &probe(proto, port)),
                want,
                "{src} {proto:?}/{port}"
            );
        }
    }

    #[test]
    fn many_ports_stacked_policies_and_any_namespace() {
        // 20 separate ports: more than one multiport match of 15.
        let ports: Vec<PortMatch> = (0..20).map(|i| tcp(100 + 2 * i)).collect();
        let c = cluster(vec![
            (
                "x",
                "many-ports",
                sel(&[("app", "server")]),
                Some(vec![Rule {
                    peers: Some(vec![pods_peer(None, Some(sel(&[("app", "client")])))]),
                    ports: Some(ports),
                }]),
                None,
            ),
            // A second policy on the same pod: the allowed traffic is the union.
            (
                "x",
                "clients-anywhere",
                sel(&[("app", "server")]),
                Some(vec![Rule {
                    peers: Some(vec![pods_peer(
                        Some(Selector::default()),
                        Some(sel(&[("app", "client")])),
                    )]),
                    ports: Some(vec![tcp(8080)]),
                }]),
                None,
            ),
        ]);
        let r = rendered(&c);
        // Felix's split: 15 ports, then the other 5, each setting the block's mark bit.
        let text = r[0].nodes[0].iptables.as_deref().unwrap();
        assert!(
            text.contains("-p tcp -m multiport --dports 100,102,104,106,108,110,112,114,116,118,120,122,124,126,128 -j MARK --set-xmark 0x80000/0x80000"),
            "{text}"
        );
        assert!(
            text.contains("-p tcp -m multiport --dports 130,132,134,136,138 -j MARK --set-xmark 0x80000/0x80000"),
            "{text}"
        );
        for (src, port, want) in [
            ("x/client", 100, Accept),
            ("x/client", 128, Accept),
            ("x/client", 130, Accept),
            ("x/client", 138, Accept),
            ("x/client", 139, Drop),
            ("x/client", 140, Drop),
            ("y/client", 138, Drop),
            ("y/client", 8080, Accept),
            ("x/client", 8080, Accept),
            ("y/far", 8080, Drop),
            ("z/free", 8080, Drop),
        ] {
            assert_eq!(
                fate(&c, &r, src, "x/server", &probe(Protocol::Tcp, port)),
                want,
                "{src} {port}"
            );
        }
    }

    #[test]
    fn default_deny_egress_isolates_egress_only() {
        let c = cluster(vec![(
            "x",
            "deny-out",
            Selector::default(),
            None,
            Some(vec![]),
        )]);
        let r = rendered(&c);
        let http = probe(Protocol::Tcp, 8080);
        assert_eq!(fate(&c, &r, "x/client", "x/server", &http), Drop);
        assert_eq!(fate(&c, &r, "x/client", "203.0.113.5", &http), Drop);
        assert_eq!(fate(&c, &r, "y/client", "x/server", &http), Accept);
    }

    #[test]
    fn ipsets_and_chain_names_fit_the_kernel() {
        let c = cluster(vec![(
            "x",
            "a-rather-long-policy-name-for-the-chain",
            Selector::default(),
            Some(vec![Rule {
                peers: Some(vec![pods_peer(None, None)]),
                ports: None,
            }]),
            None,
        )]);
        let r = rendered(&c);
        for n in &r[0].nodes {
            let sets = n.ipsets.as_deref().unwrap();
            for l in sets.lines() {
                let name = l.split_whitespace().nth(1).unwrap();
                assert!(name.len() <= 31, "{name}");
            }
            for l in n.iptables.as_deref().unwrap().lines() {
                if let Some(c) = l.strip_prefix(':') {
                    let name = c.split_whitespace().next().unwrap();
                    assert!(name.len() <= 28, "{name}");
                }
            }
        }
        // Deterministic.
        let again = rendered(&c);
        for (a, b) in r.iter().zip(&again) {
            for (x, y) in a.nodes.iter().zip(&b.nodes) {
                assert_eq!(x.iptables, y.iptables);
                assert_eq!(x.ipsets, y.ipsets);
                assert_eq!(x.nft, y.nft);
            }
        }
    }

    /// Walk one packet on one node, on every flavor; inconclusive fails the test.
    fn walk_node(rs: &[Rendered], node: u32, pkt: &Packet) -> Vec<crate::netfilter::interp::Walk> {
        rs.iter()
            .map(|r| {
                let sets = rulesets(r);
                let host = r.net.host(node);
                let w = walk_on(&sets[node as usize], pkt, Some(&host));
                if let Fate::Inconclusive(why) = &w.fate {
                    panic!("{:?}: inconclusive: {why}\n{pkt}", r.flavor);
                }
                w
            })
            .collect()
    }

    /// The fate of one packet on one node, the same on every flavor.
    fn node_fate(rs: &[Rendered], node: u32, pkt: &Packet) -> Fate {
        let ws = walk_node(rs, node, pkt);
        for w in &ws {
            assert_eq!(
                w.fate, ws[0].fate,
                "the flavors disagree on {pkt}:\n{w}\n{}",
                ws[0]
            );
        }
        ws[0].fate.clone()
    }

    /// Whether a walk went through a masquerade rule that matched.
    fn masqueraded(w: &crate::netfilter::interp::Walk) -> bool {
        w.trace.iter().any(|s| {
            s.text.to_ascii_lowercase().contains("masquerade") && s.effect.starts_with("match")
        })
    }

    fn packet(src: &str, dst: &str, protocol: Protocol, dport: u16, hook: Hook) -> Packet {
        Packet {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: protocol.number(),
            sport: Some(40000),
            dport: Some(dport),
            iif: None,
            oif: None,
            hook,
            ctstate: CtState::New,
            mark: 0,
        }
    }

    #[test]
    fn host_paths_tunnels_and_nat_outgoing() {
        let c = cluster(vec![(
            "x",
            "deny-all",
            Selector::default(),
            Some(vec![]),
            Some(vec![]),
        )]);
        let r = rendered(&c);
        let iface = |pod: &str| r[0].net.pod_iface[c.pod(pod).unwrap() as usize].clone();
        // The node itself to a local pod isolated for ingress: allowed (the Kubernetes
        // docs: a pod cannot block access from its resident node).
        let mut p = packet(
            "192.168.0.1",
            "10.244.1.10",
            Protocol::Tcp,
            8080,
            Hook::Output,
        );
        p.oif = Some(iface("x/server"));
        assert_eq!(node_fate(&r, 0, &p), Fate::Accept);
        // A pod no policy selects, to its node: its egress is open, then felix's
        // DefaultEndpointToHostAction (ACCEPT).
        let mut p = packet(
            "10.244.1.13",
            "192.168.0.1",
            Protocol::Tcp,
            10250,
            Hook::Input,
        );
        p.iif = Some(iface("z/free"));
        assert_eq!(node_fate(&r, 0, &p), Fate::Accept);
        // Felix: an egress-isolated pod's policy applies to traffic to its own node too.
        let mut p = packet(
            "10.244.1.11",
            "192.168.0.1",
            Protocol::Tcp,
            10250,
            Hook::Input,
        );
        p.iif = Some(iface("x/client"));
        assert_eq!(node_fate(&r, 0, &p), Fate::Drop);
        // IPIP from another node is accepted; from anyone else dropped.
        let mut p = packet("192.168.0.2", "192.168.0.1", Protocol::Tcp, 0, Hook::Input);
        p.protocol = 4;
        p.dport = None;
        p.sport = None;
        p.iif = Some("eth0".into());
        assert_eq!(node_fate(&r, 0, &p), Fate::Accept);
        p.src = "203.0.113.9".parse().unwrap();
        assert_eq!(node_fate(&r, 0, &p), Fate::Drop);
        // natOutgoing: a pod to an address outside the pool is masqueraded, to a pod not.
        let out = probe(Protocol::Tcp, 443);
        let mut p = packet(
            "10.244.1.13",
            "203.0.113.5",
            Protocol::Tcp,
            443,
            Hook::Forward,
        );
        p.iif = Some(iface("z/free"));
        p.oif = Some("eth0".into());
        for w in walk_node(&r, 0, &p) {
            assert_eq!(w.fate, Fate::Accept);
            assert!(masqueraded(&w), "{w}");
        }
        let mut p = packet(
            "10.244.1.13",
            "10.244.2.10",
            Protocol::Tcp,
            443,
            Hook::Forward,
        );
        p.iif = Some(iface("z/free"));
        p.oif = Some("tunl0".into());
        for w in walk_node(&r, 0, &p) {
            assert_eq!(w.fate, Fate::Accept);
            assert!(!masqueraded(&w), "{w}");
        }
        assert_eq!(fate(&c, &r, "z/free", "y/far", &out), Fate::Accept);
        // The node to a remote pod through tunl0: masqueraded to the tunnel's address.
        let mut p = packet(
            "192.168.0.1",
            "10.244.2.10",
            Protocol::Tcp,
            9090,
            Hook::Output,
        );
        p.oif = Some("tunl0".into());
        for w in walk_node(&r, 0, &p) {
            assert_eq!(w.fate, Fate::Accept);
            assert!(masqueraded(&w), "{w}");
        }
        // Felix drops VXLAN- and IPIP-looking packets from every workload, whatever the
        // policies say (AllowVXLANPacketsFromWorkloads defaults to false).
        assert_eq!(
            fate(&c, &r, "z/free", "203.0.113.5", &probe(Protocol::Udp, 4789)),
            Fate::Drop
        );
        assert_eq!(
            fate(&c, &r, "z/free", "203.0.113.5", &probe(Protocol::Udp, 4790)),
            Fate::Accept
        );
    }

    #[test]
    fn vxlan_overlay() {
        let mut c = cluster(vec![(
            "y",
            "deny-in",
            Selector::default(),
            Some(vec![]),
            None,
        )]);
        c.overlay = Some(crate::cluster::Overlay::Vxlan);
        let r = rendered(&c);
        assert_eq!(
            r[0].net.nodes[1].tunnel_dev.as_deref(),
            Some("vxlan.calico")
        );
        let http = probe(Protocol::Tcp, 9090);
        assert_eq!(fate(&c, &r, "z/free", "y/far", &http), Fate::Drop);
        assert_eq!(fate(&c, &r, "z/free", "x/server", &http), Fate::Accept);
        let mut p = packet(
            "192.168.0.1",
            "192.168.0.2",
            Protocol::Udp,
            4789,
            Hook::Input,
        );
        p.iif = Some("eth0".into());
        assert_eq!(node_fate(&r, 1, &p), Fate::Accept);
        p.src = "203.0.113.9".parse().unwrap();
        assert_eq!(node_fate(&r, 1, &p), Fate::Drop);
    }

    /// The port of the upstream Kubernetes e2e suite (scenarios/k8s-e2e): every pod-to-pod
    /// cell of every matrix, walked through the rendered rules of the nodes it crosses,
    /// against the verdict upstream expects.
    #[test]
    fn k8s_e2e_matrices() {
        use crate::cluster::Endpoint;
        use crate::scenario::{Body, Dataplane, ExpectKind};
        use crate::syntax::matrix::Cell;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/k8s-e2e");
        let found = crate::scenario::discover(&[dir]);
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        let (mut checked, mut wrong) = (0, Vec::new());
        for doc in &found.docs {
            let sc = crate::scenario::load(doc).unwrap_or_else(|e| panic!("{e:?}"));
            let Body::Cluster {
                cluster, expects, ..
            } = &sc.body
            else {
                continue;
            };
            for r in rendered(cluster) {
                let rs = rulesets(&r);
                let walk = |node: usize, pkt: &Packet| {
                    let host = r.net.host(node as u32);
                    let w = walk_on(&rs[node], pkt, Some(&host));
                    if let Fate::Inconclusive(why) = &w.fate {
                        panic!("{} {:?}: inconclusive: {why}\n{pkt}", sc.name, r.flavor);
                    }
                    w.fate
                };
                for e in expects {
                    let ExpectKind::Matrix {
                        port,
                        protocol,
                        rows,
                        cols,
                        cells,
                    } = &e.kind
                    else {
                        continue;
                    };
                    let except = e
                        .except
                        .iter()
                        .find(|(d, _)| *d == Dataplane::CalicoIptables)
                        .map(|(_, v)| *v);
                    for cell in cells {
                        let (Endpoint::Pod(a), Endpoint::Pod(b)) =
                            (&rows[cell.row], &cols[cell.col])
                        else {
                            continue;
                        };
                        if a == b {
                            continue; // a pod to itself never crosses the host
                        }
                        let want = match (except, &cell.expected) {
                            (_, Cell::Unchecked) => continue,
                            (Some(v), _) => v == crate::reference::Verdict::Allow,
                            (None, Cell::Allow) => true,
                            (None, Cell::Deny) => false,
                        };
                        let pr = Probe {
                            protocol: *protocol,
                            dport: port.unwrap_or(0),
                            ct: CtState::New,
                        };
                        let (src, dst) = (cluster.pod_name(*a), cluster.pod_name(*b));
                        let got = fate_with(cluster, &r, &walk, &src, &dst, &pr) == Fate::Accept;
                        checked += 1;
                        if got != want {
                            wrong.push(format!(
                                "{} {:?}: {src} -> {dst} {:?}/{:?}: want {want}, got {got}",
                                sc.name, r.flavor, protocol, port
                            ));
                        }
                    }
                }
            }
        }
        assert!(checked > 2000, "{checked}");
        assert!(
            wrong.is_empty(),
            "{} of {checked}:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}
