//! The compact `cluster:` form of a scenario, as written (see ../shared/spec/scenarios.md).

use super::k8s::IntOrString;
use super::yaml::Located;
use indexmap::IndexMap;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Namespace name → labels, in file order.
pub type NamespaceMap = IndexMap<Located<String>, Option<BTreeMap<String, String>>>;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CompactCluster {
    pub overlay: Option<Located<String>>,
    pub nodes: Option<Vec<Located<CompactNode>>>,
    pub namespaces: Option<NamespaceMap>,
    pub pods: Option<Vec<Located<CompactPod>>>,
    pub services: Option<Vec<Located<CompactService>>>,
    pub externals: Option<IndexMap<Located<String>, Located<String>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CompactNode {
    pub name: String,
    pub ip: Located<String>,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<Located<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CompactPod {
    pub name: Located<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub node: Option<String>,
    pub ip: Option<Located<String>>,
    pub ports: Option<Vec<Located<CompactPort>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CompactPort {
    pub name: Option<String>,
    pub port: Located<i64>,
    pub protocol: Option<Located<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CompactService {
    pub name: Located<String>,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<Located<String>>,
    pub selector: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub ports: Vec<Located<CompactServicePort>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CompactServicePort {
    pub name: Option<String>,
    pub port: Located<i64>,
    pub target_port: Option<Located<IntOrString>>,
    pub protocol: Option<Located<String>>,
}
