//! The fast pod-to-pod matcher, for matrices and benchmarks.
//!
//! Contract: `FastIndex::allows` gives exactly `Reference::side(..).allows()` for pod peers
//! (property-tested in `sim/tests/reference_properties.rs`), faster:
//! - pods selected by the same policies share one side entry (deduplicated);
//! - the peers of every port-less rule of those policies are ORed into one bitset, so the
//!   common case is a single bit test;
//! - the remaining rules' ports are compiled (named ports interned to numbers).

use super::IndexedRule;
use crate::cluster::{Cluster, PodId, PolicyId, PortRef};
use crate::values::Protocol;
use fixedbitset::FixedBitSet;
use std::collections::HashMap;

#[derive(Clone, Copy)]
enum FastPort {
    Range(u16, u16),
    Any,
    Name(u32),
}

struct FastRule {
    all_peers: bool,
    /// Where the rule's peer bitset is: `rules[policy][dir][rule]`.
    policy: u32,
    rule: u32,
    ports: Vec<(Protocol, FastPort)>,
}

struct FastSide {
    isolated: bool,
    /// Some port-less rule allows every peer.
    open: bool,
    /// Union of the peers of port-less rules.
    peers: FixedBitSet,
    /// Rules with ports, in order.
    rules: Vec<FastRule>,
}

pub(super) struct FastIndex {
    /// Per pod and direction (pod * 2 + dir): index into `sides`.
    side_of: Vec<u32>,
    sides: Vec<FastSide>,
    /// Per pod: named container ports (interned name, number, protocol).
    named: Vec<Vec<(u32, u16, Protocol)>>,
}

impl FastIndex {
    pub(super) fn new(
        cluster: &Cluster,
        selecting: &[[Vec<PolicyId>; 2]],
        rules: &[[Vec<IndexedRule>; 2]],
    ) -> FastIndex {
        let mut names: HashMap<String, u32> = HashMap::new();
        let mut intern = |n: &str| {
            let next = names.len() as u32;
            *names.entry(n.to_string()).or_insert(next)
        };
        let named = cluster
            .pods
            .iter()
            .map(|p| {
                p.ports
                    .iter()
                    .filter_map(|c| c.name.as_deref().map(|n| (intern(n), c.port, c.protocol)))
                    .collect()
            })
            .collect();
        let mut dedup: HashMap<(usize, Vec<PolicyId>), u32> = HashMap::new();
        let mut sides = Vec::new();
        let mut side_of = Vec::with_capacity(selecting.len() * 2);
        for sel in selecting {
            for (dir, policies) in sel.iter().enumerate() {
                let key = (dir, policies.clone());
                let id = *dedup.entry(key).or_insert_with(|| {
                    let mut side = FastSide {
                        isolated: !policies.is_empty(),
                        open: false,
                        peers: FixedBitSet::with_capacity(cluster.pods.len()),
                        rules: Vec::new(),
                    };
                    for &p in policies {
                        for (i, r) in rules[p as usize][dir].iter().enumerate() {
                            match &r.ports {
                                None if r.all_peers => side.open = true,
                                None => side.peers.union_with(&r.pods),
                                Some(ports) => side.rules.push(FastRule {
                                    all_peers: r.all_peers,
                                    policy: p,
                                    rule: i as u32,
                                    ports: ports
                                        .iter()
                                        .map(|m| {
                                            let port = match &m.port {
                                                None => FastPort::Any,
                                                Some(PortRef::Number(s)) => {
                                                    FastPort::Range(*s, m.end_port.unwrap_or(*s))
                                                }
                                                Some(PortRef::Name(n)) => FastPort::Name(intern(n)),
                                            };
                                            (m.protocol, port)
                                        })
                                        .collect(),
                                }),
                            }
                        }
                    }
                    sides.push(side);
                    (sides.len() - 1) as u32
                });
                side_of.push(id);
            }
        }
        FastIndex {
            side_of,
            sides,
            named,
        }
    }

    /// Does `pod`'s side `dir` (0 ingress, 1 egress) allow pod `other` on port/protocol?
    /// `rules` are the engine's indexed rules (for the peer bitsets of rules with ports).
    #[inline]
    pub(super) fn allows(
        &self,
        rules: &[[Vec<IndexedRule>; 2]],
        pod: PodId,
        dir: usize,
        other: PodId,
        port: Option<u16>,
        protocol: Protocol,
    ) -> bool {
        let side = &self.sides[self.side_of[pod as usize * 2 + dir] as usize];
        if !side.isolated || side.open || side.peers.contains(other as usize) {
            return true;
        }
        // Named ports resolve on the pod the traffic is sent to.
        let target = if dir == 0 { pod } else { other };
        side.rules.iter().any(|r| {
            r.ports.iter().any(|&(proto, p)| {
                proto == protocol
                    && match p {
                        FastPort::Any => true,
                        FastPort::Range(s, e) => port.is_some_and(|x| s <= x && x <= e),
                        FastPort::Name(id) => self.named[target as usize]
                            .iter()
                            .any(|&(n, num, pr)| n == id && pr == protocol && Some(num) == port),
                    }
            }) && (r.all_peers
                || rules[r.policy as usize][dir][r.rule as usize]
                    .pods
                    .contains(other as usize))
        })
    }
}
