//! The cluster packet path: a flow's packets walked through every node they cross, each
//! node with its own rendered ruleset and its own conntrack table.
//!
//! Contract:
//! - [`ClusterPath::new`] parses every node's rendered texts with fwsim's own parsers (the
//!   rendered text is what is evaluated); it fails only when a text does not parse.
//! - [`ClusterPath::flow`] cannot fail: it gives a verdict (allow, deny, partial for a
//!   service) or says why it cannot decide (a walk was inconclusive), with a trace of every
//!   hop of every packet.
//! - It never reads policies and never asks the reference engine.
//!
//! The path (see ARCHITECTURE.md, "The cluster packet path"):
//! - A pod's packet enters its node from the pod's interface (`net::NodeNet`): to a local
//!   address it takes the input path, otherwise the forward path out of the route's
//!   interface. A host-network source (`node:`) starts on the output path. A DNAT in
//!   PREROUTING or OUTPUT (kube-proxy's service NAT) routes the packet again.
//! - Out of a local pod's interface, the pod has it. Out of the tunnel device, the packet is
//!   encapsulated (IPIP: protocol 4; VXLAN: UDP to 4789 or 8472) from this node's address to
//!   the node owning the destination, and the outer packet takes this node's output path and
//!   the other node's input path as host traffic; then the inner packet enters the other
//!   node from the tunnel device. Out of the uplink, it reaches the node owning the
//!   destination (a node address, or a pod address without overlay), else it leaves the
//!   cluster.
//! - An external source's packet enters the destination's node on its uplink (a service:
//!   the first node).
//! - The flow is allowed when the first packet arrives at the destination and the reply,
//!   sent back from there, arrives at the source with the addresses the source sent to
//!   (conntrack undoes every NAT on the way back). Every `statistic` branch is followed:
//!   a service flow's verdict is per endpoint reached, combined as the reference engine
//!   combines them (allowed to all, denied to all, or partial).

use crate::cluster::{Cluster, Endpoint, Flow, NodeId, PodId};
use crate::netfilter::interp::{walk_seq_branches, Conntrack, Fate, Out, Walk};
use crate::netfilter::ir::Ruleset;
use crate::reference::Verdict;
use crate::render::net::{ClusterNet, Tunnel};
use crate::render::Rendered;
use crate::values::{CtState, Hook, Packet, Protocol};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The source port of every flow's first packet.
pub const SOURCE_PORT: u16 = 43210;
/// Hops (node walks) a packet may take before the path gives up (a routing loop).
const MAX_HOPS: usize = 12;

/// Where a packet is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Arrival {
    Pod(PodId),
    Host(NodeId),
    /// Left the cluster through this node's uplink.
    External(NodeId),
}

/// Conntrack tables of the nodes touched so far.
type Tables = BTreeMap<NodeId, Conntrack>;

/// One way a packet went: its end, the packet as delivered, its hops, the tables after.
#[derive(Clone, Debug)]
struct Trip {
    end: Result<(Arrival, Out), End>,
    hops: Vec<String>,
    tables: Tables,
}

#[derive(Clone, Debug)]
enum End {
    Dropped(String),
    Inconclusive(String),
}

/// The result of a flow on a rendered dataplane.
#[derive(Clone, Debug)]
pub struct PathResult {
    /// Err: why the path cannot decide.
    pub verdict: Result<Verdict, String>,
    pub explanation: String,
}

/// A cluster's nodes, rendered and parsed, ready to walk flows.
pub struct ClusterPath<'c> {
    cluster: &'c Cluster,
    net: ClusterNet,
    rulesets: Vec<Ruleset>,
    hosts: Vec<crate::netfilter::interp::Host>,
    /// Captured nodes: the snapshot whose routing decides reverse-path filtering.
    snapshots: Vec<Option<&'c crate::snapshot::Snapshot>>,
}

impl<'c> ClusterPath<'c> {
    /// Parse every node's rendered texts.
    pub fn new(cluster: &'c Cluster, rendered: &Rendered) -> Result<ClusterPath<'c>, String> {
        let mut rulesets = Vec::new();
        for n in &rendered.nodes {
            let mut rs = Ruleset {
                tables: Vec::new(),
                ipsets: None,
            };
            if let Some(text) = &n.iptables {
                let mut ipt = crate::netfilter::read_ruleset(text).map_err(|e| {
                    format!(
                        "node {}: rendered iptables rules, {}: {}",
                        n.name, e.loc, e.message
                    )
                })?;
                if let Some(sets) = &n.ipsets {
                    let sets = crate::netfilter::read_ipsets(sets).map_err(|e| {
                        format!("node {}: rendered ipsets, {}: {}", n.name, e.loc, e.message)
                    })?;
                    crate::netfilter::attach_ipsets(&mut ipt, sets)
                        .map_err(|e| format!("node {}: rendered ipsets: {}", n.name, e.message))?;
                }
                rs.tables.extend(ipt.tables);
                rs.ipsets = ipt.ipsets;
            }
            if let Some(text) = &n.nft {
                let nft = crate::netfilter::read_ruleset(text).map_err(|e| {
                    format!(
                        "node {}: rendered nft rules, {}: {}",
                        n.name, e.loc, e.message
                    )
                })?;
                rs.tables.extend(nft.tables);
            }
            rulesets.push(rs);
        }
        let hosts = (0..cluster.nodes.len())
            .map(|n| rendered.net.host(n as NodeId))
            .collect();
        Ok(ClusterPath {
            cluster,
            net: rendered.net.clone(),
            rulesets,
            hosts,
            snapshots: Vec::new(),
        })
    }

    /// A path from its parts, one per node in the cluster's order: the layout, the rulesets
    /// and host models, and (captured nodes) the snapshots whose routing also filters
    /// received packets by their source (rp_filter).
    pub fn from_parts(
        cluster: &'c Cluster,
        net: ClusterNet,
        rulesets: Vec<Ruleset>,
        hosts: Vec<crate::netfilter::interp::Host>,
        snapshots: Vec<Option<&'c crate::snapshot::Snapshot>>,
    ) -> ClusterPath<'c> {
        ClusterPath {
            cluster,
            net,
            rulesets,
            hosts,
            snapshots,
        }
    }

    /// The device through which `n` reaches other nodes and the outside.
    fn uplink(&self, n: NodeId) -> &str {
        &self.net.nodes[n as usize].uplink
    }

    fn node_name(&self, n: NodeId) -> &str {
        &self.cluster.nodes[n as usize].name
    }

    /// The pod whose address is `ip`.
    fn pod_at(&self, ip: IpAddr) -> Option<PodId> {
        match Endpoint::from_ip(self.cluster, ip) {
            Endpoint::Pod(p) => Some(p),
            _ => None,
        }
    }

    /// The node that owns `ip`: its own address, a tunnel or bridge address, or its
    /// podCIDR / one of its pods.
    fn node_of(&self, ip: IpAddr) -> Option<NodeId> {
        if let Some(p) = self.pod_at(ip) {
            return Some(self.cluster.pods[p as usize].node);
        }
        if let Some(n) = self.net.nodes.iter().find(|n| n.addresses.contains(&ip)) {
            return Some(n.node);
        }
        self.cluster
            .nodes
            .iter()
            .position(|n| n.pod_cidr.is_some_and(|c| c.contains(&ip)))
            .map(|i| i as NodeId)
    }

    /// The verdict of a flow, with every hop of every packet as its explanation.
    pub fn flow(&self, flow: &Flow) -> PathResult {
        let c = self.cluster;
        if let (Endpoint::Pod(a), Endpoint::Pod(b)) = (&flow.from, &flow.to) {
            if a == b {
                return PathResult {
                    verdict: Ok(Verdict::Allow),
                    explanation: "a pod's traffic to itself never leaves its network namespace"
                        .into(),
                };
            }
        }
        for ep in [&flow.from, &flow.to] {
            if let Endpoint::Pod(p) = ep {
                if let Some(why) = self.net.unplaced.get(p) {
                    return inconclusive(why.clone());
                }
            }
        }
        let (Some(src_ip), Some(dst_ip)) = (flow.from.ip(c), flow.to.ip(c)) else {
            return inconclusive("an endpoint of the flow has no address".into());
        };
        if !src_ip.is_ipv4() || !dst_ip.is_ipv4() {
            return inconclusive(
                "the rendered dataplanes model IPv4 clusters only in this version".into(),
            );
        }
        let ports = flow.protocol.has_ports();
        let mut packet = Packet {
            src: src_ip,
            dst: dst_ip,
            protocol: flow.protocol.number(),
            sport: ports.then_some(SOURCE_PORT),
            dport: if ports { flow.port } else { None },
            iif: None,
            oif: None,
            hook: Hook::Forward,
            ctstate: CtState::New,
            mark: 0,
        };
        // Where the first packet starts.
        let start = match &flow.from {
            Endpoint::Pod(p) => Start::Received(
                self.cluster.pods[*p as usize].node,
                Some(self.net.pod_iface[*p as usize].clone()),
            ),
            Endpoint::Node(n) => {
                // The source address routing picks: the output device's address.
                let host = &self.hosts[*n as usize];
                if let Some(dev) = host.route(dst_ip) {
                    if let Some((_, a)) = host.iface_addrs.iter().find(|(i, _)| i == dev) {
                        packet.src = *a;
                    }
                }
                Start::Local(*n)
            }
            Endpoint::External(..) | Endpoint::Service(_) => {
                let entry = match &flow.to {
                    Endpoint::Service(_) => Some(0),
                    _ => self.node_of(dst_ip),
                };
                match entry {
                    Some(n) => Start::Received(n, Some(self.uplink(n).to_string())),
                    None => {
                        return PathResult {
                            verdict: Ok(Verdict::Allow),
                            explanation:
                                "neither end is in the cluster: no node's rules see the flow".into(),
                        }
                    }
                }
            }
        };
        let mut out = String::new();
        let trips = self.deliver(start.clone(), packet.clone(), Tables::new(), Vec::new(), 0);
        // Per endpoint reached (service flows) or the one destination: allowed or not.
        let mut per_endpoint: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        let mut why_not = None;
        for (i, trip) in trips.into_iter().enumerate() {
            if i > 0 {
                out.push_str("---- another statistic branch ----\n");
            }
            let _ = writeln!(out, "first packet {}:", show_packet(&packet));
            for h in &trip.hops {
                out.push_str(h);
            }
            let (arrival, delivered) = match trip.end {
                Err(End::Inconclusive(why)) => {
                    let _ = writeln!(out, "=> inconclusive: {why}");
                    why_not.get_or_insert(why);
                    continue;
                }
                Err(End::Dropped(why)) => {
                    let _ = writeln!(out, "=> dropped: {why}");
                    per_endpoint
                        .entry(self.intended(&flow.to))
                        .or_default()
                        .push(false);
                    continue;
                }
                Ok(x) => x,
            };
            let reached = match (&flow.to, &arrival) {
                (Endpoint::Pod(p), Arrival::Pod(q)) => p == q,
                (Endpoint::Service(_), Arrival::Pod(_)) => true,
                (Endpoint::Node(n), Arrival::Host(m)) => n == m,
                (Endpoint::External(..), Arrival::External(_)) => true,
                _ => false,
            };
            let key = match (&flow.to, &arrival) {
                (Endpoint::Service(_), Arrival::Pod(q)) => c.pod_name(*q),
                _ => self.intended(&flow.to),
            };
            if !reached {
                let _ = writeln!(
                    out,
                    "=> delivered to {}, not to {}",
                    self.arrival_name(&arrival),
                    flow.to.display(c)
                );
                per_endpoint.entry(key).or_default().push(false);
                continue;
            }
            let _ = writeln!(
                out,
                "=> delivered to {} as {}",
                self.arrival_name(&arrival),
                show_out(&delivered)
            );
            // The reply, from where the packet arrived.
            let reply = Packet {
                src: delivered.dst,
                dst: delivered.src,
                protocol: packet.protocol,
                sport: delivered.dport,
                dport: delivered.sport,
                iif: None,
                oif: None,
                hook: Hook::Forward,
                ctstate: CtState::Established,
                mark: 0,
            };
            let back = match arrival {
                Arrival::Pod(q) => Start::Received(
                    c.pods[q as usize].node,
                    Some(self.net.pod_iface[q as usize].clone()),
                ),
                Arrival::Host(n) => Start::Local(n),
                Arrival::External(n) => Start::Received(n, Some(self.uplink(n).to_string())),
            };
            let _ = writeln!(out, "reply {}:", show_packet(&reply));
            let replies = self.deliver(back, reply, trip.tables, Vec::new(), 0);
            let mut ok_all = true;
            for r in replies {
                for h in &r.hops {
                    out.push_str(h);
                }
                match r.end {
                    Err(End::Inconclusive(why)) => {
                        let _ = writeln!(out, "=> reply inconclusive: {why}");
                        why_not.get_or_insert(why);
                    }
                    Err(End::Dropped(why)) => {
                        let _ = writeln!(out, "=> reply dropped: {why}");
                        ok_all = false;
                    }
                    Ok((back_at, got)) => {
                        let home = match (&start, &back_at) {
                            (Start::Received(n, Some(i)), Arrival::Pod(q))
                                if i != self.uplink(*n) =>
                            {
                                c.pods[*q as usize].node == *n
                                    && self.net.pod_iface[*q as usize] == *i
                                    && Some(*q) == self.pod_at(packet.src)
                            }
                            (Start::Local(n), Arrival::Host(m)) => n == m,
                            (Start::Received(n, Some(i)), Arrival::External(_)) => {
                                i == self.uplink(*n)
                            }
                            _ => false,
                        };
                        let addressed = got.src == packet.dst
                            && got.sport == packet.dport
                            && got.dst == packet.src
                            && got.dport == packet.sport;
                        if !home {
                            let _ = writeln!(
                                out,
                                "=> reply delivered to {}, not to the source",
                                self.arrival_name(&back_at)
                            );
                            ok_all = false;
                        } else if !addressed {
                            let _ = writeln!(
                                out,
                                "=> reply arrives as {}, which is not the connection the source opened",
                                show_out(&got)
                            );
                            ok_all = false;
                        } else {
                            let _ = writeln!(out, "=> reply delivered to the source");
                        }
                    }
                }
            }
            per_endpoint.entry(key).or_default().push(ok_all);
        }
        if let Some(why) = why_not {
            return PathResult {
                verdict: Err(why),
                explanation: out,
            };
        }
        let verdict = match &flow.to {
            Endpoint::Service(_) => {
                let allowed = per_endpoint
                    .values()
                    .filter(|v| v.iter().all(|ok| *ok))
                    .count();
                let any = per_endpoint.values().any(|v| v.iter().any(|ok| *ok));
                if per_endpoint.is_empty() || !any {
                    Verdict::Deny
                } else if allowed == per_endpoint.len() {
                    Verdict::Allow
                } else {
                    Verdict::Partial
                }
            }
            _ => {
                let all: Vec<bool> = per_endpoint.values().flatten().copied().collect();
                if !all.is_empty() && all.iter().all(|ok| *ok) {
                    Verdict::Allow
                } else if all.iter().all(|ok| !*ok) {
                    Verdict::Deny
                } else {
                    return PathResult {
                        verdict: Err("statistic branches disagree on the verdict".into()),
                        explanation: out,
                    };
                }
            }
        };
        PathResult {
            verdict: Ok(verdict),
            explanation: out,
        }
    }

    fn intended(&self, to: &Endpoint) -> String {
        to.display(self.cluster)
    }

    fn arrival_name(&self, a: &Arrival) -> String {
        match a {
            Arrival::Pod(p) => format!("pod {}", self.cluster.pod_name(*p)),
            Arrival::Host(n) => format!("node {} (host)", self.node_name(*n)),
            Arrival::External(n) => {
                format!("the outside, through {}'s uplink", self.node_name(*n))
            }
        }
    }

    /// Walk `packet` from `start` until it is delivered somewhere, dropped, or cannot be
    /// followed; one trip per statistic branch.
    fn deliver(
        &self,
        start: Start,
        mut packet: Packet,
        tables: Tables,
        hops: Vec<String>,
        depth: usize,
    ) -> Vec<Trip> {
        if depth >= MAX_HOPS {
            return vec![Trip {
                end: Err(End::Inconclusive(format!(
                    "more than {MAX_HOPS} hops (a routing loop?)"
                ))),
                hops,
                tables,
            }];
        }
        let (node, iif) = match &start {
            Start::Local(n) => (*n, None),
            Start::Received(n, i) => (*n, i.clone()),
        };
        let host = &self.hosts[node as usize];
        let local = host.addresses.contains(&packet.dst);
        packet.iif = iif.clone();
        match start {
            Start::Local(_) => {
                packet.hook = Hook::Output;
                packet.oif = host.route(packet.dst).map(str::to_string);
            }
            Start::Received(..) if local => {
                packet.hook = Hook::Input;
                packet.oif = None;
            }
            Start::Received(..) => {
                packet.hook = Hook::Forward;
                packet.oif = host.route(packet.dst).map(str::to_string);
            }
        }
        if let (Start::Received(_, Some(i)), Some(Some(snap))) =
            (&start, self.snapshots.get(node as usize))
        {
            if let crate::snapshot::PathChoice::Dropped(why) =
                snap.route(packet.src, packet.dst, Some(i))
            {
                let mut hops = hops;
                hops.push(format!(
                    "  node {} routing (in {i}): {why}\n",
                    self.node_name(node)
                ));
                return vec![Trip {
                    end: Err(End::Dropped(format!(
                        "routing drops it on node {}: {why}",
                        self.node_name(node)
                    ))),
                    hops,
                    tables,
                }];
            }
        }
        // Bridged between two ports of a pod bridge: netfilter sees it only with
        // bridge-nf-call-iptables.
        let nn = &self.net.nodes[node as usize];
        if let Start::Received(_, Some(i)) = &start {
            if !local && nn.bridges.contains(i) && host.route(packet.dst) == Some(i.as_str()) {
                match nn.bridge_nf_call {
                    Some(true) => {}
                    Some(false) => {
                        let mut hops = hops;
                        hops.push(format!(
                            "  node {} bridges it on {i} (bridge-nf-call-iptables is off: netfilter does not see it)\n",
                            self.node_name(node)
                        ));
                        let out = Out {
                            src: packet.src,
                            dst: packet.dst,
                            sport: packet.sport,
                            dport: packet.dport,
                            oif: Some(i.clone()),
                        };
                        let end = match self.pod_at(packet.dst).filter(|p| {
                            c_pod_on(self.cluster, &self.net, *p, node, i)
                        }) {
                            Some(p) => Ok((Arrival::Pod(p), out)),
                            None => Err(End::Dropped(format!(
                                "no pod has {} behind {i} on node {}",
                                packet.dst,
                                self.node_name(node)
                            ))),
                        };
                        return vec![Trip { end, hops, tables }];
                    }
                    None => {
                        return vec![Trip {
                            end: Err(End::Inconclusive(format!(
                                "node {}: traffic bridged on {i} crosses iptables only with bridge-nf-call-iptables, which was not collected (sysctl.txt)",
                                self.node_name(node)
                            ))),
                            hops,
                            tables,
                        }]
                    }
                }
            }
        }
        let empty = Conntrack::default();
        let table = tables.get(&node).unwrap_or(&empty);
        let branches = walk_seq_branches(&self.rulesets[node as usize], &packet, Some(host), table);
        let mut trips = Vec::new();
        for (walk, table) in branches {
            let mut tables = tables.clone();
            tables.insert(node, table);
            let mut hops = hops.clone();
            hops.push(self.hop_text(node, &packet, &walk));
            let out = match (&walk.fate, &walk.out) {
                (Fate::Accept, Some(o)) => o.clone(),
                (Fate::Accept, None) => {
                    trips.push(Trip {
                        end: Err(End::Inconclusive(
                            "the packet's addresses after NAT are not known".into(),
                        )),
                        hops,
                        tables,
                    });
                    continue;
                }
                (Fate::Drop, _) | (Fate::Reject(_), _) => {
                    trips.push(Trip {
                        end: Err(End::Dropped(format!(
                            "{} on node {} ({})",
                            walk.fate.as_str(),
                            self.node_name(node),
                            walk.path_name()
                        ))),
                        hops,
                        tables,
                    });
                    continue;
                }
                (Fate::Inconclusive(why), _) => {
                    trips.push(Trip {
                        end: Err(End::Inconclusive(format!(
                            "node {}: {why}",
                            self.node_name(node)
                        ))),
                        hops,
                        tables,
                    });
                    continue;
                }
            };
            trips.extend(self.onward(node, &packet, &walk, out, tables, hops, depth));
        }
        trips
    }

    /// Where an accepted packet goes after leaving `node`'s netfilter.
    #[allow(clippy::too_many_arguments)]
    fn onward(
        &self,
        node: NodeId,
        packet: &Packet,
        walk: &Walk,
        out: Out,
        tables: Tables,
        hops: Vec<String>,
        depth: usize,
    ) -> Vec<Trip> {
        let done = |end, hops, tables| vec![Trip { end, hops, tables }];
        if walk.path == Hook::Input {
            return done(Ok((Arrival::Host(node), out)), hops, tables);
        }
        let Some(oif) = out.oif.clone() else {
            return done(
                Err(End::Inconclusive("no route for the packet".into())),
                hops,
                tables,
            );
        };
        let n = &self.net.nodes[node as usize];
        let uplink = n.uplink.as_str();
        if let Some(why) = self.pod_at(out.dst).and_then(|p| self.net.unplaced.get(&p)) {
            return done(Err(End::Inconclusive(why.clone())), hops, tables);
        }
        // A local pod's interface (Flannel: the bridge, the pod owning the address).
        if oif != uplink && Some(&oif) != n.tunnel_dev.as_ref() {
            let pod = self.pod_at(out.dst).filter(|p| {
                self.cluster.pods[*p as usize].node == node
                    && self.net.pod_iface[*p as usize] == oif
            });
            return match pod {
                Some(p) => done(Ok((Arrival::Pod(p), out)), hops, tables),
                None => done(
                    Err(End::Dropped(format!(
                        "no pod has {} behind {oif} on node {}",
                        out.dst,
                        self.node_name(node)
                    ))),
                    hops,
                    tables,
                ),
            };
        }
        let Some(peer) = self.node_of(out.dst).filter(|m| *m != node) else {
            if oif == uplink {
                return done(Ok((Arrival::External(node), out)), hops, tables);
            }
            return done(
                Err(End::Dropped(format!(
                    "no node owns {} behind {oif}",
                    out.dst
                ))),
                hops,
                tables,
            );
        };
        let inner = Packet {
            src: out.src,
            dst: out.dst,
            protocol: packet.protocol,
            sport: out.sport,
            dport: out.dport,
            iif: None,
            oif: None,
            hook: Hook::Forward,
            ctstate: CtState::New,
            mark: 0,
        };
        if oif == uplink {
            // Straight over the wire to the node owning the address.
            return self.deliver(
                Start::Received(peer, Some(self.uplink(peer).to_string())),
                inner,
                tables,
                hops,
                depth + 1,
            );
        }
        // Encapsulated: the outer packet is host traffic of both nodes.
        let Some(tunnel) = n.tunnel else {
            return done(
                Err(End::Inconclusive("a tunnel device without tunnel".into())),
                hops,
                tables,
            );
        };
        let src_node = self.cluster.nodes[node as usize].ip;
        let dst_node = self.cluster.nodes[peer as usize].ip;
        let outer = match tunnel {
            Tunnel::Ipip => Packet {
                src: src_node,
                dst: dst_node,
                protocol: 4,
                sport: None,
                dport: None,
                iif: None,
                oif: None,
                hook: Hook::Output,
                ctstate: CtState::New,
                mark: 0,
            },
            Tunnel::Vxlan(port) => Packet {
                src: src_node,
                dst: dst_node,
                protocol: 17,
                // The kernel hashes the inner flow into the source port; any fixed choice
                // per inner packet will do for the rules fwsim can evaluate.
                sport: Some(vxlan_source_port(&inner)),
                dport: Some(port),
                iif: None,
                oif: None,
                hook: Hook::Output,
                ctstate: CtState::New,
                mark: 0,
            },
        };
        let mut hops = hops;
        hops.push(format!(
            "  encapsulated ({}) {} -> {}\n",
            match tunnel {
                Tunnel::Ipip => "IP-in-IP".to_string(),
                Tunnel::Vxlan(p) => format!("VXLAN, UDP {p}"),
            },
            src_node,
            dst_node
        ));
        let mut trips = Vec::new();
        for t in self.deliver(Start::Local(node), outer, tables, hops, depth + 1) {
            match t.end {
                Ok((Arrival::Host(m), _)) if m == peer => {
                    let mut hops = t.hops;
                    hops.push(format!("  decapsulated on {}\n", self.node_name(m)));
                    trips.extend(self.deliver(
                        Start::Received(peer, self.net.nodes[peer as usize].tunnel_dev.clone()),
                        inner.clone(),
                        t.tables,
                        hops,
                        depth + 2,
                    ));
                }
                Ok((other, _)) => trips.push(Trip {
                    end: Err(End::Dropped(format!(
                        "the encapsulated packet reached {} instead of node {}",
                        self.arrival_name(&other),
                        self.node_name(peer)
                    ))),
                    hops: t.hops,
                    tables: t.tables,
                }),
                Err(e) => trips.push(Trip {
                    end: Err(match e {
                        End::Dropped(why) => {
                            End::Dropped(format!("the encapsulated packet: {why}"))
                        }
                        End::Inconclusive(why) => {
                            End::Inconclusive(format!("the encapsulated packet: {why}"))
                        }
                    }),
                    hops: t.hops,
                    tables: t.tables,
                }),
            }
        }
        trips
    }

    fn hop_text(&self, node: NodeId, packet: &Packet, walk: &Walk) -> String {
        let mut s = format!(
            "  node {} {} ({}{}):\n",
            self.node_name(node),
            walk.path_name(),
            packet
                .iif
                .as_deref()
                .map(|i| format!("in {i}"))
                .unwrap_or_else(|| "from the host".into()),
            walk.out
                .as_ref()
                .and_then(|o| o.oif.as_deref())
                .or(packet.oif.as_deref())
                .filter(|_| walk.path != Hook::Input)
                .map(|o| format!(", out {o}"))
                .unwrap_or_default()
        );
        for line in walk.to_string().lines() {
            let _ = writeln!(s, "    {line}");
        }
        s
    }
}

#[derive(Clone, Debug)]
enum Start {
    /// Generated by the node itself (host network).
    Local(NodeId),
    /// Received by the node on an interface.
    Received(NodeId, Option<String>),
}

/// Whether pod `p` runs on `node` behind the interface `iface`.
fn c_pod_on(c: &Cluster, net: &ClusterNet, p: PodId, node: NodeId, iface: &str) -> bool {
    c.pods[p as usize].node == node && net.pod_iface[p as usize] == iface
}

fn vxlan_source_port(p: &Packet) -> u16 {
    let h = p.sport.unwrap_or(0) as u32 * 31 + p.dport.unwrap_or(0) as u32;
    49152 + (h % 16384) as u16
}

fn inconclusive(why: String) -> PathResult {
    PathResult {
        explanation: why.clone(),
        verdict: Err(why),
    }
}

fn show_packet(p: &Packet) -> String {
    let proto = match p.protocol {
        6 => Protocol::Tcp.as_str().to_string(),
        17 => Protocol::Udp.as_str().to_string(),
        132 => Protocol::Sctp.as_str().to_string(),
        1 => Protocol::Icmp.as_str().to_string(),
        n => n.to_string(),
    };
    match (p.sport, p.dport) {
        (Some(s), Some(d)) => format!("{}:{} -> {}:{} {proto}", p.src, s, p.dst, d),
        _ => format!("{} -> {} {proto}", p.src, p.dst),
    }
}

fn show_out(o: &Out) -> String {
    match (o.sport, o.dport) {
        (Some(s), Some(d)) => format!("{}:{} -> {}:{}", o.src, s, o.dst, d),
        _ => format!("{} -> {}", o.src, o.dst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::net::Cni;
    use crate::render::{Flavor, NodeRules};

    /// The cluster of a scenario text.
    fn cluster(yaml: &str) -> Cluster {
        crate::testing::cluster_of(yaml)
    }

    const TWO_NODES: &str = "apiVersion: fwsim/v1\nkind: Scenario\nname: t\ncluster:\n  nodes:\n    - {name: node-1, ip: 192.168.0.1, podCIDR: 10.244.1.0/24}\n    - {name: node-2, ip: 192.168.0.2, podCIDR: 10.244.2.0/24}\n  namespaces: {x: {}}\n  pods:\n    - {name: x/a, node: node-1, ip: 10.244.1.10}\n    - {name: x/b, node: node-2, ip: 10.244.2.10}\n    - {name: x/c, node: node-1, ip: 10.244.1.11}\n  externals: {internet: 203.0.113.7}\nexpect: []\n";

    /// Hand-written node rules (no renderer): the same text on every node.
    fn by_hand(c: &Cluster, cni: Cni, iptables: &str) -> Rendered {
        Rendered {
            flavor: Flavor::CalicoIptables,
            net: ClusterNet::new(c, cni),
            nodes: c
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| NodeRules {
                    node: i as NodeId,
                    name: n.name.clone(),
                    iptables: Some(iptables.to_string()),
                    ..NodeRules::default()
                })
                .collect(),
        }
    }

    fn flow(c: &Cluster, from: &str, to: &str, port: u16) -> Flow {
        let ep = |s: &str| match s.strip_prefix("node:") {
            Some(n) => Endpoint::Node(c.node(n).unwrap()),
            None => match s.strip_prefix("ext:") {
                Some(_) => Endpoint::External("203.0.113.7".parse().unwrap(), None),
                None => Endpoint::Pod(c.pod(s).unwrap()),
            },
        };
        Flow {
            from: ep(from),
            to: ep(to),
            port: Some(port),
            protocol: Protocol::Tcp,
        }
    }

    const OPEN: &str =
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

    #[test]
    fn open_nodes_deliver_every_flow_and_its_reply() {
        let c = cluster(TWO_NODES);
        for cni in [Cni::Calico, Cni::Flannel] {
            let r = by_hand(&c, cni, OPEN);
            let path = ClusterPath::new(&c, &r).unwrap();
            for (from, to) in [
                ("x/a", "x/b"),
                ("x/a", "x/c"),
                ("x/b", "x/a"),
                ("node:node-1", "x/b"),
                ("node:node-2", "x/b"),
                ("x/a", "node:node-2"),
                ("x/a", "ext:internet"),
                ("ext:internet", "x/b"),
            ] {
                let res = path.flow(&flow(&c, from, to, 80));
                assert_eq!(
                    res.verdict,
                    Ok(Verdict::Allow),
                    "{cni:?} {from} -> {to}:\n{}",
                    res.explanation
                );
            }
        }
        // Cross-node pod traffic is encapsulated: IPIP for Calico, VXLAN 8472 for Flannel.
        let r = by_hand(&c, Cni::Calico, OPEN);
        let e = ClusterPath::new(&c, &r)
            .unwrap()
            .flow(&flow(&c, "x/a", "x/b", 80));
        assert!(e.explanation.contains("IP-in-IP"), "{}", e.explanation);
        let r = by_hand(&c, Cni::Flannel, OPEN);
        let e = ClusterPath::new(&c, &r)
            .unwrap()
            .flow(&flow(&c, "x/a", "x/b", 80));
        assert!(e.explanation.contains("UDP 8472"), "{}", e.explanation);
    }

    #[test]
    fn a_host_firewall_that_drops_the_tunnel_breaks_cross_node_pod_traffic_only() {
        let c = cluster(TWO_NODES);
        let no_ipip = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p 4 -j DROP\nCOMMIT\n";
        let r = by_hand(&c, Cni::Calico, no_ipip);
        let path = ClusterPath::new(&c, &r).unwrap();
        let cross = path.flow(&flow(&c, "x/a", "x/b", 80));
        assert_eq!(cross.verdict, Ok(Verdict::Deny), "{}", cross.explanation);
        assert!(
            cross.explanation.contains("encapsulated"),
            "{}",
            cross.explanation
        );
        let same = path.flow(&flow(&c, "x/a", "x/c", 80));
        assert_eq!(same.verdict, Ok(Verdict::Allow), "{}", same.explanation);
    }

    #[test]
    fn stateful_replies_need_conntrack_on_every_node() {
        let c = cluster(TWO_NODES);
        // Only NEW traffic to port 80 and nothing else is forwarded: replies die.
        let strict = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p tcp --dport 80 -j ACCEPT\nCOMMIT\n";
        let r = by_hand(&c, Cni::Calico, strict);
        let res = ClusterPath::new(&c, &r)
            .unwrap()
            .flow(&flow(&c, "x/a", "x/b", 80));
        assert_eq!(res.verdict, Ok(Verdict::Deny), "{}", res.explanation);
        assert!(
            res.explanation.contains("reply dropped"),
            "{}",
            res.explanation
        );
        // With the established rule, the reply comes back.
        let stateful = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n-A FORWARD -p tcp --dport 80 -j ACCEPT\nCOMMIT\n";
        let r = by_hand(&c, Cni::Calico, stateful);
        let res = ClusterPath::new(&c, &r)
            .unwrap()
            .flow(&flow(&c, "x/a", "x/b", 80));
        assert_eq!(res.verdict, Ok(Verdict::Allow), "{}", res.explanation);
    }

    #[test]
    fn masquerade_to_the_outside_is_undone_for_the_reply() {
        let c = cluster(TWO_NODES);
        let masq = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        let r = by_hand(&c, Cni::Calico, masq);
        let res = ClusterPath::new(&c, &r)
            .unwrap()
            .flow(&flow(&c, "x/a", "ext:internet", 443));
        assert_eq!(res.verdict, Ok(Verdict::Allow), "{}", res.explanation);
        assert!(
            res.explanation
                .contains("192.168.0.1:43210 -> 203.0.113.7:443"),
            "{}",
            res.explanation
        );
    }
}
