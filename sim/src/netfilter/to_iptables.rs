//! IR → iptables-save text: `fwsim parse --to iptables` for nft input.
//!
//! Contract: [`to_iptables`] prints a ruleset read from nft text or JSON as iptables-save
//! text (iptables-legacy's view: security at 50) that iptables-restore accepts and that fwsim
//! reads back to a ruleset giving every packet the same verdict and mark, or refuses, naming
//! the rule or chain and what cannot be expressed. Tables of family `ip` become iptables
//! tables, `ip6` ip6tables ones (one family per output); each base chain must sit where an
//! iptables built-in chain sits (type and priority: raw -300, mangle -150 (route for output),
//! nat at any priority, filter 0, security 50), at most one per built-in chain; regular
//! chains go into the table of the base chains that reach them (one table only). Matches and
//! targets map one to one; nft-only constructs (set lookups, verdict maps, several
//! statements in a rule, `inet` tables) are refused.

use super::ir::*;
use super::RulesetError;
use std::fmt::Write;

fn refuse_rule(r: &Rule, what: &str) -> RulesetError {
    RulesetError {
        loc: r.loc,
        message: format!("cannot translate rule `{}` to iptables: {what}", r.text),
    }
}

fn refuse(what: String) -> RulesetError {
    RulesetError {
        loc: crate::values::Loc { line: 1, col: 1 },
        message: format!("cannot translate to iptables: {what}"),
    }
}

const TABLES: [&str; 5] = ["raw", "mangle", "nat", "filter", "security"];

fn builtin(hook: Hook) -> &'static str {
    match hook {
        Hook::Prerouting => "PREROUTING",
        Hook::Input => "INPUT",
        Hook::Forward => "FORWARD",
        Hook::Output => "OUTPUT",
        Hook::Postrouting => "POSTROUTING",
        Hook::Ingress => "INGRESS",
    }
}

/// The iptables table a base chain stands for, if any.
fn table_of(b: &BaseChain) -> Option<&'static str> {
    let t = match (b.kind, b.priority) {
        (ChainType::Nat, _) => "nat",
        (ChainType::Filter, -300) => "raw",
        (ChainType::Filter, -150) if b.hook != Hook::Output => "mangle",
        (ChainType::Route, -150) if b.hook == Hook::Output => "mangle",
        (ChainType::Filter, 0) => "filter",
        (ChainType::Filter, 50) => "security",
        _ => return None,
    };
    crate::syntax::iptables::builtin_chains(t)
        .contains(&builtin(b.hook))
        .then_some(t)
}

fn ports(rs: &[(u16, u16)], sep: &str) -> String {
    rs.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}:{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn bang(neg: bool) -> &'static str {
    if neg {
        "! "
    } else {
        ""
    }
}

const TCP_FLAGS: [(u8, &str); 8] = [
    (0x01, "FIN"),
    (0x02, "SYN"),
    (0x04, "RST"),
    (0x08, "PSH"),
    (0x10, "ACK"),
    (0x20, "URG"),
    (0x40, "ECE"),
    (0x80, "CWR"),
];

fn flags(bits: u8) -> String {
    let names: Vec<&str> = TCP_FLAGS
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "NONE".into()
    } else {
        names.join(",")
    }
}

fn match_text(r: &Rule, m: &Match, l4: Option<u8>, v6: bool) -> Result<String, RulesetError> {
    let l4name = |r: &Rule| match l4 {
        Some(6) => Ok("tcp"),
        Some(17) => Ok("udp"),
        Some(132) => Ok("sctp"),
        Some(33) => Ok("dccp"),
        _ => Err(refuse_rule(
            r,
            "a port match without a TCP, UDP, SCTP or DCCP protocol match",
        )),
    };
    Ok(match m {
        Match::Addr { dir, nets, neg } => {
            if *neg && nets.len() > 1 {
                return Err(refuse_rule(r, "a negated list of addresses"));
            }
            let list: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
            let o = if *dir == Dir::Src { "-s" } else { "-d" };
            format!("{}{o} {}", bang(*neg), list.join(","))
        }
        Match::Proto {
            proto: 0,
            neg: false,
        } => String::new(),
        Match::Proto { proto, neg } => {
            let name = match proto {
                1 => "icmp".to_string(),
                6 => "tcp".into(),
                17 => "udp".into(),
                58 => "ipv6-icmp".into(),
                132 => "sctp".into(),
                n => n.to_string(),
            };
            format!("{}-p {name}", bang(*neg))
        }
        Match::Iface { dir, name, neg } => {
            let o = if *dir == Dir::Src { "-i" } else { "-o" };
            format!("{}{o} {name}", bang(*neg))
        }
        Match::Fragment { neg } => format!("{}-f", bang(*neg)),
        Match::Port { dir, ranges, neg } => {
            let p = l4name(r)?;
            let d = if *dir == Dir::Src { "s" } else { "d" };
            if ranges.len() == 1 {
                format!("-m {p} {}--{d}port {}", bang(*neg), ports(ranges, ","))
            } else if ranges.len() <= 15 {
                format!(
                    "-m multiport {}--{d}ports {}",
                    bang(*neg),
                    ports(ranges, ",")
                )
            } else {
                return Err(refuse_rule(
                    r,
                    "more than 15 port ranges (multiport's limit)",
                ));
            }
        }
        Match::AnyPort { ranges, neg } => {
            l4name(r)?;
            format!("-m multiport {}--ports {}", bang(*neg), ports(ranges, ","))
        }
        Match::TcpFlags { mask, comp, neg } => {
            if l4 != Some(6) {
                return Err(refuse_rule(r, "TCP flags without a TCP protocol match"));
            }
            format!(
                "-m tcp {}--tcp-flags {} {}",
                bang(*neg),
                flags(*mask),
                flags(*comp)
            )
        }
        Match::Icmp {
            v6: i6,
            ty,
            codes,
            neg,
        } => {
            if *i6 != v6 {
                return Err(refuse_rule(r, "an ICMP match of the other family"));
            }
            let (m, o) = if v6 {
                ("icmp6", "--icmpv6-type")
            } else {
                ("icmp", "--icmp-type")
            };
            let t = if *ty == 255 {
                "any".to_string()
            } else if codes.0 == 0 && codes.1 == 255 {
                ty.to_string()
            } else if codes.0 == codes.1 {
                format!("{ty}/{}", codes.0)
            } else {
                return Err(refuse_rule(r, "a range of ICMP codes"));
            };
            format!("-m {m} {}{o} {t}", bang(*neg))
        }
        Match::CtState { states, neg } => {
            let names: Vec<&str> = [
                (ct::INVALID, "INVALID"),
                (ct::NEW, "NEW"),
                (ct::RELATED, "RELATED"),
                (ct::ESTABLISHED, "ESTABLISHED"),
                (ct::UNTRACKED, "UNTRACKED"),
                (ct::SNAT, "SNAT"),
                (ct::DNAT, "DNAT"),
            ]
            .iter()
            .filter(|(b, _)| states & b != 0)
            .map(|(_, n)| *n)
            .collect();
            format!("-m conntrack {}--ctstate {}", bang(*neg), names.join(","))
        }
        Match::Mark { value, mask, neg } => {
            format!("-m mark {}--mark {value:#x}/{mask:#x}", bang(*neg))
        }
        Match::ConnMark { value, mask, neg } => {
            format!("-m connmark {}--mark {value:#x}/{mask:#x}", bang(*neg))
        }
        Match::Lookup { .. } => {
            return Err(refuse_rule(
                r,
                "an nft set lookup or comparison iptables has no match for",
            ))
        }
        other => {
            return Err(refuse_rule(
                r,
                &format!("{other:?} has no iptables form fwsim writes"),
            ))
        }
    })
}

fn reject(r: &Rule, with: &str, v6: bool) -> Result<String, RulesetError> {
    if with == "tcp-reset" {
        return Ok("-j REJECT --reject-with tcp-reset".into());
    }
    let (fam, t) = with.split_once(' ').unwrap_or(("", with));
    if (fam == "icmp" && v6) || (fam == "icmpv6" && !v6) || (fam != "icmp" && fam != "icmpv6") {
        return Err(refuse_rule(r, &format!("reject with {with}")));
    }
    let t = match (t, v6) {
        ("port-unreachable", false) => "icmp-port-unreachable",
        ("net-unreachable", false) => "icmp-net-unreachable",
        ("host-unreachable", false) => "icmp-host-unreachable",
        ("prot-unreachable", false) => "icmp-proto-unreachable",
        ("net-prohibited", false) => "icmp-net-prohibited",
        ("host-prohibited", false) => "icmp-host-prohibited",
        ("admin-prohibited", false) => "icmp-admin-prohibited",
        ("port-unreachable", true) => "icmp6-port-unreachable",
        ("no-route", true) => "icmp6-no-route",
        ("admin-prohibited", true) => "icmp6-adm-prohibited",
        ("addr-unreachable", true) => "icmp6-addr-unreachable",
        _ => return Err(refuse_rule(r, &format!("reject with {with}"))),
    };
    Ok(format!("-j REJECT --reject-with {t}"))
}

fn nat_to(to: &NatTo, v6: bool) -> String {
    let mut s = String::new();
    if let Some((a, b)) = to.addrs {
        let one = |x: std::net::IpAddr| if v6 { format!("[{x}]") } else { x.to_string() };
        s.push_str(&one(a));
        if a != b {
            s.push('-');
            s.push_str(&one(b));
        }
    }
    if let Some((p, q)) = to.ports {
        let _ = write!(s, ":{p}");
        if p != q {
            let _ = write!(s, "-{q}");
        }
    }
    s
}

fn target_text(r: &Rule, names: &[String], v6: bool) -> Result<String, RulesetError> {
    Ok(match &r.action {
        Action::None | Action::Continue => String::new(),
        Action::Accept => "-j ACCEPT".into(),
        Action::Drop => "-j DROP".into(),
        Action::Return => "-j RETURN".into(),
        Action::Jump(c) => format!("-j {}", names[*c]),
        Action::Goto(c) => format!("-g {}", names[*c]),
        Action::Reject { with } => reject(r, with, v6)?,
        Action::Mark(op) => format!("-j MARK --set-xmark {:#x}/{:#x}", op.xor, op.clear),
        Action::SetConnMark(op) => {
            format!("-j CONNMARK --set-xmark {:#x}/{:#x}", op.xor, op.clear)
        }
        Action::SaveMark { nfmask, ctmask } => {
            format!("-j CONNMARK --save-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}")
        }
        Action::RestoreMark { nfmask, ctmask } => {
            format!("-j CONNMARK --restore-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}")
        }
        Action::Log => "-j LOG".into(),
        Action::NoTrack => "-j CT --notrack".into(),
        Action::Dnat(to) => format!("-j DNAT --to-destination {}", nat_to(to, v6)),
        Action::Snat(to) => format!("-j SNAT --to-source {}", nat_to(to, v6)),
        Action::Masquerade => "-j MASQUERADE".into(),
        Action::Redirect(to) => match to.ports {
            Some(_) => format!(
                "-j REDIRECT --to-ports {}",
                nat_to(
                    &NatTo {
                        addrs: None,
                        ports: to.ports,
                    },
                    v6
                )
                .trim_start_matches(':')
            ),
            None => "-j REDIRECT".into(),
        },
        Action::Seq(_) => {
            return Err(refuse_rule(
                r,
                "several statements in one rule (iptables has one target per rule)",
            ))
        }
        Action::Vmap { .. } => return Err(refuse_rule(r, "a verdict map")),
        Action::Unsupported { what } => return Err(refuse_rule(r, &format!("`{what}`"))),
    }
    .to_string())
}

/// An iptables table being filled: its name, its built-in chains (name, nft table, chain)
/// and its regular chains (nft table, chain).
type Slot<'a> = (&'a str, Vec<(&'a str, usize, usize)>, Vec<(usize, usize)>);

/// The ruleset as iptables-save text, or why it cannot be.
pub fn to_iptables(rs: &Ruleset) -> Result<String, RulesetError> {
    let mut v6: Option<bool> = None;
    // Per iptables table: (built-in chain → (table index, chain index)), user chains.
    let mut slots: Vec<Slot> = TABLES
        .iter()
        .map(|t| (*t, Vec::new(), Vec::new()))
        .collect();
    for (ti, t) in rs.tables.iter().enumerate() {
        let fam6 = match t.family {
            Family::Ip => false,
            Family::Ip6 => true,
            f => {
                return Err(refuse(format!(
                    "table {} {}: only ip and ip6 tables have an iptables form",
                    f.as_str(),
                    t.name
                )))
            }
        };
        if *v6.get_or_insert(fam6) != fam6 {
            return Err(refuse(
                "ip and ip6 tables together: translate each family on its own".into(),
            ));
        }
        if !t.sets.is_empty() {
            return Err(refuse(format!("table {}: named sets and maps", t.name)));
        }
        // Which iptables table each chain goes to: a base chain's own, a regular chain that
        // of the base chains reaching it.
        let mut home: Vec<Option<&str>> = vec![None; t.chains.len()];
        for (ci, c) in t.chains.iter().enumerate() {
            let Some(b) = &c.base else { continue };
            let Some(name) = table_of(b) else {
                return Err(refuse(format!(
                    "base chain {} {} (type {:?}, hook {}, priority {}) is not where an iptables built-in chain sits",
                    t.name,
                    c.name,
                    b.kind,
                    b.hook.as_str(),
                    b.priority
                )));
            };
            let mut stack = vec![ci];
            while let Some(x) = stack.pop() {
                match home[x] {
                    Some(h) if h == name => continue,
                    Some(h) => {
                        return Err(refuse(format!(
                            "chain {} is reached from iptables tables {h} and {name}",
                            t.chains[x].name
                        )))
                    }
                    None => home[x] = Some(name),
                }
                for r in &t.chains[x].rules {
                    if let Action::Jump(to) | Action::Goto(to) = r.action {
                        stack.push(to);
                    }
                }
            }
            let slot = slots.iter_mut().find(|s| s.0 == name).expect("table");
            let bname = builtin(b.hook);
            if slot.1.iter().any(|(n, ..)| *n == bname) {
                return Err(refuse(format!(
                    "two base chains would both be {name} {bname} (base chain {} {})",
                    t.name, c.name
                )));
            }
            slot.1.push((bname, ti, ci));
        }
        for (ci, c) in t.chains.iter().enumerate() {
            if c.base.is_some() {
                continue;
            }
            if let Some(h) = home[ci] {
                if c.name.chars().all(|x| x.is_ascii_uppercase()) && c.name.len() > 4 {
                    // PREROUTING and the like as regular chain names would clash.
                    if ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
                        .contains(&c.name.as_str())
                    {
                        return Err(refuse(format!(
                            "regular chain {} has a built-in chain's name",
                            c.name
                        )));
                    }
                }
                slots
                    .iter_mut()
                    .find(|s| s.0 == h)
                    .expect("table")
                    .2
                    .push((ti, ci));
            }
        }
    }
    let v6 = v6.unwrap_or(false);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated by {} (fwsim parse --to iptables)",
        if v6 {
            "ip6tables-save"
        } else {
            "iptables-save"
        }
    );
    for (tname, base, users) in &slots {
        if base.is_empty() {
            continue;
        }
        let _ = writeln!(out, "*{tname}");
        for b in crate::syntax::iptables::builtin_chains(tname) {
            let policy = base.iter().find(|(n, ..)| n == b).map(|(_, ti, ci)| {
                rs.tables[*ti].chains[*ci]
                    .base
                    .as_ref()
                    .expect("base")
                    .policy
            });
            let p = match policy {
                Some(Policy::Drop) => "DROP",
                _ => "ACCEPT",
            };
            let _ = writeln!(out, ":{b} {p} [0:0]");
        }
        for (ti, ci) in users {
            let _ = writeln!(out, ":{} - [0:0]", rs.tables[*ti].chains[*ci].name);
        }
        let chains: Vec<(String, usize, usize)> = base
            .iter()
            .map(|(n, ti, ci)| (n.to_string(), *ti, *ci))
            .chain(
                users
                    .iter()
                    .map(|(ti, ci)| (rs.tables[*ti].chains[*ci].name.clone(), *ti, *ci)),
            )
            .collect();
        for (name, ti, ci) in &chains {
            let t = &rs.tables[*ti];
            // Chain names as iptables knows them (base chains under their built-in name).
            let names: Vec<String> = t
                .chains
                .iter()
                .map(|c| match &c.base {
                    Some(b) => builtin(b.hook).to_string(),
                    None => c.name.clone(),
                })
                .collect();
            for r in &t.chains[*ci].rules {
                let l4 = r.matches.iter().find_map(|m| match m {
                    Match::Proto { proto, neg: false } if *proto != 0 => Some(*proto),
                    _ => None,
                });
                let mut parts = vec![format!("-A {name}")];
                // nft payload matches carry their protocol (`tcp dport` implies `meta
                // l4proto tcp`): one `-p` is written, a second different one is refused.
                let mut proto: Option<&Match> = None;
                for m in &r.matches {
                    if let Match::Proto { proto: p, .. } = m {
                        if *p == 0 {
                            continue;
                        }
                        match proto {
                            Some(q) if q == m => continue,
                            Some(_) => {
                                return Err(refuse_rule(r, "two different protocol matches"))
                            }
                            None => proto = Some(m),
                        }
                    }
                    let s = match_text(r, m, l4, v6)?;
                    if !s.is_empty() {
                        parts.push(s);
                    }
                }
                let tgt = target_text(r, &names, v6)?;
                if !tgt.is_empty() {
                    parts.push(tgt);
                }
                let _ = writeln!(out, "{}", parts.join(" "));
            }
        }
        out.push_str("COMMIT\n");
    }
    if !out.contains('*') {
        return Err(refuse("no base chain has an iptables form".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::ruleset::{generate, probes};
    use crate::kernel::check::packet_of;
    use crate::netfilter::interp::walk;

    /// nft → iptables keeps every verdict and mark: the generator's rulesets (without the
    /// nft-only extras) printed as nft, read, translated to iptables, read back, walked.
    #[test]
    fn generated_rulesets_keep_their_verdicts() {
        let mut translated = 0;
        for seed in 0..150u64 {
            let mut g = generate(seed);
            g.nft_extra = None;
            let nft = g.to_nft();
            let Ok(rs) = crate::netfilter::read_ruleset(&nft) else {
                continue; // refused by both fwsim and the kernel (hook validity)
            };
            let ipt =
                to_iptables(&rs).unwrap_or_else(|e| panic!("seed {seed}: {}\n{nft}", e.message));
            let back = crate::netfilter::read_ruleset(&ipt)
                .unwrap_or_else(|e| panic!("seed {seed}: {}: {}\n{ipt}", e.loc, e.message));
            for p in probes(seed, g.v6, 30) {
                let pk = packet_of(&p);
                let (a, b) = (walk(&rs, &pk), walk(&back, &pk));
                assert_eq!(
                    (a.fate.as_str(), a.mark),
                    (b.fate.as_str(), b.mark),
                    "seed {seed} {pk}\n{nft}\n{ipt}"
                );
            }
            translated += 1;
        }
        assert!(translated > 100, "{translated}");
    }

    #[test]
    fn nft_only_constructs_are_refused_by_name() {
        let rs = crate::netfilter::read_ruleset(
            "table ip t {\n chain input { type filter hook input priority 0; policy drop;\n  tcp dport { 22, 80 } accept\n  tcp dport vmap { 443 : accept }\n }\n}\n",
        )
        .unwrap();
        let ipt = to_iptables(&rs);
        // A set of ports is a multiport match; the verdict map is refused at its rule.
        let e = ipt.unwrap_err();
        assert_eq!(e.loc.line, 4, "{}", e.message);
        assert!(e.message.contains("verdict map"), "{}", e.message);
        let rs = crate::netfilter::read_ruleset(
            "table inet t {\n chain input { type filter hook input priority 0; }\n}\n",
        )
        .unwrap();
        assert!(to_iptables(&rs).unwrap_err().message.contains("inet"));
        let rs = crate::netfilter::read_ruleset(
            "table ip t {\n chain input { type filter hook input priority 10; }\n}\n",
        )
        .unwrap();
        assert!(to_iptables(&rs)
            .unwrap_err()
            .message
            .contains("priority 10"));
    }
}
