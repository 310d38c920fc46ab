//! Generated fuzz cases: a small cluster, NetworkPolicies that reach every corner of the
//! semantics, and flows that seek its boundaries, as a [`Case`] that prints as a scenario
//! file (`fwsim run` replays it) and shrinks piece by piece (the minimizer's units).
//!
//! Contract:
//! - [`Case::generate`] draws from any [`Source`]: a seeded ChaCha8 stream (`fwsim fuzz`,
//!   tests) or libFuzzer's bytes through `arbitrary` (the cargo-fuzz targets); the same
//!   seed or bytes give the same case.
//! - [`Case::to_yaml`] is a scenario file in the user's format (the compact `cluster:`
//!   form, policies as `networking.k8s.io/v1` objects, `flow:` expectations); loading it
//!   goes through the same loader as any file. Every generated case loads, except where a
//!   policy is invalid on purpose for the API server's checks (reported, never a panic).
//! - Policies are kept as JSON objects, so the shapes the API distinguishes survive: an
//!   absent list and an empty one (`ingress` absent / `[]`, `from: []`, `ports: []`), `{}`
//!   selectors, both selectors in one peer (AND) or in two (OR), `matchExpressions`,
//!   `ipBlock` with `except`, named and numbered ports, `endPort`, SCTP, `policyTypes`
//!   absent or given.
//! - Flows aim at edges: the ends of port ranges and one past them, named-port numbers,
//!   both sides of a CIDR or `except` boundary, services, nodes and external addresses.

use crate::values::Protocol;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Where random choices come from.
pub trait Source {
    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u32) -> u32;

    fn coin(&mut self) -> bool {
        self.below(2) == 1
    }

    /// True with probability about 1/n.
    fn one_in(&mut self, n: u32) -> bool {
        self.below(n) == 0
    }
}

/// One of `items` (not empty).
fn pick<'a, T>(src: &mut dyn Source, items: &'a [T]) -> &'a T {
    &items[src.below(items.len() as u32) as usize]
}

impl Source for rand_chacha::ChaCha8Rng {
    fn below(&mut self, n: u32) -> u32 {
        use rand::Rng;
        self.random_range(0..n.max(1))
    }
}

/// libFuzzer's bytes as choices (exhausted input: always 0).
pub struct Bytes<'a>(pub arbitrary::Unstructured<'a>);

impl Source for Bytes<'_> {
    fn below(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        self.0.int_in_range(0..=n - 1).unwrap_or(0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GNode {
    pub name: String,
    pub ip: Ipv4Addr,
    /// Third octet of its podCIDR 10.244.N.0/24.
    pub block: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GPod {
    pub ns: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub node: String,
    pub ip: Ipv4Addr,
    pub ports: Vec<GPort>,
}

impl GPod {
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GService {
    pub ns: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub selector: Vec<(String, String)>,
    /// (name, port, target: a number or a pod port name, protocol)
    pub ports: Vec<(String, u16, Value, Protocol)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GPolicy {
    pub ns: String,
    pub name: String,
    /// The NetworkPolicy's `spec`.
    pub spec: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GFlow {
    /// Endpoints as a scenario writes them (`ns/pod`, `node:n`, `svc:ns/s`, an address).
    pub from: String,
    pub to: String,
    pub port: Option<u16>,
    pub protocol: Protocol,
}

impl GFlow {
    pub fn text(&self) -> String {
        match self.port {
            Some(p) if self.protocol.has_ports() => {
                format!("{} -> {}:{}/{}", self.from, self.to, p, self.protocol)
            }
            _ => format!("{} -> {}/{}", self.from, self.to, Protocol::Icmp),
        }
    }
}

/// A generated case.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// `ipip`, `vxlan` or `none`.
    pub overlay: &'static str,
    pub nodes: Vec<GNode>,
    pub namespaces: Vec<(String, Vec<(String, String)>)>,
    pub pods: Vec<GPod>,
    pub services: Vec<GService>,
    pub policies: Vec<GPolicy>,
    pub flows: Vec<GFlow>,
    /// Every node runs a hardened host firewall (INPUT policy DROP, see
    /// [`hardened_firewall`]).
    pub hardened: bool,
}

/// A hardened node firewall: INPUT drops what it does not accept (loopback, established,
/// ICMP, SSH, the kubelet from the node network). With `accept_tunnels` it also accepts
/// IPIP and VXLAN from the node network itself, as it must beside a CNI whose own accepts
/// are not final (an nftables CNI); without, it relies on the CNI's inserted accepts.
pub fn hardened_firewall(accept_tunnels: bool) -> String {
    let mut t = String::from(
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p icmp -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -s 192.168.0.0/24 -p tcp -m tcp --dport 10250 -j ACCEPT\n",
    );
    if accept_tunnels {
        t.push_str("-A INPUT -s 192.168.0.0/24 -p 4 -j ACCEPT\n-A INPUT -s 192.168.0.0/24 -p udp -m udp --dport 4789 -j ACCEPT\n-A INPUT -s 192.168.0.0/24 -p udp -m udp --dport 8472 -j ACCEPT\n");
    }
    t.push_str("COMMIT\n");
    t
}

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const APPS: [&str; 3] = ["a", "b", "c"];
const TIERS: [&str; 2] = ["front", "back"];
const PORT_NAMES: [&str; 3] = ["http", "metrics", "dns"];
const PORT_NUMBERS: [u16; 5] = [53, 80, 81, 8080, 9090];
const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

fn proto_name(p: Protocol) -> &'static str {
    p.as_str()
}

fn labels_json(labels: &[(String, String)]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

impl Case {
    /// Draw a case.
    pub fn generate(src: &mut dyn Source) -> Case {
        let overlay = *pick(src, &["ipip", "ipip", "vxlan", "none"]);
        let nodes: Vec<GNode> = (0..1 + src.below(3))
            .map(|i| GNode {
                name: format!("node-{}", i + 1),
                ip: Ipv4Addr::new(192, 168, 0, i as u8 + 1),
                block: i as u8 + 1,
            })
            .collect();
        let mut namespaces = Vec::new();
        for ns in NAMESPACES.iter().take(1 + src.below(3) as usize) {
            let mut labels = Vec::new();
            if src.coin() {
                labels.push(("team".to_string(), pick(src, &["red", "blue"]).to_string()));
            }
            if src.coin() {
                labels.push(("env".to_string(), pick(src, &["prod", "dev"]).to_string()));
            }
            namespaces.push((ns.to_string(), labels));
        }
        let mut pods: Vec<GPod> = Vec::new();
        let mut next_host = vec![10u8; nodes.len()];
        for i in 0..1 + src.below(5) {
            let ns = pick(src, &namespaces).0.clone();
            let node = src.below(nodes.len() as u32) as usize;
            let mut labels = vec![("app".to_string(), pick(src, &APPS).to_string())];
            if src.coin() {
                labels.push(("tier".to_string(), pick(src, &TIERS).to_string()));
            }
            let mut ports: Vec<GPort> = Vec::new();
            for _ in 0..src.below(3) {
                let p = GPort {
                    name: (!src.one_in(4)).then(|| pick(src, &PORT_NAMES).to_string()),
                    port: *pick(src, &PORT_NUMBERS),
                    protocol: *pick(src, &PROTOCOLS),
                };
                // The API server refuses two ports with one name, or one port and
                // protocol twice, in a pod.
                if ports.iter().any(|q| {
                    (q.name.is_some() && q.name == p.name)
                        || (q.port == p.port && q.protocol == p.protocol)
                }) {
                    continue;
                }
                ports.push(p);
            }
            let host = next_host[node];
            next_host[node] += 1;
            pods.push(GPod {
                ns,
                name: format!("p{i}"),
                labels,
                node: nodes[node].name.clone(),
                ip: Ipv4Addr::new(10, 244, nodes[node].block, host),
                ports,
            });
        }
        let mut services = Vec::new();
        for i in 0..src.below(3) {
            let ns = pick(src, &namespaces).0.clone();
            let target = if src.coin() {
                json!(pick(src, &PORT_NAMES))
            } else {
                json!(pick(src, &PORT_NUMBERS))
            };
            services.push(GService {
                ns,
                name: format!("s{i}"),
                ip: Ipv4Addr::new(10, 96, 0, 10 + i as u8),
                selector: vec![("app".to_string(), pick(src, &APPS).to_string())],
                ports: vec![(
                    "p".to_string(),
                    *pick(src, &[80u16, 8080]),
                    target,
                    *pick(src, &[Protocol::Tcp, Protocol::Tcp, Protocol::Udp]),
                )],
            });
        }
        let mut case = Case {
            overlay,
            nodes,
            namespaces,
            pods,
            services,
            policies: Vec::new(),
            flows: Vec::new(),
            hardened: false,
        };
        let mut edges = Edges::default();
        for i in 0..src.below(4) {
            let ns = pick(src, &case.namespaces).0.clone();
            let spec = case.policy_spec(src, &mut edges);
            case.policies.push(GPolicy {
                ns,
                name: format!("np{i}"),
                spec,
            });
        }
        case.hardened = src.one_in(4);
        for _ in 0..4 + src.below(9) {
            if let Some(f) = case.flow(src, &edges) {
                if !case.flows.contains(&f) {
                    case.flows.push(f);
                }
            }
        }
        // Drawn last, so every choice above is what it was before these flows existed.
        for _ in 0..src.below(3) {
            if let Some(f) = case.aimed_flow(src) {
                if !case.flows.contains(&f) {
                    case.flows.push(f);
                }
            }
        }
        case
    }

    /// A pod-to-pod flow aimed where policies' peers and named ports bite: to one of the
    /// destination's own ports (number and protocol; a named port resolves there), from a
    /// pod of another namespace when there is one (half the time), else from any other pod.
    fn aimed_flow(&self, src: &mut dyn Source) -> Option<GFlow> {
        if self.pods.len() < 2 {
            return None;
        }
        let to = pick(src, &self.pods);
        let others: Vec<&GPod> = self.pods.iter().filter(|p| p.name != to.name).collect();
        let foreign: Vec<&GPod> = others.iter().copied().filter(|p| p.ns != to.ns).collect();
        let from = if !foreign.is_empty() && src.coin() {
            *pick(src, &foreign)
        } else {
            *pick(src, &others)
        };
        let (port, protocol) = if to.ports.is_empty() {
            (*pick(src, &PORT_NUMBERS), Protocol::Tcp)
        } else {
            let p = pick(src, &to.ports);
            (p.port, p.protocol)
        };
        Some(GFlow {
            from: from.qualified(),
            to: to.qualified(),
            port: Some(port),
            protocol,
        })
    }

    fn selector(&self, src: &mut dyn Source, keys: &[(&str, &[&str])]) -> Value {
        match src.below(5) {
            0 => json!({}),
            1 | 2 => {
                let (k, vs) = pick(src, keys);
                json!({"matchLabels": {*k: pick(src, vs)}})
            }
            _ => {
                let (k, vs) = pick(src, keys);
                let op = *pick(src, &["In", "NotIn", "Exists", "DoesNotExist"]);
                let mut e = json!({"key": k, "operator": op});
                if op == "In" || op == "NotIn" {
                    let mut values = vec![json!(pick(src, vs))];
                    if src.coin() {
                        values.push(json!(pick(src, vs)));
                        values.dedup();
                    }
                    e["values"] = Value::Array(values);
                }
                let mut sel = json!({"matchExpressions": [e]});
                if src.one_in(3) {
                    sel["matchLabels"] = json!({*k: pick(src, vs)});
                }
                sel
            }
        }
    }

    fn pod_selector(&self, src: &mut dyn Source) -> Value {
        self.selector(src, &[("app", &APPS), ("tier", &TIERS)])
    }

    fn ns_selector(&self, src: &mut dyn Source) -> Value {
        if src.one_in(3) {
            let ns = pick(src, &self.namespaces).0.clone();
            return json!({"matchLabels": {"kubernetes.io/metadata.name": ns}});
        }
        self.selector(
            src,
            &[("team", &["red", "blue"]), ("env", &["prod", "dev"])],
        )
    }

    /// A CIDR around something in the case, with maybe an `except`; its edges recorded.
    fn ip_block(&self, src: &mut dyn Source, edges: &mut Edges) -> Value {
        let base: Ipv4Addr = match src.below(4) {
            0 if !self.pods.is_empty() => pick(src, &self.pods).ip,
            1 => pick(src, &self.nodes).ip,
            2 => Ipv4Addr::new(203, 0, 113, 7),
            _ => Ipv4Addr::new(10, 244, pick(src, &self.nodes).block, 0),
        };
        let len = *pick(src, &[8u8, 16, 24, 28, 32]);
        let net = ipnet::Ipv4Net::new(base, len).expect("prefix").trunc();
        edges.add_net(net);
        let mut block = json!({"cidr": net.to_string()});
        if len < 32 && src.coin() {
            let inner_len = (len + 1 + src.below((32 - len) as u32) as u8).min(32);
            let inside = if !self.pods.is_empty() && src.coin() {
                pick(src, &self.pods).ip
            } else {
                base
            };
            if net.contains(&inside) {
                let ex = ipnet::Ipv4Net::new(inside, inner_len)
                    .expect("prefix")
                    .trunc();
                edges.add_net(ex);
                block["except"] = json!([ex.to_string()]);
            }
        }
        block
    }

    fn peer(&self, src: &mut dyn Source, edges: &mut Edges) -> Value {
        match src.below(6) {
            0 | 1 => json!({"podSelector": self.pod_selector(src)}),
            2 => json!({"namespaceSelector": self.ns_selector(src)}),
            3 => json!({
                "namespaceSelector": self.ns_selector(src),
                "podSelector": self.pod_selector(src),
            }),
            _ => json!({"ipBlock": self.ip_block(src, edges)}),
        }
    }

    fn port_entry(&self, src: &mut dyn Source, edges: &mut Edges) -> Value {
        let mut e = json!({});
        if !src.one_in(4) {
            e["protocol"] = json!(proto_name(*pick(src, &PROTOCOLS)));
        }
        match src.below(5) {
            0 => {}
            1 => {
                e["port"] = json!(pick(src, &PORT_NAMES));
            }
            2 => {
                let p = *pick(src, &PORT_NUMBERS);
                let end = p + src.below(200) as u16;
                edges
                    .ports
                    .extend([p.saturating_sub(1), p, end, end.saturating_add(1)]);
                e["port"] = json!(p);
                e["endPort"] = json!(end);
            }
            _ => {
                let p = *pick(src, &PORT_NUMBERS);
                edges.ports.push(p);
                e["port"] = json!(p);
            }
        }
        e
    }

    fn rule(&self, src: &mut dyn Source, edges: &mut Edges, dir: &str) -> Value {
        let mut r = json!({});
        let key = if dir == "ingress" { "from" } else { "to" };
        match src.below(4) {
            0 => {}
            1 => r[key] = json!([]),
            _ => {
                let peers: Vec<Value> = (0..1 + src.below(2))
                    .map(|_| self.peer(src, edges))
                    .collect();
                r[key] = Value::Array(peers);
            }
        }
        match src.below(4) {
            0 => {}
            1 => r["ports"] = json!([]),
            _ => {
                let ports: Vec<Value> = (0..1 + src.below(2))
                    .map(|_| self.port_entry(src, edges))
                    .collect();
                r["ports"] = Value::Array(ports);
            }
        }
        r
    }

    fn policy_spec(&self, src: &mut dyn Source, edges: &mut Edges) -> Value {
        let mut spec = json!({"podSelector": self.pod_selector(src)});
        for dir in ["ingress", "egress"] {
            match src.below(3) {
                0 => {}
                1 => spec[dir] = json!([]),
                _ => {
                    let rules: Vec<Value> = (0..1 + src.below(2))
                        .map(|_| self.rule(src, edges, dir))
                        .collect();
                    spec[dir] = Value::Array(rules);
                }
            }
        }
        match src.below(4) {
            0 => spec["policyTypes"] = json!(["Ingress"]),
            1 => spec["policyTypes"] = json!(["Egress"]),
            2 => spec["policyTypes"] = json!(["Ingress", "Egress"]),
            _ => {}
        }
        spec
    }

    /// An endpoint: a pod, a node, a service, an edge address.
    fn endpoint(&self, src: &mut dyn Source, edges: &Edges, to: bool) -> Option<String> {
        Some(match src.below(10) {
            0..=5 if !self.pods.is_empty() => pick(src, &self.pods).qualified(),
            6 => format!("node:{}", pick(src, &self.nodes).name),
            7 if to && !self.services.is_empty() => {
                let s = pick(src, &self.services);
                format!("svc:{}/{}", s.ns, s.name)
            }
            _ => {
                let addr = if edges.addrs.is_empty() || src.one_in(4) {
                    Ipv4Addr::new(203, 0, 113, 7)
                } else {
                    *pick(src, &edges.addrs)
                };
                // An edge address that a pod, node or service owns is that endpoint.
                // A source address inside the pod network that no pod has is no real
                // client (its replies would be routed to no one).
                if !to && addr.octets()[..2] == [10, 244] && !self.pods.iter().any(|p| p.ip == addr)
                {
                    return None;
                }
                if let Some(p) = self.pods.iter().find(|p| p.ip == addr) {
                    p.qualified()
                } else if let Some(n) = self.nodes.iter().find(|n| n.ip == addr) {
                    format!("node:{}", n.name)
                } else if self.services.iter().any(|s| s.ip == addr)
                    || self.nodes.iter().any(|n| {
                        // Tunnel and bridge addresses are the nodes' own.
                        addr.octets()[..3] == [10, 244, n.block] && addr.octets()[3] <= 1
                    })
                {
                    return None;
                } else {
                    addr.to_string()
                }
            }
        })
    }

    fn flow(&self, src: &mut dyn Source, edges: &Edges) -> Option<GFlow> {
        let from = self.endpoint(src, edges, false)?;
        let to = self.endpoint(src, edges, true)?;
        if from == to || from.starts_with("svc:") {
            return None;
        }
        let protocol = *pick(
            src,
            &[
                Protocol::Tcp,
                Protocol::Tcp,
                Protocol::Udp,
                Protocol::Sctp,
                Protocol::Icmp,
            ],
        );
        let port = if protocol == Protocol::Icmp {
            None
        } else if let Some(svc) = to.strip_prefix("svc:") {
            let s = self
                .services
                .iter()
                .find(|s| format!("{}/{}", s.ns, s.name) == svc)?;
            Some(if src.one_in(4) { 443 } else { s.ports[0].1 })
        } else {
            let mut choices: Vec<u16> = PORT_NUMBERS.to_vec();
            choices.extend(&edges.ports);
            for p in &self.pods {
                choices.extend(p.ports.iter().map(|q| q.port));
            }
            Some(*pick(src, &choices)).filter(|p| *p > 0)
        };
        let protocol = if let Some(svc) = to.strip_prefix("svc:") {
            self.services
                .iter()
                .find(|s| format!("{}/{}", s.ns, s.name) == svc)
                .map_or(protocol, |s| {
                    if src.one_in(4) {
                        protocol
                    } else {
                        s.ports[0].3
                    }
                })
        } else {
            protocol
        };
        Some(GFlow {
            from,
            to,
            port: if protocol == Protocol::Icmp {
                None
            } else {
                port.or(Some(80))
            },
            protocol,
        })
    }

    /// The scenario file, with `verdicts` (one per flow, from the reference) as the
    /// expectations; None: the flows are written with `verdict: allow` (to be evaluated).
    pub fn to_yaml(
        &self,
        name: &str,
        header: &str,
        dataplanes: &[&str],
        verdicts: Option<&[&str]>,
    ) -> String {
        let mut y = String::new();
        for line in header.lines() {
            let _ = writeln!(y, "# {line}");
        }
        let _ = writeln!(y, "apiVersion: fwsim/v1\nkind: Scenario\nname: {name}");
        let _ = writeln!(y, "tags: [fuzz]");
        let _ = writeln!(y, "dataplanes: [{}]", dataplanes.join(", "));
        let _ = writeln!(y, "cluster:\n  overlay: {}\n  nodes:", self.overlay);
        for n in &self.nodes {
            let _ = writeln!(
                y,
                "    - {{name: {}, ip: {}, podCIDR: 10.244.{}.0/24}}",
                n.name, n.ip, n.block
            );
        }
        let _ = writeln!(y, "  namespaces:");
        for (ns, labels) in &self.namespaces {
            let _ = writeln!(y, "    {ns}: {}", labels_json(labels));
        }
        if !self.pods.is_empty() {
            let _ = writeln!(y, "  pods:");
        }
        for p in &self.pods {
            let ports: Vec<Value> = p
                .ports
                .iter()
                .map(|q| {
                    let mut v = json!({"port": q.port, "protocol": proto_name(q.protocol)});
                    if let Some(n) = &q.name {
                        v["name"] = json!(n);
                    }
                    v
                })
                .collect();
            let mut line = format!(
                "    - {{name: {}, labels: {}, node: {}, ip: {}",
                p.qualified(),
                labels_json(&p.labels),
                p.node,
                p.ip
            );
            if !ports.is_empty() {
                let _ = write!(line, ", ports: {}", Value::Array(ports));
            }
            let _ = writeln!(y, "{line}}}");
        }
        if !self.services.is_empty() {
            let _ = writeln!(y, "  services:");
        }
        for s in &self.services {
            let ports: Vec<Value> = s
                .ports
                .iter()
                .map(|(n, p, t, proto)| {
                    json!({"name": n, "port": p, "targetPort": t, "protocol": proto_name(*proto)})
                })
                .collect();
            let _ = writeln!(
                y,
                "    - {{name: {}/{}, clusterIP: {}, selector: {}, ports: {}}}",
                s.ns,
                s.name,
                s.ip,
                labels_json(&s.selector),
                Value::Array(ports)
            );
        }
        if !self.policies.is_empty() {
            let _ = writeln!(y, "policies:");
        }
        for p in &self.policies {
            let obj = json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": p.name, "namespace": p.ns},
                "spec": p.spec,
            });
            let _ = writeln!(y, "  - {obj}");
        }
        let _ = writeln!(y, "expect:");
        if self.flows.is_empty() {
            y.truncate(y.len() - "expect:\n".len());
            let _ = writeln!(y, "expect: []");
        }
        for (i, f) in self.flows.iter().enumerate() {
            let v = verdicts.and_then(|v| v.get(i)).copied().unwrap_or("allow");
            let _ = writeln!(y, "  - flow: {}\n    verdict: {v}", f.text());
        }
        y
    }
}

/// Addresses and ports at the edges of what the policies name.
#[derive(Default)]
struct Edges {
    addrs: Vec<Ipv4Addr>,
    ports: Vec<u16>,
}

impl Edges {
    /// The first and last address of a network, and one past each end.
    fn add_net(&mut self, net: ipnet::Ipv4Net) {
        let first = u32::from(net.network());
        let last = u32::from(net.broadcast());
        for a in [
            first.checked_sub(1),
            Some(first),
            Some(last),
            last.checked_add(1),
        ]
        .into_iter()
        .flatten()
        {
            let a = Ipv4Addr::from(a);
            if !a.is_unspecified() && !a.is_broadcast() && !self.addrs.contains(&a) {
                self.addrs.push(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Generated cases load as scenarios (the loader is the judge of validity), reach the
    /// shapes they are meant to reach, and are reproducible from their seed.
    #[test]
    fn generated_cases_load_and_reach_the_corners() {
        let mut loaded = 0;
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..300u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let case = Case::generate(&mut rng);
            let mut again = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            assert_eq!(case, Case::generate(&mut again), "seed {seed}");
            let text = case.to_yaml("t", "", &["reference"], None);
            for needle in [
                "\"except\"",
                "\"endPort\"",
                "\"matchExpressions\"",
                "\"ingress\":[]",
                "\"from\":[]",
                "\"ports\":[]",
                "SCTP",
                "svc:",
                "node:",
                "/ICMP",
                "\"namespaceSelector\":{}",
                "\"policyTypes\"",
            ] {
                if text.contains(needle) {
                    seen.insert(needle);
                }
            }
            let found = crate::scenario::discover_text("<generated>", &text);
            assert!(
                found.errors.is_empty(),
                "seed {seed}: {:?}\n{text}",
                found.errors
            );
            match crate::scenario::load(&found.docs[0]) {
                Ok(_) => loaded += 1,
                Err(e) => {
                    // Only the API server's own refusals are acceptable.
                    let m = format!("{e:?}");
                    assert!(
                        m.contains("NetworkPolicy") || m.contains("port"),
                        "seed {seed}: {m}\n{text}"
                    );
                }
            }
        }
        assert!(loaded > 250, "{loaded} of 300 loaded");
        assert_eq!(seen.len(), 12, "corners reached: {seen:?}");
    }
}
