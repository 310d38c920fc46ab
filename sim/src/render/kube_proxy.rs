//! kube-proxy's iptables mode: the rules one node's kube-proxy writes for the cluster's
//! Services (docs/netfilter-semantics.md §10, K1–K10; docs/dataplanes.md).
//!
//! Contract:
//! - Every node gets the same rules: fwsim models ClusterIP services with the `Cluster`
//!   traffic policy only (no NodePort, external or load-balancer addresses, no session
//!   affinity), whose rules do not depend on the node.
//! - Rule texts are printed as `iptables-save` prints them (addresses with their prefix,
//!   `-m mark --mark`, `MARK --set-xmark`, the statistic probability as the kernel stores
//!   it), in the order kube-proxy writes them.
//! - Chain names are kube-proxy's own: `KUBE-SVC-` / `KUBE-SEP-` + the first 16 characters
//!   of base32(SHA-256(servicePortName + protocol [+ endpoint])).
//! - IPv4 only: a service without a cluster IP or with an IPv6 one gets no rule.
//! - Deterministic: services in declaration order, their ports in order, endpoints sorted as
//!   kube-proxy sorts them (by the `IP:port` string).

use super::iptables_out::Tables;
use super::net::ClusterNet;
use super::RenderError;
use crate::cluster::{Cluster, NodeId, TargetPort};
use crate::values::Protocol;
use std::collections::HashSet;
use std::net::IpAddr;

/// The masquerade bit 14 (kube-proxy's `--iptables-masquerade-bit` default).
pub const MASQ_MARK: u32 = 0x4000;

/// (table, built-in chain, kube-proxy chain, comment, extra matches), in the order of
/// kube-proxy's `iptablesJumpChains`; each is prepended, so the last one ends on top.
const JUMPS: [(&str, &str, &str, &str, &str); 12] = [
    (
        "filter",
        "INPUT",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        "-m conntrack --ctstate NEW ",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        "-m conntrack --ctstate NEW ",
    ),
    (
        "filter",
        "INPUT",
        "KUBE-NODEPORTS",
        "kubernetes health check service ports",
        "",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-SERVICES",
        "kubernetes service portals",
        "-m conntrack --ctstate NEW ",
    ),
    (
        "filter",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        "-m conntrack --ctstate NEW ",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-FORWARD",
        "kubernetes forwarding rules",
        "",
    ),
    (
        "filter",
        "INPUT",
        "KUBE-PROXY-FIREWALL",
        "kubernetes load balancer firewall",
        "-m conntrack --ctstate NEW ",
    ),
    (
        "filter",
        "OUTPUT",
        "KUBE-PROXY-FIREWALL",
        "kubernetes load balancer firewall",
        "-m conntrack --ctstate NEW ",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-PROXY-FIREWALL",
        "kubernetes load balancer firewall",
        "-m conntrack --ctstate NEW ",
    ),
    (
        "nat",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        "",
    ),
    (
        "nat",
        "PREROUTING",
        "KUBE-SERVICES",
        "kubernetes service portals",
        "",
    ),
    (
        "nat",
        "POSTROUTING",
        "KUBE-POSTROUTING",
        "kubernetes postrouting rules",
        "",
    ),
];

/// Add the node's kube-proxy rules to `t`.
pub fn render(
    cluster: &Cluster,
    net: &ClusterNet,
    _node: NodeId,
    t: &mut Tables,
) -> Result<(), RenderError> {
    let ports = service_ports(cluster)?;

    for table in ["mangle", "nat", "filter"] {
        for c in crate::syntax::iptables::builtin_chains(table) {
            t.declare(table, c);
        }
    }
    // The chains kube-proxy's restore declares, in its order.
    for c in [
        "KUBE-SERVICES",
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FORWARD",
        "KUBE-NODEPORTS",
        "KUBE-PROXY-FIREWALL",
        "KUBE-FIREWALL",
    ] {
        t.declare("filter", c);
    }
    for c in [
        "KUBE-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
    ] {
        t.declare("nat", c);
    }
    // The canary chain `ipt.Monitor` keeps (empty) to notice a flush.
    for table in ["mangle", "nat", "filter"] {
        t.declare(table, "KUBE-PROXY-CANARY");
    }

    // K1. Kubelet's KUBE-FIREWALL jumps exist before kube-proxy starts (kubelet runs
    // kube-proxy's pod); kube-proxy finds them and prepends its own above.
    t.insert("filter", "INPUT", vec!["-j KUBE-FIREWALL".into()]);
    t.insert("filter", "OUTPUT", vec!["-j KUBE-FIREWALL".into()]);
    for (table, from, to, comment, extra) in JUMPS {
        t.insert(
            table,
            from,
            vec![format!(
                "{extra}-m comment --comment {} -j {to}",
                quote(comment)
            )],
        );
    }

    // K5. The masquerade mark and its use.
    let mark = format!("{MASQ_MARK:#x}");
    t.push(
        "nat",
        "KUBE-POSTROUTING",
        format!("-m mark ! --mark {mark}/{mark} -j RETURN"),
    );
    t.push(
        "nat",
        "KUBE-POSTROUTING",
        format!("-j MARK --set-xmark {mark}/0x0"),
    );
    t.push(
        "nat",
        "KUBE-POSTROUTING",
        format!(
            "-m comment --comment {} -j MASQUERADE --random-fully",
            quote("kubernetes service traffic requiring SNAT")
        ),
    );
    t.push(
        "nat",
        "KUBE-MARK-MASQ",
        format!("-j MARK --set-xmark {mark}/{mark}"),
    );
    // K8. The localnet guard (IPv4 with localhost NodePorts, kube-proxy's default).
    t.push(
        "filter",
        "KUBE-FIREWALL",
        format!(
            "! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment {} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
            quote("block incoming localnet connections")
        ),
    );

    // K2–K4, K7. Per service port.
    for sp in &ports {
        let proto = sp.protocol;
        let dst = format!("-d {}/32 -p {proto}", sp.cluster_ip);
        if sp.endpoints.is_empty() {
            t.push(
                "filter",
                "KUBE-SERVICES",
                format!(
                    "{dst} -m comment --comment {} -m {proto} --dport {} -j REJECT --reject-with icmp-port-unreachable",
                    quote(&format!("{} has no endpoints", sp.name)),
                    sp.port
                ),
            );
            continue;
        }
        let svc_chain = format!("KUBE-SVC-{}", port_proto_hash(&sp.name, proto, ""));
        let cluster_ip_comment = quote(&format!("{} cluster IP", sp.name));
        t.push(
            "nat",
            "KUBE-SERVICES",
            format!(
                "{dst} -m comment --comment {cluster_ip_comment} -m {proto} --dport {} -j {svc_chain}",
                sp.port
            ),
        );
        t.declare("nat", &svc_chain);
        // K3.1: off-cluster sources are masqueraded (the local detector by cluster CIDR;
        // without a pod network kube-proxy has no detector and writes no rule).
        if let Some(cidr) = &net.pod_network {
            if cidr.addr().is_ipv4() {
                t.push(
                    "nat",
                    &svc_chain,
                    format!(
                        "! -s {cidr} {dst} -m comment --comment {cluster_ip_comment} -m {proto} --dport {} -j KUBE-MARK-MASQ",
                        sp.port
                    ),
                );
            }
        }
        let n = sp.endpoints.len();
        let mut sep_chains = Vec::new();
        for (i, ep) in sp.endpoints.iter().enumerate() {
            let sep = format!("KUBE-SEP-{}", port_proto_hash(&sp.name, proto, ep));
            let statistic = if i + 1 < n {
                format!(
                    "-m statistic --mode random --probability {} ",
                    probability(n - i)
                )
            } else {
                String::new()
            };
            t.push(
                "nat",
                &svc_chain,
                format!(
                    "-m comment --comment {} {statistic}-j {sep}",
                    quote(&format!("{} -> {ep}", sp.name))
                ),
            );
            sep_chains.push((sep, ep));
        }
        for (sep, ep) in sep_chains {
            t.declare("nat", &sep);
            let ip = ep.rsplit_once(':').map(|(a, _)| a).unwrap_or(ep);
            let name = quote(&sp.name);
            t.push(
                "nat",
                &sep,
                format!("-s {ip}/32 -m comment --comment {name} -j KUBE-MARK-MASQ"),
            );
            t.push(
                "nat",
                &sep,
                format!(
                    "-p {proto} -m comment --comment {name} -m {proto} -j DNAT --to-destination {ep}"
                ),
            );
        }
    }
    // K2. The last rule of nat KUBE-SERVICES (nodePortAddresses unset: every local address;
    // localhost NodePorts on, so no `! -d 127.0.0.0/8`).
    t.push(
        "nat",
        "KUBE-SERVICES",
        format!(
            "-m comment --comment {} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
            quote("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
        ),
    );
    // K8.
    t.push(
        "filter",
        "KUBE-FORWARD",
        "-m conntrack --ctstate INVALID -j DROP",
    );
    t.push(
        "filter",
        "KUBE-FORWARD",
        format!(
            "-m comment --comment {} -m mark --mark {mark}/{mark} -j ACCEPT",
            quote("kubernetes forwarding rules")
        ),
    );
    t.push(
        "filter",
        "KUBE-FORWARD",
        format!(
            "-m comment --comment {} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            quote("kubernetes forwarding conntrack rule")
        ),
    );
    Ok(())
}

/// One port of a service as kube-proxy sees it.
struct SvcPort {
    /// `ns/name` or `ns/name:portname` (kube-proxy's `ServicePortName.String()`).
    name: String,
    protocol: &'static str,
    cluster_ip: IpAddr,
    port: u16,
    /// `IP:port`, sorted as strings.
    endpoints: Vec<String>,
}

fn service_ports(cluster: &Cluster) -> Result<Vec<SvcPort>, RenderError> {
    let mut out = Vec::new();
    for (id, svc) in cluster.services.iter().enumerate() {
        let Some(cluster_ip @ IpAddr::V4(_)) = svc.cluster_ip else {
            continue;
        };
        let ns = &cluster.namespaces[svc.ns as usize].name;
        let pods = cluster.service_endpoints(id as u32);
        let mut seen = HashSet::new();
        for p in &svc.ports {
            let protocol = match p.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Sctp => "sctp",
                Protocol::Icmp => continue,
            };
            let name = match &p.name {
                Some(n) if !n.is_empty() => format!("{ns}/{}:{n}", svc.name),
                _ => format!("{ns}/{}", svc.name),
            };
            if !seen.insert((name.clone(), protocol)) {
                return Err(format!(
                    "service `{ns}/{}`: two {} ports share the name `{}`; Kubernetes requires distinct port names, and kube-proxy keys its rules by them",
                    svc.name,
                    p.protocol.as_str(),
                    p.name.as_deref().unwrap_or("")
                )
                .into());
            }
            let mut endpoints: Vec<String> = pods
                .iter()
                .filter_map(|&pod| {
                    let pod = &cluster.pods[pod as usize];
                    if !pod.ip.is_ipv4() {
                        return None;
                    }
                    let port = match &p.target {
                        TargetPort::Number(n) => *n,
                        TargetPort::Name(n) => pod.named_port(n, p.protocol)?,
                    };
                    Some(format!("{}:{port}", pod.ip))
                })
                .collect();
            endpoints.sort();
            endpoints.dedup();
            out.push(SvcPort {
                name,
                protocol,
                cluster_ip,
                port: p.port,
                endpoints,
            });
        }
    }
    Ok(out)
}

/// kube-proxy writes `1/n` with `%0.10f`; the kernel stores `lround(p × 2^31)` and
/// iptables-save prints it back with `%.11f` (M13): 1/3 is `0.33333333349`.
fn probability(n: usize) -> String {
    let written: f64 = format!("{:.10}", 1.0 / n as f64).parse().expect("a number");
    let stored = (written * 2f64.powi(31)).round();
    format!("{:.11}", stored / 2f64.powi(31))
}

/// A comment as iptables-save prints it: quoted unless only `[A-Za-z0-9_-]` (S5).
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// kube-proxy's `portProtoHash` / `servicePortEndpointChainName`: the first 16 characters
/// of base32 (RFC 4648, upper case) of SHA-256(name + protocol + endpoint).
fn port_proto_hash(name: &str, protocol: &str, endpoint: &str) -> String {
    let digest = sha256(format!("{name}{protocol}{endpoint}").as_bytes());
    base32(&digest)[..16].to_string()
}

fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buf: u64 = 0;
    let mut bits = 0;
    for &b in data {
        buf = (buf << 8) | b as u64;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// SHA-256 (FIPS 180-4), here so that chain names need no further dependency.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(v);
        }
    }
    let mut out = [0u8; 32];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterBuilder, ContainerPort, PodSpec, ServicePort, ServiceSpec};
    use crate::netfilter::interp::{walk_on, Fate, Walk};
    use crate::render::net::Cni;
    use crate::values::{CtState, Hook, Labels, Loc, Packet, Site};
    use std::sync::Arc;

    fn site() -> Site {
        Site::new(&Arc::new("t.yaml".into()), Loc { line: 1, col: 1 })
    }

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pod(name: &str, app: &str, ip: &str, ports: &[(&str, u16)]) -> PodSpec {
        let (ns, name) = name.split_once('/').unwrap();
        PodSpec {
            namespace: ns.into(),
            name: name.into(),
            labels: labels(&[("app", app)]),
            node: None,
            ip: Some(ip.parse().unwrap()),
            ports: ports
                .iter()
                .map(|(n, p)| ContainerPort {
                    name: Some(n.to_string()),
                    port: *p,
                    protocol: Protocol::Tcp,
                })
                .collect(),
            site: site(),
        }
    }

    fn service(name: &str, ip: &str, app: &str, ports: &[(&str, u16, TargetPort)]) -> ServiceSpec {
        let (ns, name) = name.split_once('/').unwrap();
        ServiceSpec {
            namespace: ns.into(),
            name: name.into(),
            cluster_ip: Some(ip.parse().unwrap()),
            selector: Some(labels(&[("app", app)])),
            ports: ports
                .iter()
                .map(|(n, p, t)| ServicePort {
                    name: Some(n.to_string()),
                    port: *p,
                    target: t.clone(),
                    protocol: Protocol::Tcp,
                })
                .collect(),
            site: site(),
        }
    }

    /// One node (192.168.0.1, podCIDR 10.244.1.0/24). y/api has the named port `api`
    /// only; y/web-1 and y/web-2 name `http` 8080 and 9090.
    fn cluster() -> Cluster {
        let mut b = ClusterBuilder::new();
        b.namespace("x".into(), Labels::new(), site());
        b.namespace("y".into(), Labels::new(), site());
        b.pod(pod("x/client", "client", "10.244.1.10", &[]));
        b.pod(pod("y/api", "api", "10.244.1.20", &[("api", 5000)]));
        b.pod(pod("y/web-1", "web", "10.244.1.31", &[("http", 8080)]));
        b.pod(pod("y/web-2", "web", "10.244.1.32", &[("http", 9090)]));
        b.service(service(
            "y/api",
            "10.96.0.10",
            "api",
            &[
                ("api", 80, TargetPort::Number(5000)),
                ("metrics", 9100, TargetPort::Name("metrics".into())),
            ],
        ));
        b.service(service(
            "y/web",
            "10.96.0.20",
            "web",
            &[("http", 80, TargetPort::Name("http".into()))],
        ));
        b.service(service(
            "y/none",
            "10.96.0.30",
            "nothing",
            &[("http", 80, TargetPort::Number(80))],
        ));
        b.build().unwrap()
    }

    fn rendered(cluster: &Cluster, host: Option<&str>) -> (ClusterNet, String) {
        let net = ClusterNet::new(cluster, Cni::Flannel);
        let mut t = Tables::new();
        if let Some(h) = host {
            t.add_host(&crate::syntax::iptables::parse(h).unwrap())
                .unwrap();
        }
        render(cluster, &net, 0, &mut t).unwrap();
        (net, t.text())
    }

    fn walk(net: &ClusterNet, text: &str, p: &Packet) -> Walk {
        let rs = crate::netfilter::read_ruleset(text).unwrap();
        walk_on(&rs, p, Some(&net.host(0)))
    }

    /// A new TCP connection from a pod of node 0 (seen on cni0) to `dst`.
    fn from_pod(src: &str, dst: &str, dport: u16) -> Packet {
        Packet {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: 6,
            sport: Some(40000),
            dport: Some(dport),
            iif: Some("cni0".into()),
            oif: Some("eth0".into()),
            hook: Hook::Forward,
            ctstate: CtState::New,
            mark: 0,
        }
    }

    fn touched(w: &Walk, chain_prefix: &str, effect: &str) -> bool {
        w.trace
            .iter()
            .any(|s| s.chain.starts_with(chain_prefix) && s.effect.contains(effect))
    }

    #[test]
    fn chain_names_hashes_and_probabilities_are_kube_proxys() {
        // SHA-256("abc") (FIPS 180-2, appendix B.1).
        let d = sha256(b"abc");
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Chains every cluster has: default/kubernetes:https and kube-dns's dns port.
        assert_eq!(
            port_proto_hash("default/kubernetes:https", "tcp", ""),
            "NPX46M4PTMTKRN6Y"
        );
        assert_eq!(
            port_proto_hash("kube-system/kube-dns:dns", "udp", ""),
            "TCOU7JCQXEZGVUNU"
        );
        // M13: what iptables-save prints for kube-proxy's 1/n.
        assert_eq!(probability(2), "0.50000000000");
        assert_eq!(probability(3), "0.33333333349");
    }

    #[test]
    fn the_text_loads_and_names_fit() {
        let c = cluster();
        let (_, text) = rendered(&c, None);
        crate::netfilter::read_ruleset(&text).unwrap();
        for line in text.lines().filter(|l| l.starts_with(':')) {
            let name = line[1..].split(' ').next().unwrap();
            assert!(name.len() <= 28, "{name}");
        }
        // Deterministic.
        assert_eq!(text, rendered(&c, None).1);
        // nat KUBE-SERVICES ends with the nodeports jump.
        let last = text
            .lines()
            .filter(|l| l.starts_with("-A KUBE-SERVICES") && l.contains("KUBE-NODEPORTS"))
            .count();
        assert_eq!(last, 1);
    }

    #[test]
    fn pod_to_a_cluster_ip_is_dnated_to_its_endpoint() {
        let c = cluster();
        let (net, text) = rendered(&c, None);
        let w = walk(&net, &text, &from_pod("10.244.1.10", "10.96.0.10", 80));
        assert_eq!(w.fate, Fate::Accept, "{w}");
        assert!(
            w.trace.iter().any(|s| s.effect == "match: dnat"
                && s.text.contains("--to-destination 10.244.1.20:5000")),
            "{w}"
        );
        // Rerouted to the local pod: still the forward path.
        assert_eq!(w.path, Hook::Forward);
        // A pod source is inside the cluster CIDR: no masquerade.
        assert!(!touched(&w, "KUBE-POSTROUTING", "masquerade"), "{w}");
        // Another port of the cluster IP is not the service's.
        let w = walk(&net, &text, &from_pod("10.244.1.10", "10.96.0.10", 81));
        assert!(!w.trace.iter().any(|s| s.effect == "match: dnat"), "{w}");
    }

    #[test]
    fn two_endpoints_are_both_reached() {
        let c = cluster();
        let (net, text) = rendered(&c, None);
        let p = from_pod("10.244.1.10", "10.96.0.20", 80);
        assert_eq!(walk(&net, &text, &p).fate, Fate::Accept);
        // Drop what goes to web-2 (9090, its own number for `http`): one statistic branch
        // is dropped, the other accepted.
        let host = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -d 10.244.1.32/32 -p tcp -m tcp --dport 9090 -j DROP\nCOMMIT\n";
        let (net, text) = rendered(&c, Some(host));
        let w = walk(&net, &text, &p);
        assert!(
            matches!(&w.fate, Fate::Inconclusive(m) if m.contains("statistic")),
            "{w}"
        );
    }

    #[test]
    fn a_service_port_without_endpoints_is_rejected() {
        let c = cluster();
        let (net, text) = rendered(&c, None);
        let unreachable = Fate::Reject("icmp-port-unreachable".into());
        // No pod matches the selector.
        let w = walk(&net, &text, &from_pod("10.244.1.10", "10.96.0.30", 80));
        assert_eq!(w.fate, unreachable, "{w}");
        // The pod does not name the target port `metrics`: no endpoint for that port.
        let w = walk(&net, &text, &from_pod("10.244.1.10", "10.96.0.10", 9100));
        assert_eq!(w.fate, unreachable, "{w}");
        // From the host too (filter OUTPUT).
        let mut p = from_pod("192.168.0.1", "10.96.0.30", 80);
        p.hook = Hook::Output;
        p.iif = None;
        assert_eq!(walk(&net, &text, &p).fate, unreachable);
    }

    #[test]
    fn host_and_hairpin_traffic_is_masqueraded() {
        let c = cluster();
        let (net, text) = rendered(&c, None);
        // The node itself: outside the cluster CIDR.
        let mut p = from_pod("192.168.0.1", "10.96.0.10", 80);
        p.hook = Hook::Output;
        p.iif = None;
        let w = walk(&net, &text, &p);
        assert_eq!(w.fate, Fate::Accept, "{w}");
        assert!(touched(&w, "KUBE-SVC-", "jump KUBE-MARK-MASQ"), "{w}");
        assert!(touched(&w, "KUBE-POSTROUTING", "masquerade"), "{w}");
        // The mark is cleared before MASQUERADE.
        assert_eq!(w.mark & MASQ_MARK, 0);
        // An endpoint reaching itself through its service: the hairpin rule.
        let w = walk(&net, &text, &from_pod("10.244.1.20", "10.96.0.10", 80));
        assert_eq!(w.fate, Fate::Accept, "{w}");
        assert!(touched(&w, "KUBE-SEP-", "jump KUBE-MARK-MASQ"), "{w}");
        assert!(touched(&w, "KUBE-POSTROUTING", "masquerade"), "{w}");
    }

    #[test]
    fn other_traffic_is_left_alone() {
        let c = cluster();
        let (net, text) = rendered(&c, None);
        let mut p = from_pod("10.244.1.10", "10.244.1.20", 5000);
        p.oif = Some("cni0".into());
        let w = walk(&net, &text, &p);
        assert_eq!(w.fate, Fate::Accept, "{w}");
        assert!(!w.trace.iter().any(|s| s.effect.starts_with("match: dnat")));
        // To the node: the nodeports jump runs (KUBE-NODEPORTS is empty), then accept.
        let mut p = from_pod("10.244.1.10", "192.168.0.1", 22);
        p.hook = Hook::Input;
        p.oif = None;
        assert_eq!(walk(&net, &text, &p).fate, Fate::Accept);
    }

    #[test]
    fn ports_kube_proxy_cannot_tell_apart_are_refused() {
        let mut b = ClusterBuilder::new();
        b.namespace("y".into(), Labels::new(), site());
        let mut s = service(
            "y/s",
            "10.96.0.40",
            "s",
            &[
                ("", 80, TargetPort::Number(80)),
                ("", 443, TargetPort::Number(443)),
            ],
        );
        for p in &mut s.ports {
            p.name = None;
        }
        b.service(s);
        let c = b.build().unwrap();
        let net = ClusterNet::new(&c, Cni::Flannel);
        let e = render(&c, &net, 0, &mut Tables::new()).unwrap_err();
        assert!(e.message.contains("distinct port names"), "{e}");
    }
}
