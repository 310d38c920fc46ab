//! A `kind: Scenario` document as written (the contract: ../shared/spec/scenarios.md).
//!
//! `cluster`, `manifests`, `policies`, `expect[].flow` may be a path or inline, a string or
//! a mapping: the loader reads those from the YAML node directly; these structs check that
//! no unknown field is present and read the plain fields.

use super::k8s::IntOrString;
use super::yaml::Located;
use indexmap::IndexMap;
use serde::de::IgnoredAny;
use serde::Deserialize;

pub const API_VERSION: &str = "fwsim/v1";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScenarioYaml {
    pub api_version: Located<String>,
    pub kind: String,
    pub name: Located<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub cluster: Option<IgnoredAny>,
    pub manifests: Option<IgnoredAny>,
    pub policies: Option<IgnoredAny>,
    pub dataplanes: Option<Vec<Located<String>>>,
    pub hosts: Option<IndexMap<Located<String>, Located<String>>>,
    /// Cluster mode (extends the spec): each node's snapshot for the `captured` dataplane,
    /// a mapping node name → snapshot directory, or one directory of snapshots.
    pub nodes: Option<IgnoredAny>,
    pub ruleset: Option<Located<String>>,
    /// Single-host mode: what fwsim knows of the host besides its ruleset (extends the
    /// spec): its addresses (for addrtype, and the route after a DNAT) and routes.
    pub host: Option<Located<HostYaml>>,
    /// Single-host mode: the host's ipsets (`ipset save` output), a path or inline text.
    pub ipsets: Option<Located<String>>,
    pub expect: Option<Vec<Located<ExpectYaml>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ExpectYaml {
    pub flow: Option<IgnoredAny>,
    pub matrix: Option<Located<MatrixYaml>>,
    pub packet: Option<Located<PacketYaml>>,
    /// Single-host mode (extends the spec): packets in order through one conntrack table;
    /// each step is a `packet` expectation without `ctstate`.
    pub sequence: Option<Vec<Located<ExpectYaml>>>,
    pub verdict: Option<Located<String>>,
    pub except: Option<IndexMap<Located<String>, Located<String>>>,
}

/// The map form of a flow.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FlowMapYaml {
    pub from: Located<String>,
    pub to: Located<String>,
    pub port: Option<Located<i64>>,
    pub protocol: Option<Located<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct MatrixYaml {
    pub port: Option<Located<i64>>,
    pub protocol: Option<Located<String>>,
    pub table: Located<String>,
}

/// `host:` of a single-host scenario.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct HostYaml {
    /// The host's addresses, each optionally with its network's prefix length
    /// (`192.0.2.10/24`: 192.0.2.255 is then a broadcast address).
    pub addresses: Vec<Located<String>>,
    /// Routes: where packets to a network leave (longest prefix wins).
    pub routes: Option<Vec<Located<RouteYaml>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RouteYaml {
    pub to: Located<String>,
    pub dev: String,
}

/// A single packet through a host (single-host scenarios).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct PacketYaml {
    pub src: Located<String>,
    pub dst: Located<String>,
    pub protocol: Option<Located<IntOrString>>,
    pub sport: Option<Located<i64>>,
    pub dport: Option<Located<i64>>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub hook: Option<Located<String>>,
    pub ctstate: Option<Located<String>>,
    pub mark: Option<Located<u32>>,
}
