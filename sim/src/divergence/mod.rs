//! Divergence hunting: the oracles `fwsim fuzz` and the cargo-fuzz targets run on
//! generated inputs, the minimizer, and the campaign driver.
//!
//! Contract:
//! - [`Target`] names what is compared. Every target's check is a pure function of a case
//!   seed (or of libFuzzer's bytes, through [`crate::gen::case::Bytes`]), so a finding
//!   replays from its seed on any machine.
//! - [`check_case`] compares the reference engine with a rendered dataplane on every flow
//!   of a generated [`Case`]. A flow counts as a divergence only when the dataplane gives
//!   a verdict (not inconclusive) that differs from the reference's, and the difference is
//!   not one of the documented differences of the real CNI ([`known_difference`]).
//! - Nothing here prints; the campaign reports through a callback.

pub mod campaign;
pub mod minimize;
#[cfg(test)]
mod properties;

use crate::cluster::{Cluster, Endpoint, Flow};
use crate::gen::case::Case;
use crate::reference::{Reference, Verdict};
use crate::render::Flavor;
use std::fmt;

/// What a fuzz target compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The reference engine vs Calico's iptables dataplane on generated clusters.
    CalicoIptables,
    /// The reference engine vs Calico's nftables dataplane.
    CalicoNftables,
    /// The same generated ruleset read as iptables-save and as nft text: every probe must
    /// get the same fate from both (and from its translation, where one exists).
    IptablesVsNft,
    /// The reference engine's fast pod-to-pod path vs its full evaluation.
    ReferenceFast,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::CalicoIptables,
        Target::CalicoNftables,
        Target::IptablesVsNft,
        Target::ReferenceFast,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::CalicoIptables => "calico-iptables",
            Target::CalicoNftables => "calico-nftables",
            Target::IptablesVsNft => "iptables-vs-nft",
            Target::ReferenceFast => "reference-fast",
        }
    }

    pub fn parse(name: &str) -> Result<Target, String> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown fuzz target `{name}`: expected one of {}",
                    names.join(", ")
                )
            })
    }

    /// The rendered dataplane a cluster target compares with the reference.
    pub fn flavor(self) -> Option<Flavor> {
        match self {
            Target::CalicoIptables => Some(Flavor::CalicoIptables),
            Target::CalicoNftables => Some(Flavor::CalicoNftables),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One flow where a dataplane and the reference disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The flow as a scenario writes it.
    pub flow: String,
    pub reference: Verdict,
    pub dataplane: Verdict,
    pub reference_why: String,
    pub dataplane_why: String,
}

/// What checking one case found.
#[derive(Clone, Debug, Default)]
pub struct CaseReport {
    /// The case loaded as a scenario (else it was refused, as the API server would).
    pub loaded: bool,
    pub flows: usize,
    pub findings: Vec<Finding>,
    /// Flows the dataplane could not decide.
    pub inconclusive: usize,
    /// Flows where the dataplane differs as the real CNI is documented to.
    pub known: usize,
    /// Why the case could not be checked (render or parse failure): a finding of its own.
    pub broken: Option<String>,
}

/// A documented difference of the real CNI from the Kubernetes semantics, if `flow` meets
/// one (scenarios/dataplanes/README.md): Calico polices a pod's traffic to its own node
/// with the pod's egress policy; a node reaches pods on other nodes from its tunnel
/// address; kube-proxy masquerades service traffic from outside the cluster (and a node's,
/// to the tunnel address), which the Kubernetes documentation leaves undefined for policy.
pub fn known_difference(
    cluster: &Cluster,
    flavor: Flavor,
    flow: &Flow,
    hardened: bool,
) -> Option<&'static str> {
    if hardened && matches!(flow.to, Endpoint::Node(_)) {
        return Some("the hardened host firewall closes the node");
    }
    if let (Endpoint::External(..), Endpoint::Service(_)) = (&flow.from, &flow.to) {
        // kube-proxy masquerades service traffic from outside the cluster network to the
        // node's address (externalTrafficPolicy Cluster); the Kubernetes documentation
        // leaves undefined whether policy sees the source before or after such rewriting.
        return Some("kube-proxy masquerades service traffic from outside the cluster");
    }
    if flavor.cni() != crate::render::net::Cni::Calico {
        return None;
    }
    match (&flow.from, &flow.to) {
        (Endpoint::Node(_), Endpoint::Service(_))
            if cluster.overlay != Some(crate::cluster::Overlay::None) =>
        {
            Some("kube-proxy masquerades a node's service traffic, to its tunnel address toward remote pods")
        }
        (Endpoint::Pod(p), Endpoint::Node(n)) if cluster.pods[*p as usize].node == *n => {
            Some("Calico applies the pod's egress policy to its own node")
        }
        (Endpoint::Node(n), Endpoint::Pod(p))
            if cluster.pods[*p as usize].node != *n
                && cluster.overlay != Some(crate::cluster::Overlay::None) =>
        {
            Some("Calico: a node reaches remote pods from its tunnel address")
        }
        _ => None,
    }
}

/// Load a generated case as a scenario: its cluster and flows.
pub fn load_case(case: &Case) -> Result<(Cluster, Vec<Flow>), String> {
    let text = case.to_yaml("case", "", &["reference"], None);
    let found = crate::scenario::discover_text("<generated>", &text);
    if let Some(e) = found.errors.first() {
        return Err(e.to_string());
    }
    let doc = found.docs.first().ok_or("no scenario")?;
    let s = crate::scenario::load(doc).map_err(|e| {
        e.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    match s.body {
        crate::scenario::Body::Cluster {
            cluster, expects, ..
        } => {
            let flows = expects
                .into_iter()
                .filter_map(|e| match e.kind {
                    crate::scenario::ExpectKind::Flow { flow, .. } => Some(flow),
                    _ => None,
                })
                .collect();
            Ok((*cluster, flows))
        }
        _ => Err("not a cluster scenario".into()),
    }
}

/// Compare the reference with `flavor` on every flow of `case`.
pub fn check_case(case: &Case, flavor: Flavor) -> CaseReport {
    let mut report = CaseReport::default();
    let Ok((cluster, flows)) = load_case(case) else {
        return report;
    };
    report.loaded = true;
    report.flows = flows.len();
    let reference = Reference::new(&cluster);
    let hosts: Vec<crate::render::HostFirewall> = if case.hardened {
        vec![crate::render::HostFirewall {
            node: "*".into(),
            origin: "hardened host firewall".into(),
            text: crate::gen::case::hardened_firewall(flavor != Flavor::CalicoIptables),
        }]
    } else {
        Vec::new()
    };
    let rendered = match crate::render::render(&cluster, flavor, &hosts) {
        Ok(r) => r,
        Err(e) => {
            report.broken = Some(format!("render: {e}"));
            return report;
        }
    };
    let path = match crate::path::ClusterPath::new(&cluster, &rendered) {
        Ok(p) => p,
        Err(e) => {
            report.broken = Some(format!("rendered rules do not read back: {e}"));
            return report;
        }
    };
    for flow in &flows {
        let r = path.flow(flow);
        let Ok(actual) = r.verdict else {
            report.inconclusive += 1;
            continue;
        };
        let expected = reference.verdict(flow);
        if actual == expected {
            continue;
        }
        if known_difference(&cluster, flavor, flow, case.hardened).is_some() {
            report.known += 1;
            continue;
        }
        let (_, why) = reference.explain(flow);
        report.findings.push(Finding {
            flow: flow.display(&cluster),
            reference: expected,
            dataplane: actual,
            reference_why: why.to_string(),
            dataplane_why: r.explanation,
        });
    }
    report
}

/// The reference's verdict of every flow of a case (the expectations of its scenario).
pub fn reference_verdicts(case: &Case) -> Option<Vec<&'static str>> {
    let (cluster, flows) = load_case(case).ok()?;
    let reference = Reference::new(&cluster);
    Some(
        flows
            .iter()
            .map(|f| reference.verdict(f).as_str())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// With no bug planted, the Calico dataplanes agree with the reference on generated
    /// cases (a finding here is a bug to fix, kept as a regression scenario).
    #[test]
    fn calico_agrees_with_the_reference_on_generated_cases() {
        for flavor in [Flavor::CalicoIptables, Flavor::CalicoNftables] {
            let mut flows = 0;
            for seed in 0..40u64 {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let case = Case::generate(&mut rng);
                let r = check_case(&case, flavor);
                assert!(r.broken.is_none(), "seed {seed}: {:?}", r.broken);
                assert!(
                    r.findings.is_empty(),
                    "{flavor:?} seed {seed}: {:#?}\n{}",
                    r.findings,
                    case.to_yaml("t", "", &["reference"], None)
                );
                flows += r.flows;
            }
            assert!(flows > 200, "{flows} flows checked");
        }
    }
}
