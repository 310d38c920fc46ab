//! Renderers: a cluster and its NetworkPolicies turned into each node's rulesets, as Calico
//! (iptables or nftables), Flannel and kube-proxy write them, beside the host firewall.
//!
//! Contract:
//! - [`render`] gives, per node, the texts the node's own tools would print: `ipset save`,
//!   `iptables-save`, `nft list ruleset`. They are what the cluster packet path parses and
//!   walks (one meaning path: rendered text → parser → IR → walk), what `fwsim render`
//!   prints, and what the kernel loads (`iptables-restore --test`, `nft -c -f`).
//! - Renderers read the cluster model and never the reference engine: a renderer's
//!   selector, port and CIDR handling is its own, so the two can disagree.
//! - Interface names, addresses and routes come from [`net`], shared with the packet path.
//! - Rendering fails only on what the dataplane cannot express (an error naming it).

pub mod calico;
pub mod calico_iptables;
pub mod calico_nft;
pub mod flannel;
pub mod iptables_out;
pub mod kube_proxy;
pub mod net;

use crate::cluster::{Cluster, NodeId};
use iptables_out::Tables;
use net::{ClusterNet, Cni};
use std::fmt;

/// Which dataplane to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    CalicoIptables,
    CalicoNftables,
    Flannel,
}

impl Flavor {
    pub fn cni(self) -> Cni {
        match self {
            Flavor::CalicoIptables | Flavor::CalicoNftables => Cni::Calico,
            Flavor::Flannel => Cni::Flannel,
        }
    }
}

/// A host firewall of a scenario's `hosts:`, read.
#[derive(Clone, Debug)]
pub struct HostFirewall {
    /// The node it applies to; `*` for every node without its own.
    pub node: String,
    /// Where it was read from (for messages).
    pub origin: String,
    pub text: String,
}

/// What one node runs.
#[derive(Clone, Debug, Default)]
pub struct NodeRules {
    pub node: NodeId,
    pub name: String,
    /// `ipset save` output, loaded before the iptables rules.
    pub ipsets: Option<String>,
    /// `iptables-save` output: the host firewall's rules with kube-proxy's and the CNI's.
    pub iptables: Option<String>,
    /// `nft list ruleset` output: an nftables host firewall and the CNI's nft table.
    pub nft: Option<String>,
}

/// Every node's rules, and the network layout they were rendered for.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub flavor: Flavor,
    pub net: ClusterNet,
    pub nodes: Vec<NodeRules>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderError {
    pub message: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RenderError {}

impl From<String> for RenderError {
    fn from(message: String) -> Self {
        RenderError { message }
    }
}

/// Render every node of `cluster` for `flavor`, with the host firewalls loaded beside.
/// A node's own entry in `hosts` replaces the `*` entry for that node.
pub fn render(
    cluster: &Cluster,
    flavor: Flavor,
    hosts: &[HostFirewall],
) -> Result<Rendered, RenderError> {
    let net = ClusterNet::new(cluster, flavor.cni());
    // libcalico-go's conversion, once for every node.
    let policies = match flavor.cni() {
        Cni::Calico => calico::convert(cluster),
        Cni::Flannel => Vec::new(),
    };
    let mut nodes = Vec::new();
    for (id, n) in cluster.nodes.iter().enumerate() {
        let id = id as NodeId;
        let host = hosts
            .iter()
            .find(|h| h.node == n.name)
            .or_else(|| hosts.iter().find(|h| h.node == "*"));
        let mut tables = Tables::new();
        let mut nft_text = String::new();
        if let Some(h) = host {
            match crate::netfilter::detect(&h.text) {
                Some(crate::netfilter::Format::IptablesSave) => {
                    let save = crate::syntax::iptables::parse(&h.text)
                        .map_err(|e| format!("{}:{}: {}", h.origin, e.loc, e.message))?;
                    tables
                        .add_host(&save)
                        .map_err(|e| format!("{}: {e}", h.origin))?;
                }
                Some(crate::netfilter::Format::NftText) => {
                    nft_text.push_str(&h.text);
                    if !nft_text.ends_with('\n') {
                        nft_text.push('\n');
                    }
                }
                _ => {
                    return Err(format!(
                        "{}: a host firewall must be iptables-save or nft text",
                        h.origin
                    )
                    .into())
                }
            }
        }
        kube_proxy::render(cluster, &net, id, &mut tables)?;
        let mut ipsets = None;
        match flavor {
            Flavor::CalicoIptables => {
                ipsets = Some(calico_iptables::render(
                    cluster,
                    &net,
                    id,
                    &policies,
                    &mut tables,
                )?);
            }
            Flavor::CalicoNftables => {
                nft_text.push_str(&calico_nft::render(cluster, &net, id, &policies)?);
            }
            Flavor::Flannel => flannel::render(cluster, &net, id, &mut tables)?,
        }
        if let Some(h) = host {
            tables.check().map_err(|e| format!("{}: {e}", h.origin))?;
        }
        nodes.push(NodeRules {
            node: id,
            name: n.name.clone(),
            ipsets: ipsets.filter(|s| !s.trim().is_empty()),
            iptables: Some(tables.text()),
            nft: (!nft_text.trim().is_empty()).then_some(nft_text),
        });
    }
    Ok(Rendered { flavor, net, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cluster scenario bundled under `scenarios/`, loaded.
    pub(crate) fn bundled_clusters() -> Vec<crate::scenario::Scenario> {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let found = crate::scenario::discover(&[root]);
        found
            .docs
            .iter()
            .filter_map(|d| crate::scenario::load(d).ok())
            .filter(|s| matches!(s.body, crate::scenario::Body::Cluster { .. }))
            .collect()
    }

    /// The rendered rulesets of every bundled cluster scenario load into the kernel: ipsets
    /// with `ipset restore`, iptables rules with `iptables-restore` (legacy), nft text with
    /// `nft -f`, each in a fresh network namespace. Skipped without root or the tools.
    #[test]
    fn rendered_rulesets_load_in_the_kernel() {
        let Some(ns) = crate::testing::Netns::new("render") else {
            return;
        };
        for tool in ["ipset", "iptables-legacy-restore"] {
            if ns.run(&[tool, "--version"], None).is_err() {
                eprintln!("skipped: {tool} does not run here");
                return;
            }
        }
        let scenarios = bundled_clusters();
        assert!(
            scenarios.len() > 50,
            "{} cluster scenarios",
            scenarios.len()
        );
        let mut loaded = 0;
        for s in &scenarios {
            let crate::scenario::Body::Cluster { cluster, hosts, .. } = &s.body else {
                continue;
            };
            for flavor in [
                Flavor::CalicoIptables,
                Flavor::CalicoNftables,
                Flavor::Flannel,
            ] {
                let r = render(cluster, flavor, hosts)
                    .unwrap_or_else(|e| panic!("{}: {flavor:?}: {e}", s.name));
                for n in &r.nodes {
                    let what = format!("{} {flavor:?} node {}", s.name, n.name);
                    // A clean slate: no rules, no sets.
                    let _ = ns.nft(&["flush", "ruleset"], None);
                    for table in ["raw", "mangle", "nat", "filter"] {
                        let _ = ns.run(&["iptables-legacy", "-t", table, "-F"], None);
                        let _ = ns.run(&["iptables-legacy", "-t", table, "-X"], None);
                    }
                    let _ = ns.run(&["ipset", "destroy"], None);
                    if let Some(sets) = &n.ipsets {
                        ns.run(&["ipset", "restore"], Some(sets))
                            .unwrap_or_else(|e| panic!("{what}: ipset restore: {e}\n{sets}"));
                    }
                    if let Some(text) = &n.iptables {
                        ns.run(&["iptables-legacy-restore"], Some(text))
                            .unwrap_or_else(|e| panic!("{what}: iptables-restore: {e}\n{text}"));
                    }
                    if let Some(text) = &n.nft {
                        ns.nft(&[], Some(text))
                            .unwrap_or_else(|e| panic!("{what}: nft -f: {e}\n{text}"));
                    }
                    loaded += 1;
                }
            }
        }
        eprintln!("{loaded} rendered node rulesets loaded");
    }
}
