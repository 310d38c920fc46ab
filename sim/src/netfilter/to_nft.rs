//! IR → nft text: `fwsim parse --to nft` for iptables-save input (as
//! `iptables-restore-translate` does).
//!
//! Contract: [`to_nft`] prints a ruleset read from iptables-save as nft text that `nft -f`
//! accepts and that fwsim reads back to a ruleset giving every packet the same verdict and
//! mark: iptables tables become `ip`/`ip6` tables of the same name, built-in chains base
//! chains at the iptables priorities (`type nat` for nat, `type route` for mangle OUTPUT)
//! with their policies, user chains regular chains; matches and targets map one to one
//! (interfaces' `+` becomes `*`, ports need the rule's protocol, marks keep their masks,
//! MARK/CONNMARK become `meta mark set` / `ct mark set` with `and`/`xor`). What cannot be
//! printed with exactly the same meaning (a match or target fwsim does not model, statistic,
//! addrtype, sets, multiport `--ports`, fragments, negated ICMP codes, CONNMARK masks nft
//! cannot express, ...) is refused with the rule's location and what could not be
//! translated; nothing is dropped silently except comments' quotes and LOG options
//! (logging does not change a verdict).

use super::ir::*;
use super::RulesetError;
use std::fmt::Write;

fn refuse(r: &Rule, what: &str) -> RulesetError {
    RulesetError {
        loc: r.loc,
        message: format!("cannot translate rule `{}` to nft: {what}", r.text),
    }
}

fn quote(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "'"))
    }
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        33 => "dccp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        n => n.to_string(),
    }
}

fn ranges(rs: &[(u16, u16)]) -> String {
    let one = |(a, b): &(u16, u16)| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    };
    if rs.len() == 1 {
        one(&rs[0])
    } else {
        format!(
            "{{ {} }}",
            rs.iter().map(one).collect::<Vec<_>>().join(", ")
        )
    }
}

fn ne(neg: bool) -> &'static str {
    if neg {
        "!= "
    } else {
        ""
    }
}

/// The `--comment` of an iptables rule text, if any.
fn comment_of(text: &str) -> Option<String> {
    let i = text.find("--comment ")?;
    let rest = &text[i + "--comment ".len()..];
    let c = if let Some(q) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => break,
                c => out.push(c),
            }
        }
        out
    } else {
        rest.split_whitespace().next()?.to_string()
    };
    Some(c.replace(['"', '\n'], "'"))
}

fn mark_set(target: &str, source: &str, op: MarkOp) -> String {
    if op.clear == u32::MAX {
        format!("{target} set {:#x}", op.xor)
    } else if op.xor == 0 {
        format!("{target} set {source} and {:#x}", !op.clear)
    } else if op.clear == 0 {
        format!("{target} set {source} xor {:#x}", op.xor)
    } else {
        format!(
            "{target} set {source} and {:#x} xor {:#x}",
            !op.clear, op.xor
        )
    }
}

fn nat_to(r: &Rule, to: &NatTo, v6: bool) -> Result<String, RulesetError> {
    let ports = to.ports.map(|(a, b)| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    });
    let Some((a, b)) = to.addrs else {
        return match ports {
            Some(p) => Ok(format!(":{p}")),
            None => Err(refuse(r, "a NAT target without address")),
        };
    };
    let addr = if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    };
    Ok(match (ports, v6) {
        (None, _) => addr,
        (Some(p), false) => format!("{addr}:{p}"),
        (Some(p), true) if a == b => format!("[{addr}]:{p}"),
        (Some(_), true) => return Err(refuse(r, "an IPv6 address range with ports")),
    })
}

fn reject(r: &Rule, with: &str, v6: bool) -> Result<String, RulesetError> {
    if with == "tcp-reset" {
        return Ok("reject with tcp reset".into());
    }
    let t = match with
        .trim_start_matches("icmp6-")
        .trim_start_matches("icmp-")
    {
        "net-unreachable" | "net-unreach" => "net-unreachable",
        "host-unreachable" | "host-unreach" => "host-unreachable",
        "port-unreachable" | "port-unreach" => "port-unreachable",
        "proto-unreachable" | "proto-unreach" => "prot-unreachable",
        "net-prohibited" => "net-prohibited",
        "host-prohibited" => "host-prohibited",
        "admin-prohibited" | "adm-prohibited" => "admin-prohibited",
        "no-route" => "no-route",
        "addr-unreachable" | "addr-unreach" => "addr-unreachable",
        _ => return Err(refuse(r, &format!("REJECT --reject-with {with}"))),
    };
    Ok(format!(
        "reject with {} {t}",
        if v6 { "icmpv6" } else { "icmp" }
    ))
}

fn matches(r: &Rule, v6: bool, out: &mut Vec<String>) -> Result<(), RulesetError> {
    let ip = if v6 { "ip6" } else { "ip" };
    let l4 = r.matches.iter().find_map(|m| match m {
        Match::Proto { proto, neg: false } => Some(*proto),
        _ => None,
    });
    for m in &r.matches {
        let s = match m {
            Match::Addr { dir, nets, neg } => {
                let what = if *dir == Dir::Src { "saddr" } else { "daddr" };
                if nets.iter().any(|n| n.addr().is_ipv6() != v6) {
                    return Err(refuse(r, "an address of the other family"));
                }
                let v = if nets.len() == 1 {
                    nets[0].to_string()
                } else {
                    format!(
                        "{{ {} }}",
                        nets.iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                format!("{ip} {what} {}{v}", ne(*neg))
            }
            Match::Proto { proto, neg } => {
                format!("meta l4proto {}{}", ne(*neg), proto_name(*proto))
            }
            Match::Iface { dir, name, neg } => {
                let key = if *dir == Dir::Src {
                    "iifname"
                } else {
                    "oifname"
                };
                let escaped = name.replace('*', "\\*");
                let n = match escaped.strip_suffix('+') {
                    Some(p) => format!("{p}*"),
                    None => escaped,
                };
                if n.contains(['"', '\\']) && !n.contains("\\*") {
                    return Err(refuse(r, &format!("interface name `{name}`")));
                }
                format!("{key} {}\"{n}\"", ne(*neg))
            }
            Match::Port {
                dir,
                ranges: rs,
                neg,
            } => {
                let p = match l4 {
                    Some(p @ (6 | 17 | 33 | 132 | 136)) => proto_name(p),
                    _ => "th".into(),
                };
                let d = if *dir == Dir::Src { "sport" } else { "dport" };
                format!("{p} {d} {}{}", ne(*neg), ranges(rs))
            }
            Match::TcpFlags { mask, comp, neg } => {
                format!(
                    "tcp flags & {mask:#x} {} {comp:#x}",
                    if *neg { "!=" } else { "==" }
                )
            }
            Match::Icmp {
                v6: iv6,
                ty,
                codes,
                neg,
            } => {
                let p = if *iv6 { "icmpv6" } else { "icmp" };
                match (*ty, *codes, *neg) {
                    (255, _, false) => format!("meta l4proto {p}"),
                    (255, _, true) => return Err(refuse(r, "a negated `any` ICMP type")),
                    (t, (0, 255), n) => format!("{p} type {}{t}", ne(n)),
                    (_, _, true) => return Err(refuse(r, "a negated ICMP type with a code")),
                    (t, (a, b), false) if a == b => format!("{p} type {t} {p} code {a}"),
                    (t, (a, b), false) => format!("{p} type {t} {p} code {a}-{b}"),
                }
            }
            Match::CtState { states, neg } => {
                if states & (ct::DNAT | ct::SNAT) != 0 {
                    return Err(refuse(r, "--ctstate DNAT/SNAT"));
                }
                let names: Vec<&str> = [
                    (ct::INVALID, "invalid"),
                    (ct::NEW, "new"),
                    (ct::ESTABLISHED, "established"),
                    (ct::RELATED, "related"),
                    (ct::UNTRACKED, "untracked"),
                ]
                .iter()
                .filter(|(b, _)| states & b != 0)
                .map(|(_, n)| *n)
                .collect();
                if names.is_empty() {
                    return Err(refuse(r, "an empty --ctstate"));
                }
                format!("ct state {}{}", ne(*neg), names.join(","))
            }
            Match::Mark { value, mask, neg } | Match::ConnMark { value, mask, neg } => {
                let key = if matches!(m, Match::Mark { .. }) {
                    "meta mark"
                } else {
                    "ct mark"
                };
                if *mask == u32::MAX {
                    format!("{key} {}{value:#x}", ne(*neg))
                } else {
                    format!(
                        "{key} & {mask:#x} {} {value:#x}",
                        if *neg { "!=" } else { "==" }
                    )
                }
            }
            Match::Fragment { .. } => return Err(refuse(r, "-f (fragments) is not modelled")),
            Match::AnyPort { .. } => {
                return Err(refuse(r, "multiport --ports (source or destination)"))
            }
            Match::Set { name, .. } => return Err(refuse(r, &format!("-m set {name}"))),
            Match::AddrType { .. } => return Err(refuse(r, "-m addrtype")),
            Match::Statistic { .. } => return Err(refuse(r, "-m statistic")),
            Match::Lookup { .. } => {
                return Err(refuse(
                    r,
                    "an nft lookup (nft input is printed from its syntax)",
                ))
            }
            Match::Unsupported { what } => {
                return Err(refuse(r, &format!("{what} is not modelled")))
            }
        };
        out.push(s);
    }
    Ok(())
}

fn action(
    r: &Rule,
    a: &Action,
    t: &Table,
    v6: bool,
    out: &mut Vec<String>,
) -> Result<(), RulesetError> {
    let chain = |c: &ChainId| quote(&t.chains[*c].name);
    let s = match a {
        Action::None => return Ok(()),
        Action::Accept => "accept".into(),
        Action::Drop => "drop".into(),
        Action::Return => "return".into(),
        Action::Continue => "continue".into(),
        Action::Jump(c) => format!("jump {}", chain(c)),
        Action::Goto(c) => format!("goto {}", chain(c)),
        Action::Reject { with } => reject(r, with, v6)?,
        Action::Mark(op) => mark_set("meta mark", "meta mark", *op),
        Action::SetConnMark(op) => mark_set("ct mark", "ct mark", *op),
        Action::SaveMark { nfmask, ctmask } => {
            if *ctmask != u32::MAX {
                return Err(refuse(r, "CONNMARK --save-mark with a --ctmask"));
            }
            if *nfmask == u32::MAX {
                "ct mark set meta mark".into()
            } else {
                format!("ct mark set meta mark and {nfmask:#x}")
            }
        }
        Action::RestoreMark { nfmask, ctmask } => {
            if *nfmask != u32::MAX {
                return Err(refuse(r, "CONNMARK --restore-mark with an --nfmask"));
            }
            if *ctmask == u32::MAX {
                "meta mark set ct mark".into()
            } else {
                format!("meta mark set ct mark and {ctmask:#x}")
            }
        }
        Action::Log => "log".into(),
        Action::NoTrack => "notrack".into(),
        Action::Dnat(to) => format!("dnat to {}", nat_to(r, to, v6)?),
        Action::Snat(to) => format!("snat to {}", nat_to(r, to, v6)?),
        Action::Masquerade => "masquerade".into(),
        Action::Redirect(to) => match to.ports {
            None => "redirect".into(),
            Some(_) => format!("redirect to {}", nat_to(r, to, v6)?),
        },
        Action::Seq(v) => {
            for x in v {
                action(r, x, t, v6, out)?;
            }
            return Ok(());
        }
        Action::Vmap { .. } => {
            return Err(refuse(
                r,
                "a verdict map (nft input is printed from its syntax)",
            ))
        }
        Action::Unsupported { what } => return Err(refuse(r, &format!("{what} is not modelled"))),
    };
    out.push(s);
    Ok(())
}

/// Print `rs` as nft text (see the module contract).
pub fn to_nft(rs: &Ruleset) -> Result<String, RulesetError> {
    let mut s = String::new();
    for t in &rs.tables {
        let v6 = match t.family {
            Family::Ip => false,
            Family::Ip6 => true,
            f => {
                return Err(RulesetError {
                    loc: Default::default(),
                    message: format!(
                        "cannot translate table {} {} to nft: only ip and ip6 tables read from iptables-save are translated",
                        f.as_str(),
                        t.name
                    ),
                })
            }
        };
        let _ = writeln!(s, "table {} {} {{", t.family.as_str(), quote(&t.name));
        for (i, c) in t.chains.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            let _ = writeln!(s, "\tchain {} {{", quote(&c.name));
            if let Some(b) = &c.base {
                let kind = match b.kind {
                    ChainType::Filter => "filter",
                    ChainType::Nat => "nat",
                    ChainType::Route => "route",
                };
                let _ = writeln!(
                    s,
                    "\t\ttype {kind} hook {} priority {}; policy {};",
                    b.hook.as_str(),
                    b.priority,
                    b.policy
                );
            }
            for r in &c.rules {
                let mut parts = Vec::new();
                matches(r, v6, &mut parts)?;
                action(r, &r.action, t, v6, &mut parts)?;
                if parts.is_empty() || matches!(r.action, Action::None) {
                    parts.push("counter".into());
                }
                if let Some(c) = comment_of(&r.text) {
                    parts.push(format!("comment \"{c}\""));
                }
                let _ = writeln!(s, "\t\t{}", parts.join(" "));
            }
            s.push_str("\t}\n");
        }
        s.push_str("}\n");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::interp::{walk, Fate};
    use crate::netfilter::read_ruleset;

    fn kind(f: &Fate) -> &'static str {
        match f {
            Fate::Accept => "accept",
            Fate::Drop => "drop",
            Fate::Reject(_) => "reject",
            Fate::Inconclusive(_) => "inconclusive",
        }
    }

    /// Generated iptables rulesets print as nft that reads back to the same verdicts and
    /// marks on the generator's probes, and that `nft -c` accepts (root and nft only).
    #[test]
    fn generated_rulesets_translate_with_the_same_verdicts() {
        let ns = crate::testing::Netns::new("to-nft");
        let (mut checked, mut decisive, mut nft_checked) = (0, 0, 0);
        for seed in 0..200u64 {
            let g = crate::gen::ruleset::generate(seed);
            let text = g.to_iptables();
            let rs = read_ruleset(&text).unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
            let nft = to_nft(&rs)
                .unwrap_or_else(|e| panic!("seed {seed}: {}: {}\n{text}", e.loc, e.message));
            let back = read_ruleset(&nft)
                .unwrap_or_else(|e| panic!("seed {seed}: {}: {}\n{nft}", e.loc, e.message));
            for p in crate::gen::ruleset::probes(seed, g.v6, 30) {
                let pk = crate::kernel::check::packet_of(&p);
                let (a, b) = (walk(&rs, &pk), walk(&back, &pk));
                assert_eq!(
                    (kind(&a.fate), a.mark),
                    (kind(&b.fate), b.mark),
                    "seed {seed}, packet {pk}\n--- iptables\n{text}\n--- nft\n{nft}\n--- iptables walk\n{a}\n--- nft walk\n{b}"
                );
                checked += 1;
                decisive += usize::from(!matches!(a.fate, Fate::Inconclusive(_)));
            }
            if let Some(ns) = &ns {
                if seed % 4 == 0 {
                    if let Err(e) = ns.nft(&["-c"], Some(&nft)) {
                        panic!("seed {seed}: nft -c refuses the translation: {e}\n{nft}");
                    }
                    nft_checked += 1;
                }
            }
        }
        assert!(checked >= 6000);
        // The walks decide (a translation of inconclusive walks would prove little).
        assert!(
            decisive * 10 >= checked * 9,
            "{decisive} of {checked} decisive"
        );
        eprintln!("{checked} walks, {decisive} decisive, {nft_checked} translations passed nft -c");
    }

    #[test]
    fn translates_targets_and_refuses_the_rest() {
        let text = "*mangle\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -i eth+ -p tcp -m multiport --dports 22,80:90 -m comment --comment \"say \\\"hi\\\"\" -j MARK --set-xmark 0x1/0xff\n-A PREROUTING -m connmark --mark 0x2/0xf -j CONNMARK --restore-mark\n-A OUTPUT -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xffffffff\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --tcp-flags SYN,RST SYN -j REJECT --reject-with tcp-reset\n-A INPUT -p icmp --icmp-type 3/1 -j REJECT --reject-with icmp-host-prohibited\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n";
        let nft = to_nft(&read_ruleset(text).unwrap()).unwrap();
        for want in [
            "type filter hook prerouting priority -150; policy accept;",
            "type route hook output priority -150; policy accept;",
            "iifname \"eth*\" meta l4proto tcp tcp dport { 22, 80-90 } meta mark set meta mark and 0xffffff00 xor 0x1 comment \"say 'hi'\"",
            "ct mark & 0xf == 0x2 meta mark set ct mark",
            "ct mark set meta mark and 0xff",
            "tcp flags & 0x6 == 0x2 reject with tcp reset",
            "icmp type 3 icmp code 1 reject with icmp host-prohibited",
            "ct state established,related accept",
            "type filter hook input priority 0; policy drop;",
        ] {
            assert!(nft.contains(want), "missing `{want}` in\n{nft}");
        }
        let e = to_nft(&read_ruleset("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.1\n-A INPUT -m statistic --mode random --probability 0.5 -j DROP\nCOMMIT\n").unwrap()).unwrap_err();
        assert_eq!(e.loc.line, 4, "{e:?}");
        assert!(e.message.contains("-m statistic"), "{e:?}");
        let e = to_nft(
            &read_ruleset("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m frob --x -j ACCEPT\nCOMMIT\n")
                .unwrap(),
        )
        .unwrap_err();
        assert!(e.message.contains("not modelled"), "{e:?}");
    }
}
