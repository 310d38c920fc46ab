//! Calico's model of a NetworkPolicy (the conversion libcalico-go applies), shared by the
//! iptables and nftables renderers.
//!
//! Contract: [`convert`] turns each Kubernetes NetworkPolicy into the Calico policy felix
//! programs, as libcalico-go's `K8sNetworkPolicyToCalico` / `k8sRuleToCalico`
//! (lib/backend/k8s/conversion/conversion.go) and felix's rule scanner
//! (felix/calc/rule_scanner.go) shape it:
//! - policy `knp.default.<name>` in tier `default`, order 1000 (so ordered by name);
//! - per NetworkPolicy rule, one Calico rule per protocol (sorted by name) and per peer
//!   (protocols outer, peers inner); a rule without ports is protocol-less; the ports of one
//!   protocol are merged (`SimplifyPorts`: adjacent numbers coalesce into ranges, a port-less
//!   entry of the protocol means every port);
//! - the peer is a selector (here already resolved to the IPv4 addresses of the pods it
//!   selects: a peer without namespaceSelector means the policy's own namespace), or
//!   nets / notNets (ipBlock cidr / except);
//! - named ports become (IP, protocol:port) sets: the destination pods the rule's positive
//!   destination selector selects that have the port (ingress rules and egress rules to an
//!   ipBlock or to anyone: every pod with the port); an egress selector covered by named
//!   ports only is folded into them (felix renders no separate selector set then).
//!
//! Each namespace gives a profile `kns.<namespace>` allowing everything both ways; felix
//! applies it to an endpoint in a direction no policy selects it for.
//!
//! IPv4 only: IPv6 pod addresses are left out of every set, IPv6 CIDRs out of nets and
//! notNets, and a rule whose nets were all IPv6 is dropped (as felix's
//! `FilterRuleToIPVersion` does for the IPv4 dataplane).
//!
//! This module reads the cluster model only (never the reference engine).

use crate::cluster::{Cluster, Direction, Peer, PodId, PortRef, Rule, Selector};
use crate::planted::Bug;
use crate::values::{Cidr, Protocol};
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

/// The tier every Kubernetes NetworkPolicy lands in.
pub const TIER: &str = "default";
/// The order libcalico-go gives every Kubernetes NetworkPolicy.
pub const ORDER: u32 = 1000;

/// A set of pod addresses a selector selects (felix's `hash:net` selector IP set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorSet {
    /// The selector as text: the set's identity (felix hashes the selector, not the members).
    pub id: String,
    pub members: Vec<Ipv4Addr>,
}

/// A named-port set: (pod address, protocol, port) of the pods having the port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPortSet {
    pub id: String,
    pub members: Vec<(Ipv4Addr, Protocol, u16)>,
}

/// One Calico rule (action Allow). The peer is the source for ingress rules and the
/// destination for egress rules; ports are always destination ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalicoRule {
    /// None: every protocol.
    pub protocol: Option<Protocol>,
    /// The peer's selector. None: no selector (any address, unless nets say otherwise).
    pub selector: Option<SelectorSet>,
    /// Positive CIDRs (at most one from a NetworkPolicy).
    pub nets: Vec<Cidr>,
    pub not_nets: Vec<Cidr>,
    /// Numeric destination port ranges (inclusive). Empty with no named ports: every port.
    pub ports: Vec<(u16, u16)>,
    pub named_ports: Vec<NamedPortSet>,
}

/// A Kubernetes NetworkPolicy as Calico holds it.
#[derive(Clone, Debug)]
pub struct CalicoPolicy {
    pub namespace: String,
    /// `knp.default.<name>`.
    pub name: String,
    /// The endpoints (pods) it applies to.
    pub endpoints: Vec<PodId>,
    /// Some iff Ingress is among its types.
    pub ingress: Option<Vec<CalicoRule>>,
    pub egress: Option<Vec<CalicoRule>>,
}

impl CalicoPolicy {
    /// `<namespace>/knp.default.<name>`: what felix's chain names are derived from.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn rules(&self, dir: Direction) -> Option<&[CalicoRule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// The namespace profile of a pod: `kns.<namespace>`.
pub fn profile_name(cluster: &Cluster, pod: PodId) -> String {
    let ns = cluster.pods[pod as usize].ns;
    format!("kns.{}", cluster.namespaces[ns as usize].name)
}

/// Every NetworkPolicy of the cluster, converted, in the cluster's order.
pub fn convert(cluster: &Cluster) -> Vec<CalicoPolicy> {
    cluster
        .policies
        .iter()
        .map(|p| {
            let endpoints = (0..cluster.pods.len() as PodId)
                .filter(|&i| {
                    let pod = &cluster.pods[i as usize];
                    pod.ns == p.ns && p.pod_selector.matches(&pod.labels)
                })
                .collect::<Vec<PodId>>();
            let ns_name = cluster.namespaces[p.ns as usize].name.clone();
            let conv = |rules: &Option<Vec<Rule>>, dir| {
                rules.as_ref().map(|rs| {
                    rs.iter()
                        .flat_map(|r| convert_rule(cluster, p.ns, &endpoints, r, dir))
                        .collect()
                })
            };
            let ingress = if crate::planted::is(Bug::PolicyTypesNoIngress) && !p.types_given {
                // Planted: without policyTypes, Ingress is not among the defaults.
                None
            } else {
                conv(&p.ingress, Direction::Ingress)
            };
            let egress = conv(&p.egress, Direction::Egress);
            CalicoPolicy {
                namespace: ns_name,
                name: format!("knp.{TIER}.{}", p.name),
                endpoints,
                ingress,
                egress,
            }
        })
        .collect()
}

/// The policies applying to `pod` in `dir`, in felix's order within the tier (order, then
/// name; every Kubernetes policy has order 1000).
pub fn policies_for(policies: &[CalicoPolicy], pod: PodId, dir: Direction) -> Vec<&CalicoPolicy> {
    let mut v: Vec<&CalicoPolicy> = policies
        .iter()
        .filter(|p| p.rules(dir).is_some() && p.endpoints.contains(&pod))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name).then(a.namespace.cmp(&b.namespace)));
    v
}

/// The peer's namespaceSelector as the conversion reads it: `None` is the policy's own
/// namespace.
fn ns_selector(namespaces: &Option<Selector>) -> &Option<Selector> {
    match namespaces {
        Some(s) if crate::planted::is(Bug::EmptyNamespaceSelectorOwn) && s.is_empty() => {
            // Planted: `namespaceSelector: {}` read as the policy's own namespace.
            &None
        }
        _ => namespaces,
    }
}

/// The pods a peer selects (Kubernetes semantics of namespaceSelector / podSelector).
fn peer_pods(
    cluster: &Cluster,
    own_ns: u32,
    namespaces: &Option<Selector>,
    pods: &Option<Selector>,
) -> Vec<PodId> {
    (0..cluster.pods.len() as PodId)
        .filter(|&i| {
            let pod = &cluster.pods[i as usize];
            let ns_ok = match namespaces {
                None => pod.ns == own_ns,
                Some(s) => s.matches(&cluster.namespaces[pod.ns as usize].labels),
            };
            ns_ok && pods.as_ref().is_none_or(|s| s.matches(&pod.labels))
        })
        .collect()
}

fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// The peer's selector text (the set identity), as Calico would write the selector.
fn selector_id(
    cluster: &Cluster,
    own_ns: u32,
    ns: &Option<Selector>,
    pods: &Option<Selector>,
) -> String {
    let ns_part = match ns {
        None => format!(
            "projectcalico.org/namespace == '{}'",
            cluster.namespaces[own_ns as usize].name
        ),
        Some(s) => format!("nsSelector {s}"),
    };
    let pod_part = match pods {
        None => "all()".to_string(),
        Some(s) => format!("podSelector {s}"),
    };
    format!("{ns_part} && {pod_part}")
}

/// Ports of one protocol: None = every port; else numeric ranges and names.
type ProtoPorts = Option<(Vec<(u16, u16)>, Vec<String>)>;

fn convert_rule(
    cluster: &Cluster,
    own_ns: u32,
    endpoints: &[PodId],
    r: &Rule,
    dir: Direction,
) -> Vec<CalicoRule> {
    // Protocols (sorted by their names, as libcalico-go sorts them) and their ports.
    let mut protocols: Vec<(Option<Protocol>, ProtoPorts)> = Vec::new();
    match r.ports.as_deref() {
        None | Some([]) => protocols.push((None, None)),
        Some(ports) => {
            for pm in ports {
                let idx = match protocols.iter().position(|(p, _)| *p == Some(pm.protocol)) {
                    Some(i) => i,
                    None => {
                        protocols.push((Some(pm.protocol), Some((Vec::new(), Vec::new()))));
                        protocols.len() - 1
                    }
                };
                let entry = &mut protocols[idx].1;
                match (&pm.port, entry.as_mut()) {
                    (_, None) => {} // every port already
                    (None, Some(_)) => *entry = None,
                    (Some(PortRef::Number(n)), Some((nums, _))) => {
                        let end = match pm.end_port {
                            // Planted: endPort read as exclusive (a one-port range kept).
                            Some(e) if crate::planted::is(Bug::EndPortExclusive) => {
                                e.saturating_sub(1).max(*n)
                            }
                            e => e.unwrap_or(*n),
                        };
                        nums.push((*n, end))
                    }
                    (Some(PortRef::Name(name)), Some((_, names))) => names.push(name.clone()),
                }
            }
            protocols.sort_by_key(|(p, _)| p.map(|p| p.as_str()));
        }
    }
    let peers: Vec<Option<Cow<Peer>>> = match r.peers.as_deref() {
        None | Some([]) => vec![None],
        Some(ps) if crate::planted::is(Bug::AndPeersAsOr) => ps
            .iter()
            .flat_map(|p| match p {
                // Planted: namespaceSelector AND podSelector read as two peers (OR).
                Peer::Pods {
                    namespaces: Some(ns),
                    pods: Some(pods),
                } => vec![
                    Some(Cow::Owned(Peer::Pods {
                        namespaces: Some(ns.clone()),
                        pods: None,
                    })),
                    Some(Cow::Owned(Peer::Pods {
                        namespaces: None,
                        pods: Some(pods.clone()),
                    })),
                ],
                p => vec![Some(Cow::Borrowed(p))],
            })
            .collect(),
        Some(ps) => ps.iter().map(|p| Some(Cow::Borrowed(p))).collect(),
    };
    let mut out = Vec::new();
    for (protocol, pp) in &protocols {
        let (ports, names) = match pp {
            None => (Vec::new(), Vec::new()),
            Some((nums, names)) => (simplify(nums), names.clone()),
        };
        for peer in &peers {
            let mut rule = CalicoRule {
                protocol: *protocol,
                selector: None,
                nets: Vec::new(),
                not_nets: Vec::new(),
                ports: ports.clone(),
                named_ports: Vec::new(),
            };
            // The pods the named ports are looked up on: the destination selector's.
            let mut np_pods: Vec<PodId> = (0..cluster.pods.len() as PodId).collect();
            let mut np_sel = "all()".to_string();
            match peer.as_deref() {
                None => {}
                Some(Peer::IpBlock { cidr, except }) => {
                    if !cidr.addr().is_ipv4() {
                        // Every net is IPv6: the rule does not exist for IPv4.
                        continue;
                    }
                    rule.nets.push(*cidr);
                    if !crate::planted::is(Bug::ExceptIgnored) {
                        rule.not_nets = except
                            .iter()
                            .filter(|e| e.addr().is_ipv4())
                            .copied()
                            .collect();
                    }
                }
                Some(Peer::Pods { namespaces, pods }) => {
                    let namespaces = ns_selector(namespaces);
                    let sel = peer_pods(cluster, own_ns, namespaces, pods);
                    let id = selector_id(cluster, own_ns, namespaces, pods);
                    if dir == Direction::Egress {
                        np_pods = sel.clone();
                        np_sel = id.clone();
                    }
                    rule.selector = Some(SelectorSet {
                        id,
                        members: sel
                            .iter()
                            .filter_map(|&p| v4(cluster.pods[p as usize].ip))
                            .collect(),
                    });
                }
            }
            if dir == Direction::Egress && crate::planted::is(Bug::NamedPortWrongPod) {
                // Planted: the named ports looked up on the pods the policy selects (the
                // sources), not on the destination pods.
                np_pods = endpoints.to_vec();
                np_sel = format!("endpoints of policy in {own_ns}: {endpoints:?}");
            }
            if let Some(proto) = protocol {
                for name in &names {
                    let members = np_pods
                        .iter()
                        .filter_map(|&p| {
                            let pod = &cluster.pods[p as usize];
                            Some((v4(pod.ip)?, *proto, pod.named_port(name, *proto)?))
                        })
                        .collect();
                    rule.named_ports.push(NamedPortSet {
                        id: format!("{np_sel},{},{name}", proto.as_str()),
                        members,
                    });
                }
            }
            // rule_scanner.go: a destination selector whose rule has named ports and no
            // numeric ports is covered by the named-port sets.
            if dir == Direction::Egress && !names.is_empty() && ports.is_empty() {
                rule.selector = None;
            }
            out.push(rule);
        }
    }
    out
}

/// libcalico-go's `SimplifyPorts`: sort, coalesce adjacent and overlapping ranges.
fn simplify(ports: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut v = ports.to_vec();
    v.sort();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a as u32 <= last.1 as u32 + 1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// A short deterministic id: the first `len` characters of base64url(SHA-1(text)) (felix
/// hashes long names and selectors the same way, with SHA-224).
pub fn short_hash(text: &str, len: usize) -> String {
    use sha1::{Digest, Sha1};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let digest = Sha1::digest(text.as_bytes());
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in digest.iter() {
        acc = (acc << 8) | *b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    out.truncate(len);
    out
}

/// Felix's `GetLengthLimitedID`: `prefix + id` when it fits in `max` characters (and is
/// made of characters every chain name accepts), else `prefix + "_" + hash`.
pub fn limited_name(prefix: &str, id: &str, max: usize) -> String {
    let plain = format!("{prefix}{id}");
    if plain.len() <= max
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return plain;
    }
    format!("{prefix}_{}", short_hash(id, max - prefix.len() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_simplified_and_names_limited() {
        assert_eq!(
            simplify(&[(81, 81), (80, 80), (90, 95), (82, 82), (94, 100)]),
            vec![(80, 82), (90, 100)]
        );
        assert_eq!(limited_name("cali-pri-", "kns.x", 28), "cali-pri-kns.x");
        let long = limited_name("cali-pi-", "x/knp.default.allow-everything", 28);
        assert_eq!(long.len(), 28);
        assert!(long.starts_with("cali-pi-_"), "{long}");
        assert_eq!(
            long,
            limited_name("cali-pi-", "x/knp.default.allow-everything", 28)
        );
    }
}
