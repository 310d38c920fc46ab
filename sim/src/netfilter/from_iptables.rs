//! Meaning for iptables-save syntax: [`crate::syntax::iptables::Save`] → IR [`Ruleset`].
//!
//! Contract: bad values (a port `abc`, a CIDR `/33`, a jump to an undeclared chain) are
//! errors with line and column; options and modules fwsim does not model become
//! `Unsupported` matches or actions naming what they are, never a guess.
//!
//! Built-in chains are base chains at the kernel's iptables priorities
//! (NF_IP_PRI_RAW -300, MANGLE -150, NAT_DST -100, FILTER 0, SECURITY 50, NAT_SRC 100).

use super::ir::*;
use crate::syntax::iptables::{builtin_chains, Error, MatchModule, Opt, Save, Target};
use crate::values::{Cidr, Loc};
use std::net::IpAddr;

/// Which iptables: `iptables-save` (IPv4) or `ip6tables-save` (IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
}

fn err(loc: Loc, message: impl Into<String>) -> Error {
    Error {
        loc,
        message: message.into(),
    }
}

pub fn priority(table: &str) -> i32 {
    match table {
        "raw" => -300,
        "mangle" => -150,
        "nat" => -100,
        "filter" => 0,
        "security" => 50,
        _ => 0,
    }
}

fn hook_of(chain: &str) -> Option<Hook> {
    Some(match chain {
        "PREROUTING" => Hook::Prerouting,
        "INPUT" => Hook::Input,
        "FORWARD" => Hook::Forward,
        "OUTPUT" => Hook::Output,
        "POSTROUTING" => Hook::Postrouting,
        _ => return None,
    })
}

/// Which iptables binary wrote (and would load) a save: their built-in chains differ only
/// in the security table's priority (H6: 50 for legacy, 150 for iptables-nft).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Legacy,
    Nft,
}

impl Backend {
    /// From the save's header comments: `iptables-nft-save` / `(nf_tables)` is the nft
    /// backend; anything else (legacy's header, or none) is legacy.
    pub fn of_text(text: &str) -> Backend {
        let nft = text
            .lines()
            .take_while(|l| l.starts_with('#') || l.trim().is_empty())
            .any(|l| l.contains("nf_tables") || l.contains("-nft-save"));
        if nft {
            Backend::Nft
        } else {
            Backend::Legacy
        }
    }
}

/// Convert a parsed save to the IR (as iptables-legacy loads it).
pub fn convert(save: &Save, version: IpVersion) -> Result<Ruleset, Error> {
    convert_for(save, version, Backend::Legacy)
}

/// Convert a parsed save to the IR, as `backend` loads it.
pub fn convert_for(save: &Save, version: IpVersion, backend: Backend) -> Result<Ruleset, Error> {
    let family = match version {
        IpVersion::V4 => Family::Ip,
        IpVersion::V6 => Family::Ip6,
    };
    let mut out = Ruleset::default();
    for t in &save.tables {
        // Chains: built-ins first (declared or not), then user chains in declaration order.
        let mut chains: Vec<Chain> = Vec::new();
        for &name in builtin_chains(&t.name) {
            let hook = hook_of(name).expect("built-in chains have hooks");
            let decl = t.chains.iter().find(|c| c.name == name);
            let policy = match decl.and_then(|d| d.policy.as_deref()) {
                Some("DROP") => Policy::Drop,
                _ => Policy::Accept,
            };
            let (kind, priority) = match (t.name.as_str(), hook) {
                ("nat", Hook::Postrouting | Hook::Input) => (ChainType::Nat, 100),
                ("nat", _) => (ChainType::Nat, -100),
                ("mangle", Hook::Output) => (ChainType::Route, -150),
                ("security", _) if backend == Backend::Nft => (ChainType::Filter, 150),
                (name, _) => (ChainType::Filter, priority(name)),
            };
            chains.push(Chain {
                name: name.to_string(),
                base: Some(BaseChain {
                    kind,
                    hook,
                    priority,
                    policy,
                }),
                rules: Vec::new(),
            });
        }
        for c in &t.chains {
            // Declared built-ins are already there (the parser refuses duplicates).
            if !builtin_chains(&t.name).contains(&c.name.as_str()) {
                chains.push(Chain {
                    name: c.name.clone(),
                    base: None,
                    rules: Vec::new(),
                });
            }
        }
        let by_name: std::collections::HashMap<&str, usize> = chains
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect();
        let index = |name: &str| by_name.get(name).copied();
        let mut rules: Vec<(usize, Rule)> = Vec::new();
        for r in &t.rules {
            let chain = index(&r.chain).ok_or_else(|| err(r.loc, "undeclared chain"))?;
            let mut matches = Vec::new();
            for o in &r.core {
                matches.push(core(o, version)?);
            }
            for m in &r.matches {
                module(m, version, &mut matches)?;
            }
            let action = match &r.target {
                None => Action::None,
                Some(Target::Goto { chain, loc }) => Action::Goto(
                    index(chain).ok_or_else(|| err(*loc, format!("-g {chain}: no such chain")))?,
                ),
                Some(Target::Jump { name, options, loc }) => {
                    target(name, options, *loc, &t.name, |n| index(n))?
                }
            };
            rules.push((
                chain,
                Rule {
                    matches,
                    action,
                    text: r.to_string(),
                    loc: r.loc,
                },
            ));
        }
        for (chain, rule) in rules {
            chains[chain].rules.push(rule);
        }
        check_loops(&chains, &[])?;
        let table = Table {
            family,
            name: t.name.clone(),
            origin: Origin::Iptables,
            chains,
            sets: Vec::new(),
        };
        super::validate::check(&table).map_err(|(loc, message)| err(loc, message))?;
        out.tables.push(table);
    }
    Ok(out)
}

/// The kernel refuses a ruleset whose jumps and gotos form a loop reachable from a base
/// chain (ELOOP, `mark_source_chains`); a loop no base chain reaches loads. So do we, naming
/// the rule that closes it.
/// `sets` are the table's named sets: verdict maps among them are followed too (nft).
pub(crate) fn check_loops(chains: &[Chain], sets: &[Set]) -> Result<(), Error> {
    // Depth-first, with an explicit stack (a chain of 100,000 nested jumps must not
    // overflow the call stack). 0 unvisited, 1 on the current path, 2 done.
    let mut state = vec![0u8; chains.len()];
    let mut targets: Vec<usize> = Vec::new();
    for start in 0..chains.len() {
        if state[start] != 0 || chains[start].base.is_none() {
            continue;
        }
        // (chain, next rule to look at, next target of that rule)
        let mut stack: Vec<(usize, usize, usize)> = vec![(start, 0, 0)];
        state[start] = 1;
        while let Some(top) = stack.last_mut() {
            let (c, i, k) = *top;
            let Some(r) = chains[c].rules.get(i) else {
                state[c] = 2;
                stack.pop();
                continue;
            };
            targets.clear();
            r.action.jump_targets(sets, &mut targets);
            let Some(&to) = targets.get(k) else {
                *top = (c, i + 1, 0);
                continue;
            };
            top.2 += 1;
            match state[to] {
                1 => {
                    return Err(err(
                        r.loc,
                        format!(
                            "jump loop: chain {} leads back to {}: expected jumps that never return to a chain on the way (the kernel refuses loops)",
                            chains[c].name, chains[to].name
                        ),
                    ))
                }
                0 => {
                    state[to] = 1;
                    stack.push((to, 0, 0));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn one(o: &Opt) -> Result<&str, Error> {
    match o.values.as_slice() {
        [v] => Ok(v),
        v => Err(err(
            o.loc,
            format!(
                "`{}` takes one value: expected one after it, found {}",
                o.name,
                v.len()
            ),
        )),
    }
}

fn parse_addr_net(text: &str, version: IpVersion, loc: Loc) -> Result<Cidr, Error> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| {
        err(
            loc,
            format!("`{text}` is not an address: expected such as 10.0.0.0/8 (host names are not resolved)"),
        )
    })?;
    if ip.is_ipv4() != (version == IpVersion::V4) {
        return Err(err(
            loc,
            format!(
                "`{text}` is an IPv{} address in an {} ruleset",
                if ip.is_ipv4() { 4 } else { 6 },
                if version == IpVersion::V4 {
                    "iptables (IPv4)"
                } else {
                    "ip6tables (IPv6)"
                }
            ),
        ));
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            Ok(_) => return Err(err(loc, format!("prefix length in `{text}` is over {max}"))),
            Err(_) => {
                // A dotted mask: 255.255.0.0.
                let mask: IpAddr = p.parse().map_err(|_| {
                    err(
                        loc,
                        format!("bad mask in `{text}`: expected a prefix length"),
                    )
                })?;
                let bits: u128 = match mask {
                    IpAddr::V4(m) => u128::from(u32::from(m)) << 96,
                    IpAddr::V6(m) => u128::from(m),
                };
                let ones = bits.leading_ones();
                if bits.count_ones() != ones {
                    return Err(err(
                        loc,
                        format!("mask in `{text}` is not contiguous (not supported)"),
                    ));
                }
                ones as u8
            }
        },
    };
    Ok(Cidr::new(ip, len).expect("checked length").trunc())
}

pub fn protocol_number(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "all" | "0" => 0,
        "icmp" => 1,
        "igmp" => 2,
        "ipencap" => 4,
        "tcp" => 6,
        "udp" => 17,
        "ipv6" => 41,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" => 58,
        "ospf" => 89,
        "ipip" => 94,
        "vrrp" => 112,
        "udplite" => 136,
        "sctp" => 132,
        "dccp" => 33,
        "mh" | "ipv6-mh" => 135,
        n => return n.parse().ok(),
    })
}

fn core(o: &Opt, version: IpVersion) -> Result<Match, Error> {
    Ok(match o.name.as_str() {
        "-s" | "-d" => {
            let dir = if o.name == "-s" { Dir::Src } else { Dir::Dst };
            let text = one(o)?;
            let nets = text
                .split(',')
                .map(|a| parse_addr_net(a, version, o.loc))
                .collect::<Result<Vec<_>, _>>()?;
            if o.negated && nets.len() > 1 {
                return Err(err(o.loc, "`!` is not allowed with several addresses"));
            }
            Match::Addr {
                dir,
                nets,
                neg: o.negated,
            }
        }
        "-p" => {
            let text = one(o)?;
            let proto = protocol_number(text)
                .ok_or_else(|| err(o.loc, format!("unknown protocol `{text}`")))?;
            Match::Proto {
                proto,
                neg: o.negated,
            }
        }
        "-i" | "-o" => Match::Iface {
            dir: if o.name == "-i" { Dir::Src } else { Dir::Dst },
            name: one(o)?.to_string(),
            neg: o.negated,
        },
        "-f" => Match::Fragment { neg: o.negated },
        other => Match::Unsupported {
            what: format!("option {other}"),
        },
    })
}

fn port(text: &str, loc: Loc) -> Result<u16, Error> {
    text.parse::<u16>()
        .ok()
        .or_else(|| service_port(text))
        .ok_or_else(|| {
            err(
                loc,
                format!("`{text}` is not a port: expected a number 0-65535"),
            )
        })
}

/// Service names iptables resolves through /etc/services (the common ones).
pub(crate) fn service_port(name: &str) -> Option<u16> {
    Some(match name {
        "ssh" => 22,
        "smtp" => 25,
        "domain" => 53,
        "http" | "www" => 80,
        "https" => 443,
        "ntp" => 123,
        "bootps" => 67,
        "bootpc" => 68,
        _ => return None,
    })
}

/// `a`, `a:b`, `:b`, `a:` (and `a-b` in multiport lists is not accepted by iptables).
fn port_range(text: &str, loc: Loc) -> Result<(u16, u16), Error> {
    match text.split_once(':') {
        None => {
            let p = port(text, loc)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let a = if a.is_empty() { 0 } else { port(a, loc)? };
            let b = if b.is_empty() { 65535 } else { port(b, loc)? };
            Ok((a.min(b), a.max(b)))
        }
    }
}

fn number(text: &str, loc: Loc) -> Result<u32, Error> {
    let r = if let Some(h) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else {
        text.parse()
    };
    r.map_err(|_| err(loc, format!("`{text}` is not a number")))
}

/// `V` or `V/M` (mask default all ones).
fn value_mask(text: &str, loc: Loc) -> Result<(u32, u32), Error> {
    match text.split_once('/') {
        Some((v, m)) => Ok((number(v, loc)?, number(m, loc)?)),
        None => Ok((number(text, loc)?, u32::MAX)),
    }
}

fn ct_states(text: &str, loc: Loc) -> Result<u8, Error> {
    let mut bits = 0;
    for s in text.split(',') {
        bits |= match s.to_ascii_uppercase().as_str() {
            "INVALID" => ct::INVALID,
            "NEW" => ct::NEW,
            "ESTABLISHED" => ct::ESTABLISHED,
            "RELATED" => ct::RELATED,
            "UNTRACKED" => ct::UNTRACKED,
            "DNAT" => ct::DNAT,
            "SNAT" => ct::SNAT,
            _ => {
                return Err(err(
                    loc,
                    format!("unknown conntrack state `{s}`: expected INVALID, NEW, ESTABLISHED, RELATED, UNTRACKED, SNAT or DNAT"),
                ))
            }
        };
    }
    Ok(bits)
}

fn tcp_flags(text: &str, loc: Loc) -> Result<u8, Error> {
    let mut bits = 0u8;
    for f in text.split(',') {
        bits |= match f.to_ascii_uppercase().as_str() {
            "FIN" => 0x01,
            "SYN" => 0x02,
            "RST" => 0x04,
            "PSH" => 0x08,
            "ACK" => 0x10,
            "URG" => 0x20,
            "ECE" => 0x40,
            "CWR" => 0x80,
            "ALL" => 0xff,
            "NONE" => 0,
            _ => return Err(err(loc, format!("unknown TCP flag `{f}`"))),
        };
    }
    Ok(bits)
}

fn icmp_type(text: &str, v6: bool, loc: Loc) -> Result<(u8, (u8, u8)), Error> {
    if let Some((t, c)) = text.split_once('/') {
        let t = t
            .parse()
            .map_err(|_| err(loc, format!("bad ICMP type `{text}`")))?;
        let c: u8 = c
            .parse()
            .map_err(|_| err(loc, format!("bad ICMP code `{text}`")))?;
        return Ok((t, (c, c)));
    }
    if let Ok(t) = text.parse::<u8>() {
        return Ok((t, (0, 255)));
    }
    let all = (0, 255);
    let v4: &[(&str, u8, (u8, u8))] = &[
        ("any", 255, all),
        ("echo-reply", 0, all),
        ("pong", 0, all),
        ("destination-unreachable", 3, all),
        ("network-unreachable", 3, (0, 0)),
        ("host-unreachable", 3, (1, 1)),
        ("protocol-unreachable", 3, (2, 2)),
        ("port-unreachable", 3, (3, 3)),
        ("fragmentation-needed", 3, (4, 4)),
        ("source-route-failed", 3, (5, 5)),
        ("network-prohibited", 3, (9, 9)),
        ("host-prohibited", 3, (10, 10)),
        ("communication-prohibited", 3, (13, 13)),
        ("source-quench", 4, all),
        ("redirect", 5, all),
        ("echo-request", 8, all),
        ("ping", 8, all),
        ("router-advertisement", 9, all),
        ("router-solicitation", 10, all),
        ("time-exceeded", 11, all),
        ("ttl-exceeded", 11, all),
        ("ttl-zero-during-transit", 11, (0, 0)),
        ("parameter-problem", 12, all),
        ("timestamp-request", 13, all),
        ("timestamp-reply", 14, all),
    ];
    let v6t: &[(&str, u8, (u8, u8))] = &[
        ("destination-unreachable", 1, all),
        ("no-route", 1, (0, 0)),
        ("communication-prohibited", 1, (1, 1)),
        ("address-unreachable", 1, (3, 3)),
        ("port-unreachable", 1, (4, 4)),
        ("packet-too-big", 2, all),
        ("time-exceeded", 3, all),
        ("ttl-exceeded", 3, all),
        ("parameter-problem", 4, all),
        ("echo-request", 128, all),
        ("ping", 128, all),
        ("echo-reply", 129, all),
        ("pong", 129, all),
        ("router-solicitation", 133, all),
        ("router-advertisement", 134, all),
        ("neighbour-solicitation", 135, all),
        ("neighbor-solicitation", 135, all),
        ("neighbour-advertisement", 136, all),
        ("neighbor-advertisement", 136, all),
        ("redirect", 137, all),
    ];
    let table = if v6 { v6t } else { v4 };
    table
        .iter()
        .find(|(n, _, _)| *n == text)
        .map(|(_, t, c)| (*t, *c))
        .ok_or_else(|| err(loc, format!("unknown ICMP type `{text}`")))
}

fn addr_types(text: &str, loc: Loc) -> Result<u16, Error> {
    let mut bits = 0;
    for t in text.split(',') {
        bits |= addrtype::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(t))
            .map(|(_, b)| *b)
            .ok_or_else(|| err(loc, format!("unknown address type `{t}`")))?;
    }
    Ok(bits)
}

fn unsupported(m: &MatchModule, o: Option<&Opt>) -> Match {
    Match::Unsupported {
        what: match o {
            Some(o) => format!("-m {} {}", m.name, o.name),
            None => format!("-m {}", m.name),
        },
    }
}

fn module(m: &MatchModule, version: IpVersion, out: &mut Vec<Match>) -> Result<(), Error> {
    let name = m.name.as_str();
    match name {
        "comment" => return Ok(()),
        // A fresh token bucket lets a single packet through: fwsim evaluates packets one
        // at a time from a fresh state, so `limit` matches.
        "limit" => return Ok(()),
        "tcp" | "udp" | "udplite" | "sctp" | "dccp" => {
            for o in &m.options {
                match o.name.as_str() {
                    "--sport" | "--source-port" | "--dport" | "--destination-port" => {
                        let dir = if matches!(o.name.as_str(), "--sport" | "--source-port") {
                            Dir::Src
                        } else {
                            Dir::Dst
                        };
                        out.push(Match::Port {
                            dir,
                            ranges: vec![port_range(one(o)?, o.loc)?],
                            neg: o.negated,
                        });
                    }
                    "--tcp-flags" if name == "tcp" => match o.values.as_slice() {
                        [mask, comp] => out.push(Match::TcpFlags {
                            mask: tcp_flags(mask, o.loc)?,
                            comp: tcp_flags(comp, o.loc)?,
                            neg: o.negated,
                        }),
                        _ => return Err(err(o.loc, "`--tcp-flags` takes MASK COMP")),
                    },
                    "--syn" if name == "tcp" => out.push(Match::TcpFlags {
                        mask: 0x17,
                        comp: 0x02,
                        neg: o.negated,
                    }),
                    _ => out.push(unsupported(m, Some(o))),
                }
            }
        }
        "multiport" => {
            for o in &m.options {
                let ranges = one(o)?
                    .split(',')
                    .map(|p| port_range(p, o.loc))
                    .collect::<Result<Vec<_>, _>>()?;
                if ranges.len() > 15 {
                    return Err(err(o.loc, "multiport takes at most 15 ports"));
                }
                out.push(match o.name.as_str() {
                    "--sports" | "--source-ports" => Match::Port {
                        dir: Dir::Src,
                        ranges,
                        neg: o.negated,
                    },
                    "--dports" | "--destination-ports" => Match::Port {
                        dir: Dir::Dst,
                        ranges,
                        neg: o.negated,
                    },
                    "--ports" => Match::AnyPort {
                        ranges,
                        neg: o.negated,
                    },
                    _ => unsupported(m, Some(o)),
                });
            }
        }
        "icmp" | "icmp6" | "icmpv6" => {
            let v6 = name != "icmp";
            for o in &m.options {
                match o.name.as_str() {
                    "--icmp-type" | "--icmpv6-type" => {
                        let (ty, codes) = icmp_type(one(o)?, v6, o.loc)?;
                        out.push(Match::Icmp {
                            v6,
                            ty,
                            codes,
                            neg: o.negated,
                        });
                    }
                    _ => out.push(unsupported(m, Some(o))),
                }
            }
        }
        "conntrack" | "state" => {
            for o in &m.options {
                match o.name.as_str() {
                    "--ctstate" | "--state" => out.push(Match::CtState {
                        states: ct_states(one(o)?, o.loc)?,
                        neg: o.negated,
                    }),
                    _ => out.push(unsupported(m, Some(o))),
                }
            }
        }
        "mark" | "connmark" => {
            for o in &m.options {
                match o.name.as_str() {
                    "--mark" => {
                        let (value, mask) = value_mask(one(o)?, o.loc)?;
                        out.push(if name == "mark" {
                            Match::Mark {
                                value,
                                mask,
                                neg: o.negated,
                            }
                        } else {
                            Match::ConnMark {
                                value,
                                mask,
                                neg: o.negated,
                            }
                        });
                    }
                    _ => out.push(unsupported(m, Some(o))),
                }
            }
        }
        "set" => {
            // `--return-nomatch` applies to the module's set; counter updates do not change
            // the verdict; counter comparisons (`--packets-gt`...) are not modelled.
            let return_nomatch = m.options.iter().any(|o| o.name == "--return-nomatch");
            for o in &m.options {
                match (o.name.as_str(), o.values.as_slice()) {
                    ("--match-set" | "--set", [set, flags]) => {
                        let dirs = flags
                            .split(',')
                            .map(|f| match f {
                                "src" => Ok(Dir::Src),
                                "dst" => Ok(Dir::Dst),
                                _ => {
                                    Err(err(o.loc, format!("set flag `{f}`: expected src or dst")))
                                }
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        if dirs.len() > 6 {
                            return Err(err(o.loc, "`--match-set` takes at most 6 directions"));
                        }
                        out.push(Match::Set {
                            name: set.clone(),
                            dirs,
                            neg: o.negated,
                            return_nomatch,
                        });
                    }
                    ("--match-set" | "--set", _) => {
                        return Err(err(o.loc, "`--match-set` takes NAME FLAGS (src,dst)"))
                    }
                    ("--return-nomatch" | "--update-counters" | "--update-subcounters", []) => {}
                    _ => out.push(unsupported(m, Some(o))),
                }
            }
        }
        "addrtype" => {
            let mut src = None;
            let mut dst = None;
            let mut limit_in = false;
            let mut limit_out = false;
            for o in &m.options {
                match o.name.as_str() {
                    "--src-type" => src = Some((addr_types(one(o)?, o.loc)?, o.negated)),
                    "--dst-type" => dst = Some((addr_types(one(o)?, o.loc)?, o.negated)),
                    "--limit-iface-in" => limit_in = true,
                    "--limit-iface-out" => limit_out = true,
                    _ => out.push(unsupported(m, Some(o))),
                }
            }
            out.push(Match::AddrType {
                src,
                dst,
                limit_in,
                limit_out,
            });
        }
        "statistic" => {
            let get = |n: &str| m.options.iter().find(|o| o.name == n);
            let neg = m.options.iter().any(|o| o.negated);
            let mode = get("--mode").map(one).transpose()?;
            let stat = match mode {
                Some("random") => {
                    let p = get("--probability")
                        .ok_or_else(|| err(m.loc, "statistic random needs --probability"))?;
                    let probability: f64 = one(p)?.parse().map_err(|_| {
                        err(p.loc, "`--probability` takes a number between 0 and 1")
                    })?;
                    if !(0.0..=1.0).contains(&probability) {
                        return Err(err(p.loc, "`--probability` takes a number between 0 and 1"));
                    }
                    Statistic::Random { probability }
                }
                Some("nth") => {
                    let every =
                        get("--every").ok_or_else(|| err(m.loc, "statistic nth needs --every"))?;
                    let every = number(one(every)?, every.loc)?;
                    let packet = match get("--packet") {
                        Some(p) => number(one(p)?, p.loc)?,
                        None => 0,
                    };
                    if every == 0 || packet >= every {
                        return Err(err(
                            m.loc,
                            "statistic nth needs --every N > 0 and --packet < N",
                        ));
                    }
                    Statistic::Nth { every, packet }
                }
                _ => return Err(err(m.loc, "statistic needs --mode random or --mode nth")),
            };
            out.push(Match::Statistic { mode: stat, neg });
        }
        _ => out.push(Match::Unsupported {
            what: format!("-m {name}"),
        }),
    }
    let _ = version;
    Ok(())
}

fn nat_to(text: &str, loc: Loc) -> Result<NatTo, Error> {
    // ADDR[-ADDR][:PORT[-PORT]], IPv6 as [ADDR]:PORT.
    let (addrs, ports) = if let Some(rest) = text.strip_prefix('[') {
        let (a, p) = rest
            .split_once(']')
            .ok_or_else(|| err(loc, format!("`{text}`: missing ]")))?;
        (a, p.strip_prefix(':'))
    } else if text.matches(':').count() > 1 {
        (text, None)
    } else {
        match text.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        }
    };
    let addrs = if addrs.is_empty() {
        None
    } else {
        let (a, b) = addrs.split_once('-').unwrap_or((addrs, addrs));
        let a: IpAddr = a.parse().map_err(|_| {
            err(
                loc,
                format!("`{text}`: expected ADDRESS[-ADDRESS][:PORT[-PORT]]"),
            )
        })?;
        let b: IpAddr = b.parse().map_err(|_| {
            err(
                loc,
                format!("`{text}`: expected ADDRESS[-ADDRESS][:PORT[-PORT]]"),
            )
        })?;
        Some((a, b))
    };
    let ports = match ports {
        None => None,
        Some(p) => {
            let (a, b) = p.split_once('-').unwrap_or((p, p));
            Some((port(a, loc)?, port(b, loc)?))
        }
    };
    Ok(NatTo { addrs, ports })
}

fn target(
    name: &str,
    options: &[Opt],
    loc: Loc,
    table: &str,
    chain: impl Fn(&str) -> Option<ChainId>,
) -> Result<Action, Error> {
    let get = |n: &[&str]| options.iter().find(|o| n.contains(&o.name.as_str()));
    let unknown_option = |known: &[&str]| {
        options
            .iter()
            .find(|o| !known.contains(&o.name.as_str()))
            .map(|o| Action::Unsupported {
                what: format!("-j {name} {}", o.name),
            })
    };
    Ok(match name {
        "ACCEPT" => Action::Accept,
        "DROP" => Action::Drop,
        "RETURN" => Action::Return,
        "REJECT" => {
            // ipt_REJECT is registered for table filter (INPUT, FORWARD, OUTPUT) only.
            if table != "filter" {
                return Err(err(
                    loc,
                    format!("REJECT is only valid in table filter, not {table}"),
                ));
            }
            Action::Reject {
                with: match get(&["--reject-with"]) {
                    Some(o) => one(o)?.to_string(),
                    None => "icmp-port-unreachable".into(),
                },
            }
        }
        "MARK" | "CONNMARK" => {
            if let Some(a) = unknown_option(&[
                "--set-xmark",
                "--set-mark",
                "--and-mark",
                "--or-mark",
                "--xor-mark",
                "--save-mark",
                "--restore-mark",
                "--nfmask",
                "--ctmask",
                "--mask",
            ]) {
                return Ok(a);
            }
            let op = |o: &Opt| -> Result<MarkOp, Error> {
                let v = one(o)?;
                Ok(match o.name.as_str() {
                    "--set-xmark" => {
                        let (value, mask) = value_mask(v, o.loc)?;
                        MarkOp {
                            clear: mask,
                            xor: value,
                        }
                    }
                    "--set-mark" => {
                        let (value, mask) = value_mask(v, o.loc)?;
                        MarkOp {
                            clear: mask | value,
                            xor: value,
                        }
                    }
                    "--and-mark" => MarkOp {
                        clear: !number(v, o.loc)?,
                        xor: 0,
                    },
                    "--or-mark" => {
                        let m = number(v, o.loc)?;
                        MarkOp { clear: m, xor: m }
                    }
                    _ => MarkOp {
                        clear: 0,
                        xor: number(v, o.loc)?,
                    },
                })
            };
            let masks = || -> Result<(u32, u32), Error> {
                let mut nf = u32::MAX;
                let mut ctm = u32::MAX;
                if let Some(o) = get(&["--mask"]) {
                    nf = number(one(o)?, o.loc)?;
                    ctm = nf;
                }
                if let Some(o) = get(&["--nfmask"]) {
                    nf = number(one(o)?, o.loc)?;
                }
                if let Some(o) = get(&["--ctmask"]) {
                    ctm = number(one(o)?, o.loc)?;
                }
                Ok((nf, ctm))
            };
            if let Some(o) = get(&[
                "--set-xmark",
                "--set-mark",
                "--and-mark",
                "--or-mark",
                "--xor-mark",
            ]) {
                if name == "MARK" {
                    Action::Mark(op(o)?)
                } else {
                    Action::SetConnMark(op(o)?)
                }
            } else if name == "CONNMARK" && get(&["--save-mark"]).is_some() {
                let (nfmask, ctmask) = masks()?;
                Action::SaveMark { nfmask, ctmask }
            } else if name == "CONNMARK" && get(&["--restore-mark"]).is_some() {
                let (nfmask, ctmask) = masks()?;
                Action::RestoreMark { nfmask, ctmask }
            } else {
                return Err(err(
                    loc,
                    format!("{name} needs an operation such as --set-xmark"),
                ));
            }
        }
        "LOG" | "NFLOG" | "TRACE" | "ULOG" | "CHECKSUM" | "TCPMSS" => Action::Log,
        "NOTRACK" => Action::NoTrack,
        "CT" => {
            if options.iter().all(|o| o.name == "--notrack") && !options.is_empty() {
                Action::NoTrack
            } else {
                Action::Unsupported {
                    what: "-j CT with options other than --notrack".into(),
                }
            }
        }
        "DNAT" | "SNAT" => {
            if table != "nat" {
                return Err(err(loc, format!("{name} is only valid in table nat")));
            }
            let key = if name == "DNAT" {
                "--to-destination"
            } else {
                "--to-source"
            };
            if let Some(a) = unknown_option(&[key, "--random", "--random-fully", "--persistent"]) {
                return Ok(a);
            }
            let o = get(&[key]).ok_or_else(|| err(loc, format!("{name} needs {key}")))?;
            let to = nat_to(one(o)?, o.loc)?;
            if name == "DNAT" {
                Action::Dnat(to)
            } else {
                Action::Snat(to)
            }
        }
        "MASQUERADE" => {
            if table != "nat" {
                return Err(err(loc, "MASQUERADE is only valid in table nat"));
            }
            Action::Masquerade
        }
        "REDIRECT" => {
            if table != "nat" {
                return Err(err(loc, "REDIRECT is only valid in table nat"));
            }
            let ports = match get(&["--to-ports", "--to-port"]) {
                Some(o) => {
                    let v = one(o)?;
                    let (a, b) = v.split_once('-').unwrap_or((v, v));
                    Some((port(a, o.loc)?, port(b, o.loc)?))
                }
                None => None,
            };
            Action::Redirect(NatTo { addrs: None, ports })
        }
        other => match chain(other) {
            Some(id) => {
                if !options.is_empty() {
                    return Err(err(
                        options[0].loc,
                        format!("jump to chain {other} takes no options"),
                    ));
                }
                Action::Jump(id)
            }
            // An extension target fwsim does not know (iptables spells them in capitals).
            None if other
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
            {
                Action::Unsupported {
                    what: format!("-j {other}"),
                }
            }
            None => {
                return Err(err(
                    loc,
                    format!("-j {other}: no chain `{other}` in table {table}, and no such target: expected a declared chain (`:{other} - [0:0]`) or a target such as ACCEPT, DROP, REJECT, RETURN"),
                ))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::iptables::parse;

    fn ir(text: &str) -> Result<Ruleset, Error> {
        convert(&parse(text)?, IpVersion::V4)
    }

    #[test]
    fn converts_common_rules() {
        let r = ir("*filter\n:INPUT DROP [0:0]\n:x - [0:0]\n-A INPUT -s 10.0.0.0/255.0.0.0 -p tcp -m multiport --dports 22,80:90 -m conntrack --ctstate NEW,ESTABLISHED -j x\n-A x -m mark --mark 0x10000/0x10000 -j MARK --set-xmark 0x0/0x10000\n-A x -m set --match-set s src,dst -m physdev --physdev-is-bridged -j ACCEPT\nCOMMIT\n").unwrap();
        let t = &r.tables[0];
        assert_eq!(t.chains[0].name, "INPUT");
        assert_eq!(t.chains[0].base.as_ref().unwrap().policy, Policy::Drop);
        let rule = &t.chains[0].rules[0];
        assert_eq!(rule.action, Action::Jump(3));
        assert!(
            matches!(&rule.matches[0], Match::Addr { nets, .. } if nets[0].to_string() == "10.0.0.0/8")
        );
        assert!(
            matches!(&rule.matches[2], Match::Port { ranges, .. } if ranges == &vec![(22, 22), (80, 90)])
        );
        assert!(
            matches!(rule.matches[3], Match::CtState { states, .. } if states == ct::NEW | ct::ESTABLISHED)
        );
        assert_eq!(
            t.chains[3].rules[0].action,
            Action::Mark(MarkOp {
                clear: 0x10000,
                xor: 0
            })
        );
        assert_eq!(r.unsupported().len(), 1);
        assert!(r.unsupported()[0].1.contains("-m physdev"));
    }

    #[test]
    fn mark_ops() {
        // --set-mark 0x1/0xff on 0x1234: (0x1234 & ~0xff) | 1 = 0x1201.
        let op = MarkOp {
            clear: 0xff | 0x1,
            xor: 0x1,
        };
        assert_eq!(op.apply(0x1234), 0x1201);
    }

    #[test]
    fn unreachable_loops_load() {
        assert!(ir("*filter\n:a - [0:0]\n:b - [0:0]\n-A a -j b\n-A b -g a\nCOMMIT\n").is_ok());
    }

    /// The loop check walks with its own stack: 100,000 nested jumps (far more than a
    /// recursive walk fits in a test thread's 2 MB stack) load, and a loop closed at the
    /// bottom is found.
    #[test]
    fn deep_jump_chains_do_not_overflow_the_stack() {
        use std::fmt::Write as _;
        let depth = 100_000;
        let mut t = String::from("*filter\n:INPUT ACCEPT [0:0]\n");
        for c in 0..depth {
            let _ = writeln!(t, ":c{c} - [0:0]");
        }
        t.push_str("-A INPUT -j c0\n");
        for c in 0..depth - 1 {
            let _ = writeln!(t, "-A c{c} -j c{}", c + 1);
        }
        let ok = format!("{t}COMMIT\n");
        assert!(ir(&ok).is_ok());
        let looped = format!("{t}-A c{} -j c0\nCOMMIT\n", depth - 1);
        let e = ir(&looped).unwrap_err();
        assert!(e.message.contains("jump loop"), "{e}");
    }

    #[test]
    fn jump_loops_are_refused() {
        let e =
            ir("*filter\n:a - [0:0]\n:b - [0:0]\n-A INPUT -j a\n-A a -j b\n-A b -g a\nCOMMIT\n")
                .unwrap_err();
        assert_eq!(e.loc.line, 6);
        assert!(e.message.contains("jump loop"), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        for (text, needle) in [
            (
                "*filter\n-A INPUT -p tcp --dport abc -j ACCEPT\nCOMMIT\n",
                "not a port",
            ),
            (
                "*filter\n-A INPUT -s 10.0.0.0/40 -j ACCEPT\nCOMMIT\n",
                "over 32",
            ),
            (
                "*filter\n-A INPUT -j nosuchchain\nCOMMIT\n",
                "no chain `nosuchchain`",
            ),
            (
                "*filter\n-A INPUT -j DNAT --to-destination 1.2.3.4\nCOMMIT\n",
                "only valid in table nat",
            ),
            (
                "*filter\n-A INPUT -m conntrack --ctstate NEWISH -j ACCEPT\nCOMMIT\n",
                "unknown conntrack state",
            ),
            (
                "*filter\n-A INPUT -s 2001:db8::1 -j ACCEPT\nCOMMIT\n",
                "IPv6 address",
            ),
        ] {
            let e = ir(text).unwrap_err();
            assert_eq!(e.loc.line, 2, "{text}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
    }
}

#[cfg(test)]
mod corpus {
    use super::*;

    /// Every iptables file of the shared corpus converts to the IR; what is not modelled is
    /// listed, never an error. Skips (saying so) where the corpus is absent.
    #[test]
    fn shared_rulesets_convert() {
        let Some(paths) = crate::testing::corpus(&["iptables", "ip6tables"]) else {
            return;
        };
        for p in paths {
            let version = match p.extension().and_then(|e| e.to_str()) {
                Some("iptables") => IpVersion::V4,
                Some("ip6tables") => IpVersion::V6,
                _ => continue,
            };
            let text = std::fs::read_to_string(&p).unwrap();
            let save = crate::syntax::iptables::parse(&text).unwrap();
            let ir = convert(&save, version).unwrap_or_else(|e| panic!("{}:{e}", p.display()));
            for (loc, what) in ir.unsupported() {
                eprintln!("{}:{loc}: unsupported: {what}", p.display());
            }
        }
    }
}
