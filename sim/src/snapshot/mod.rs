//! Node snapshots: what a node's kernel holds (rulesets of every backend, ipsets,
//! addresses, routes, devices, policy rules, sysctls), one file per command, read into
//! one ruleset and one host model.
//!
//! Contract (the format is documented in docs/snapshots.md):
//! - A snapshot is a directory holding any of [`FILES`]; files fwsim does not know are
//!   ignored, a missing one means "not collected" and is named in [`Snapshot::notes`].
//! - [`read`] returns the snapshot or the first error, located in its file (line and
//!   column) with what was expected there; it never guesses a file's kind from its name
//!   alone: an `ip` listing of the wrong kind is an error.
//! - Every table is read once. iptables-nft writes nftables tables, so they are listed
//!   both by `iptables-nft-save` and in `nft -j list ruleset`: such a table is read from
//!   the iptables-nft-save text (iptables' own meaning, every match it knows) and left out
//!   of the nft listing, and a note says so. Tables of both iptables backends at once (a
//!   half-migrated node) are all kept: the kernel runs both.
//! - The host model ([`Snapshot::host`]) holds the addresses, networks and main-table
//!   routes the walk needs (addrtype, `fib`, re-routing after DNAT, MASQUERADE's source);
//!   [`Snapshot::routing`] is the whole routing decision (policy rules, every table, the
//!   forwarding and rp_filter sysctls) that gives a packet its path.

pub mod collect;
pub mod iproute;
pub mod place;
pub mod routing;

use crate::diag::Diagnostic;
use crate::netfilter::interp::Host;
use crate::netfilter::ir::{Family, Ruleset};
use crate::values::{Cidr, Loc, Site};
use routing::{Decision, Routing};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The snapshot's files, each with the command that writes it.
pub const FILES: &[(&str, &str)] = &[
    ("iptables-legacy-save.txt", "iptables-legacy-save"),
    ("ip6tables-legacy-save.txt", "ip6tables-legacy-save"),
    ("iptables-nft-save.txt", "iptables-nft-save"),
    ("ip6tables-nft-save.txt", "ip6tables-nft-save"),
    ("ipset-save.txt", "ipset save"),
    ("nft-ruleset.json", "nft -j list ruleset"),
    ("ip-addr.json", "ip -j addr show"),
    (
        "ip-route.json",
        "ip -j route show table all; ip -6 -j route show table all",
    ),
    ("ip-link.json", "ip -j -d link show"),
    ("ip-rule.json", "ip -j rule show; ip -6 -j rule show"),
    (
        "sysctl.txt",
        "sysctl (forwarding, rp_filter, bridge-nf-call-*, src_valid_mark)",
    ),
    ("node.yaml", "name, collection time, kernel, tool versions"),
];

/// `node.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct NodeInfo {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub collected_at: Option<String>,
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(default)]
    pub netns: Option<String>,
    /// Tool name → the version it printed.
    #[serde(default)]
    pub tools: BTreeMap<String, String>,
}

/// One network device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// `veth`, `bridge`, `vxlan`, `ipip`, `tun`, `wireguard`...; None for a plain device.
    pub kind: Option<String>,
    /// The bridge it is enslaved to.
    pub master: Option<String>,
    pub alias: Option<String>,
    /// VXLAN: the UDP port.
    pub vxlan_port: Option<u16>,
    pub up: bool,
}

/// An address of a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    pub dev: String,
    pub addr: IpAddr,
    pub prefix: u8,
}

/// A node's snapshot, read.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub info: NodeInfo,
    /// Every table of every backend, each read once.
    pub ruleset: Ruleset,
    /// Per table of `ruleset`, the file it was read from.
    pub table_files: Vec<&'static str>,
    pub host: Host,
    pub routing: Routing,
    pub links: Vec<Link>,
    pub addrs: Vec<Addr>,
    pub sysctl: BTreeMap<String, String>,
    /// What the reader decided and the user should know (not collected, read once...).
    pub notes: Vec<String>,
}

fn error(path: &Path, loc: Loc, message: impl Into<String>) -> Diagnostic {
    Diagnostic::error(Site::new(&Arc::new(path.to_path_buf()), loc), message)
}

/// A file's text, or None when absent.
fn text(dir: &Path, name: &str) -> Result<Option<String>, Diagnostic> {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(&path, Loc::default(), format!("cannot read: {e}"))),
    };
    match Loc::utf8_text(&bytes) {
        Ok(t) => Ok(Some(t.to_string())),
        Err((loc, m)) => Err(error(&path, loc, m)),
    }
}

/// Only comments and blank lines: the tool printed nothing (no table of that backend).
fn blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#'))
}

/// The names of the tables an iptables-save text holds (`*filter` ...).
fn save_tables(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix('*'))
        .map(|t| t.trim().to_string())
        .collect()
}

/// Read the snapshot in `dir`.
pub fn read(dir: &Path) -> Result<Snapshot, Diagnostic> {
    if !dir.is_dir() {
        return Err(error(
            dir,
            Loc::default(),
            "not a directory: expected a node snapshot (a directory written by `fwsim collect` or scripts/collect-node.sh)",
        ));
    }
    let mut notes = Vec::new();
    let mut collected = Vec::new();
    let mut texts: BTreeMap<&'static str, String> = BTreeMap::new();
    for (name, _) in FILES {
        if let Some(t) = text(dir, name)? {
            collected.push(*name);
            texts.insert(name, t);
        }
    }
    if collected.is_empty() {
        return Err(error(
            dir,
            Loc::default(),
            format!(
                "no snapshot file here: expected some of {}",
                FILES.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let missing: Vec<&str> = FILES
        .iter()
        .map(|f| f.0)
        .filter(|f| !collected.contains(f))
        .collect();
    if !missing.is_empty() {
        notes.push(format!("not collected: {}", missing.join(", ")));
    }
    let info = match texts.get("node.yaml") {
        Some(t) => read_node_yaml(&dir.join("node.yaml"), t)?,
        None => NodeInfo::default(),
    };

    // The host's ipsets, attached to each iptables text that uses them.
    let ipsets = match texts.get("ipset-save.txt") {
        Some(t) if !blank(t) => Some(crate::netfilter::read_ipsets(t).map_err(|e| {
            error(
                &dir.join("ipset-save.txt"),
                e.loc,
                format!("{} (expected `ipset save` output)", e.message),
            )
        })?),
        _ => None,
    };
    let mut ruleset = Ruleset::default();
    let mut table_files: Vec<&'static str> = Vec::new();
    let mut nft_written: Vec<(Family, String)> = Vec::new();
    for (name, family, nft) in [
        ("iptables-legacy-save.txt", Family::Ip, false),
        ("ip6tables-legacy-save.txt", Family::Ip6, false),
        ("iptables-nft-save.txt", Family::Ip, true),
        ("ip6tables-nft-save.txt", Family::Ip6, true),
    ] {
        let Some(t) = texts.get(name) else { continue };
        if blank(t) {
            continue;
        }
        let path = dir.join(name);
        if crate::netfilter::detect(t) != Some(crate::netfilter::Format::IptablesSave) {
            return Err(error(
                &path,
                Loc { line: 1, col: 1 },
                format!(
                    "not iptables-save output: expected what `{}` prints (`*filter` ...)",
                    name.trim_end_matches(".txt")
                ),
            ));
        }
        let mut rs =
            crate::netfilter::read_ruleset(t).map_err(|e| error(&path, e.loc, e.message))?;
        if rs.tables.iter().any(|t| t.family != family) {
            return Err(error(
                &path,
                Loc { line: 1, col: 1 },
                format!(
                    "{} rules in {name}: expected {} (the file's name says which tool wrote it)",
                    if family == Family::Ip { "IPv6" } else { "IPv4" },
                    if family == Family::Ip { "IPv4" } else { "IPv6" },
                ),
            ));
        }
        if rs.uses_ipsets() {
            match &ipsets {
                Some(sets) => crate::netfilter::attach_ipsets(&mut rs, sets.clone())
                    .map_err(|e| error(&path, e.loc, e.message))?,
                None => notes.push(format!(
                    "{name}: rules use ipsets, but ipset-save.txt was not collected: their matches are inconclusive"
                )),
            }
        }
        if nft {
            for tn in save_tables(t) {
                nft_written.push((family, tn));
            }
        }
        for _ in &rs.tables {
            table_files.push(name);
        }
        ruleset.tables.extend(rs.tables);
        if rs.ipsets.is_some() {
            ruleset.ipsets = rs.ipsets;
        }
    }
    if let Some(t) = texts.get("nft-ruleset.json") {
        let path = dir.join("nft-ruleset.json");
        if !t.trim_start().starts_with('{') {
            return Err(error(
                &path,
                Loc { line: 1, col: 1 },
                "not nft JSON: expected what `nft -j list ruleset` prints (`{\"nftables\": [...]}`)",
            ));
        }
        let file = crate::syntax::nft_json::parse(t).map_err(|e| error(&path, e.loc, e.message))?;
        let rs = crate::netfilter::from_nft::convert(&file)
            .map_err(|e| error(&path, e.loc, e.message))?;
        let mut skipped = Vec::new();
        for table in rs.tables {
            if nft_written
                .iter()
                .any(|(f, n)| *f == table.family && *n == table.name)
            {
                skipped.push(format!("{} {}", table.family.as_str(), table.name));
                continue;
            }
            table_files.push("nft-ruleset.json");
            ruleset.tables.push(table);
        }
        if !skipped.is_empty() {
            notes.push(format!(
                "read once: table{} {} written by iptables-nft, read from ip(6)tables-nft-save (also listed in nft-ruleset.json)",
                if skipped.len() > 1 { "s" } else { "" },
                skipped.join(", ")
            ));
        }
    }
    let legacy = table_files.iter().any(|f| f.contains("legacy"));
    let nft_ipt = table_files.iter().any(|f| f.contains("nft-save"));
    if legacy && nft_ipt {
        notes.push(
            "rules in both iptables backends (legacy and nf_tables): the kernel runs both, and so does the walk".into(),
        );
    }
    // Tables of the same family and name from two files: say which file in traces.
    let twins: Vec<bool> = (0..ruleset.tables.len())
        .map(|i| {
            (0..ruleset.tables.len()).any(|j| {
                j != i
                    && ruleset.tables[j].family == ruleset.tables[i].family
                    && ruleset.tables[j].name == ruleset.tables[i].name
            })
        })
        .collect();
    for (i, twin) in twins.into_iter().enumerate() {
        if twin {
            let tag = table_files[i]
                .trim_end_matches(".txt")
                .trim_end_matches(".json");
            ruleset.tables[i].name = format!("{} ({tag})", ruleset.tables[i].name);
        }
    }

    // Devices, addresses, routes, rules.
    let links = match texts.get("ip-link.json") {
        Some(t) => iproute::read_links(t)
            .map_err(|e| error(&dir.join("ip-link.json"), e.loc, e.message))?
            .into_iter()
            .map(|l| {
                let kind = l.linkinfo.as_ref().and_then(|i| i.info_kind.clone());
                let vxlan_port = l
                    .linkinfo
                    .as_ref()
                    .and_then(|i| i.info_data.as_ref())
                    .and_then(|d| d.get("port"))
                    .and_then(|p| p.as_u64())
                    .map(|p| p as u16);
                Link {
                    up: l.flags.iter().any(|f| f == "UP"),
                    name: l.ifname,
                    kind,
                    master: l.master,
                    alias: l.ifalias,
                    vxlan_port,
                }
            })
            .collect(),
        None => Vec::new(),
    };
    let addrs: Vec<Addr> = match texts.get("ip-addr.json") {
        Some(t) => iproute::read_addrs(t)
            .map_err(|e| error(&dir.join("ip-addr.json"), e.loc, e.message))?
            .into_iter()
            .flat_map(|i| {
                let dev = i.ifname;
                i.addr_info.into_iter().map(move |a| Addr {
                    dev: dev.clone(),
                    addr: a.local,
                    prefix: a.prefixlen,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let routes = match texts.get("ip-route.json") {
        Some(t) => iproute::read_routes(t)
            .map_err(|e| error(&dir.join("ip-route.json"), e.loc, e.message))?,
        None => Vec::new(),
    };
    let rules = match texts.get("ip-rule.json") {
        Some(t) => Some(
            iproute::read_rules(t)
                .map_err(|e| error(&dir.join("ip-rule.json"), e.loc, e.message))?,
        ),
        None => None,
    };
    let routing = Routing::new(&routes, rules.as_ref());
    if routing.has_policy_rules() {
        notes.push(
            "policy routing rules beyond the kernel's defaults: the path is decided by them; re-routing after DNAT and `fib` use the main table".into(),
        );
    }
    let sysctl = match texts.get("sysctl.txt") {
        Some(t) => read_sysctl(&dir.join("sysctl.txt"), t)?,
        None => BTreeMap::new(),
    };
    let mut host = host_of(&addrs, &routing);
    host.no_forwarding = (
        sysctl.get("net.ipv4.ip_forward").map(String::as_str) == Some("0"),
        sysctl
            .get("net.ipv6.conf.all.forwarding")
            .map(String::as_str)
            == Some("0"),
    );
    Ok(Snapshot {
        dir: dir.to_path_buf(),
        info,
        ruleset,
        table_files,
        host,
        routing,
        links,
        addrs,
        sysctl,
        notes,
    })
}

fn read_node_yaml(path: &Path, text: &str) -> Result<NodeInfo, Diagnostic> {
    let docs = crate::syntax::yaml::parse_documents(text).map_err(|e| {
        error(
            path,
            e.loc.unwrap_or_default(),
            format!(
                "{} (expected node.yaml: name, collected_at, kernel, tools)",
                e.message
            ),
        )
    })?;
    let Some(doc) = docs.first() else {
        return Ok(NodeInfo::default());
    };
    crate::syntax::yaml::from_node(doc).map_err(|e| {
        error(
            path,
            e.loc.unwrap_or_default(),
            format!(
                "{} (expected node.yaml: name, collected_at, kernel, netns, tools)",
                e.message
            ),
        )
    })
}

/// `key = value` lines, as `sysctl` prints them; `#` comments.
fn read_sysctl(path: &Path, text: &str) -> Result<BTreeMap<String, String>, Diagnostic> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            return Err(error(
                path,
                Loc {
                    line: i as u32 + 1,
                    col: 1,
                },
                format!("`{t}`: expected `name = value`, as `sysctl` prints it"),
            ));
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// The walk's host model: every address (and its network), the main table's routes (a
/// route to nowhere has the device ""), each device's addresses.
fn host_of(addrs: &[Addr], routing: &Routing) -> Host {
    let mut host = Host {
        complete: !routing.routes.is_empty(),
        ..Host::default()
    };
    for a in addrs {
        host.addresses.push(a.addr);
        if let Ok(n) = Cidr::new(a.addr, a.prefix) {
            host.networks.push(n);
        }
        host.iface_addrs.push((a.dev.clone(), a.addr));
    }
    for r in &routing.routes {
        if r.table == "local" && r.kind == "local" && r.dst.prefix_len() == r.dst.max_prefix_len() {
            let a = r.dst.addr();
            if !host.addresses.contains(&a) {
                host.addresses.push(a);
            }
        }
        if r.table != "main" {
            continue;
        }
        match (r.kind.as_str(), &r.dev) {
            ("unicast", Some(dev)) => host.routes.push((r.dst, dev.clone())),
            (kind @ ("blackhole" | "unreachable" | "prohibit"), _) => {
                host.routes.push((r.dst, format!(":{kind}")))
            }
            _ => {}
        }
    }
    host
}

/// Where a packet goes on this node: the hook and output device routing gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathChoice {
    /// The input path (delivered to the host).
    Input,
    /// The forward (received) or output (the host's own) path, out of `dev`.
    Out(String),
    /// Routing cannot deliver it to its destination (no route, a route to nowhere,
    /// forwarding off): why. A DNAT in PREROUTING may still give it one that routes.
    Unroutable(String),
    /// Routing drops it whatever its destination (reverse-path filtering): why.
    Dropped(String),
    Undecided(String),
}

impl Snapshot {
    /// A sysctl's value, when collected.
    pub fn sysctl(&self, key: &str) -> Option<&str> {
        self.sysctl.get(key).map(String::as_str)
    }

    /// The node's name: node.yaml's, else the directory's.
    pub fn name(&self) -> String {
        self.info.name.clone().unwrap_or_else(|| {
            self.dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    }

    /// The routing decision for a packet received on `iif` (None: sent by the host), with
    /// forwarding and reverse-path filtering as the sysctls set them.
    pub fn route(&self, src: IpAddr, dst: IpAddr, iif: Option<&str>) -> PathChoice {
        if self.routing.routes.is_empty() {
            return PathChoice::Undecided("routes were not collected (ip-route.json)".into());
        }
        let d = self.routing.decide(src, dst, iif);
        let out = match d {
            Decision::Local { .. } => {
                if let Some(iif) = iif {
                    if let Some(why) = self.rp_filter_drops(src, dst, iif) {
                        return PathChoice::Dropped(why);
                    }
                }
                return PathChoice::Input;
            }
            Decision::Out { dev, .. } => dev,
            Decision::Nowhere { kind, table } => {
                return PathChoice::Unroutable(format!("a {kind} route in {table}"))
            }
            Decision::NoRoute => {
                return PathChoice::Unroutable(format!("no route to {dst} (network unreachable)"))
            }
            Decision::Undecided(why) => return PathChoice::Undecided(why),
        };
        if let Some(iif) = iif {
            let key = if dst.is_ipv4() {
                "net.ipv4.ip_forward"
            } else {
                "net.ipv6.conf.all.forwarding"
            };
            if self.sysctl(key) == Some("0") {
                return PathChoice::Unroutable(format!(
                    "forwarding is off ({key} = 0): the kernel does not route it"
                ));
            }
            if let Some(why) = self.rp_filter_drops(src, dst, iif) {
                return PathChoice::Dropped(why);
            }
        }
        PathChoice::Out(out)
    }

    /// Reverse-path filtering (IPv4, fib_validate_source): the effective mode is the
    /// larger of `all` and the device's; strict (1) wants the route back to the source
    /// out of `iif`, loose (2) any route back.
    fn rp_filter_drops(&self, src: IpAddr, dst: IpAddr, iif: &str) -> Option<String> {
        if !src.is_ipv4() || iif == "lo" {
            return None;
        }
        let get = |k: &str| {
            self.sysctl(&format!("net.ipv4.conf.{k}.rp_filter"))
                .and_then(|v| v.parse::<u8>().ok())
                .unwrap_or(0)
        };
        let mode = get("all").max(get(iif));
        if mode == 0 {
            return None;
        }
        let back = self.routing.decide(dst, src, Some(iif));
        match (mode, back) {
            (1, Decision::Out { dev, .. }) if dev == iif => None,
            (2, Decision::Out { .. }) => None,
            (_, Decision::Undecided(_)) => None,
            (_, other) => Some(format!(
                "reverse-path filter (rp_filter = {mode} on {iif}): the route back to {src} is {}",
                match other {
                    Decision::Out { dev, .. } => format!("out of {dev}"),
                    Decision::Local { .. } => "local".into(),
                    _ => "missing".into(),
                }
            )),
        }
    }
}

#[cfg(test)]
mod tests;
