//! Load-time validity by hook: what the kernel refuses when the whole ruleset is loaded,
//! because a target or expression is used from a hook where it is not allowed.
//!
//! Contract: [`check`] takes a converted table and returns the first rule (by location)
//! that the kernel would refuse, with why; a ruleset it accepts loads in the kernel as far
//! as these rules go. The hooks a rule is used from are every hook from which its chain is
//! reachable through jumps, gotos and verdict maps (V10: `e->comefrom`; nft validates the
//! same way per base chain). Checked:
//! - NAT targets and statements (N5): DNAT and REDIRECT in PREROUTING and OUTPUT, SNAT in
//!   POSTROUTING and INPUT, MASQUERADE in POSTROUTING; in nft also only under `type nat`
//!   base chains.
//! - iptables REJECT (V11): INPUT, FORWARD and OUTPUT.
//! - nft `fib` (nft_fib_validate): `oif`/`oifname` results in PREROUTING, INPUT and FORWARD
//!   (seen by the kernel check: with or without `. iif`); `type` with `. iif` in PREROUTING,
//!   INPUT, FORWARD; with `. oif` in OUTPUT, POSTROUTING, FORWARD.

use super::ir::*;
use crate::values::Loc;

fn bit(h: Hook) -> u8 {
    1 << (h as u8)
}

fn names(mask: u8) -> String {
    [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
        Hook::Ingress,
    ]
    .iter()
    .filter(|h| mask & bit(**h) != 0)
    .map(|h| h.as_str().to_uppercase())
    .collect::<Vec<_>>()
    .join(", ")
}

/// The hooks (bit set) and whether every reaching base chain is `type nat`, per chain.
fn reach(t: &Table) -> Vec<(u8, bool)> {
    let mut out: Vec<(u8, bool)> = vec![(0, true); t.chains.len()];
    let mut seen = vec![false; t.chains.len()];
    for (i, c) in t.chains.iter().enumerate() {
        let Some(b) = &c.base else { continue };
        let nat = b.kind == ChainType::Nat;
        // Depth-first over jump targets from this base chain.
        let mut stack = vec![i];
        seen.iter_mut().for_each(|s| *s = false);
        while let Some(ci) = stack.pop() {
            if seen[ci] {
                continue;
            }
            seen[ci] = true;
            out[ci].0 |= bit(b.hook);
            out[ci].1 &= nat;
            for r in &t.chains[ci].rules {
                r.action.jump_targets(&t.sets, &mut stack);
            }
        }
    }
    out
}

/// What an action needs: (allowed hooks, what it is, needs a nat chain in nft).
fn action_needs(a: &Action, origin: Origin) -> Vec<(u8, &'static str, bool)> {
    use Hook::*;
    let nft = origin == Origin::Nft;
    match a {
        Action::Dnat(_) => vec![(bit(Prerouting) | bit(Output), "DNAT", nft)],
        Action::Redirect(_) => vec![(bit(Prerouting) | bit(Output), "REDIRECT", nft)],
        Action::Snat(_) => vec![(bit(Postrouting) | bit(Input), "SNAT", nft)],
        Action::Masquerade => vec![(bit(Postrouting), "MASQUERADE", nft)],
        Action::Reject { .. } if !nft => {
            vec![(bit(Input) | bit(Forward) | bit(Output), "REJECT", false)]
        }
        Action::Seq(v) => v.iter().flat_map(|a| action_needs(a, origin)).collect(),
        _ => vec![],
    }
}

fn field_needs(f: Field) -> Option<(u8, &'static str)> {
    use Hook::*;
    let all = bit(Prerouting) | bit(Input) | bit(Forward) | bit(Output) | bit(Postrouting);
    match f {
        // [kernel-check] `fib saddr oifname` loads from INPUT and FORWARD too (with or
        // without `. iif`), and is refused from POSTROUTING.
        Field::FibOif { .. } => Some((bit(Prerouting) | bit(Input) | bit(Forward), "fib ... oif")),
        Field::FibType {
            dev: Some(Dir::Src),
            ..
        } => Some((
            bit(Prerouting) | bit(Input) | bit(Forward),
            "fib ... . iif type",
        )),
        Field::FibType {
            dev: Some(Dir::Dst),
            ..
        } => Some((
            bit(Output) | bit(Postrouting) | bit(Forward),
            "fib ... . oif type",
        )),
        Field::FibType { .. } => Some((all, "fib ... type")),
        _ => None,
    }
}

/// The first rule of `t` the kernel would refuse to load, and why.
pub fn check(t: &Table) -> Result<(), (Loc, String)> {
    let reach = reach(t);
    for (ci, c) in t.chains.iter().enumerate() {
        let (hooks, all_nat) = reach[ci];
        if hooks == 0 {
            continue; // unreachable: never validated against a hook
        }
        for r in &c.rules {
            for (allowed, what, needs_nat) in action_needs(&r.action, t.origin) {
                if t.origin == Origin::Iptables && what != "REJECT" && t.name != "nat" {
                    return Err((
                        r.loc,
                        format!("{what} is valid only in table nat, not {}: the kernel refuses the ruleset", t.name),
                    ));
                }
                if hooks & !allowed != 0 {
                    return Err((
                        r.loc,
                        format!(
                            "{what} is valid only from {}, but chain {} is reached from {}: the kernel refuses the ruleset",
                            names(allowed),
                            c.name,
                            names(hooks)
                        ),
                    ));
                }
                if needs_nat && !all_nat {
                    return Err((
                        r.loc,
                        format!(
                            "{what} needs a `type nat` base chain, but chain {} is reached from another type: the kernel refuses the ruleset",
                            c.name
                        ),
                    ));
                }
            }
            for m in &r.matches {
                let Match::Lookup { key, .. } = m else {
                    continue;
                };
                for k in key {
                    if let Some((allowed, what)) = field_needs(k.field) {
                        if hooks & !allowed != 0 {
                            return Err((
                                r.loc,
                                format!(
                                    "{what} is valid only from {}, but chain {} is reached from {}: the kernel refuses the ruleset",
                                    names(allowed),
                                    c.name,
                                    names(hooks)
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::netfilter::read_ruleset;

    fn refused(text: &str, needle: &str, line: u32) {
        let e = read_ruleset(text).expect_err("the kernel refuses this");
        assert!(e.message.contains(needle), "{}", e.message);
        assert_eq!(e.loc.line, line, "{}", e.message);
    }

    #[test]
    fn targets_and_fib_by_reachable_hook() {
        // V10 [EXP]: MASQUERADE in a nat user chain jumped to from PREROUTING.
        refused(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:m - [0:0]\n-A PREROUTING -j m\n-A POSTROUTING -j m\n-A m -j MASQUERADE\nCOMMIT\n",
            "MASQUERADE is valid only from POSTROUTING",
            9,
        );
        // Reached from POSTROUTING only: loads.
        read_ruleset("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:m - [0:0]\n-A POSTROUTING -j m\n-A m -j MASQUERADE\nCOMMIT\n").unwrap();
        // A chain no base chain reaches is never checked.
        read_ruleset("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:m - [0:0]\n-A m -j MASQUERADE\nCOMMIT\n").unwrap();
        // nft: fib ... oifname in POSTROUTING; dnat under a filter chain.
        refused(
            "table ip t {\n chain post { type filter hook postrouting priority 0;\n  fib saddr oifname \"eth0\" accept\n }\n}\n",
            "fib ... oif",
            3,
        );
        read_ruleset("table ip t {\n chain pre { type filter hook prerouting priority 0;\n  fib saddr oifname \"eth0\" accept\n  fib daddr type local accept\n }\n}\n").unwrap();
        refused(
            "table ip t {\n chain pre { type filter hook prerouting priority 0;\n  jump u\n }\n chain u {\n  tcp dport 80 dnat to 10.0.0.1\n }\n}\n",
            "needs a `type nat` base chain",
            6,
        );
    }
}
