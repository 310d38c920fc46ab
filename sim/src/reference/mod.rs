//! The reference engine: NetworkPolicy (networking.k8s.io/v1) semantics evaluated directly
//! on the cluster model. This is the oracle every dataplane is judged against.
//!
//! Contract:
//! - [`Reference::new`] indexes a checked [`Cluster`] once (which policies select each pod,
//!   and for each rule the set of pods its peers match, as a bitset); evaluation after that
//!   cannot fail and never allocates on the pod-to-pod path.
//! - [`Reference::flow`] gives the verdict of any flow; [`Reference::explain`] gives the same
//!   verdict with its reasons. Both go through the one function [`Reference::side`], so the
//!   explanation can never disagree with the verdict.
//! - It never reads netfilter rules.
//!
//! Semantics (each from the Kubernetes API documentation; choices marked as such):
//! - A pod is isolated for a direction iff a policy of its namespace selects it and has that
//!   direction in its effective policyTypes (see `syntax::k8s` for the defaults).
//! - A pod-to-pod connection needs the source's egress and the destination's ingress.
//! - Traffic from a pod to itself, and between a pod and its own node, is always allowed.
//!   A pod reaching itself through a service (hairpin) is policed: the packet leaves the
//!   pod's network namespace (choice; the upstream e2e suite leaves these cells unchecked).
//!   Other node addresses and external addresses are plain IPs: only `ipBlock` matches them.
//!   Flows between two non-pod endpoints are not policed (allowed).
//! - A named port resolves on the pod the traffic is sent to: for ingress the selected pod,
//!   for egress the peer pod; it never matches a non-pod destination.
//! - ICMP is matched only by rules without `ports`.
//! - A flow to a Service is evaluated per endpoint on the translated (pod, targetPort): allowed
//!   when every endpoint allows it, denied when every one denies it (or there is no endpoint
//!   or no such service port), partial otherwise.

mod explain;
mod fast;

use crate::cluster::{
    Cluster, Direction, Endpoint, Flow, Peer, Pod, PodId, PolicyId, PortMatch, PortRef, Rule,
    SvcId, TargetPort,
};
use crate::values::Protocol;
use fixedbitset::FixedBitSet;
use rayon::prelude::*;
use std::net::IpAddr;

pub use explain::Explanation;

/// The outcome of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allow,
    Deny,
    /// A service flow allowed to some endpoints and denied to others.
    Partial,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Partial => "partial",
        }
    }
}

/// The other end of a connection, as one side's policies see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Other {
    Pod(PodId),
    Addr(IpAddr),
}

/// One side (egress of the source, ingress of the destination) of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// No policy selects the pod for this direction.
    NotIsolated,
    /// The first matching rule, in policy order then rule order.
    Allowed { policy: PolicyId, rule: usize },
    /// Isolated and no rule matches.
    Denied,
}

impl Side {
    pub fn allows(self) -> bool {
        !matches!(self, Side::Denied)
    }
}

/// Why a connection is decided without looking at policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    SamePod,
    PodAndOwnNode,
    NotPoliced,
}

/// The verdict of a connection between two endpoints that are not services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Direct {
    pub allowed: bool,
    pub special: Option<Special>,
    /// The source pod's egress, when the source is a pod and it was evaluated.
    pub egress: Option<Side>,
    /// The destination pod's ingress, when the destination is a pod and it was evaluated.
    pub ingress: Option<Side>,
}

/// The verdict of any flow, with what decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Direct(Direct),
    Service {
        svc: SvcId,
        /// Which of the service's ports the flow used; None when it has no such port.
        port: Option<usize>,
        /// Each endpoint pod, the translated port, and the verdict to it.
        endpoints: Vec<(PodId, u16, Direct)>,
    },
}

impl Outcome {
    pub fn verdict(&self) -> Verdict {
        match self {
            Outcome::Direct(d) if d.allowed => Verdict::Allow,
            Outcome::Direct(_) => Verdict::Deny,
            Outcome::Service { endpoints, .. } => {
                let allowed = endpoints.iter().filter(|(_, _, d)| d.allowed).count();
                if endpoints.is_empty() || allowed == 0 {
                    Verdict::Deny
                } else if allowed == endpoints.len() {
                    Verdict::Allow
                } else {
                    Verdict::Partial
                }
            }
        }
    }
}

/// A rule with its peers resolved to a pod bitset.
struct IndexedRule {
    all_peers: bool,
    /// Pods matched by any peer (selector peers, and ipBlock peers on pod IPs).
    pods: FixedBitSet,
    /// ipBlock peers, for addresses that are not pods.
    blocks: Vec<(crate::values::Cidr, Vec<crate::values::Cidr>)>,
    ports: Option<Vec<PortMatch>>,
}

/// The indexed reference engine over one cluster.
pub struct Reference<'c> {
    cluster: &'c Cluster,
    /// Per pod: the policies selecting it for [ingress, egress].
    selecting: Vec<[Vec<PolicyId>; 2]>,
    /// Per policy: its rules for [ingress, egress].
    rules: Vec<[Vec<IndexedRule>; 2]>,
    fast: fast::FastIndex,
}

fn dir_index(dir: Direction) -> usize {
    match dir {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl<'c> Reference<'c> {
    /// Index the cluster: O(policies × pods) once.
    pub fn new(cluster: &'c Cluster) -> Self {
        let n = cluster.pods.len();
        let mut selecting = vec![[Vec::new(), Vec::new()]; n];
        for (pid, policy) in cluster.policies.iter().enumerate() {
            for (p, pod) in cluster.pods.iter().enumerate() {
                if pod.ns == policy.ns && policy.pod_selector.matches(&pod.labels) {
                    if policy.ingress.is_some() {
                        selecting[p][0].push(pid as PolicyId);
                    }
                    if policy.egress.is_some() {
                        selecting[p][1].push(pid as PolicyId);
                    }
                }
            }
        }
        let rules: Vec<[Vec<IndexedRule>; 2]> = cluster
            .policies
            .par_iter()
            .map(|policy| {
                let index = |list: Option<&[Rule]>| -> Vec<IndexedRule> {
                    list.unwrap_or(&[])
                        .iter()
                        .map(|r| Self::index_rule(cluster, policy.ns, r))
                        .collect()
                };
                [
                    index(policy.rules(Direction::Ingress)),
                    index(policy.rules(Direction::Egress)),
                ]
            })
            .collect();
        let fast = fast::FastIndex::new(cluster, &selecting, &rules);
        Reference {
            cluster,
            selecting,
            rules,
            fast,
        }
    }

    fn index_rule(cluster: &Cluster, policy_ns: u32, rule: &Rule) -> IndexedRule {
        let mut pods = FixedBitSet::with_capacity(cluster.pods.len());
        let mut blocks = Vec::new();
        let all_peers = rule.peers.is_none();
        for peer in rule.peers.iter().flatten() {
            for (p, pod) in cluster.pods.iter().enumerate() {
                if peer_matches_pod(cluster, policy_ns, peer, pod) {
                    pods.insert(p);
                }
            }
            if let Peer::IpBlock { cidr, except } = peer {
                blocks.push((*cidr, except.clone()));
            }
        }
        IndexedRule {
            all_peers,
            pods,
            blocks,
            ports: rule.ports.clone(),
        }
    }

    pub fn cluster(&self) -> &'c Cluster {
        self.cluster
    }

    /// The policies selecting `pod` for `dir`, in declaration order.
    pub fn selecting(&self, pod: PodId, dir: Direction) -> &[PolicyId] {
        &self.selecting[pod as usize][dir_index(dir)]
    }

    /// Does `pod`'s `dir` side allow a connection with `other` on port/protocol?
    /// The one place where policy rules are matched.
    pub fn side(
        &self,
        pod: PodId,
        dir: Direction,
        other: Other,
        port: Option<u16>,
        protocol: Protocol,
    ) -> Side {
        let policies = &self.selecting[pod as usize][dir_index(dir)];
        if policies.is_empty() {
            return Side::NotIsolated;
        }
        // Named ports resolve on the pod the traffic is sent to.
        let target: Option<&Pod> = match (dir, other) {
            (Direction::Ingress, _) => Some(&self.cluster.pods[pod as usize]),
            (Direction::Egress, Other::Pod(p)) => Some(&self.cluster.pods[p as usize]),
            (Direction::Egress, Other::Addr(_)) => None,
        };
        for &policy in policies {
            for (i, rule) in self.rules[policy as usize][dir_index(dir)]
                .iter()
                .enumerate()
            {
                if ports_match(rule.ports.as_deref(), port, protocol, target)
                    && peers_match(rule, other)
                {
                    return Side::Allowed { policy, rule: i };
                }
            }
        }
        Side::Denied
    }

    /// A connection between two endpoints that are not services. With `full`, both sides
    /// are evaluated even when the first already denies (for explanations).
    pub fn direct(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        port: Option<u16>,
        protocol: Protocol,
        full: bool,
    ) -> Direct {
        let special = |s| Direct {
            allowed: true,
            special: Some(s),
            egress: None,
            ingress: None,
        };
        let c = self.cluster;
        match (from, to) {
            (Endpoint::Pod(a), Endpoint::Pod(b)) if a == b => special(Special::SamePod),
            (Endpoint::Pod(p), Endpoint::Node(n)) | (Endpoint::Node(n), Endpoint::Pod(p))
                if c.pods[*p as usize].node == *n =>
            {
                special(Special::PodAndOwnNode)
            }
            _ => {
                let other_of = |e: &Endpoint| match e {
                    Endpoint::Pod(p) => Some(Other::Pod(*p)),
                    e => e.ip(c).map(Other::Addr),
                };
                let egress = match (from, other_of(to)) {
                    (Endpoint::Pod(p), Some(o)) => {
                        Some(self.side(*p, Direction::Egress, o, port, protocol))
                    }
                    _ => None,
                };
                let ingress = match (to, other_of(from)) {
                    (Endpoint::Pod(p), Some(o)) if full || egress.is_none_or(|s| s.allows()) => {
                        Some(self.side(*p, Direction::Ingress, o, port, protocol))
                    }
                    _ => None,
                };
                if egress.is_none() && !matches!(to, Endpoint::Pod(_)) {
                    return special(Special::NotPoliced);
                }
                Direct {
                    allowed: egress.is_none_or(|s| s.allows())
                        && ingress.is_none_or(|s| s.allows()),
                    special: None,
                    egress,
                    ingress,
                }
            }
        }
    }

    /// A connection through a service to its endpoint `pod`. A pod that reaches itself
    /// through a service (hairpin) is policed like any pod-to-pod connection, with itself
    /// as the peer: the packet leaves the pod's network namespace and comes back.
    fn direct_via_service(
        &self,
        from: &Endpoint,
        pod: PodId,
        port: Option<u16>,
        protocol: Protocol,
        full: bool,
    ) -> Direct {
        if *from != Endpoint::Pod(pod) {
            return self.direct(from, &Endpoint::Pod(pod), port, protocol, full);
        }
        let egress = self.side(pod, Direction::Egress, Other::Pod(pod), port, protocol);
        let ingress = (full || egress.allows())
            .then(|| self.side(pod, Direction::Ingress, Other::Pod(pod), port, protocol));
        Direct {
            allowed: egress.allows() && ingress.is_none_or(|s| s.allows()),
            special: None,
            egress: Some(egress),
            ingress,
        }
    }

    /// The fast path: may pod `src` open a connection to pod `dst` on port/protocol?
    #[inline]
    pub fn pod_to_pod(
        &self,
        src: PodId,
        dst: PodId,
        port: Option<u16>,
        protocol: Protocol,
    ) -> bool {
        src == dst
            || (self.fast.allows(&self.rules, src, 1, dst, port, protocol)
                && self.fast.allows(&self.rules, dst, 0, src, port, protocol))
    }

    /// The verdict of any flow and what decided it.
    pub fn flow(&self, flow: &Flow, full: bool) -> Outcome {
        match &flow.to {
            Endpoint::Service(svc) => {
                let s = &self.cluster.services[*svc as usize];
                let port = s
                    .ports
                    .iter()
                    .position(|p| Some(p.port) == flow.port && p.protocol == flow.protocol);
                let mut endpoints = Vec::new();
                if let Some(i) = port {
                    let sp = &s.ports[i];
                    for pod in self.cluster.service_endpoints(*svc) {
                        let target = match &sp.target {
                            TargetPort::Number(n) => Some(*n),
                            TargetPort::Name(name) => {
                                self.cluster.pods[pod as usize].named_port(name, sp.protocol)
                            }
                        };
                        // A pod without the named target port is not an endpoint of this port.
                        if let Some(t) = target {
                            let d = self.direct_via_service(
                                &flow.from,
                                pod,
                                Some(t),
                                flow.protocol,
                                full,
                            );
                            endpoints.push((pod, t, d));
                        }
                    }
                }
                Outcome::Service {
                    svc: *svc,
                    port,
                    endpoints,
                }
            }
            to => Outcome::Direct(self.direct(&flow.from, to, flow.port, flow.protocol, full)),
        }
    }

    pub fn verdict(&self, flow: &Flow) -> Verdict {
        self.flow(flow, false).verdict()
    }
}

/// Does a peer (of a policy in `policy_ns`) match this pod?
pub(crate) fn peer_matches_pod(cluster: &Cluster, policy_ns: u32, peer: &Peer, pod: &Pod) -> bool {
    match peer {
        Peer::Pods { namespaces, pods } => {
            let ns_ok = match namespaces {
                None => pod.ns == policy_ns,
                Some(sel) => sel.matches(&cluster.namespaces[pod.ns as usize].labels),
            };
            ns_ok && pods.as_ref().is_none_or(|sel| sel.matches(&pod.labels))
        }
        Peer::IpBlock { cidr, except } => Peer::ip_block_contains(cidr, except, pod.ip),
    }
}

fn peers_match(rule: &IndexedRule, other: Other) -> bool {
    rule.all_peers
        || match other {
            Other::Pod(p) => rule.pods.contains(p as usize),
            Other::Addr(ip) => rule
                .blocks
                .iter()
                .any(|(cidr, except)| Peer::ip_block_contains(cidr, except, ip)),
        }
}

/// Does one `ports` entry match? `target` is the pod named ports resolve on.
pub(crate) fn port_matches(
    m: &PortMatch,
    port: Option<u16>,
    protocol: Protocol,
    target: Option<&Pod>,
) -> bool {
    if m.protocol != protocol {
        return false;
    }
    match &m.port {
        None => true,
        Some(PortRef::Number(start)) => {
            let end = m.end_port.unwrap_or(*start);
            port.is_some_and(|p| *start <= p && p <= end)
        }
        Some(PortRef::Name(name)) => target
            .and_then(|t| t.named_port(name, protocol))
            .is_some_and(|n| Some(n) == port),
    }
}

fn ports_match(
    ports: Option<&[PortMatch]>,
    port: Option<u16>,
    protocol: Protocol,
    target: Option<&Pod>,
) -> bool {
    match ports {
        None => true,
        Some(list) => list.iter().any(|m| port_matches(m, port, protocol, target)),
    }
}
