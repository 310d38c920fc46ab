//! A checked scenario: everything resolved, ready to evaluate.

use super::dataplane::Dataplane;
use crate::cluster::{Cluster, Endpoint, Flow};
use crate::reference::Verdict;
use crate::syntax::matrix::Cell;
use crate::values::{Packet, Protocol, Site};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketVerdict {
    Accept,
    Drop,
    Reject,
}

impl PacketVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            PacketVerdict::Accept => "accept",
            PacketVerdict::Drop => "drop",
            PacketVerdict::Reject => "reject",
        }
    }
}

#[derive(Clone, Debug)]
pub struct MatrixCell {
    pub row: usize,
    pub col: usize,
    pub expected: Cell,
    pub site: Site,
}

#[derive(Clone, Debug)]
pub enum ExpectKind {
    Flow {
        flow: Flow,
        verdict: Verdict,
    },
    Matrix {
        port: Option<u16>,
        protocol: Protocol,
        rows: Vec<Endpoint>,
        cols: Vec<Endpoint>,
        /// Every cell, `?` included, row-major.
        cells: Vec<MatrixCell>,
    },
}

#[derive(Clone, Debug)]
pub struct Expect {
    pub site: Site,
    pub kind: ExpectKind,
    /// A different verdict on the named dataplanes (matrices: for every checked cell).
    pub except: Vec<(Dataplane, Verdict)>,
}

#[derive(Clone, Debug)]
pub struct PacketExpect {
    pub site: Site,
    /// The sequence the packet belongs to (its connections carry over), if any.
    pub seq: Option<usize>,
    pub packet: Packet,
    pub verdict: PacketVerdict,
    pub except: Vec<(Dataplane, PacketVerdict)>,
}

#[derive(Clone, Debug)]
pub enum Body {
    Cluster {
        cluster: Box<Cluster>,
        /// Host firewalls by node name (`*` for every node), read and checked.
        hosts: Vec<crate::render::HostFirewall>,
        /// Per node (in the cluster's order), its snapshot when `nodes:` gives one; empty
        /// without `nodes:`.
        snapshots: Vec<Option<crate::snapshot::Snapshot>>,
        expects: Vec<Expect>,
    },
    Host {
        /// The ruleset, read; Err: a format this version cannot read yet (why).
        ruleset: Result<crate::netfilter::ir::Ruleset, String>,
        /// The ruleset as written (the kernel dataplane loads it).
        ruleset_text: String,
        /// The host's ipsets as written (`ipset save`), loaded before the ruleset.
        ipsets_text: Option<String>,
        /// The host's addresses and routes, when the scenario gives them (`host:`).
        host: Option<Box<crate::netfilter::interp::Host>>,
        ruleset_site: Site,
        packets: Vec<PacketExpect>,
    },
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub site: Site,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub dataplanes: Vec<Dataplane>,
    pub body: Body,
    pub warnings: Vec<crate::diag::Diagnostic>,
}
