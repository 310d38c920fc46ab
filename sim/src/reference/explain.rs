//! Explanations of reference verdicts, in words: which policies select the pods, which
//! rule, peer and port allowed the traffic, or that none did.

use super::{port_matches, Direct, Other, Outcome, Reference, Side, Special};
use crate::cluster::{Direction, Endpoint, Flow, Peer, PodId};
use crate::values::Protocol;
use std::fmt::Write;

/// A verdict's reasons, as lines of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub lines: Vec<String>,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.lines.join("\n"))
    }
}

impl Reference<'_> {
    /// The outcome of `flow` with every side evaluated, and its explanation.
    pub fn explain(&self, flow: &Flow) -> (Outcome, Explanation) {
        let outcome = self.flow(flow, true);
        let mut lines = Vec::new();
        let c = self.cluster;
        match &outcome {
            Outcome::Direct(d) => self.explain_direct(
                &flow.from,
                &flow.to,
                flow.port,
                flow.protocol,
                d,
                "",
                &mut lines,
            ),
            Outcome::Service {
                svc,
                port,
                endpoints,
            } => {
                let name = c.service_name(*svc);
                match port {
                    None => lines.push(format!(
                        "service {name} has no port {}/{}: the connection is refused",
                        flow.port.map(|p| p.to_string()).unwrap_or_default(),
                        flow.protocol
                    )),
                    Some(_) if endpoints.is_empty() => lines.push(format!(
                        "service {name} has no ready endpoint for this port: the connection is refused"
                    )),
                    Some(_) => {
                        let allowed = endpoints.iter().filter(|e| e.2.allowed).count();
                        lines.push(format!(
                            "service {name} translates to {} endpoint(s); allowed to {allowed} of them",
                            endpoints.len()
                        ));
                        for (pod, target, d) in endpoints {
                            lines.push(format!(
                                "endpoint {}:{}/{}: {}",
                                c.pod_name(*pod),
                                target,
                                flow.protocol,
                                if d.allowed { "allowed" } else { "denied" }
                            ));
                            self.explain_direct(
                                &flow.from,
                                &Endpoint::Pod(*pod),
                                Some(*target),
                                flow.protocol,
                                d,
                                "  ",
                                &mut lines,
                            );
                        }
                    }
                }
            }
        }
        (outcome, Explanation { lines })
    }

    #[allow(clippy::too_many_arguments)]
    fn explain_direct(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        port: Option<u16>,
        protocol: Protocol,
        d: &Direct,
        indent: &str,
        lines: &mut Vec<String>,
    ) {
        let c = self.cluster;
        match d.special {
            Some(Special::SamePod) => {
                lines.push(format!("{indent}a pod's traffic to itself is not policed"));
                return;
            }
            Some(Special::PodAndOwnNode) => {
                lines.push(format!(
                    "{indent}traffic between a pod and the node it runs on is always allowed"
                ));
                return;
            }
            Some(Special::NotPoliced) => {
                lines.push(format!(
                    "{indent}neither end is a pod: NetworkPolicy does not apply"
                ));
                return;
            }
            None => {}
        }
        let other = |e: &Endpoint| match e {
            Endpoint::Pod(p) => Other::Pod(*p),
            e => Other::Addr(e.ip(c).expect("non-service endpoints have addresses")),
        };
        if let (Endpoint::Pod(p), Some(side)) = (from, d.egress) {
            lines.push(format!(
                "{indent}{}",
                self.explain_side(*p, Direction::Egress, other(to), to, port, protocol, side)
            ));
        } else {
            lines.push(format!(
                "{indent}egress: {} is not a pod, so no egress policy applies",
                from.display(c)
            ));
        }
        if let (Endpoint::Pod(p), Some(side)) = (to, d.ingress) {
            lines.push(format!(
                "{indent}{}",
                self.explain_side(
                    *p,
                    Direction::Ingress,
                    other(from),
                    from,
                    port,
                    protocol,
                    side
                )
            ));
        } else if !matches!(to, Endpoint::Pod(_)) {
            lines.push(format!(
                "{indent}ingress: {} is not a pod, so no ingress policy applies",
                to.display(c)
            ));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn explain_side(
        &self,
        pod: PodId,
        dir: Direction,
        other: Other,
        other_ep: &Endpoint,
        port: Option<u16>,
        protocol: Protocol,
        side: Side,
    ) -> String {
        let c = self.cluster;
        let name = c.pod_name(pod);
        let what = match dir {
            Direction::Egress => format!("egress from {name}"),
            Direction::Ingress => format!("ingress to {name}"),
        };
        let ns = &c.namespaces[c.pods[pod as usize].ns as usize].name;
        let selecting: Vec<String> = self
            .selecting(pod, dir)
            .iter()
            .map(|&p| c.policy_name(p))
            .collect();
        let port_text = match port {
            Some(p) => format!("{p}/{protocol}"),
            None => protocol.to_string(),
        };
        let mut s = String::new();
        match side {
            Side::NotIsolated => {
                let _ = write!(
                    s,
                    "{what}: allowed: not isolated (no NetworkPolicy in namespace {ns} selects it for {})",
                    if dir == Direction::Egress { "Egress" } else { "Ingress" }
                );
            }
            Side::Allowed { policy, rule } => {
                let pol = &c.policies[policy as usize];
                let r = &pol.rules(dir).expect("selecting policies have rules")[rule];
                let peer_text = match &r.peers {
                    None => "any peer".to_string(),
                    Some(peers) => {
                        let i = peers.iter().position(|peer| match (peer, other) {
                            (_, Other::Pod(p)) => {
                                super::peer_matches_pod(c, pol.ns, peer, &c.pods[p as usize])
                            }
                            (Peer::IpBlock { cidr, except }, Other::Addr(ip)) => {
                                Peer::ip_block_contains(cidr, except, ip)
                            }
                            _ => false,
                        });
                        match i {
                            Some(i) => format!("peer #{} ({})", i + 1, peers[i]),
                            None => "a peer".into(),
                        }
                    }
                };
                let port_match = match &r.ports {
                    None => "any port".to_string(),
                    Some(list) => {
                        let target = match (dir, other) {
                            (Direction::Ingress, _) => Some(&c.pods[pod as usize]),
                            (Direction::Egress, Other::Pod(p)) => Some(&c.pods[p as usize]),
                            _ => None,
                        };
                        list.iter()
                            .find(|m| port_matches(m, port, protocol, target))
                            .map(|m| format!("port {m}"))
                            .unwrap_or_else(|| "a port".into())
                    }
                };
                let _ = write!(
                    s,
                    "{what}: allowed by {} {} rule #{} ({}: {peer_text}; {port_match}); selected by {}",
                    c.policy_name(policy),
                    dir,
                    rule + 1,
                    if dir == Direction::Egress { "to" } else { "from" },
                    selecting.join(", ")
                );
            }
            Side::Denied => {
                let _ = write!(
                    s,
                    "{what}: denied: isolated by {}; no {dir} rule of theirs matches {} on {port_text}",
                    selecting.join(", "),
                    other_ep.display(c)
                );
            }
        }
        s
    }
}
