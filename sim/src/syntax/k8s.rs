//! Kubernetes objects as `kubectl get -o yaml` prints them: Namespace, Pod, Node, Service,
//! NetworkPolicy (networking.k8s.io/v1) and `kind: List`; our own serde structs.
//!
//! Contract: [`read_object`] reads one object node. Parts fwsim reads are strict
//! (`deny_unknown_fields`: a misspelled `ingres` is an error at its line and column);
//! the NetworkPolicy is strict throughout, and so are object metadata, container ports and
//! service ports. The large Pod, Node and Service specs and statuses are read leniently
//! (fields fwsim does not model are ignored), so real manifests load. NetworkPolicies are
//! validated as the API server does (ports, endPort, selector operators, CIDRs).

use super::yaml::{from_node, Error, Located, Node};
use crate::cluster::{
    ContainerPort, Peer, PortMatch, PortRef, Requirement, Rule, Selector, ServicePort, TargetPort,
};
use crate::values::{parse_cidr, Cidr, Labels, Protocol};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// ObjectMeta: every field the API has, so a misspelling is caught; fwsim reads a few.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: Option<Located<String>>,
    pub generate_name: Option<IgnoredAny>,
    pub namespace: Option<Located<String>>,
    pub self_link: Option<IgnoredAny>,
    pub uid: Option<IgnoredAny>,
    pub resource_version: Option<IgnoredAny>,
    pub generation: Option<IgnoredAny>,
    pub creation_timestamp: Option<IgnoredAny>,
    pub deletion_timestamp: Option<IgnoredAny>,
    pub deletion_grace_period_seconds: Option<IgnoredAny>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<IgnoredAny>,
    pub owner_references: Option<IgnoredAny>,
    pub finalizers: Option<IgnoredAny>,
    pub managed_fields: Option<IgnoredAny>,
    pub cluster_name: Option<IgnoredAny>,
}

/// A label selector as written.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: Option<BTreeMap<String, String>>,
    pub match_expressions: Option<Vec<SelectorRequirement>>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SelectorRequirement {
    pub key: Located<String>,
    pub operator: Located<Operator>,
    pub values: Option<Vec<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicy {
    pub api_version: Located<String>,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NetworkPolicySpec,
    pub status: Option<IgnoredAny>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    #[serde(default)]
    pub pod_selector: LabelSelector,
    pub ingress: Option<Vec<IngressRule>>,
    pub egress: Option<Vec<EgressRule>>,
    pub policy_types: Option<Vec<Located<PolicyType>>>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    Ingress,
    Egress,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    pub from: Option<Vec<Located<PolicyPeer>>>,
    pub ports: Option<Vec<Located<PolicyPort>>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    pub to: Option<Vec<Located<PolicyPeer>>>,
    pub ports: Option<Vec<Located<PolicyPort>>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyPeer {
    pub pod_selector: Option<LabelSelector>,
    pub namespace_selector: Option<LabelSelector>,
    pub ip_block: Option<IpBlock>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct IpBlock {
    pub cidr: Located<String>,
    pub except: Option<Vec<Located<String>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyPort {
    pub protocol: Option<Located<String>>,
    pub port: Option<Located<IntOrString>>,
    pub end_port: Option<Located<i64>>,
}

/// Kubernetes' IntOrString: a port number or a port name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a port number or a port name")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v.min(i64::MAX as u64) as i64))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

// ---- Pods, nodes, services, namespaces: lenient outside the parts fwsim reads ----

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Object<Spec, Status> {
    pub api_version: Located<String>,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Option<Spec>,
    pub status: Option<Status>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecYaml {
    pub node_name: Option<Located<String>>,
    #[serde(default)]
    pub containers: Vec<Container>,
    pub host_network: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub ports: Option<Vec<Located<ContainerPortYaml>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerPortYaml {
    pub name: Option<String>,
    pub container_port: Located<i64>,
    pub protocol: Option<Located<String>>,
    #[serde(rename = "hostPort")]
    pub host_port: Option<IgnoredAny>,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<IgnoredAny>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusYaml {
    #[serde(rename = "podIP")]
    pub pod_ip: Option<Located<String>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpecYaml {
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<Located<String>>,
}

#[derive(Deserialize, Debug, Default)]
pub struct NodeStatusYaml {
    #[serde(default)]
    pub addresses: Vec<NodeAddress>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct NodeAddress {
    #[serde(rename = "type")]
    pub kind: String,
    pub address: Located<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpecYaml {
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<Located<String>>,
    pub selector: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub ports: Vec<Located<ServicePortYaml>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePortYaml {
    pub name: Option<String>,
    pub protocol: Option<Located<String>>,
    pub port: Located<i64>,
    pub target_port: Option<Located<IntOrString>>,
    pub node_port: Option<IgnoredAny>,
    pub app_protocol: Option<IgnoredAny>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListYaml {
    pub api_version: Located<String>,
    pub kind: String,
    pub metadata: Option<IgnoredAny>,
    #[serde(default)]
    pub items: Vec<IgnoredAny>,
}

// ---- Checked forms handed to the cluster builder ----

/// A Kubernetes object fwsim understands, checked, with the location of its start.
#[derive(Debug)]
pub enum K8sObject {
    Namespace {
        name: String,
        labels: Labels,
    },
    Pod {
        namespace: String,
        name: String,
        labels: Labels,
        node: Option<String>,
        ip: Option<IpAddr>,
        ports: Vec<ContainerPort>,
        host_network: bool,
    },
    Node {
        name: String,
        ip: IpAddr,
        pod_cidr: Option<Cidr>,
    },
    Service {
        namespace: String,
        name: String,
        cluster_ip: Option<IpAddr>,
        selector: Option<Labels>,
        ports: Vec<ServicePort>,
    },
    NetworkPolicy {
        namespace: String,
        name: String,
        pod_selector: Selector,
        ingress: Option<Vec<Rule>>,
        egress: Option<Vec<Rule>>,
        /// `policyTypes` was given (a non-empty list): the types are not the defaults.
        types_given: bool,
    },
}

/// What reading one node gave: objects (a List gives several), and warnings.
#[derive(Debug, Default)]
pub struct Read {
    pub objects: Vec<(super::yaml::Loc, K8sObject)>,
    pub warnings: Vec<(super::yaml::Loc, String)>,
}

/// Read one Kubernetes object (or a `kind: List` of them) from a node.
pub fn read_object(node: &Node, out: &mut Read) -> Result<(), Error> {
    let kind_node = node.get("kind").ok_or_else(|| {
        Error::new(
            node.loc,
            format!(
                "expected a Kubernetes object with `apiVersion` and `kind`, found {}",
                node.describe()
            ),
        )
    })?;
    let kind = kind_node
        .as_str()
        .ok_or_else(|| Error::new(kind_node.loc, "`kind` must be a string"))?;
    let loc = node.loc;
    match kind {
        "List" => {
            let list: ListYaml = from_node(node)?;
            check_api(&list.api_version, &["v1"])?;
            if let Some(items) = node.get("items").and_then(Node::as_seq) {
                for item in items {
                    read_object(item, out)?;
                }
            }
        }
        "Namespace" => {
            let o: Object<IgnoredAny, IgnoredAny> = from_node(node)?;
            check_api(&o.api_version, &["v1"])?;
            let name = required_name(&o.metadata, loc)?;
            out.objects.push((
                loc,
                K8sObject::Namespace {
                    name,
                    labels: o.metadata.labels.unwrap_or_default(),
                },
            ));
        }
        "Pod" => {
            let o: Object<PodSpecYaml, PodStatusYaml> = from_node(node)?;
            check_api(&o.api_version, &["v1"])?;
            let name = required_name(&o.metadata, loc)?;
            let spec = o.spec.unwrap_or_default();
            let mut ports = Vec::new();
            for c in &spec.containers {
                for p in c.ports.iter().flatten() {
                    ports.push(ContainerPort {
                        name: p.name.clone(),
                        port: port_number(&p.container_port)?,
                        protocol: k8s_protocol(p.protocol.as_ref())?,
                    });
                }
            }
            let ip = match o.status.and_then(|s| s.pod_ip) {
                Some(ip) => Some(parse_ip(&ip)?),
                None => None,
            };
            out.objects.push((
                loc,
                K8sObject::Pod {
                    namespace: namespace_of(&o.metadata),
                    name,
                    labels: o.metadata.labels.clone().unwrap_or_default(),
                    node: spec.node_name.map(|n| n.value),
                    ip,
                    ports,
                    host_network: spec.host_network.unwrap_or(false),
                },
            ));
        }
        "Node" => {
            let o: Object<NodeSpecYaml, NodeStatusYaml> = from_node(node)?;
            check_api(&o.api_version, &["v1"])?;
            let name = required_name(&o.metadata, loc)?;
            let status = o.status.unwrap_or_default();
            let addr = status
                .addresses
                .iter()
                .find(|a| a.kind == "InternalIP")
                .or_else(|| status.addresses.iter().find(|a| a.kind == "ExternalIP"))
                .ok_or_else(|| {
                    Error::new(
                        loc,
                        format!("node `{name}` has no InternalIP in status.addresses"),
                    )
                })?;
            let pod_cidr = match o.spec.and_then(|s| s.pod_cidr) {
                Some(c) => Some(parse_cidr(&c).map_err(|m| Error::new(c.loc, m))?),
                None => None,
            };
            out.objects.push((
                loc,
                K8sObject::Node {
                    name,
                    ip: parse_ip(&addr.address)?,
                    pod_cidr,
                },
            ));
        }
        "Service" => {
            let o: Object<ServiceSpecYaml, IgnoredAny> = from_node(node)?;
            check_api(&o.api_version, &["v1"])?;
            let name = required_name(&o.metadata, loc)?;
            let spec = o.spec.unwrap_or_default();
            let cluster_ip = match &spec.cluster_ip {
                Some(ip) if ip.value == "None" || ip.value.is_empty() => None,
                Some(ip) => Some(parse_ip(ip)?),
                None => None,
            };
            let mut ports = Vec::new();
            for p in &spec.ports {
                ports.push(service_port(
                    p.name.clone(),
                    &p.port,
                    p.target_port.as_ref(),
                    p.protocol.as_ref(),
                )?);
            }
            out.objects.push((
                loc,
                K8sObject::Service {
                    namespace: namespace_of(&o.metadata),
                    name,
                    cluster_ip,
                    selector: spec.selector,
                    ports,
                },
            ));
        }
        "NetworkPolicy" => {
            let p: NetworkPolicy = from_node(node)?;
            check_api(&p.api_version, &["networking.k8s.io/v1"])?;
            out.objects.push((loc, check_policy(p, loc)?));
        }
        other => out.warnings.push((
            kind_node.loc,
            format!(
                "kind `{other}` is not understood (Namespace, Pod, Node, Service, NetworkPolicy, List are): ignored"
            ),
        )),
    }
    Ok(())
}

fn check_api(api: &Located<String>, expected: &[&str]) -> Result<(), Error> {
    if expected.contains(&api.value.as_str()) {
        Ok(())
    } else {
        Err(Error::new(
            api.loc,
            format!(
                "unsupported apiVersion `{}`: expected `{}`",
                api.value,
                expected.join("` or `")
            ),
        ))
    }
}

fn required_name(meta: &ObjectMeta, loc: super::yaml::Loc) -> Result<String, Error> {
    match &meta.name {
        Some(n) if !n.value.is_empty() => Ok(n.value.clone()),
        _ => Err(Error::new(loc, "missing field `metadata.name`")),
    }
}

/// The object's namespace; `default` when absent, as kubectl applies it.
fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace
        .as_ref()
        .map(|n| n.value.clone())
        .unwrap_or_else(|| "default".into())
}

pub fn parse_ip(text: &Located<String>) -> Result<IpAddr, Error> {
    text.value.trim().parse().map_err(|_| {
        Error::new(
            text.loc,
            format!(
                "`{}` is not an IP address: expected such as 10.0.0.1 or 2001:db8::1",
                text.value
            ),
        )
    })
}

pub fn port_number(p: &Located<i64>) -> Result<u16, Error> {
    if (1..=65535).contains(&p.value) {
        Ok(p.value as u16)
    } else {
        Err(Error::new(
            p.loc,
            format!("port {} is out of range: expected 1 to 65535", p.value),
        ))
    }
}

/// A policy or container protocol as Kubernetes writes it: `TCP`, `UDP` or `SCTP` (default TCP).
pub fn k8s_protocol(p: Option<&Located<String>>) -> Result<Protocol, Error> {
    match p.map(|p| (p.value.as_str(), p.loc)) {
        None => Ok(Protocol::Tcp),
        Some(("TCP", _)) => Ok(Protocol::Tcp),
        Some(("UDP", _)) => Ok(Protocol::Udp),
        Some(("SCTP", _)) => Ok(Protocol::Sctp),
        Some((other, loc)) => Err(Error::new(
            loc,
            format!("unsupported protocol `{other}`: expected TCP, UDP or SCTP"),
        )),
    }
}

/// IANA_SVC_NAME, as Kubernetes validates port names: 1-15 characters of a-z, 0-9 and `-`,
/// at least one letter, no leading, trailing or double `-`.
pub fn valid_port_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

pub fn service_port(
    name: Option<String>,
    port: &Located<i64>,
    target: Option<&Located<IntOrString>>,
    protocol: Option<&Located<String>>,
) -> Result<ServicePort, Error> {
    let number = port_number(port)?;
    let target = match target {
        None => TargetPort::Number(number),
        Some(t) => match &t.value {
            IntOrString::Int(n) => TargetPort::Number(port_number(&Located {
                loc: t.loc,
                value: *n,
            })?),
            IntOrString::String(s) if valid_port_name(s) => TargetPort::Name(s.clone()),
            IntOrString::String(s) => {
                return Err(Error::new(
                    t.loc,
                    format!("targetPort `{s}` is neither a port number nor a valid port name"),
                ))
            }
        },
    };
    Ok(ServicePort {
        name,
        port: number,
        target,
        protocol: k8s_protocol(protocol)?,
    })
}

pub fn check_selector(s: &LabelSelector) -> Result<Selector, Error> {
    let mut out = Selector {
        match_labels: s
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        expressions: Vec::new(),
    };
    for r in s.match_expressions.iter().flatten() {
        let key = r.key.value.clone();
        let values = r.values.clone().unwrap_or_default();
        let req = match r.operator.value {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(Error::new(
                    r.operator.loc,
                    format!(
                        "operator {:?} needs a non-empty `values` list",
                        r.operator.value
                    ),
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(Error::new(
                    r.operator.loc,
                    format!("operator {:?} takes no `values`", r.operator.value),
                ))
            }
            Operator::In => Requirement::In(key, values),
            Operator::NotIn => Requirement::NotIn(key, values),
            Operator::Exists => Requirement::Exists(key),
            Operator::DoesNotExist => Requirement::DoesNotExist(key),
        };
        out.expressions.push(req);
    }
    Ok(out)
}

fn check_peer(p: &Located<PolicyPeer>) -> Result<Peer, Error> {
    let v = &p.value;
    match (&v.ip_block, &v.pod_selector, &v.namespace_selector) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(Error::new(
            p.loc,
            "a peer may not combine `ipBlock` with `podSelector` or `namespaceSelector`",
        )),
        (Some(b), None, None) => {
            let cidr = parse_cidr(&b.cidr).map_err(|m| Error::new(b.cidr.loc, m))?;
            let mut except = Vec::new();
            for e in b.except.iter().flatten() {
                let c = parse_cidr(e).map_err(|m| Error::new(e.loc, m))?;
                if !(cidr.contains(&c) && c.prefix_len() > cidr.prefix_len()) {
                    return Err(Error::new(
                        e.loc,
                        format!("except {c} must be strictly within the ipBlock's cidr {cidr}"),
                    ));
                }
                except.push(c);
            }
            Ok(Peer::IpBlock { cidr, except })
        }
        (None, None, None) => Err(Error::new(
            p.loc,
            "a peer needs `podSelector`, `namespaceSelector` or `ipBlock`",
        )),
        (None, pods, namespaces) => Ok(Peer::Pods {
            namespaces: namespaces.as_ref().map(check_selector).transpose()?,
            pods: pods.as_ref().map(check_selector).transpose()?,
        }),
    }
}

fn check_port(p: &Located<PolicyPort>) -> Result<PortMatch, Error> {
    let protocol = k8s_protocol(p.protocol.as_ref())?;
    let port = match &p.port {
        None => None,
        Some(l) => match &l.value {
            IntOrString::Int(n) => Some(PortRef::Number(port_number(&Located {
                loc: l.loc,
                value: *n,
            })?)),
            IntOrString::String(s) if valid_port_name(s) => Some(PortRef::Name(s.clone())),
            IntOrString::String(s) => {
                return Err(Error::new(
                    l.loc,
                    format!(
                        "port `{s}` is neither a number nor a valid port name (1-15 lowercase letters, digits and '-')"
                    ),
                ))
            }
        },
    };
    let end_port = match &p.end_port {
        None => None,
        Some(e) => {
            let end = port_number(e)?;
            match &port {
                Some(PortRef::Number(start)) if end >= *start => Some(end),
                Some(PortRef::Number(start)) => {
                    return Err(Error::new(
                        e.loc,
                        format!("endPort {end} is below port {start}"),
                    ))
                }
                _ => return Err(Error::new(e.loc, "endPort needs a numeric `port`")),
            }
        }
    };
    Ok(PortMatch {
        protocol,
        port,
        end_port,
    })
}

fn check_rule(
    peers: &Option<Vec<Located<PolicyPeer>>>,
    ports: &Option<Vec<Located<PolicyPort>>>,
) -> Result<Rule, Error> {
    // Absent or empty lists both mean "every".
    let peers = match peers {
        Some(list) if !list.is_empty() => {
            Some(list.iter().map(check_peer).collect::<Result<_, _>>()?)
        }
        _ => None,
    };
    let ports = match ports {
        Some(list) if !list.is_empty() => {
            Some(list.iter().map(check_port).collect::<Result<_, _>>()?)
        }
        _ => None,
    };
    Ok(Rule { peers, ports })
}

/// Validate a NetworkPolicy and apply the effective policyTypes.
fn check_policy(p: NetworkPolicy, loc: super::yaml::Loc) -> Result<K8sObject, Error> {
    let name = required_name(&p.metadata, loc)?;
    let spec = p.spec;
    let types_given = matches!(&spec.policy_types, Some(types) if !types.is_empty());
    let (has_ingress, has_egress) = match &spec.policy_types {
        Some(types) if !types.is_empty() => (
            types.iter().any(|t| t.value == PolicyType::Ingress),
            types.iter().any(|t| t.value == PolicyType::Egress),
        ),
        // Absent: Ingress always, Egress iff egress rules are present.
        _ => (true, spec.egress.is_some()),
    };
    let ingress = if has_ingress {
        Some(
            spec.ingress
                .iter()
                .flatten()
                .map(|r| check_rule(&r.from, &r.ports))
                .collect::<Result<Vec<_>, _>>()?,
        )
    } else {
        // Validate them anyway: a broken rule is an error even where it does not apply.
        for r in spec.ingress.iter().flatten() {
            check_rule(&r.from, &r.ports)?;
        }
        None
    };
    let egress = if has_egress {
        Some(
            spec.egress
                .iter()
                .flatten()
                .map(|r| check_rule(&r.to, &r.ports))
                .collect::<Result<Vec<_>, _>>()?,
        )
    } else {
        for r in spec.egress.iter().flatten() {
            check_rule(&r.to, &r.ports)?;
        }
        None
    };
    Ok(K8sObject::NetworkPolicy {
        namespace: namespace_of(&p.metadata),
        name,
        pod_selector: check_selector(&spec.pod_selector)?,
        ingress,
        egress,
        types_given,
    })
}

#[cfg(test)]
mod tests {
    use super::super::yaml::parse_documents;
    use super::*;

    fn read(text: &str) -> Result<Read, Error> {
        let mut out = Read::default();
        for d in parse_documents(text)? {
            read_object(&d, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn policy_types_defaults() {
        let r = read(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  egress: []\n",
        )
        .unwrap();
        match &r.objects[0].1 {
            K8sObject::NetworkPolicy {
                ingress, egress, ..
            } => {
                assert_eq!(ingress.as_deref(), Some(&[][..]));
                assert_eq!(egress.as_deref(), Some(&[][..]));
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn misspelled_field_is_located() {
        let e = read(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingres: []\n",
        )
        .unwrap_err();
        assert_eq!(e.loc.unwrap().line, 6);
        assert!(
            e.message.contains("unknown field `ingres`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn validation_errors() {
        let base = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n";
        for (body, needle) in [
            ("  ingress: [{ports: [{port: 0}]}]\n", "out of range"),
            ("  ingress: [{ports: [{port: 80, endPort: 79}]}]\n", "below port"),
            ("  ingress: [{ports: [{port: http, endPort: 90}]}]\n", "numeric"),
            ("  ingress: [{ports: [{protocol: tcp}]}]\n", "unsupported protocol"),
            ("  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/40}}]}]\n", "not a valid CIDR"),
            ("  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]\n", "strictly within"),
            ("  ingress: [{from: [{podSelector: {matchExpressions: [{key: a, operator: Equals}]}}]}]\n", "unknown variant `Equals`"),
            ("  ingress: [{from: [{podSelector: {matchExpressions: [{key: a, operator: In}]}}]}]\n", "non-empty"),
            ("  ingress: [{from: [{}]}]\n", "a peer needs"),
        ] {
            let e = read(&format!("{base}{body}")).unwrap_err();
            assert!(e.message.contains(needle), "{body}: {}", e.message);
            assert_eq!(e.loc.unwrap().line, 6, "{body}");
        }
    }
}
