//! Planted bugs: known-wrong semantics that can be switched on, one at a time, to measure
//! whether (and how fast) the fuzzers find them. Never on unless asked for: `fwsim fuzz
//! --planted NAME`, or a test.
//!
//! Contract: [`active`] is read by the renderers and the interpreter at the one place each
//! bug lives (grep for `planted::is(Bug::...)`); with no bug planted every check is a
//! relaxed atomic load that returns false. The setting is process-wide.

use std::sync::atomic::{AtomicU8, Ordering};

/// A known-wrong semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bug {
    /// `endPort` treated as exclusive (Calico renderers).
    EndPortExclusive,
    /// `ipBlock.except` ignored (Calico renderers).
    ExceptIgnored,
    /// A named port resolved on the wrong pod: for egress, on the source pod instead of
    /// the destination (Calico renderers).
    NamedPortWrongPod,
    /// `policyTypes` absent defaults to Egress only, not Ingress (Calico conversion).
    PolicyTypesNoIngress,
    /// `namespaceSelector: {}` treated as the policy's own namespace (Calico conversion).
    EmptyNamespaceSelectorOwn,
    /// `namespaceSelector` and `podSelector` in one peer treated as two peers (OR).
    AndPeersAsOr,
    /// Established traffic not accepted by the workload chains (Calico renderers).
    EstablishedNotAccepted,
    /// A goto treated as a jump (the interpreter).
    GotoAsJump,
    /// An nft accept treated as final across base chains (the interpreter).
    NftAcceptFinal,
    /// IPIP from other nodes not accepted by the CNI's host rules (Calico renderers).
    IpipNotAllowed,
}

impl Bug {
    pub const ALL: [Bug; 10] = [
        Bug::EndPortExclusive,
        Bug::ExceptIgnored,
        Bug::NamedPortWrongPod,
        Bug::PolicyTypesNoIngress,
        Bug::EmptyNamespaceSelectorOwn,
        Bug::AndPeersAsOr,
        Bug::EstablishedNotAccepted,
        Bug::GotoAsJump,
        Bug::NftAcceptFinal,
        Bug::IpipNotAllowed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::EndPortExclusive => "endport-exclusive",
            Bug::ExceptIgnored => "except-ignored",
            Bug::NamedPortWrongPod => "named-port-wrong-pod",
            Bug::PolicyTypesNoIngress => "policytypes-no-ingress",
            Bug::EmptyNamespaceSelectorOwn => "empty-namespace-selector-own",
            Bug::AndPeersAsOr => "and-peers-as-or",
            Bug::EstablishedNotAccepted => "established-not-accepted",
            Bug::GotoAsJump => "goto-as-jump",
            Bug::NftAcceptFinal => "nft-accept-final",
            Bug::IpipNotAllowed => "ipip-not-allowed",
        }
    }

    pub fn parse(name: &str) -> Result<Bug, String> {
        Bug::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
                format!(
                    "unknown planted bug `{name}`: expected one of {}",
                    names.join(", ")
                )
            })
    }

    fn code(self) -> u8 {
        Bug::ALL.iter().position(|b| *b == self).expect("listed") as u8 + 1
    }
}

static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// Plant `bug` (None: no bug) for the whole process.
pub fn set(bug: Option<Bug>) {
    ACTIVE.store(bug.map_or(0, Bug::code), Ordering::Relaxed);
}

/// The planted bug, if any.
pub fn active() -> Option<Bug> {
    match ACTIVE.load(Ordering::Relaxed) {
        0 => None,
        c => Bug::ALL.get(c as usize - 1).copied(),
    }
}

/// Is `bug` planted?
#[inline]
pub fn is(bug: Bug) -> bool {
    ACTIVE.load(Ordering::Relaxed) == bug.code()
}
