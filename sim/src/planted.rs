//! Planted bugs: known-wrong semantics that can be switched on, one at a time, to measure
//! whether (and how fast) the fuzzers find them. Never on unless asked for: `fwsim fuzz
//! --planted NAME`, or a test.
//!
//! Contract: [`active`] is read by the renderers and the interpreter at the one place each
//! bug lives (grep for `planted::is(Bug::...)`); with no bug planted every check is a
//! relaxed atomic load that returns false. The setting is process-wide. Tests plant a bug
//! on their own thread only ([`plant_here`], test builds), so the tests running beside them
//! never see it.

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

    /// 1 + the position in [`Bug::ALL`] (which lists the variants in declaration order).
    #[inline]
    const fn code(self) -> u8 {
        self as u8 + 1
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

/// Is `bug` planted (for the whole process, or in a test build for this thread)?
#[inline]
pub fn is(bug: Bug) -> bool {
    ACTIVE.load(Ordering::Relaxed) == bug.code() || here(bug)
}

#[cfg(not(test))]
#[inline(always)]
fn here(_: Bug) -> bool {
    false
}

#[cfg(test)]
thread_local! {
    static HERE: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
#[inline]
fn here(bug: Bug) -> bool {
    HERE.with(|h| h.get() == bug.code())
}

/// A bug planted on this thread only (test builds): removed when dropped, also when the
/// test panics.
#[cfg(test)]
pub struct PlantedHere(());

#[cfg(test)]
impl Drop for PlantedHere {
    fn drop(&mut self) {
        HERE.with(|h| h.set(0));
    }
}

/// Plant `bug` on the current thread until the guard is dropped (test builds). The
/// renderers and the interpreter run on the caller's thread, so a test sees its bug and
/// no other test does.
#[cfg(test)]
#[must_use]
pub fn plant_here(bug: Bug) -> PlantedHere {
    HERE.with(|h| h.set(bug.code()));
    PlantedHere(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::divergence::check_case;
    use crate::gen::case::Case;
    use crate::render::Flavor;
    use rand::SeedableRng;

    const FLAVORS: [Flavor; 2] = [Flavor::CalicoIptables, Flavor::CalicoNftables];

    fn case(seed: u64) -> Case {
        Case::generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))
    }

    /// Findings of the case of `seed` on `flavor`, with `bug` planted on this thread.
    fn findings(bug: Option<Bug>, seed: u64, flavor: Flavor) -> usize {
        let _planted = bug.map(plant_here);
        check_case(&case(seed), flavor).findings.len()
    }

    /// The first generated case (seed) where the sweep below finds each bug, and the flavor.
    /// A change to the case generator moves them: run the ignored sweep
    /// (`cargo test --release -p fwsim --lib planted -- --ignored --nocapture`) and copy
    /// its seeds (cases - 1) here.
    const FIRST_FOUND: [(Bug, u64, Flavor); 10] = [
        (Bug::EndPortExclusive, 1243, Flavor::CalicoIptables),
        (Bug::ExceptIgnored, 857, Flavor::CalicoNftables),
        (Bug::NamedPortWrongPod, 1738, Flavor::CalicoIptables),
        (Bug::PolicyTypesNoIngress, 2, Flavor::CalicoNftables),
        (Bug::EmptyNamespaceSelectorOwn, 442, Flavor::CalicoIptables),
        (Bug::AndPeersAsOr, 36, Flavor::CalicoNftables),
        (Bug::EstablishedNotAccepted, 2, Flavor::CalicoIptables),
        (Bug::GotoAsJump, 0, Flavor::CalicoNftables),
        (Bug::NftAcceptFinal, 50, Flavor::CalicoNftables),
        (Bug::IpipNotAllowed, 6, Flavor::CalicoIptables),
    ];

    /// Cheap, and safe beside other tests (the bug is planted on this thread only): each
    /// bug makes the oracle find its first case, which has no finding without it.
    #[test]
    fn each_planted_bug_is_found_on_its_first_case() {
        for (bug, seed, flavor) in FIRST_FOUND {
            assert_eq!(
                findings(None, seed, flavor),
                0,
                "{bug:?} seed {seed} unplanted"
            );
            assert!(
                findings(Some(bug), seed, flavor) > 0,
                "{bug:?} not found on seed {seed} ({flavor:?})"
            );
            assert!(!is(bug), "{bug:?} still planted");
        }
    }

    /// Every planted bug is found by the reference-vs-Calico oracle on generated cases:
    /// seeds 0.. on both flavors, until each flavor has a finding (or 2,000 cases). Slow
    /// (minutes): `cargo test --release -p fwsim --lib planted -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn every_planted_bug_is_found_on_generated_cases() {
        const MAX_CASES: u64 = 2000;
        let mut missed = Vec::new();
        for bug in Bug::ALL {
            let _planted = plant_here(bug);
            let start = std::time::Instant::now();
            let mut first: [Option<(u64, f64)>; 2] = [None, None];
            for seed in 0..MAX_CASES {
                let c = case(seed);
                for (i, flavor) in FLAVORS.into_iter().enumerate() {
                    if first[i].is_none() && !check_case(&c, flavor).findings.is_empty() {
                        first[i] = Some((seed + 1, start.elapsed().as_secs_f64()));
                    }
                }
                if first.iter().all(Option::is_some) {
                    break;
                }
            }
            let show = |f: Option<(u64, f64)>| match f {
                Some((n, s)) => format!("{n} cases, {s:.1} s"),
                None => format!("not found in {MAX_CASES} cases"),
            };
            println!(
                "{:<30} calico-iptables: {:<24} calico-nftables: {}",
                bug.name(),
                show(first[0]),
                show(first[1])
            );
            if first.iter().all(Option::is_none) {
                missed.push(bug.name());
            }
        }
        assert!(missed.is_empty(), "not found: {missed:?}");
    }
}
