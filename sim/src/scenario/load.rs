//! Loading one scenario document: its cluster (compact form and manifests), policies,
//! ruleset and expectations, checked, with every error located.

use super::dataplane::Dataplane;
use super::discover::{read_documents, read_text, ScenarioDoc};
use super::model::{Body, Expect, ExpectKind, MatrixCell, PacketExpect, PacketVerdict, Scenario};
use crate::cluster::{
    ClusterBuilder, ContainerPort, Endpoint, Flow, Overlay, PodSpec, ServiceSpec,
};
use crate::diag::Diagnostic;
use crate::reference::Verdict;
use crate::syntax::compact::CompactCluster;
use crate::syntax::endpoint::{check_port, parse_endpoint, parse_flow, EndpointRef};
use crate::syntax::k8s::{self, K8sObject};
use crate::syntax::matrix::parse_table;
use crate::syntax::scenario::{FlowMapYaml, PacketYaml, ScenarioYaml, API_VERSION};
use crate::syntax::yaml::{self, from_node, Located, Node, NodeKind, Style};
use crate::values::{parse_cidr, CtState, Hook, Loc, Packet, Protocol, Site};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The parts of a scenario needed to select it (name, tags), read before the full load.
#[derive(Clone, Debug)]
pub struct ScenarioHeader {
    pub name: String,
    pub site: Site,
    pub tags: Vec<String>,
}

struct Ctx<'a> {
    file: &'a Arc<PathBuf>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn site(&self, loc: Loc) -> Site {
        Site::new(self.file, loc)
    }
    fn err(&mut self, loc: Loc, msg: impl Into<String>) {
        self.errors.push(Diagnostic::error(self.site(loc), msg));
    }
    fn yaml_err(&mut self, e: yaml::Error) {
        self.errors.push(Diagnostic::error(
            self.site(e.loc.unwrap_or_default()),
            e.message,
        ));
    }
}

fn dir_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Read the header of a scenario document (name, tags), checking the document's fields.
pub fn header(doc: &ScenarioDoc) -> Result<(ScenarioHeader, ScenarioYaml), Diagnostic> {
    let y: ScenarioYaml = from_node(&doc.node).map_err(|e| {
        Diagnostic::error(Site::new(&doc.file, e.loc.unwrap_or_default()), e.message)
    })?;
    if y.api_version.value != API_VERSION {
        return Err(Diagnostic::error(
            Site::new(&doc.file, y.api_version.loc),
            format!(
                "unsupported apiVersion `{}` for kind Scenario: expected `{API_VERSION}`",
                y.api_version.value
            ),
        ));
    }
    if y.name.value.trim().is_empty() {
        return Err(Diagnostic::error(
            Site::new(&doc.file, y.name.loc),
            "`name` must not be empty",
        ));
    }
    Ok((
        ScenarioHeader {
            name: y.name.value.clone(),
            site: Site::new(&doc.file, doc.node.loc),
            tags: y.tags.clone().unwrap_or_default(),
        },
        y,
    ))
}

/// Load and check one scenario document.
pub fn load(doc: &ScenarioDoc) -> Result<Scenario, Vec<Diagnostic>> {
    let (head, y) = header(doc).map_err(|d| vec![d])?;
    let mut cx = Ctx {
        file: &doc.file,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let node = &doc.node;
    let expect_nodes: Vec<&Node> = node
        .get("expect")
        .and_then(Node::as_seq)
        .map(|s| s.iter().collect())
        .unwrap_or_default();

    let body = if let Some(ruleset) = &y.ruleset {
        for key in ["cluster", "manifests", "policies", "hosts", "nodes"] {
            if let Some((k, _)) = node.entry(key) {
                cx.err(
                    k.loc,
                    format!("`{key}` cannot be combined with `ruleset` (single-host mode)"),
                );
            }
        }
        load_host(&mut cx, ruleset, &y, &expect_nodes)
    } else {
        if let Some((k, _)) = node.entry("ipsets") {
            cx.err(
                k.loc,
                "`ipsets` belongs to a single-host scenario: expected `ruleset:` beside it",
            );
        }
        load_cluster_scenario(&mut cx, node, &y, &expect_nodes)
    };

    let default = match &body {
        Some(Body::Host { .. }) => Dataplane::Netfilter,
        _ => Dataplane::Reference,
    };
    let mut dataplanes = Vec::new();
    for d in y.dataplanes.iter().flatten() {
        match d.value.parse::<Dataplane>() {
            Ok(dp) if !dataplanes.contains(&dp) => dataplanes.push(dp),
            Ok(_) => {}
            Err(m) => cx.err(d.loc, m),
        }
    }
    if dataplanes.is_empty() {
        dataplanes.push(default);
    }
    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    Ok(Scenario {
        name: head.name,
        site: head.site,
        description: y.description,
        tags: head.tags,
        dataplanes,
        body: body.expect("a body when there is no error"),
        warnings: cx.warnings,
    })
}

fn load_cluster_scenario(
    cx: &mut Ctx,
    node: &Node,
    y: &ScenarioYaml,
    expect_nodes: &[&Node],
) -> Option<Body> {
    let mut b = ClusterBuilder::new();
    let base = dir_of(cx.file);
    if let Some(c) = node.get("cluster") {
        match &c.kind {
            NodeKind::Scalar { text, .. } if !c.is_null() => {
                let path = Arc::new(base.join(text));
                match read_documents(&path) {
                    Ok(docs) if docs.len() == 1 => {
                        let mut sub = Ctx {
                            file: &path,
                            errors: Vec::new(),
                            warnings: Vec::new(),
                        };
                        compact(&mut sub, &docs[0], &mut b);
                        cx.errors.append(&mut sub.errors);
                    }
                    Ok(docs) => cx.err(
                        c.loc,
                        format!(
                            "cluster file {} has {} YAML documents: expected exactly one mapping",
                            path.display(),
                            docs.len()
                        ),
                    ),
                    Err(d) => {
                        cx.err(c.loc, format!("cannot load cluster file `{text}`"));
                        cx.errors.push(d);
                    }
                }
            }
            _ => compact(cx, c, &mut b),
        }
    }
    for key in ["manifests", "policies"] {
        let Some(list) = node.get(key) else { continue };
        let Some(items) = list.as_seq() else {
            if !list.is_null() {
                cx.err(
                    list.loc,
                    format!("`{key}` must be a list of file paths or inline objects"),
                );
            }
            continue;
        };
        for item in items {
            match &item.kind {
                NodeKind::Scalar { text, .. } => {
                    let path = Arc::new(base.join(text));
                    match read_documents(&path) {
                        Ok(docs) => {
                            let mut sub = Ctx {
                                file: &path,
                                errors: Vec::new(),
                                warnings: Vec::new(),
                            };
                            for d in &docs {
                                objects(&mut sub, d, &mut b);
                            }
                            cx.errors.append(&mut sub.errors);
                            cx.warnings.append(&mut sub.warnings);
                        }
                        Err(d) => {
                            cx.err(item.loc, format!("cannot load manifest file `{text}`"));
                            cx.errors.push(d);
                        }
                    }
                }
                _ => objects(cx, item, &mut b),
            }
        }
    }
    let mut hosts = Vec::new();
    for (n, path) in y.hosts.iter().flatten() {
        let p = base.join(&path.value);
        match read_text(&p) {
            Err(m) => cx.err(path.loc, format!("host firewall `{}`: {m}", path.value)),
            Ok(text) => {
                // Checked now, so that a broken host firewall is an input error (exit 2)
                // located in its own file, not a failure of each dataplane.
                let pfile = Arc::new(p.clone());
                match crate::netfilter::detect(&text) {
                    Some(crate::netfilter::Format::IptablesSave | crate::netfilter::Format::NftText) => {
                        if let Err(e) = crate::netfilter::read_ruleset(&text) {
                            cx.errors.push(Diagnostic::error(Site::new(&pfile, e.loc), e.message));
                        }
                    }
                    _ => cx.err(
                        path.loc,
                        format!(
                            "host firewall `{}`: expected iptables-save output (`*filter` ...) or nft text (`table ...`)",
                            path.value
                        ),
                    ),
                }
                hosts.push((n.value.clone(), n.loc, p, text));
            }
        }
    }
    if !cx.errors.is_empty() {
        return None;
    }
    let cluster = match b.build() {
        Ok(c) => c,
        Err(errs) => {
            for e in errs {
                cx.errors.push(Diagnostic::error(e.site, e.message));
            }
            return None;
        }
    };
    for (n, loc, _, _) in &hosts {
        if n != "*" && cluster.node(n).is_none() {
            cx.err(
                *loc,
                format!("`hosts` names node `{n}`, which is not declared"),
            );
        }
    }
    let snapshots = match node.get("nodes") {
        Some(n) if !n.is_null() => load_snapshots(cx, n, &base, &cluster),
        _ => Vec::new(),
    };
    let mut expects = Vec::new();
    for (i, e) in y.expect.iter().flatten().enumerate() {
        if let Some(x) = cluster_expect(cx, &cluster, e, expect_nodes[i]) {
            expects.push(x);
        }
    }
    Some(Body::Cluster {
        cluster: Box::new(cluster),
        hosts: hosts
            .into_iter()
            .map(|(node, _, p, text)| crate::render::HostFirewall {
                node,
                origin: p.display().to_string(),
                text,
            })
            .collect(),
        snapshots,
        expects,
    })
}

/// `nodes:`: a mapping node name → snapshot directory, or one directory whose
/// subdirectories are snapshots named after their nodes (node.yaml's `name`, else the
/// directory's). Per node of the cluster, its snapshot (None: not given).
fn load_snapshots(
    cx: &mut Ctx,
    value: &Node,
    base: &Path,
    cluster: &crate::cluster::Cluster,
) -> Vec<Option<crate::snapshot::Snapshot>> {
    let mut out: Vec<Option<crate::snapshot::Snapshot>> = vec![None; cluster.nodes.len()];
    // (node name as given, where it is written, the directory)
    let mut given: Vec<(Option<String>, Loc, PathBuf)> = Vec::new();
    match &value.kind {
        NodeKind::Scalar { text, .. } => {
            let dir = base.join(text);
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    cx.err(
                        value.loc,
                        format!(
                            "`nodes`: cannot read the directory of node snapshots {}: {e}",
                            dir.display()
                        ),
                    );
                    return out;
                }
            };
            let mut dirs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            if dirs.is_empty() {
                cx.err(
                    value.loc,
                    format!(
                        "`nodes`: {} holds no snapshot: expected one directory per node (written by `fwsim collect --out`)",
                        dir.display()
                    ),
                );
            }
            for d in dirs {
                given.push((None, value.loc, d));
            }
        }
        NodeKind::Map(entries) => {
            for (k, v) in entries {
                match (k.as_str(), v.as_str()) {
                    (Some(name), Some(path)) if !v.is_null() => {
                        given.push((Some(name.to_string()), k.loc, base.join(path)))
                    }
                    _ => cx.err(
                        v.loc,
                        "`nodes`: expected `node-name: path/to/snapshot-directory`",
                    ),
                }
            }
        }
        NodeKind::Seq(_) => cx.err(
            value.loc,
            "`nodes` must be a mapping (node name: snapshot directory) or one directory of snapshots",
        ),
    }
    let mut taken: Vec<Option<(PathBuf, Loc)>> = vec![None; cluster.nodes.len()];
    for (name, loc, dir) in given {
        let snap = match crate::snapshot::read(&dir) {
            Ok(s) => s,
            Err(d) => {
                cx.err(
                    loc,
                    format!("`nodes`: cannot read the snapshot {}", dir.display()),
                );
                cx.errors.push(d);
                continue;
            }
        };
        let own = snap.name();
        let name = match name {
            Some(n) => {
                if snap.info.name.as_deref().is_some_and(|o| o != n) {
                    cx.err(
                        loc,
                        format!(
                            "`nodes`: the snapshot {} is node `{own}`'s (its node.yaml says so), not `{n}`'s",
                            dir.display()
                        ),
                    );
                    continue;
                }
                n
            }
            None => own,
        };
        let Some(id) = cluster.node(&name) else {
            cx.err(
                loc,
                format!(
                    "`nodes`: a snapshot for node `{name}` ({}), which the cluster does not have: expected one of {}",
                    dir.display(),
                    cluster
                        .nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            continue;
        };
        if let Some((first, _)) = &taken[id as usize] {
            cx.err(
                loc,
                format!(
                    "`nodes`: two snapshots for node `{name}`: {} and {}",
                    first.display(),
                    dir.display()
                ),
            );
            continue;
        }
        taken[id as usize] = Some((dir, loc));
        out[id as usize] = Some(snap);
    }
    out
}

/// Feed a compact `cluster:` mapping to the builder.
fn compact(cx: &mut Ctx, node: &Node, b: &mut ClusterBuilder) {
    let c: CompactCluster = match from_node(node) {
        Ok(c) => c,
        Err(e) => return cx.yaml_err(e),
    };
    if let Some(o) = &c.overlay {
        match o.value.as_str() {
            "ipip" => b.overlay(Overlay::Ipip),
            "vxlan" => b.overlay(Overlay::Vxlan),
            "none" => b.overlay(Overlay::None),
            other => cx.err(
                o.loc,
                format!("unknown overlay `{other}`: expected ipip, vxlan or none"),
            ),
        }
    }
    for n in c.nodes.iter().flatten() {
        let ip = match k8s::parse_ip(&n.ip) {
            Ok(ip) => ip,
            Err(e) => {
                cx.yaml_err(e);
                continue;
            }
        };
        let cidr = match &n.pod_cidr {
            Some(c) => match parse_cidr(c) {
                Ok(c) => Some(c),
                Err(m) => {
                    cx.err(c.loc, m);
                    continue;
                }
            },
            None => None,
        };
        b.node(n.name.clone(), ip, cidr, cx.site(n.loc));
    }
    for (name, labels) in c.namespaces.iter().flatten() {
        b.namespace(
            name.value.clone(),
            labels.clone().unwrap_or_default(),
            cx.site(name.loc),
        );
    }
    for p in c.pods.iter().flatten() {
        let Some((ns, name)) = split_qualified(cx, &p.name, "pod") else {
            continue;
        };
        let Ok(ip) = optional_ip(cx, &p.ip) else {
            continue;
        };
        let mut ports = Vec::new();
        for port in p.ports.iter().flatten() {
            let number = match k8s::port_number(&port.port) {
                Ok(n) => n,
                Err(e) => {
                    cx.yaml_err(e);
                    continue;
                }
            };
            let protocol = match compact_protocol(cx, port.protocol.as_ref()) {
                Some(p) => p,
                None => continue,
            };
            if let Some(n) = &port.name {
                if !k8s::valid_port_name(n) {
                    cx.err(
                        port.loc,
                        format!("port name `{n}` is not valid: 1-15 lowercase letters, digits and '-', with a letter"),
                    );
                }
            }
            ports.push(ContainerPort {
                name: port.name.clone(),
                port: number,
                protocol,
            });
        }
        b.pod(PodSpec {
            namespace: ns,
            name,
            labels: p.labels.clone().unwrap_or_default(),
            node: p.node.clone(),
            ip,
            ports,
            site: cx.site(p.name.loc),
        });
    }
    for s in c.services.iter().flatten() {
        let Some((ns, name)) = split_qualified(cx, &s.name, "service") else {
            continue;
        };
        let Ok(cluster_ip) = optional_ip(cx, &s.cluster_ip) else {
            continue;
        };
        let mut ports = Vec::new();
        for p in &s.ports {
            match k8s::service_port(
                p.name.clone(),
                &p.port,
                p.target_port.as_ref(),
                p.protocol
                    .as_ref()
                    .map(|l| Located {
                        loc: l.loc,
                        value: l.value.to_ascii_uppercase(),
                    })
                    .as_ref(),
            ) {
                Ok(sp) => ports.push(sp),
                Err(e) => cx.yaml_err(e),
            }
        }
        b.service(ServiceSpec {
            namespace: ns,
            name,
            cluster_ip,
            selector: s.selector.clone(),
            ports,
            site: cx.site(s.name.loc),
        });
    }
    for (name, ip) in c.externals.iter().flatten() {
        match k8s::parse_ip(ip) {
            Ok(addr) => b.external(name.value.clone(), addr, cx.site(name.loc)),
            Err(e) => cx.yaml_err(e),
        }
    }
}

/// An optional address; an error is recorded and `Err` returned when it does not parse.
fn optional_ip(cx: &mut Ctx, ip: &Option<Located<String>>) -> Result<Option<IpAddr>, ()> {
    match ip {
        None => Ok(None),
        Some(ip) => k8s::parse_ip(ip).map(Some).map_err(|e| cx.yaml_err(e)),
    }
}

fn compact_protocol(cx: &mut Ctx, p: Option<&Located<String>>) -> Option<Protocol> {
    match p {
        None => Some(Protocol::Tcp),
        Some(l) => match l.value.parse::<Protocol>() {
            Ok(p) if p.has_ports() => Some(p),
            _ => {
                cx.err(
                    l.loc,
                    format!(
                        "unsupported protocol `{}`: expected TCP, UDP or SCTP",
                        l.value
                    ),
                );
                None
            }
        },
    }
}

fn split_qualified(cx: &mut Ctx, name: &Located<String>, what: &str) -> Option<(String, String)> {
    match name.value.split_once('/') {
        Some((ns, n)) if !ns.is_empty() && !n.is_empty() && !n.contains('/') => {
            Some((ns.to_string(), n.to_string()))
        }
        _ => {
            cx.err(
                name.loc,
                format!("{what} name `{}` must be `namespace/name`", name.value),
            );
            None
        }
    }
}

/// Feed the Kubernetes objects of one node (an object or a List) to the builder.
fn objects(cx: &mut Ctx, node: &Node, b: &mut ClusterBuilder) {
    let mut read = k8s::Read::default();
    if let Err(e) = k8s::read_object(node, &mut read) {
        return cx.yaml_err(e);
    }
    for (loc, w) in read.warnings {
        cx.warnings.push(Diagnostic::warning(cx.site(loc), w));
    }
    for (loc, o) in read.objects {
        let site = cx.site(loc);
        match o {
            K8sObject::Namespace { name, labels } => b.namespace(name, labels, site),
            K8sObject::Node { name, ip, pod_cidr } => b.node(name, ip, pod_cidr, site),
            K8sObject::Pod {
                host_network: true,
                namespace,
                name,
                ..
            } => cx.warnings.push(Diagnostic::warning(
                site,
                format!(
                    "pod `{namespace}/{name}` uses the host network: NetworkPolicy does not apply to it; it is left out (use node:NAME endpoints for host traffic)"
                ),
            )),
            K8sObject::Pod {
                namespace,
                name,
                labels,
                node,
                ip,
                ports,
                ..
            } => b.pod(PodSpec {
                namespace,
                name,
                labels,
                node,
                ip,
                ports,
                site,
            }),
            K8sObject::Service {
                namespace,
                name,
                cluster_ip,
                selector,
                ports,
            } => b.service(ServiceSpec {
                namespace,
                name,
                cluster_ip,
                selector,
                ports,
                site,
            }),
            K8sObject::NetworkPolicy {
                namespace,
                name,
                pod_selector,
                ingress,
                egress,
                types_given,
            } => b.policy(
                namespace,
                name,
                pod_selector,
                ingress,
                egress,
                types_given,
                site,
            ),
        }
    }
}

fn resolve(cluster: &crate::cluster::Cluster, e: &EndpointRef) -> Result<Endpoint, String> {
    match e {
        EndpointRef::Pod { namespace, name } => cluster
            .pod(&format!("{namespace}/{name}"))
            .map(Endpoint::Pod)
            .ok_or_else(|| format!("no pod `{namespace}/{name}` in the cluster")),
        EndpointRef::Node(n) => cluster
            .node(n)
            .map(Endpoint::Node)
            .ok_or_else(|| format!("no node `{n}` in the cluster")),
        EndpointRef::Service { namespace, name } => cluster
            .service(&format!("{namespace}/{name}"))
            .map(Endpoint::Service)
            .ok_or_else(|| format!("no service `{namespace}/{name}` in the cluster")),
        EndpointRef::External(n) => cluster
            .externals
            .get(n)
            .map(|ip| Endpoint::External(*ip, Some(n.clone())))
            .ok_or_else(|| format!("no external name `{n}` under `cluster.externals`")),
        EndpointRef::Addr(ip) => Ok(Endpoint::from_ip(cluster, *ip)),
    }
}

fn parse_verdict(cx: &mut Ctx, v: &Located<String>) -> Option<Verdict> {
    match v.value.as_str() {
        "allow" => Some(Verdict::Allow),
        "deny" => Some(Verdict::Deny),
        other => {
            cx.err(v.loc, format!("verdict `{other}`: expected allow or deny"));
            None
        }
    }
}

fn parse_except<T>(
    cx: &mut Ctx,
    except: &Option<indexmap::IndexMap<Located<String>, Located<String>>>,
    mut verdict: impl FnMut(&mut Ctx, &Located<String>) -> Option<T>,
) -> Vec<(Dataplane, T)> {
    let mut out = Vec::new();
    for (d, v) in except.iter().flatten() {
        match d.value.parse::<Dataplane>() {
            Ok(dp) => {
                if let Some(v) = verdict(cx, v) {
                    out.push((dp, v));
                }
            }
            Err(m) => cx.err(d.loc, m),
        }
    }
    out
}

/// The location of byte `offset` of a scalar that starts at `loc` (exact for plain and
/// quoted one-line scalars; the scalar's start otherwise).
fn offset_loc(node: &Node, offset: usize) -> Loc {
    match &node.kind {
        NodeKind::Scalar { text, style } if !text.contains('\n') => Loc {
            line: node.loc.line,
            col: node.loc.col + offset as u32 + u32::from(*style == Style::Quoted),
        },
        _ => node.loc,
    }
}

fn cluster_expect(
    cx: &mut Ctx,
    cluster: &crate::cluster::Cluster,
    e: &Located<crate::syntax::scenario::ExpectYaml>,
    node: &Node,
) -> Option<Expect> {
    let v = &e.value;
    if let Some(p) = &v.packet {
        cx.err(
            p.loc,
            "`packet` expectations need a single-host scenario (`ruleset:`); a cluster scenario takes `flow` or `matrix`",
        );
        return None;
    }
    let except = parse_except(cx, &v.except, parse_verdict);
    match (node.get("flow"), &v.matrix) {
        (Some(_), Some(m)) => {
            cx.err(
                m.loc,
                "an expectation has either `flow` or `matrix`, not both",
            );
            None
        }
        (Some(f), None) => {
            let verdict = match &v.verdict {
                Some(vd) => parse_verdict(cx, vd),
                None => {
                    cx.err(
                        e.loc,
                        "a `flow` expectation needs `verdict: allow` or `verdict: deny`",
                    );
                    None
                }
            }?;
            let flow = flow_of(cx, cluster, f)?;
            Some(Expect {
                site: cx.site(f.loc),
                kind: ExpectKind::Flow { flow, verdict },
                except,
            })
        }
        (None, Some(m)) => {
            if let Some(vd) = &v.verdict {
                cx.err(
                    vd.loc,
                    "a `matrix` expectation takes no `verdict`: its cells are the verdicts",
                );
                return None;
            }
            matrix_of(cx, cluster, m, node.get("matrix").expect("matrix present")).map(|kind| {
                Expect {
                    site: cx.site(m.loc),
                    kind,
                    except,
                }
            })
        }
        (None, None) => {
            cx.err(
                e.loc,
                "an expectation needs `flow` (with `verdict`) or `matrix`",
            );
            None
        }
    }
}

fn flow_of(cx: &mut Ctx, cluster: &crate::cluster::Cluster, f: &Node) -> Option<Flow> {
    let (from, to, port, protocol, from_loc, to_loc) = match &f.kind {
        NodeKind::Scalar { text, .. } => match parse_flow(text) {
            Ok(r) => {
                let arrow = text.find("->").unwrap_or(0);
                let to_off =
                    arrow + 2 + (text[arrow + 2..].len() - text[arrow + 2..].trim_start().len());
                (
                    r.from,
                    r.to,
                    r.port,
                    r.protocol,
                    f.loc,
                    offset_loc(f, to_off),
                )
            }
            Err(te) => {
                cx.err(offset_loc(f, te.offset), te.message);
                return None;
            }
        },
        NodeKind::Map(_) => {
            let m: FlowMapYaml = match from_node(f) {
                Ok(m) => m,
                Err(e) => {
                    cx.yaml_err(e);
                    return None;
                }
            };
            let from = parse_endpoint(&m.from)
                .map_err(|msg| cx.err(m.from.loc, msg))
                .ok()?;
            let to = parse_endpoint(&m.to)
                .map_err(|msg| cx.err(m.to.loc, msg))
                .ok()?;
            let protocol = match &m.protocol {
                Some(p) => p
                    .value
                    .parse::<Protocol>()
                    .map_err(|msg| cx.err(p.loc, msg))
                    .ok()?,
                None => Protocol::Tcp,
            };
            let port = match &m.port {
                Some(p) => Some(k8s::port_number(p).map_err(|e| cx.yaml_err(e)).ok()?),
                None => None,
            };
            if let Err(msg) = check_port(port, protocol) {
                cx.err(f.loc, msg);
                return None;
            }
            (from, to, port, protocol, m.from.loc, m.to.loc)
        }
        NodeKind::Seq(_) => {
            cx.err(
                f.loc,
                "`flow` must be `FROM -> TO:PORT/PROTOCOL` or a mapping {from, to, port, protocol}",
            );
            return None;
        }
    };
    let from = resolve(cluster, &from)
        .map_err(|m| cx.err(from_loc, m))
        .ok()?;
    let to = resolve(cluster, &to).map_err(|m| cx.err(to_loc, m)).ok()?;
    if let Endpoint::Service(_) = from {
        cx.err(
            from_loc,
            "a service cannot be the source of a flow: name a pod, node or address",
        );
        return None;
    }
    Some(Flow {
        from,
        to,
        port,
        protocol,
    })
}

fn matrix_of(
    cx: &mut Ctx,
    cluster: &crate::cluster::Cluster,
    m: &Located<crate::syntax::scenario::MatrixYaml>,
    node: &Node,
) -> Option<ExpectKind> {
    let v = &m.value;
    let protocol = match &v.protocol {
        Some(p) => p
            .value
            .parse::<Protocol>()
            .map_err(|msg| cx.err(p.loc, msg))
            .ok()?,
        None => Protocol::Tcp,
    };
    let port = match &v.port {
        Some(p) => Some(k8s::port_number(p).map_err(|e| cx.yaml_err(e)).ok()?),
        None => None,
    };
    if let Err(msg) = check_port(port, protocol) {
        cx.err(m.loc, msg.replace("flow", "matrix"));
        return None;
    }
    let table_node = node.get("table").expect("table present");
    // Where line `i`, column `c` of the table text stands in the file.
    let text = read_text(cx.file).unwrap_or_default();
    let at = table_position(&text, table_node);
    let table = match parse_table(&v.table) {
        Ok(t) => t,
        Err(e) => {
            cx.err(at(e.line, e.col), e.message);
            return None;
        }
    };
    let endpoint = |cx: &mut Ctx, w: &crate::syntax::matrix::Word| -> Option<Endpoint> {
        let r = parse_endpoint(&w.text).and_then(|e| resolve(cluster, &e));
        match r {
            Ok(e) => Some(e),
            Err(msg) => {
                cx.err(at(w.line, w.col), msg);
                None
            }
        }
    };
    let cols: Vec<Option<Endpoint>> = table.columns.iter().map(|w| endpoint(cx, w)).collect();
    let mut rows = Vec::new();
    let mut cells = Vec::new();
    for (r, (source, row)) in table.rows.iter().enumerate() {
        let src = endpoint(cx, source);
        if let Some(Endpoint::Service(_)) = src {
            cx.err(
                at(source.line, source.col),
                "a service cannot be the source of a flow",
            );
        }
        rows.push(src);
        for (c, (cell, w)) in row.iter().enumerate() {
            cells.push(MatrixCell {
                row: r,
                col: c,
                expected: *cell,
                site: cx.site(at(w.line, w.col)),
            });
        }
    }
    let rows: Option<Vec<Endpoint>> = rows
        .into_iter()
        .map(|e| e.filter(|e| !matches!(e, Endpoint::Service(_))))
        .collect();
    let cols: Option<Vec<Endpoint>> = cols.into_iter().collect();
    Some(ExpectKind::Matrix {
        port,
        protocol,
        rows: rows?,
        cols: cols?,
        cells,
    })
}

/// Map (line, column) in a table scalar's text to a file location. Exact for literal and
/// folded blocks (`table: |`); for other styles, the scalar's start.
fn table_position(source: &str, node: &Node) -> impl Fn(usize, usize) -> Loc {
    let block = matches!(
        &node.kind,
        NodeKind::Scalar {
            style: Style::Block,
            ..
        }
    );
    let start = node.loc;
    let before = block_offset(source, start);
    let lines: Vec<&str> = source.lines().collect();
    // The content's indentation is that of its first non-empty line.
    let indent = lines
        .iter()
        .skip(before as usize)
        .find(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .unwrap_or(0);
    move |line, col| {
        if block {
            Loc {
                line: before + 1 + line as u32,
                col: (indent + col + 1) as u32,
            }
        } else {
            start
        }
    }
}

/// For a block scalar (`|` or `>`) starting at `loc`: how many file lines come before its
/// content (the parser may report the indicator's position or the content's).
fn block_offset(source: &str, loc: Loc) -> u32 {
    let at_indicator = source
        .lines()
        .nth(loc.line.saturating_sub(1) as usize)
        .and_then(|l| l.get(loc.col.saturating_sub(1) as usize..))
        .is_some_and(|rest| rest.starts_with('|') || rest.starts_with('>'));
    if at_indicator {
        loc.line
    } else {
        loc.line.saturating_sub(1)
    }
}

/// A host text given inline (a block scalar) or as a path relative to the scenario: the
/// text, the file its locations refer to, and the line and column offsets of inline text.
fn host_text(
    cx: &mut Ctx,
    value: &Located<String>,
    what: &str,
) -> Option<(String, Arc<PathBuf>, u32, u32)> {
    if value.value.contains('\n') {
        let source = read_text(cx.file).unwrap_or_default();
        let before = block_offset(&source, value.loc);
        let indent = source
            .lines()
            .skip(before as usize)
            .find(|l| !l.trim().is_empty())
            .map(|l| (l.len() - l.trim_start_matches(' ').len()) as u32)
            .unwrap_or(0);
        Some((value.value.clone(), cx.file.clone(), before, indent))
    } else {
        let path = dir_of(cx.file).join(&value.value);
        match read_text(&path) {
            Ok(t) => Some((t, Arc::new(path), 0, 0)),
            Err(m) => {
                cx.err(value.loc, format!("{what} `{}`: {m}", value.value));
                None
            }
        }
    }
}

fn load_host(
    cx: &mut Ctx,
    ruleset: &Located<String>,
    y: &ScenarioYaml,
    expect_nodes: &[&Node],
) -> Option<Body> {
    let (text, file, first_line, indent) = host_text(cx, ruleset, "ruleset")?;
    let at = |l: Loc| Loc {
        // Inline texts: lines count from the line after `ruleset: |`.
        line: l.line + first_line,
        col: l.col + indent,
    };
    let mut sets_text: Option<String> = None;
    let sets = match &y.ipsets {
        None => None,
        Some(located) => {
            let (stext, sfile, sfirst, sindent) = host_text(cx, located, "ipsets")?;
            sets_text = Some(stext.clone());
            match crate::netfilter::read_ipsets(&stext) {
                Ok(s) => Some(s),
                Err(e) => {
                    let loc = Loc {
                        line: e.loc.line + sfirst,
                        col: e.loc.col + sindent,
                    };
                    cx.errors.push(Diagnostic::error(
                        Site::new(&sfile, loc),
                        format!("{} (ipset save)", e.message),
                    ));
                    return None;
                }
            }
        }
    };
    let ir = match crate::netfilter::read_ruleset(&text) {
        Ok(mut ir) => {
            if let Some(sets) = sets {
                if let Err(e) = crate::netfilter::attach_ipsets(&mut ir, sets) {
                    cx.errors
                        .push(Diagnostic::error(Site::new(&file, at(e.loc)), e.message));
                    return None;
                }
            }
            Ok(ir)
        }
        Err(e) if e.message.contains("not read yet") => Err(e.message),
        Err(e) => {
            cx.errors
                .push(Diagnostic::error(Site::new(&file, at(e.loc)), e.message));
            return None;
        }
    };
    let mut packets = Vec::new();
    let mut sequences = 0usize;
    for (i, e) in y.expect.iter().flatten().enumerate() {
        let v = &e.value;
        if expect_nodes[i].get("flow").is_some() || v.matrix.is_some() {
            cx.err(
                e.loc,
                "a single-host scenario (`ruleset:`) takes `packet` expectations, not `flow` or `matrix`",
            );
            continue;
        }
        if let Some(steps) = &v.sequence {
            if v.packet.is_some() || v.verdict.is_some() {
                cx.err(
                    e.loc,
                    "`sequence` takes its packets and verdicts as a list, not beside it",
                );
                continue;
            }
            for step in steps {
                if step.value.sequence.is_some() || step.value.flow.is_some() {
                    cx.err(step.loc, "a sequence step is a `packet` with its `verdict`");
                    continue;
                }
                if let Some(c) = step
                    .value
                    .packet
                    .as_ref()
                    .and_then(|p| p.value.ctstate.as_ref())
                {
                    cx.err(
                        c.loc,
                        "`ctstate` in a sequence: the connections so far decide it; leave it out",
                    );
                    continue;
                }
                if let Some(mut pe) = packet_expect(cx, &step.value, step.loc) {
                    pe.seq = Some(sequences);
                    packets.push(pe);
                }
            }
            sequences += 1;
            continue;
        }
        if let Some(pe) = packet_expect(cx, v, e.loc) {
            packets.push(pe);
        }
    }
    let host = y.host.as_ref().and_then(|h| host_of(cx, h));
    // The kernel dataplane loads the ipsets first, then the rules: a dump at the top of
    // the ruleset file is split off as `read_ruleset` does.
    let (ipsets_text, ruleset_text) = match (sets_text, crate::netfilter::split_ipsets(&text)) {
        (Some(s), _) => (Some(s), text),
        (None, Some((sets, rules))) => (Some(sets), rules),
        (None, None) => (None, text),
    };
    Some(Body::Host {
        ruleset: ir,
        ruleset_text,
        ipsets_text,
        host: host.map(Box::new),
        ruleset_site: cx.site(ruleset.loc),
        packets,
    })
}

/// One `packet` expectation (with `verdict` and `except`).
fn packet_expect(
    cx: &mut Ctx,
    v: &crate::syntax::scenario::ExpectYaml,
    loc: Loc,
) -> Option<PacketExpect> {
    let Some(p) = &v.packet else {
        cx.err(loc, "an expectation needs `packet` (with `verdict`)");
        return None;
    };
    let packet_verdict = |cx: &mut Ctx, vd: &Located<String>| match vd.value.as_str() {
        "accept" => Some(PacketVerdict::Accept),
        "drop" => Some(PacketVerdict::Drop),
        "reject" => Some(PacketVerdict::Reject),
        other => {
            cx.err(
                vd.loc,
                format!("verdict `{other}`: expected accept, drop or reject"),
            );
            None
        }
    };
    let except = parse_except(cx, &v.except, packet_verdict);
    let verdict = match &v.verdict {
        Some(vd) => packet_verdict(cx, vd),
        None => {
            cx.err(
                loc,
                "a `packet` expectation needs `verdict: accept|drop|reject`",
            );
            None
        }
    };
    let packet = packet_of(cx, p)?;
    Some(PacketExpect {
        site: cx.site(p.loc),
        seq: None,
        packet,
        verdict: verdict?,
        except,
    })
}

/// `host:`: addresses (with optional prefix lengths) and routes.
fn host_of(
    cx: &mut Ctx,
    h: &Located<crate::syntax::scenario::HostYaml>,
) -> Option<crate::netfilter::interp::Host> {
    let mut host = crate::netfilter::interp::Host::default();
    let mut ok = true;
    for a in &h.value.addresses {
        let (addr, len) = match a.value.split_once('/') {
            Some((x, l)) => (x, Some(l)),
            None => (a.value.as_str(), None),
        };
        let Ok(ip) = addr.trim().parse::<std::net::IpAddr>() else {
            cx.err(
                a.loc,
                format!(
                    "host address `{}`: expected an IP address, optionally with /prefix",
                    a.value
                ),
            );
            ok = false;
            continue;
        };
        host.addresses.push(ip);
        if let Some(l) = len {
            match l
                .parse::<u8>()
                .ok()
                .and_then(|l| crate::values::Cidr::new(ip, l).ok())
            {
                Some(net) => host.networks.push(net.trunc()),
                None => {
                    cx.err(
                        a.loc,
                        format!("host address `{}`: bad prefix length", a.value),
                    );
                    ok = false;
                }
            }
        }
    }
    for r in h.value.routes.iter().flatten() {
        match crate::values::parse_cidr(&r.value.to.value) {
            Ok(net) => host.routes.push((net, r.value.dev.clone())),
            Err(m) => {
                cx.err(r.value.to.loc, format!("route `to`: {m}"));
                ok = false;
            }
        }
    }
    ok.then_some(host)
}

fn packet_of(cx: &mut Ctx, p: &Located<PacketYaml>) -> Option<Packet> {
    let v = &p.value;
    let src = k8s::parse_ip(&v.src).map_err(|e| cx.yaml_err(e)).ok()?;
    let dst = k8s::parse_ip(&v.dst).map_err(|e| cx.yaml_err(e)).ok()?;
    if src.is_ipv4() != dst.is_ipv4() {
        cx.err(
            v.dst.loc,
            "`src` and `dst` must be of the same address family",
        );
        return None;
    }
    let protocol = match &v.protocol {
        None => Protocol::Tcp.number(),
        Some(l) => match &l.value {
            k8s::IntOrString::Int(n) if (0..=255).contains(n) => *n as u8,
            k8s::IntOrString::String(s) => match s.parse::<Protocol>() {
                Ok(Protocol::Icmp) if src.is_ipv6() => 58,
                Ok(p) => p.number(),
                Err(m) => {
                    cx.err(l.loc, format!("{m}, or a protocol number"));
                    return None;
                }
            },
            _ => {
                cx.err(l.loc, "protocol number out of range: expected 0 to 255");
                return None;
            }
        },
    };
    let port = |cx: &mut Ctx, p: &Option<Located<i64>>| -> Result<Option<u16>, ()> {
        match p {
            None => Ok(None),
            Some(l) => k8s::port_number(l).map(Some).map_err(|e| cx.yaml_err(e)),
        }
    };
    let sport = port(cx, &v.sport).ok()?;
    let dport = port(cx, &v.dport).ok()?;
    let hook = match v.hook.as_ref().map(|h| (h.value.as_str(), h.loc)) {
        None | Some(("input", _)) => Hook::Input,
        Some(("forward", _)) => Hook::Forward,
        Some(("output", _)) => Hook::Output,
        Some((other, loc)) => {
            cx.err(
                loc,
                format!("hook `{other}`: expected input, forward or output"),
            );
            return None;
        }
    };
    let ctstate = match v.ctstate.as_ref().map(|h| (h.value.as_str(), h.loc)) {
        None | Some(("new", _)) => CtState::New,
        Some(("established", _)) => CtState::Established,
        Some(("related", _)) => CtState::Related,
        Some(("invalid", _)) => CtState::Invalid,
        Some(("untracked", _)) => CtState::Untracked,
        Some((other, loc)) => {
            cx.err(
                loc,
                format!(
                    "ctstate `{other}`: expected new, established, related, invalid or untracked"
                ),
            );
            return None;
        }
    };
    Some(Packet {
        src,
        dst,
        protocol,
        sport,
        dport,
        iif: v.iif.clone(),
        oif: v.oif.clone(),
        hook,
        ctstate,
        mark: v.mark.as_ref().map(|m| m.value).unwrap_or(0),
    })
}

/// A packet from `key=value` words (the spec's packet fields), as `fwsim trace` takes it.
pub fn packet_from_args(args: &[String]) -> Result<Packet, Vec<Diagnostic>> {
    let file = Arc::new(PathBuf::from("<command line>"));
    let mut entries = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let loc = Loc {
            line: 1,
            col: i as u32 + 1,
        };
        let Some((k, v)) = a.split_once('=') else {
            return Err(vec![Diagnostic::error(
                Site::new(&file, loc),
                format!("`{a}`: expected key=value, such as dport=22"),
            )]);
        };
        let scalar = |text: &str| Node {
            loc,
            kind: NodeKind::Scalar {
                text: text.to_string(),
                style: Style::Plain,
            },
        };
        entries.push((scalar(k), scalar(v)));
    }
    let node = Node {
        loc: Loc { line: 1, col: 1 },
        kind: NodeKind::Map(entries),
    };
    let mut cx = Ctx {
        file: &file,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let p: Located<PacketYaml> = match from_node(&node) {
        Ok(p) => p,
        Err(e) => {
            cx.yaml_err(e);
            return Err(cx.errors);
        }
    };
    packet_of(&mut cx, &p).ok_or(cx.errors)
}
