//! NetworkPolicy (networking.k8s.io/v1), checked: effective policy types applied, ports and
//! CIDRs parsed, namespace resolved.

use super::model::NsId;
use super::selector::Selector;
use crate::values::{Cidr, Protocol};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

/// One entry of a rule's `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMatch {
    pub protocol: Protocol,
    /// None: every port of the protocol.
    pub port: Option<PortRef>,
    /// Inclusive end of a numeric range.
    pub end_port: Option<u16>,
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.port, self.end_port) {
            (None, _) => write!(f, "any/{}", self.protocol),
            (Some(PortRef::Number(p)), Some(e)) => write!(f, "{p}-{e}/{}", self.protocol),
            (Some(PortRef::Number(p)), None) => write!(f, "{p}/{}", self.protocol),
            (Some(PortRef::Name(n)), _) => write!(f, "{n}/{}", self.protocol),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// `namespaceSelector` and/or `podSelector`. `namespaces: None` means the policy's own
    /// namespace; `pods: None` means every pod of the selected namespaces.
    Pods {
        namespaces: Option<Selector>,
        pods: Option<Selector>,
    },
    IpBlock {
        cidr: Cidr,
        except: Vec<Cidr>,
    },
}

impl Peer {
    pub fn ip_block_contains(cidr: &Cidr, except: &[Cidr], ip: std::net::IpAddr) -> bool {
        cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Pods {
                namespaces: None,
                pods,
            } => write!(
                f,
                "podSelector {}",
                pods.as_ref().map(|s| s.to_string()).unwrap_or_default()
            ),
            Peer::Pods {
                namespaces: Some(ns),
                pods: None,
            } => write!(f, "namespaceSelector {ns}"),
            Peer::Pods {
                namespaces: Some(ns),
                pods: Some(p),
            } => write!(f, "namespaceSelector {ns} AND podSelector {p}"),
            Peer::IpBlock { cidr, except } if except.is_empty() => write!(f, "ipBlock {cidr}"),
            Peer::IpBlock { cidr, except } => {
                let ex: Vec<String> = except.iter().map(|e| e.to_string()).collect();
                write!(f, "ipBlock {cidr} except {}", ex.join(","))
            }
        }
    }
}

/// An ingress or egress rule. `peers: None` and `ports: None` mean "every".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub peers: Option<Vec<Peer>>,
    pub ports: Option<Vec<PortMatch>>,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub ns: NsId,
    pub name: String,
    pub pod_selector: Selector,
    /// Some iff Ingress is in the effective policyTypes.
    pub ingress: Option<Vec<Rule>>,
    /// Some iff Egress is in the effective policyTypes.
    pub egress: Option<Vec<Rule>>,
    /// The policy gave its `policyTypes` (a non-empty list); false: the types are the
    /// defaults (Ingress, and Egress iff egress rules are present).
    pub types_given: bool,
}

impl Policy {
    pub fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}
