//! Calico felix's nftables dataplane: the node's `table ip calico`, with the same rules as
//! the iptables dataplane ([`super::calico_iptables`]) in felix's nft spelling.
//!
//! Contract: [`render`] returns the node's `table ip calico` as nft text that `nft -c -f`
//! accepts and fwsim's parser reads. Layout (docs/netfilter-semantics.md §11 F12; felix
//! `felix/nftables/table.go`): one table; base chains `raw-PREROUTING`, `raw-OUTPUT`,
//! `mangle-*`, `filter-INPUT/FORWARD/OUTPUT`, `nat-PREROUTING/INPUT/OUTPUT/POSTROUTING` at
//! felix's priorities, each jumping to its `<table>-cali-<CHAIN>` regular chain; IP sets are
//! nft sets (`:` of felix's names made `-`, as felix's `LegalizeSetName` does), named-port
//! sets are concatenations `ipv4_addr . inet_proto . inet_service` matched with `ip daddr .
//! meta l4proto . th dport`, dispatch is the verdict maps `filter-cali-from-wl-dispatch` /
//! `filter-cali-to-wl-dispatch`. docs/dataplanes.md ("calico-nftables") lists the rules and
//! every difference from felix.

use super::calico::{self, CalicoPolicy, CalicoRule, NamedPortSet, SelectorSet};
use super::calico_iptables::{
    local_pods, split_ports, MARK_ACCEPT, MARK_ALL, MARK_PASS, MARK_SCRATCH0, MARK_SCRATCH1,
    SET_ALL_HOSTS, SET_ALL_POOLS, SET_ALL_VXLAN, SET_MASQ_POOLS,
};
use super::net::{ClusterNet, Tunnel};
use super::RenderError;
use crate::cluster::{Cluster, Direction, NodeId};
use indexmap::IndexMap;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Felix's nft chain names are not length-limited like iptables'; long policy ids are
/// hashed all the same (and ids with `/` always: see [`calico::limited_name`]).
const MAX_CHAIN: usize = 64;

/// An nft set: (type line, flags, elements).
struct NftSet {
    ty: &'static str,
    interval: bool,
    elements: Vec<String>,
}

#[derive(Default)]
struct Sets {
    sets: BTreeMap<String, NftSet>,
}

impl Sets {
    fn add(&mut self, name: &str, ty: &'static str, interval: bool, mut elements: Vec<String>) {
        elements.sort();
        elements.dedup();
        self.sets.insert(
            name.to_string(),
            NftSet {
                ty,
                interval,
                elements,
            },
        );
    }

    fn selector(&mut self, s: &SelectorSet) -> String {
        let name = format!("cali40s-{}", calico::short_hash(&s.id, 22));
        let members = s.members.iter().map(|a| a.to_string()).collect();
        self.add(&name, "ipv4_addr", true, members);
        name
    }

    fn named_port(&mut self, s: &NamedPortSet) -> String {
        let name = format!("cali40n-{}", calico::short_hash(&s.id, 22));
        let members = s
            .members
            .iter()
            .map(|(a, p, n)| format!("{a} . {} . {n}", p.as_str().to_ascii_lowercase()))
            .collect();
        self.add(
            &name,
            "ipv4_addr . inet_proto . inet_service",
            false,
            members,
        );
        name
    }
}

/// The chains of the table under construction: name → (base chain header, rules).
#[derive(Default)]
struct Chains {
    chains: IndexMap<String, (Option<String>, Vec<String>)>,
}

impl Chains {
    fn base(&mut self, name: &str, header: &str) {
        self.chains
            .insert(name.to_string(), (Some(header.to_string()), Vec::new()));
    }

    fn declare(&mut self, name: &str) {
        self.chains.entry(name.to_string()).or_default();
    }

    fn push(&mut self, chain: &str, rule: impl Into<String>) {
        self.chains
            .entry(chain.to_string())
            .or_default()
            .1
            .push(rule.into());
    }
}

fn set_bits(bits: u32) -> String {
    format!("meta mark set meta mark | {bits:#010x}")
}

fn clear_bits(bits: u32) -> String {
    format!("meta mark set meta mark & {:#010x}", !bits)
}

/// `mark = (mark & ~mask) | value`.
fn set_masked(value: u32, mask: u32) -> String {
    if value == 0 {
        clear_bits(mask)
    } else {
        format!("meta mark set meta mark & {:#010x} | {value:#010x}", !mask)
    }
}

fn mark_is(value: u32, mask: u32) -> String {
    format!("meta mark & {mask:#010x} == {value:#010x}")
}

fn comment(text: &str) -> String {
    format!("comment \"{text}\"")
}

pub fn policy_chain(p: &CalicoPolicy, dir: Direction) -> String {
    let prefix = match dir {
        Direction::Ingress => "filter-cali-pi-",
        Direction::Egress => "filter-cali-po-",
    };
    calico::limited_name(prefix, &p.id(), MAX_CHAIN)
}

pub fn profile_chain(profile: &str, dir: Direction) -> String {
    let prefix = match dir {
        Direction::Ingress => "filter-cali-pri-",
        Direction::Egress => "filter-cali-pro-",
    };
    calico::limited_name(prefix, profile, MAX_CHAIN)
}

fn endpoint_chain_name(prefix: &str, iface: &str) -> String {
    calico::limited_name(prefix, iface, MAX_CHAIN)
}

/// One Calico allow rule in nft (the same blocks as the iptables renderer's `rule_lines`).
fn rule_lines(r: &CalicoRule, dir: Direction, sets: &mut Sets) -> Vec<String> {
    let peer = match dir {
        Direction::Ingress => "ip saddr",
        Direction::Egress => "ip daddr",
    };
    let proto_name = r.protocol.map(|p| p.as_str().to_ascii_lowercase());
    let l4 = proto_name
        .as_ref()
        .map(|p| format!("meta l4proto {p} "))
        .unwrap_or_default();
    let all_pass = MARK_SCRATCH0;
    let this_pass = MARK_SCRATCH1;
    let mut blocks: Vec<String> = Vec::new();
    let mut using_blocks = false;
    let mut first_positive_done = false;
    let init = |blocks: &mut Vec<String>, using: &mut bool, bits: u32| {
        if !*using {
            blocks.push(set_masked(bits, all_pass | this_pass));
            *using = true;
        }
    };
    let port_match = |s: &str| match &proto_name {
        Some(p) => format!(
            "{p} dport {{ {} }} ",
            s.replace(':', "-").replace(',', ", ")
        ),
        None => String::new(),
    };

    let splits = split_ports(&r.ports);
    let named: Vec<String> = r.named_ports.iter().map(|n| sets.named_port(n)).collect();
    let (mut main_ports, mut main_named) = (None, None);
    if splits.len() + named.len() > 1 {
        init(&mut blocks, &mut using_blocks, 0);
        for s in &splits {
            blocks.push(format!("{l4}{}{}", port_match(s), set_bits(all_pass)));
        }
        for n in &named {
            blocks.push(format!(
                "ip daddr . meta l4proto . th dport @{n} {}",
                set_bits(all_pass)
            ));
        }
        first_positive_done = true;
    } else {
        main_ports = splits.first().cloned();
        main_named = named.first().cloned();
    }
    let mut main_net = None;
    if r.nets.len() > 1 {
        init(&mut blocks, &mut using_blocks, 0);
        let bit = if first_positive_done {
            this_pass
        } else {
            all_pass
        };
        for n in &r.nets {
            blocks.push(format!("{peer} {n} {}", set_bits(bit)));
        }
        if first_positive_done {
            blocks.push(format!(
                "{} {}",
                mark_is(0, this_pass),
                clear_bits(all_pass)
            ));
        }
    } else {
        main_net = r.nets.first();
    }
    let mut main_not_net = None;
    if main_net.is_some() as usize + r.not_nets.len() > 1 {
        init(&mut blocks, &mut using_blocks, all_pass);
        for n in &r.not_nets {
            blocks.push(format!("{peer} {n} {}", clear_bits(all_pass)));
        }
    } else {
        main_not_net = r.not_nets.first();
    }

    let mut m = l4.clone();
    if let Some(n) = main_net {
        m.push_str(&format!("{peer} {n} "));
    }
    if let Some(s) = &r.selector {
        let name = sets.selector(s);
        m.push_str(&format!("{peer} @{name} "));
    }
    if let Some(p) = main_ports {
        m.push_str(&port_match(&p));
    }
    if let Some(n) = main_named {
        m.push_str(&format!("ip daddr . meta l4proto . th dport @{n} "));
    }
    if let Some(n) = main_not_net {
        m.push_str(&format!("{peer} != {n} "));
    }
    if using_blocks {
        m.push_str(&format!("{} ", mark_is(all_pass, all_pass)));
    }
    blocks.push(format!("{m}{}", set_bits(MARK_ACCEPT)));
    blocks.push(format!("{} return", mark_is(MARK_ACCEPT, MARK_ACCEPT)));
    blocks
}

fn endpoint_chain(policies: &[&CalicoPolicy], profile: &str, dir: Direction) -> Vec<String> {
    let mut rules = vec![
        "ct state established,related accept".to_string(),
        "ct state invalid drop".to_string(),
        clear_bits(MARK_ACCEPT | MARK_PASS),
    ];
    if crate::planted::is(crate::planted::Bug::EstablishedNotAccepted) {
        // Planted: no accept for established and related traffic.
        rules.remove(0);
    }
    if dir == Direction::Egress {
        rules.push(format!(
            "udp dport 4789 drop {}",
            comment("Drop VXLAN encapped packets originating in workloads")
        ));
        rules.push(format!(
            "meta l4proto 4 drop {}",
            comment("Drop IPinIP encapped packets originating in workloads")
        ));
    }
    if !policies.is_empty() {
        rules.push(format!(
            "{} {}",
            clear_bits(MARK_PASS),
            comment(&format!("Start of tier {}", calico::TIER))
        ));
        for p in policies {
            rules.push(format!(
                "{} jump {}",
                mark_is(0, MARK_PASS),
                policy_chain(p, dir)
            ));
            rules.push(format!(
                "{} return {}",
                mark_is(MARK_ACCEPT, MARK_ACCEPT),
                comment("Return if policy accepted")
            ));
        }
        rules.push(format!(
            "{} drop {}",
            mark_is(0, MARK_PASS),
            comment(&format!(
                "End of tier {}. Drop if no policies passed packet",
                calico::TIER
            ))
        ));
    }
    rules.push(format!("jump {}", profile_chain(profile, dir)));
    rules.push(format!(
        "{} return {}",
        mark_is(MARK_ACCEPT, MARK_ACCEPT),
        comment("Return if profile accepted")
    ));
    rules.push(format!("drop {}", comment("Drop if no profiles matched")));
    rules
}

/// The node's `table ip calico`, as nft text.
pub fn render(
    cluster: &Cluster,
    net: &ClusterNet,
    node: NodeId,
    policies: &[calico::CalicoPolicy],
) -> Result<String, RenderError> {
    let n = &net.nodes[node as usize];
    if !cluster.nodes[node as usize].ip.is_ipv4() {
        return Err(format!(
            "calico-nftables renders IPv4 only: node {} has the IPv6 address {}",
            cluster.nodes[node as usize].name, cluster.nodes[node as usize].ip
        )
        .into());
    }
    let local = local_pods(cluster, net, node);
    let mut sets = Sets::default();
    let mut c = Chains::default();

    let pools: Vec<String> = net.pod_network.iter().map(|c| c.to_string()).collect();
    sets.add(SET_ALL_POOLS, "ipv4_addr", true, pools.clone());
    sets.add(SET_MASQ_POOLS, "ipv4_addr", true, pools);
    let hosts: Vec<String> = cluster
        .nodes
        .iter()
        .filter_map(|h| match h.ip {
            IpAddr::V4(a) => Some(a.to_string()),
            IpAddr::V6(_) => None,
        })
        .collect();
    match n.tunnel {
        Some(Tunnel::Ipip) => sets.add(SET_ALL_HOSTS, "ipv4_addr", true, hosts),
        Some(Tunnel::Vxlan(_)) => sets.add(SET_ALL_VXLAN, "ipv4_addr", true, hosts),
        None => {}
    }

    let accepted = mark_is(MARK_ACCEPT, MARK_ACCEPT);
    let clear_all = clear_bits(MARK_ALL);

    // Base chains (felix/nftables/table.go), each jumping to its felix chain.
    for (name, header, target) in [
        (
            "raw-PREROUTING",
            "type filter hook prerouting priority raw; policy accept;",
            Some("raw-cali-PREROUTING"),
        ),
        (
            "raw-OUTPUT",
            "type filter hook output priority raw; policy accept;",
            Some("raw-cali-OUTPUT"),
        ),
        (
            "mangle-PREROUTING",
            "type filter hook prerouting priority mangle; policy accept;",
            Some("mangle-cali-PREROUTING"),
        ),
        (
            "mangle-INPUT",
            "type filter hook input priority mangle; policy accept;",
            None,
        ),
        (
            "mangle-FORWARD",
            "type filter hook forward priority mangle; policy accept;",
            None,
        ),
        (
            "mangle-OUTPUT",
            "type route hook output priority mangle; policy accept;",
            None,
        ),
        (
            "mangle-POSTROUTING",
            "type filter hook postrouting priority mangle; policy accept;",
            Some("mangle-cali-POSTROUTING"),
        ),
        (
            "filter-INPUT",
            "type filter hook input priority filter; policy accept;",
            Some("filter-cali-INPUT"),
        ),
        (
            "filter-FORWARD",
            "type filter hook forward priority filter; policy accept;",
            Some("filter-cali-FORWARD"),
        ),
        (
            "filter-OUTPUT",
            "type filter hook output priority filter; policy accept;",
            Some("filter-cali-OUTPUT"),
        ),
        (
            "nat-PREROUTING",
            "type nat hook prerouting priority dstnat; policy accept;",
            Some("nat-cali-PREROUTING"),
        ),
        (
            "nat-INPUT",
            "type nat hook input priority -100; policy accept;",
            None,
        ),
        (
            "nat-OUTPUT",
            "type nat hook output priority 110; policy accept;",
            Some("nat-cali-OUTPUT"),
        ),
        (
            "nat-POSTROUTING",
            "type nat hook postrouting priority srcnat + 10; policy accept;",
            Some("nat-cali-POSTROUTING"),
        ),
    ] {
        c.base(name, header);
        if let Some(t) = target {
            c.push(name, format!("jump {t}"));
        }
    }
    c.push(
        "filter-FORWARD",
        format!(
            "{accepted} accept {}",
            comment("Policy explicitly accepted packet.")
        ),
    );
    c.push("filter-FORWARD", set_bits(MARK_ACCEPT));

    // raw
    c.push("raw-cali-PREROUTING", clear_all.clone());
    if let Some(Tunnel::Vxlan(port)) = n.tunnel {
        c.push("raw-cali-PREROUTING", format!("udp dport {port} notrack"));
    }
    c.push(
        "raw-cali-PREROUTING",
        format!("iifname \"cali*\" {}", set_bits(MARK_SCRATCH0)),
    );
    c.push(
        "raw-cali-PREROUTING",
        format!(
            "{} jump raw-cali-rpf-skip",
            mark_is(MARK_SCRATCH0, MARK_SCRATCH0)
        ),
    );
    // Left out: `... fib saddr . mark . iif oif 0 drop` (reverse-path filter).
    c.push(
        "raw-cali-PREROUTING",
        format!(
            "{} jump raw-cali-from-host-endpoint",
            mark_is(0, MARK_SCRATCH0)
        ),
    );
    c.push("raw-cali-PREROUTING", format!("{accepted} accept"));
    c.declare("raw-cali-rpf-skip");
    c.declare("raw-cali-from-host-endpoint");
    c.push("raw-cali-OUTPUT", clear_all.clone());
    c.push("raw-cali-OUTPUT", "jump raw-cali-to-host-endpoint");
    if let Some(Tunnel::Vxlan(port)) = n.tunnel {
        c.push("raw-cali-OUTPUT", format!("udp dport {port} notrack"));
    }
    c.push("raw-cali-OUTPUT", format!("{accepted} accept"));
    c.declare("raw-cali-to-host-endpoint");

    // mangle
    c.push(
        "mangle-cali-PREROUTING",
        "ct state established,related accept",
    );
    c.push("mangle-cali-PREROUTING", format!("{accepted} accept"));
    c.push(
        "mangle-cali-PREROUTING",
        "jump mangle-cali-from-host-endpoint",
    );
    c.push(
        "mangle-cali-PREROUTING",
        format!(
            "{accepted} accept {}",
            comment("Host endpoint policy accepted packet.")
        ),
    );
    c.declare("mangle-cali-from-host-endpoint");
    c.push("mangle-cali-POSTROUTING", format!("{accepted} return"));
    c.push("mangle-cali-POSTROUTING", clear_all.clone());
    c.push(
        "mangle-cali-POSTROUTING",
        "ct status dnat jump mangle-cali-to-host-endpoint",
    );
    c.push(
        "mangle-cali-POSTROUTING",
        format!(
            "{accepted} return {}",
            comment("Host endpoint policy accepted packet.")
        ),
    );
    c.declare("mangle-cali-to-host-endpoint");

    // nat
    c.push("nat-cali-PREROUTING", "jump nat-cali-fip-dnat");
    c.push("nat-cali-OUTPUT", "jump nat-cali-fip-dnat");
    c.declare("nat-cali-fip-dnat");
    c.push("nat-cali-POSTROUTING", "jump nat-cali-fip-snat");
    c.push("nat-cali-POSTROUTING", "jump nat-cali-nat-outgoing");
    c.declare("nat-cali-fip-snat");
    if let (Some(dev), Some(tun_addr)) = (&n.tunnel_dev, n.tunnel_addr) {
        // Felix: `fib saddr . oif type != local fib saddr type local`; the interface-limited
        // fib is not modelled by fwsim, and the tunnel device has one address.
        let m = format!("oifname \"{dev}\" ip saddr != {tun_addr} fib saddr type local");
        if let Some(Tunnel::Vxlan(port)) = n.tunnel {
            let (lo, hi) = (1024u32, 65535u32);
            let port = port as u32;
            let range = if port - lo >= hi - port {
                format!("{lo}-{}", port - 1)
            } else {
                format!("{}-{hi}", port + 1)
            };
            c.push(
                "nat-cali-POSTROUTING",
                format!("meta l4proto udp {m} masquerade to :{range} fully-random"),
            );
        }
        c.push(
            "nat-cali-POSTROUTING",
            format!("{m} masquerade fully-random"),
        );
    }
    c.declare("nat-cali-nat-outgoing");
    if net.pod_network.is_some() {
        c.push(
            "nat-cali-nat-outgoing",
            format!(
                "ip saddr @{SET_MASQ_POOLS} ip daddr != @{SET_ALL_POOLS} masquerade fully-random"
            ),
        );
    }

    // filter
    match n.tunnel {
        Some(Tunnel::Ipip) => {
            if !crate::planted::is(crate::planted::Bug::IpipNotAllowed) {
                c.push(
                    "filter-cali-INPUT",
                    format!(
                        "meta l4proto 4 ip saddr @{SET_ALL_HOSTS} fib daddr type local accept {}",
                        comment("Allow IPIP packets from Calico hosts")
                    ),
                );
            }
            c.push(
                "filter-cali-INPUT",
                format!(
                    "meta l4proto 4 drop {}",
                    comment("Drop IPIP packets from non-Calico hosts")
                ),
            );
        }
        Some(Tunnel::Vxlan(port)) => {
            c.push(
                "filter-cali-INPUT",
                format!(
                    "udp dport {port} ip saddr @{SET_ALL_VXLAN} fib daddr type local accept {}",
                    comment("Allow IPv4 VXLAN packets from allowed hosts")
                ),
            );
            c.push(
                "filter-cali-INPUT",
                format!(
                    "udp dport {port} fib daddr type local drop {}",
                    comment("Drop IPv4 VXLAN packets from non-allowed hosts")
                ),
            );
        }
        None => {}
    }
    c.push(
        "filter-cali-INPUT",
        "iifname \"cali*\" goto filter-cali-wl-to-host",
    );
    c.push("filter-cali-INPUT", format!("{accepted} accept"));
    c.push("filter-cali-INPUT", clear_all.clone());
    c.push("filter-cali-INPUT", "jump filter-cali-from-host-endpoint");
    c.push(
        "filter-cali-INPUT",
        format!(
            "{accepted} accept {}",
            comment("Host endpoint policy accepted packet.")
        ),
    );
    c.push("filter-cali-FORWARD", clear_bits(MARK_ALL & !MARK_ACCEPT));
    c.push(
        "filter-cali-FORWARD",
        format!(
            "{} jump filter-cali-from-hep-forward",
            mark_is(0, MARK_ACCEPT)
        ),
    );
    c.push(
        "filter-cali-FORWARD",
        "iifname \"cali*\" jump filter-cali-from-wl-dispatch",
    );
    c.push(
        "filter-cali-FORWARD",
        "oifname \"cali*\" jump filter-cali-to-wl-dispatch",
    );
    c.push("filter-cali-FORWARD", "jump filter-cali-to-hep-forward");
    c.push("filter-cali-FORWARD", "jump filter-cali-cidr-block");
    c.push("filter-cali-OUTPUT", format!("{accepted} accept"));
    c.push("filter-cali-OUTPUT", "oifname \"cali*\" return");
    match n.tunnel {
        Some(Tunnel::Ipip) => c.push(
            "filter-cali-OUTPUT",
            format!(
                "meta l4proto 4 ip daddr @{SET_ALL_HOSTS} fib saddr type local accept {}",
                comment("Allow IPIP packets to other Calico hosts")
            ),
        ),
        Some(Tunnel::Vxlan(port)) => c.push(
            "filter-cali-OUTPUT",
            format!(
                "udp dport {port} fib saddr type local ip daddr @{SET_ALL_VXLAN} accept {}",
                comment("Allow IPv4 VXLAN packets to other allowed hosts")
            ),
        ),
        None => {}
    }
    c.push("filter-cali-OUTPUT", clear_all.clone());
    // Felix: `ct status != dnat jump …`; fwsim reads a whole-status comparison as
    // unknown, so the same test is written on the dnat bit.
    c.push(
        "filter-cali-OUTPUT",
        "ct status & dnat == 0 jump filter-cali-to-host-endpoint",
    );
    c.push(
        "filter-cali-OUTPUT",
        format!(
            "{accepted} accept {}",
            comment("Host endpoint policy accepted packet.")
        ),
    );
    for ch in [
        "filter-cali-cidr-block",
        "filter-cali-from-hep-forward",
        "filter-cali-from-host-endpoint",
        "filter-cali-to-hep-forward",
        "filter-cali-to-host-endpoint",
    ] {
        c.declare(ch);
    }
    c.push(
        "filter-cali-wl-to-host",
        "jump filter-cali-from-wl-dispatch",
    );
    c.push(
        "filter-cali-wl-to-host",
        format!(
            "accept {}",
            comment("Configured DefaultEndpointToHostAction")
        ),
    );

    // Dispatch: verdict maps, then the unknown-interface drop.
    let mut from_map = Vec::new();
    let mut to_map = Vec::new();
    for &p in &local {
        let iface = &net.pod_iface[p as usize];
        from_map.push(format!(
            "\"{iface}\" : goto {}",
            endpoint_chain_name("filter-cali-fw-", iface)
        ));
        to_map.push(format!(
            "\"{iface}\" : goto {}",
            endpoint_chain_name("filter-cali-tw-", iface)
        ));
    }
    c.push(
        "filter-cali-from-wl-dispatch",
        "iifname vmap @filter-cali-from-wl-dispatch",
    );
    c.push(
        "filter-cali-from-wl-dispatch",
        format!("drop {}", comment("Unknown interface")),
    );
    c.push(
        "filter-cali-to-wl-dispatch",
        "oifname vmap @filter-cali-to-wl-dispatch",
    );
    c.push(
        "filter-cali-to-wl-dispatch",
        format!("drop {}", comment("Unknown interface")),
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
            (Direction::Ingress, "filter-cali-tw-"),
            (Direction::Egress, "filter-cali-fw-"),
        ] {
            let pols = calico::policies_for(policies, p, dir);
            for q in &pols {
                if !active.iter().any(|a| std::ptr::eq(*a, *q)) {
                    active.push(q);
                }
            }
            let chain = endpoint_chain_name(prefix, iface);
            c.declare(&chain);
            for r in endpoint_chain(&pols, &profile, dir) {
                c.push(&chain, r);
            }
        }
    }
    active.sort_by_key(|p| p.id());
    for p in &active {
        for dir in [Direction::Ingress, Direction::Egress] {
            let chain = policy_chain(p, dir);
            c.declare(&chain);
            for r in p.rules(dir).unwrap_or(&[]) {
                for line in rule_lines(r, dir, &mut sets) {
                    c.push(&chain, line);
                }
            }
        }
    }
    profiles.sort();
    for prof in &profiles {
        for dir in [Direction::Ingress, Direction::Egress] {
            let chain = profile_chain(prof, dir);
            c.push(&chain, set_bits(MARK_ACCEPT));
            c.push(&chain, format!("{accepted} return"));
        }
    }

    // The text.
    let mut out = String::from("table ip calico {\n");
    for (name, s) in &sets.sets {
        out.push_str(&format!("\tset {name} {{\n\t\ttype {}\n", s.ty));
        if s.interval {
            out.push_str("\t\tflags interval\n");
        }
        if !s.elements.is_empty() {
            out.push_str(&format!("\t\telements = {{ {} }}\n", s.elements.join(", ")));
        }
        out.push_str("\t}\n\n");
    }
    for (name, elements) in [
        ("filter-cali-from-wl-dispatch", &from_map),
        ("filter-cali-to-wl-dispatch", &to_map),
    ] {
        out.push_str(&format!("\tmap {name} {{\n\t\ttype ifname : verdict\n"));
        if !elements.is_empty() {
            out.push_str(&format!("\t\telements = {{ {} }}\n", elements.join(", ")));
        }
        out.push_str("\t}\n\n");
    }
    // Regular chains first (every jump target declared before the base chains use it).
    let (base, regular): (Vec<_>, Vec<_>) = c.chains.iter().partition(|(_, (h, _))| h.is_some());
    for (name, (header, rules)) in regular.into_iter().chain(base) {
        out.push_str(&format!("\tchain {name} {{\n"));
        if let Some(h) = header {
            out.push_str(&format!("\t\t{h}\n"));
        }
        for r in rules {
            out.push_str(&format!("\t\t{r}\n"));
        }
        out.push_str("\t}\n\n");
    }
    out.push_str("}\n");
    Ok(out)
}
