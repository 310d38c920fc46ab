//! Meaning for nft text: [`crate::syntax::nft::File`] → IR [`Ruleset`].
//!
//! Contract: the commands are applied in order as `nft -f` would (tables and chains declared
//! twice are merged, `flush` empties, `add rule` appends, `insert rule` prepends),
//! `$variables` are replaced by their `define`, named priorities become numbers for the
//! table's family (nft(8): raw -300, mangle -150, dstnat -100, filter 0, security 50,
//! srcnat 100; bridge: dstnat -300, filter -200, out 100, srcnat 300). Bad values (an address
//! `10.0.0.300`, a jump to an undeclared chain or to a base chain, an undefined variable)
//! are errors with line and column. Expressions and statements fwsim does not model become
//! `Unsupported` matches or actions naming them, never a guess. Matches with the same
//! meaning as iptables ones reuse their IR variants (addresses, ports, protocol, interface,
//! ct state, marks); the rest are [`Match::Lookup`]s. Payload matches carry their
//! implicit dependencies (`tcp dport` needs `meta l4proto tcp`, `ip saddr` in an inet table
//! needs `meta nfproto ipv4`), so a packet of another protocol or family does not match
//! them even when negated.

use super::ir::*;
use crate::syntax::nft::{
    ChainDef, ChainItem, Elem, Error, Expr, File, Item, Priority, RelOp, Rule as SynRule, SetDef,
    SetSetting, Stmt, TableItem,
};
use crate::values::{Cidr, Loc};
use std::collections::BTreeMap;
use std::net::IpAddr;

fn err(loc: Loc, message: impl Into<String>) -> Error {
    Error {
        loc,
        message: message.into(),
    }
}

/// A table while commands are applied.
struct TableAcc {
    family: Family,
    name: String,
    chains: Vec<ChainAcc>,
    sets: Vec<SetAcc>,
}

struct ChainAcc {
    name: String,
    hook: Option<(String, String, Priority, Loc)>,
    policy: Option<(String, Loc)>,
    rules: Vec<SynRule>,
}

struct SetAcc {
    def: SetDef,
    extra: Vec<Elem>,
}

fn family_of(f: &str, loc: Loc) -> Result<Family, Error> {
    Ok(match f {
        "ip" => Family::Ip,
        "ip6" => Family::Ip6,
        "inet" => Family::Inet,
        "arp" => Family::Arp,
        "bridge" => Family::Bridge,
        "netdev" => Family::Netdev,
        _ => {
            return Err(err(
                loc,
                format!("`{f}` is not a family: expected ip, ip6, inet, arp, bridge or netdev"),
            ))
        }
    })
}

struct Conv {
    tables: Vec<TableAcc>,
    defines: BTreeMap<String, Expr>,
}

impl Conv {
    fn table(&mut self, family: Option<&str>, name: &str, loc: Loc) -> Result<usize, Error> {
        let family = family_of(family.unwrap_or("ip"), loc)?;
        if let Some(i) = self
            .tables
            .iter()
            .position(|t| t.family == family && t.name == name)
        {
            return Ok(i);
        }
        self.tables.push(TableAcc {
            family,
            name: name.to_string(),
            chains: Vec::new(),
            sets: Vec::new(),
        });
        Ok(self.tables.len() - 1)
    }

    fn existing_table(&self, family: Option<&str>, name: &str, loc: Loc) -> Result<usize, Error> {
        let family = family_of(family.unwrap_or("ip"), loc)?;
        self.tables
            .iter()
            .position(|t| t.family == family && t.name == name)
            .ok_or_else(|| {
                err(
                    loc,
                    format!(
                        "no table `{} {name}`: expected a table declared before",
                        family.as_str()
                    ),
                )
            })
    }

    fn chain(&mut self, ti: usize, c: &ChainDef) -> Result<(), Error> {
        let t = &mut self.tables[ti];
        let ci = match t.chains.iter().position(|x| x.name == c.name) {
            Some(i) => i,
            None => {
                t.chains.push(ChainAcc {
                    name: c.name.clone(),
                    hook: None,
                    policy: None,
                    rules: Vec::new(),
                });
                t.chains.len() - 1
            }
        };
        for item in c.body.iter().flatten() {
            let ch = &mut self.tables[ti].chains[ci];
            match item {
                ChainItem::Hook {
                    kind,
                    hook,
                    priority,
                    loc,
                    ..
                } => ch.hook = Some((kind.clone(), hook.clone(), priority.clone(), *loc)),
                ChainItem::Policy { policy, loc } => ch.policy = Some((policy.clone(), *loc)),
                ChainItem::Attr { .. } => {}
                ChainItem::Rule(r) => ch.rules.push(r.clone()),
            }
        }
        Ok(())
    }

    fn set(&mut self, ti: usize, s: &SetDef) {
        let t = &mut self.tables[ti];
        match t.sets.iter_mut().find(|x| x.def.name == s.name) {
            Some(acc) => acc.def.settings.extend(s.settings.iter().cloned()),
            None => t.sets.push(SetAcc {
                def: s.clone(),
                extra: Vec::new(),
            }),
        }
    }

    fn apply(&mut self, file: &File) -> Result<(), Error> {
        for item in &file.items {
            match item {
                Item::Define(d) => {
                    let v = self.resolve(&d.value, d.loc, 0)?;
                    self.defines.insert(d.name.clone(), v);
                }
                Item::Flush { words, loc } => {
                    let w: Vec<&str> = words.iter().map(String::as_str).collect();
                    match w.as_slice() {
                        ["ruleset"] => self.tables.clear(),
                        ["ruleset", fam] => {
                            let f = family_of(fam, *loc)?;
                            self.tables.retain(|t| t.family != f);
                        }
                        ["table", rest @ ..]
                        | ["chain", rest @ ..]
                        | ["set", rest @ ..]
                        | ["map", rest @ ..] => {
                            let (fam, names) = match rest {
                                [f, n @ ..]
                                    if crate::syntax::nft::FAMILIES.contains(f)
                                        && !n.is_empty() =>
                                {
                                    (Some(*f), n)
                                }
                                n => (None, n),
                            };
                            let Some(tn) = names.first() else {
                                return Err(err(*loc, "expected a table name after `flush`"));
                            };
                            let ti = self.existing_table(fam, tn, *loc)?;
                            let t = &mut self.tables[ti];
                            match (w[0], names.get(1)) {
                                ("table", None) => {
                                    t.chains.iter_mut().for_each(|c| c.rules.clear());
                                }
                                ("chain", Some(cn)) => {
                                    let Some(c) = t.chains.iter_mut().find(|c| c.name == *cn) else {
                                        return Err(err(*loc, format!("no chain `{cn}` to flush")));
                                    };
                                    c.rules.clear();
                                }
                                ("set" | "map", Some(sn)) => {
                                    let Some(s) = t.sets.iter_mut().find(|s| s.def.name == *sn) else {
                                        return Err(err(*loc, format!("no set `{sn}` to flush")));
                                    };
                                    s.def.settings.retain(|x| !matches!(x, SetSetting::Elements { .. }));
                                    s.extra.clear();
                                }
                                _ => return Err(err(*loc, "expected `flush table F T`, `flush chain F T C` or `flush set F T S`")),
                            }
                        }
                        _ => {
                            return Err(err(
                                *loc,
                                "expected `flush ruleset` or `flush table|chain|set ...`",
                            ))
                        }
                    }
                }
                Item::Table(t) => {
                    let ti = self.table(t.family.as_deref(), &t.name, t.loc)?;
                    for ti_item in t.body.iter().flatten() {
                        match ti_item {
                            TableItem::Chain(c) => self.chain(ti, c)?,
                            TableItem::Set(s) => self.set(ti, s),
                            TableItem::Define(d) => {
                                let v = self.resolve(&d.value, d.loc, 0)?;
                                self.defines.insert(d.name.clone(), v);
                            }
                            TableItem::Attr { .. } | TableItem::Other { .. } => {}
                        }
                    }
                }
                Item::AddChain {
                    family,
                    table,
                    chain,
                    ..
                } => {
                    let ti = self.existing_table(family.as_deref(), table, chain.loc)?;
                    self.chain(ti, chain)?;
                }
                Item::AddRule {
                    verb,
                    family,
                    table,
                    chain,
                    place,
                    rule,
                } => {
                    let ti = self.existing_table(family.as_deref(), table, rule.loc)?;
                    if !place.is_empty() {
                        return Err(err(
                            rule.loc,
                            "rule positions (`position`, `handle`, `index`) are not supported: expected rules in order",
                        ));
                    }
                    let Some(c) = self.tables[ti].chains.iter_mut().find(|c| c.name == *chain)
                    else {
                        return Err(err(
                            rule.loc,
                            format!("no chain `{chain}` in table `{table}`"),
                        ));
                    };
                    if verb == "insert" {
                        c.rules.insert(0, rule.clone());
                    } else {
                        c.rules.push(rule.clone());
                    }
                }
                Item::AddSet {
                    family, table, set, ..
                } => {
                    let ti = self.existing_table(family.as_deref(), table, set.loc)?;
                    self.set(ti, set);
                }
                Item::AddElement {
                    family,
                    table,
                    set,
                    elements,
                    loc,
                } => {
                    let ti = self.existing_table(family.as_deref(), table, *loc)?;
                    let Some(s) = self.tables[ti].sets.iter_mut().find(|s| s.def.name == *set)
                    else {
                        return Err(err(*loc, format!("no set `{set}` in table `{table}`")));
                    };
                    s.extra.extend(elements.iter().cloned());
                }
            }
        }
        Ok(())
    }

    /// Replace `$variables` by their values.
    fn resolve(&self, e: &Expr, loc: Loc, depth: usize) -> Result<Expr, Error> {
        if depth > 32 {
            return Err(err(loc, "variables nested too deep"));
        }
        let r = |x: &Expr| self.resolve(x, loc, depth + 1);
        let rb = |x: &Expr| r(x).map(Box::new);
        Ok(match e {
            Expr::Var(v) => match self.defines.get(v) {
                Some(x) => x.clone(),
                None => {
                    return Err(err(
                        loc,
                        format!("undefined variable `${v}`: expected a `define {v} = ...` before"),
                    ))
                }
            },
            Expr::Set(elems) => Expr::Set(self.resolve_elems(elems, loc, depth)?),
            Expr::List(v) => Expr::List(v.iter().map(r).collect::<Result<_, _>>()?),
            Expr::Concat(v) => Expr::Concat(v.iter().map(r).collect::<Result<_, _>>()?),
            Expr::Binop { op, left, right } => Expr::Binop {
                op: op.clone(),
                left: rb(left)?,
                right: rb(right)?,
            },
            Expr::Range(a, b) => Expr::Range(rb(a)?, rb(b)?),
            Expr::Paren(x) => Expr::Paren(rb(x)?),
            Expr::Map { key, map } => Expr::Map {
                key: rb(key)?,
                map: rb(map)?,
            },
            other => other.clone(),
        })
    }

    /// Resolve variables in elements; a variable holding a set is flattened into its
    /// elements.
    fn resolve_elems(&self, elems: &[Elem], loc: Loc, depth: usize) -> Result<Vec<Elem>, Error> {
        let mut out = Vec::new();
        for e in elems {
            let key = self.resolve(&e.key, loc, depth + 1)?;
            let data = match &e.data {
                Some(d) => Some(self.resolve(d, loc, depth + 1)?),
                None => None,
            };
            match key {
                Expr::Set(inner) if data.is_none() => out.extend(inner),
                key => out.push(Elem {
                    key,
                    data,
                    extra: e.extra.clone(),
                }),
            }
        }
        Ok(out)
    }
}

/// Convert a parsed nft file to the IR.
pub fn convert(file: &File) -> Result<Ruleset, Error> {
    let mut conv = Conv {
        tables: Vec::new(),
        defines: BTreeMap::new(),
    };
    conv.apply(file)?;
    let mut out = Ruleset::default();
    for t in &conv.tables {
        out.tables.push(convert_table(&conv, t)?);
    }
    Ok(out)
}

fn priority_number(p: &Priority, family: Family, conv: &Conv, loc: Loc) -> Result<i32, Error> {
    let named = |name: &str| -> Option<i64> {
        Some(if family == Family::Bridge {
            match name {
                "dstnat" => -300,
                "filter" => -200,
                "out" => 100,
                "srcnat" => 300,
                _ => return None,
            }
        } else {
            match name {
                "raw" => -300,
                "mangle" => -150,
                "dstnat" => -100,
                "filter" => 0,
                "security" => 50,
                "srcnat" => 100,
                _ => return None,
            }
        })
    };
    let n = match p {
        Priority::Num(n) => *n,
        Priority::Named { name, offset } => {
            named(name).ok_or_else(|| {
                err(loc, format!("unknown priority name `{name}` for family {}: expected a number or raw, mangle, dstnat, filter, security, srcnat (bridge: dstnat, filter, out, srcnat)", family.as_str()))
            })? + offset
        }
        Priority::Var(v) => match conv.defines.get(v) {
            Some(Expr::Value(w)) => match w.parse::<i64>() {
                Ok(n) => n,
                Err(_) => named(w).ok_or_else(|| err(loc, format!("`${v}` is not a priority")))?,
            },
            _ => return Err(err(loc, format!("`${v}` is not defined as a priority"))),
        },
    };
    i32::try_from(n).map_err(|_| err(loc, format!("priority {n} is out of range")))
}

fn convert_table(conv: &Conv, t: &TableAcc) -> Result<Table, Error> {
    // Sets first (rules refer to them by index).
    let mut sets = Vec::new();
    let chain_index = |name: &str| t.chains.iter().position(|c| c.name == name);
    let base = |i: usize| t.chains[i].hook.is_some();
    let ctx = Ctx {
        conv,
        family: t.family,
        chain_index: &chain_index,
        is_base: &base,
        set_names: t.sets.iter().map(|s| s.def.name.clone()).collect(),
    };
    for s in &t.sets {
        sets.push(ctx.named_set(s)?);
    }
    let ctx = Ctx { ..ctx };
    let mut chains = Vec::new();
    for c in &t.chains {
        let base = match &c.hook {
            None => None,
            Some((kind, hook, prio, loc)) => {
                let kind = match kind.as_str() {
                    "filter" => ChainType::Filter,
                    "nat" => ChainType::Nat,
                    "route" => ChainType::Route,
                    k => {
                        return Err(err(
                            *loc,
                            format!("`{k}` is not a chain type: expected filter, nat or route"),
                        ))
                    }
                };
                let hook = match hook.as_str() {
                    "prerouting" => Hook::Prerouting,
                    "input" => Hook::Input,
                    "forward" => Hook::Forward,
                    "output" => Hook::Output,
                    "postrouting" => Hook::Postrouting,
                    "ingress" => Hook::Ingress,
                    h => return Err(err(*loc, format!("`{h}` is not a hook fwsim knows: expected prerouting, input, forward, output, postrouting or ingress"))),
                };
                let priority = priority_number(prio, t.family, conv, *loc)?;
                let policy = match &c.policy {
                    None => Policy::Accept,
                    Some((p, ploc)) => {
                        let p = match p.strip_prefix('$') {
                            Some(v) => match conv.defines.get(v) {
                                Some(Expr::Value(w)) => w.clone(),
                                _ => {
                                    return Err(err(
                                        *ploc,
                                        format!("`${v}` is not defined as a policy"),
                                    ))
                                }
                            },
                            None => p.clone(),
                        };
                        match p.as_str() {
                            "accept" => Policy::Accept,
                            "drop" => Policy::Drop,
                            _ => {
                                return Err(err(
                                    *ploc,
                                    format!("`{p}` is not a policy: expected accept or drop"),
                                ))
                            }
                        }
                    }
                };
                Some(BaseChain {
                    kind,
                    hook,
                    priority,
                    policy,
                })
            }
        };
        let mut rules = Vec::new();
        for r in &c.rules {
            rules.push(ctx.rule(r, &sets)?);
        }
        chains.push(Chain {
            name: c.name.clone(),
            base,
            rules,
        });
    }
    super::from_iptables::check_loops(&chains, &sets).map_err(|e| err(e.loc, e.message))?;
    let table = Table {
        family: t.family,
        name: t.name.clone(),
        origin: Origin::Nft,
        chains,
        sets,
    };
    super::validate::check(&table).map_err(|(loc, message)| err(loc, message))?;
    Ok(table)
}

struct Ctx<'a> {
    conv: &'a Conv,
    family: Family,
    chain_index: &'a dyn Fn(&str) -> Option<usize>,
    is_base: &'a dyn Fn(usize) -> bool,
    set_names: Vec<String>,
}

/// The IR fields of a selector, and the dependencies it implies.
fn field_of(words: &[String]) -> Option<(Field, Vec<Match>)> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let nf = |v6: bool| nfproto_match(v6);
    let proto = |n: u8| Match::Proto {
        proto: n,
        neg: false,
    };
    Some(match w.as_slice() {
        ["ip", d @ ("saddr" | "daddr")] => (
            Field::Addr {
                v6: false,
                dir: dir(d),
            },
            vec![nf(false)],
        ),
        ["ip6", d @ ("saddr" | "daddr")] => (
            Field::Addr {
                v6: true,
                dir: dir(d),
            },
            vec![nf(true)],
        ),
        ["ip", "protocol"] => (Field::L4Proto, vec![nf(false)]),
        ["ip6", "nexthdr"] => (Field::L4Proto, vec![nf(true)]),
        ["meta", "l4proto"] => (Field::L4Proto, vec![]),
        [p @ ("tcp" | "udp" | "udplite" | "sctp" | "dccp" | "th"), d @ ("sport" | "dport")] => {
            let deps = match *p {
                "tcp" => vec![proto(6)],
                "udp" => vec![proto(17)],
                "udplite" => vec![proto(136)],
                "sctp" => vec![proto(132)],
                "dccp" => vec![proto(33)],
                _ => return Some((Field::ThPort(dir(d)), vec![])),
            };
            (Field::Port(dir(d)), deps)
        }
        ["tcp", "flags"] => (Field::TcpFlags, vec![proto(6)]),
        ["icmp", "type"] => (Field::IcmpType { v6: false }, vec![nf(false), proto(1)]),
        ["icmp", "code"] => (Field::IcmpCode { v6: false }, vec![nf(false), proto(1)]),
        ["icmpv6", "type"] => (Field::IcmpType { v6: true }, vec![nf(true), proto(58)]),
        ["icmpv6", "code"] => (Field::IcmpCode { v6: true }, vec![nf(true), proto(58)]),
        ["meta", "mark"] | ["mark"] => (Field::Mark, vec![]),
        ["ct", "mark"] => (Field::CtMark, vec![]),
        ["ct", "state"] => (Field::CtState, vec![]),
        ["ct", "status"] => (Field::CtStatus, vec![]),
        ["ct", "direction"] => (Field::CtDirection, vec![]),
        ["meta", "nfproto"] => (Field::NfProto, vec![]),
        ["meta", "protocol"] => (Field::EtherType, vec![]),
        ["fib", d @ ("saddr" | "daddr"), rest @ ..] => {
            let (dev, result) = match rest {
                [".", x @ ("iif" | "oif"), r] => {
                    (Some(if *x == "iif" { Dir::Src } else { Dir::Dst }), *r)
                }
                [r] => (None, *r),
                _ => return None,
            };
            let d = dir(d);
            match result {
                "type" => (Field::FibType { dir: d, dev }, vec![]),
                "oif" | "oifname" => (Field::FibOif { dir: d, dev }, vec![]),
                _ => return None,
            }
        }
        ["meta", k] | [k] if matches!(*k, "iifname" | "iif") => (Field::Ifname(Dir::Src), vec![]),
        ["meta", k] | [k] if matches!(*k, "oifname" | "oif") => (Field::Ifname(Dir::Dst), vec![]),
        _ => return None,
    })
}

fn dir(d: &str) -> Dir {
    if d == "saddr" || d == "sport" {
        Dir::Src
    } else {
        Dir::Dst
    }
}

fn nfproto_match(v6: bool) -> Match {
    let n = if v6 { 10 } else { 2 };
    Match::Lookup {
        key: vec![Key {
            field: Field::NfProto,
            mask: None,
        }],
        set: SetRef::Anon(Box::new(anon_set(vec![SetElem {
            key: Some(vec![Range::Num(n, n)]),
            data: None,
        }]))),
        neg: false,
    }
}

fn anon_set(elements: Vec<SetElem>) -> Set {
    Set {
        name: String::new(),
        key_types: Vec::new(),
        data_type: None,
        elements,
        unsupported: None,
        loc: Loc::default(),
    }
}

fn field_of_type(t: &str) -> Option<Field> {
    Some(match t {
        "ipv4_addr" => Field::Addr {
            v6: false,
            dir: Dir::Src,
        },
        "ipv6_addr" => Field::Addr {
            v6: true,
            dir: Dir::Src,
        },
        "inet_service" => Field::Port(Dir::Dst),
        "inet_proto" => Field::L4Proto,
        "ifname" => Field::Ifname(Dir::Src),
        "mark" => Field::Mark,
        "ct_state" => Field::CtState,
        "icmp_type" => Field::IcmpType { v6: false },
        "icmpv6_type" => Field::IcmpType { v6: true },
        "nf_proto" => Field::NfProto,
        "tcp_flag" => Field::TcpFlags,
        _ => return None,
    })
}

fn field_max(f: Field) -> u128 {
    match f {
        Field::Addr { v6: true, .. } => u128::MAX,
        Field::Addr { v6: false, .. } | Field::Mark | Field::CtMark | Field::CtStatus => {
            u32::MAX.into()
        }
        Field::Port(_) | Field::ThPort(_) | Field::EtherType => u16::MAX.into(),
        _ => u8::MAX.into(),
    }
}

pub(crate) fn parse_num(s: &str) -> Option<u128> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u128::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn ip_num(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

/// A value error: `Bad` values are errors (nft would refuse them too), `Unknown` ones
/// (symbolic names fwsim has no table for) make the match unsupported.
enum VErr {
    Bad(String),
    Unknown(String),
}

const TCP_FLAGS: [(&str, u8); 8] = [
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ecn", 0x40),
    ("cwr", 0x80),
];
const ICMP_TYPES: [(&str, u8); 15] = [
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("info-request", 15),
    ("info-reply", 16),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
];
const ICMPV6_TYPES: [(&str, u8); 19] = [
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-listener-query", 130),
    ("mld-listener-report", 131),
    ("mld-listener-done", 132),
    ("mld-listener-reduction", 132),
    ("nd-router-solicit", 133),
    ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135),
    ("nd-neighbor-advert", 136),
    ("nd-redirect", 137),
    ("router-renumbering", 138),
    ("ind-neighbor-solicit", 141),
    ("ind-neighbor-advert", 142),
    ("mld2-listener-report", 143),
];

/// A single symbolic or numeric value of a field, as a number.
fn scalar(f: Field, s: &str) -> Result<u128, VErr> {
    if let Some(n) = parse_num(s) {
        if n > field_max(f) {
            return Err(VErr::Bad(format!("`{s}` is out of range for this field")));
        }
        return Ok(n);
    }
    let found = match f {
        Field::Addr { v6, .. } => match s.parse::<IpAddr>() {
            Ok(a) if a.is_ipv6() == v6 => Some(ip_num(a)),
            Ok(_) => {
                return Err(VErr::Bad(format!(
                    "`{s}` is an address of the other family"
                )))
            }
            Err(_) => {
                return Err(VErr::Bad(format!(
                    "`{s}` is not an {} address",
                    if v6 { "IPv6" } else { "IPv4" }
                )))
            }
        },
        Field::L4Proto => super::from_iptables::protocol_number(s).map(u128::from),
        Field::Port(_) | Field::ThPort(_) => super::from_iptables::service_port(s)
            .or(match s {
                "ftp" => Some(21),
                "telnet" => Some(23),
                "tftp" => Some(69),
                "dhcpv6-client" => Some(546),
                "dhcpv6-server" => Some(547),
                "snmp" => Some(161),
                "mdns" => Some(5353),
                _ => None,
            })
            .map(u128::from),
        Field::TcpFlags => TCP_FLAGS.iter().find(|(n, _)| *n == s).map(|x| x.1.into()),
        Field::IcmpType { v6 } => (if v6 {
            &ICMPV6_TYPES[..]
        } else {
            &ICMP_TYPES[..]
        })
        .iter()
        .find(|(n, _)| *n == s)
        .map(|x| x.1.into()),
        Field::CtState => match s {
            "invalid" => Some(ct::INVALID.into()),
            "new" => Some(ct::NEW.into()),
            "established" => Some(ct::ESTABLISHED.into()),
            "related" => Some(ct::RELATED.into()),
            "untracked" => Some(ct::UNTRACKED.into()),
            _ => None,
        },
        Field::CtStatus => match s {
            "dnat" => Some(ct::DNAT.into()),
            "snat" => Some(ct::SNAT.into()),
            _ => None,
        },
        Field::FibType { .. } => [
            "unspec",
            "unicast",
            "local",
            "broadcast",
            "anycast",
            "multicast",
            "blackhole",
            "unreachable",
            "prohibit",
        ]
        .iter()
        .position(|n| *n == s)
        .map(|n| n as u128),
        Field::CtDirection => match s {
            "original" => Some(0),
            "reply" => Some(1),
            _ => None,
        },
        Field::NfProto => match s {
            "ipv4" => Some(2),
            "ipv6" => Some(10),
            _ => None,
        },
        Field::EtherType => match s {
            "ip" => Some(0x0800),
            "ip6" => Some(0x86dd),
            "arp" => Some(0x0806),
            "vlan" => Some(0x8100),
            _ => None,
        },
        _ => None,
    };
    found.ok_or_else(|| VErr::Unknown(format!("value `{s}`")))
}

/// One field of an element (or of a comparison) as a range.
fn range(f: Field, e: &Expr) -> Result<Range, VErr> {
    if let Field::FibOif { .. } = f {
        return match e {
            // `missing` (JSON: `false`): no route.
            Expr::Value(s) if s == "missing" || s == "false" => Ok(Range::Name(String::new())),
            Expr::Value(s) if s == "exists" || s == "true" => {
                Err(VErr::Unknown(format!("fib result `{s}`")))
            }
            Expr::Str(s) | Expr::Value(s) => Ok(Range::Name(s.clone())),
            _ => Err(VErr::Unknown(format!("interface `{e}`"))),
        };
    }
    if let Field::Ifname(_) = f {
        return match e {
            Expr::Str(s) | Expr::Value(s) => Ok(Range::Name(s.clone())),
            _ => Err(VErr::Unknown(format!("interface `{e}`"))),
        };
    }
    match e {
        Expr::Value(s) | Expr::Str(s) => {
            if let (Field::Addr { v6, .. }, Some((a, len))) = (f, s.split_once('/')) {
                let ip: IpAddr = a
                    .parse()
                    .map_err(|_| VErr::Bad(format!("`{s}` is not a prefix")))?;
                if ip.is_ipv6() != v6 {
                    return Err(VErr::Bad(format!(
                        "`{s}` is an address of the other family"
                    )));
                }
                let len: u8 = len
                    .parse()
                    .map_err(|_| VErr::Bad(format!("bad prefix length in `{s}`")))?;
                let c = Cidr::new(ip, len)
                    .map_err(|_| VErr::Bad(format!("prefix length in `{s}` is too long")))?
                    .trunc();
                let bits: u32 = if v6 { 128 } else { 32 };
                let lo = ip_num(c.addr());
                let host = if u32::from(len) >= bits {
                    0
                } else {
                    (1u128 << (bits - u32::from(len))) - 1
                };
                return Ok(Range::Num(lo, lo | host));
            }
            if let Ok(n) = scalar(f, s) {
                return Ok(Range::Num(n, n));
            }
            // `a-b` (the address or port itself has no `-`).
            if let Some((a, b)) = s.split_once('-') {
                if let (Ok(a), Ok(b)) = (scalar(f, a), scalar(f, b)) {
                    return if a <= b {
                        Ok(Range::Num(a, b))
                    } else {
                        Err(VErr::Bad(format!("range `{s}` is empty")))
                    };
                }
            }
            scalar(f, s).map(|n| Range::Num(n, n))
        }
        Expr::Range(a, b) => {
            let (Range::Num(a, _), Range::Num(_, b)) = (range(f, a)?, range(f, b)?) else {
                return Err(VErr::Unknown(format!("range `{e}`")));
            };
            Ok(Range::Num(a, b))
        }
        Expr::Binop { op, left, right } if op == "|" => {
            let (Range::Num(a, _), Range::Num(b, _)) = (range(f, left)?, range(f, right)?) else {
                return Err(VErr::Unknown(format!("`{e}`")));
            };
            Ok(Range::Num(a | b, a | b))
        }
        Expr::Paren(x) => range(f, x),
        _ => Err(VErr::Unknown(format!("`{e}`"))),
    }
}

/// The bit union of a flag value (`syn`, `fin|syn`, `(fin | syn)`, `fin,syn`).
fn bits(f: Field, e: &Expr) -> Result<u128, VErr> {
    match e {
        Expr::List(v) => v.iter().try_fold(0, |acc, x| Ok(acc | bits(f, x)?)),
        _ => match range(f, e)? {
            Range::Num(a, b) if a == b => Ok(a),
            _ => Err(VErr::Unknown(format!("`{e}`"))),
        },
    }
}

/// An element's key as ranges, one per field.
fn elem_key(fields: &[Field], e: &Expr) -> Result<Option<Vec<Range>>, VErr> {
    if matches!(e, Expr::Value(v) if v == "*") {
        return Ok(None);
    }
    let parts: Vec<&Expr> = match e {
        Expr::Concat(v) => v.iter().collect(),
        e => vec![e],
    };
    if parts.len() != fields.len() {
        return Err(VErr::Bad(format!(
            "`{e}` has {} fields, the key {}",
            parts.len(),
            fields.len()
        )));
    }
    parts
        .iter()
        .zip(fields)
        .map(|(p, f)| range(*f, p))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl Ctx<'_> {
    fn verdict(&self, v: &str, chain: Option<&str>, loc: Loc) -> Result<Verdict, Error> {
        Ok(match (v, chain) {
            ("accept", None) => Verdict::Accept,
            ("drop", None) => Verdict::Drop,
            ("continue", None) => Verdict::Continue,
            ("return", None) => Verdict::Return,
            ("jump" | "goto", Some(c)) => {
                let Some(i) = (self.chain_index)(c) else {
                    return Err(err(loc, format!("`{v} {c}`: no chain `{c}` in this table")));
                };
                if (self.is_base)(i) {
                    return Err(err(loc, format!("`{v} {c}`: `{c}` is a base chain (the kernel refuses jumps to base chains)")));
                }
                if v == "jump" {
                    Verdict::Jump(i)
                } else {
                    Verdict::Goto(i)
                }
            }
            _ => return Err(err(loc, format!("`{v}` is not a verdict"))),
        })
    }

    fn elements(
        &self,
        fields: &[Field],
        elems: &[Elem],
        verdicts: bool,
        loc: Loc,
    ) -> Result<Result<Vec<SetElem>, String>, Error> {
        let elems = self.conv.resolve_elems(elems, loc, 0)?;
        let mut out = Vec::new();
        for e in &elems {
            let key = match elem_key(fields, &e.key) {
                Ok(k) => k,
                Err(VErr::Bad(m)) => return Err(err(loc, m)),
                Err(VErr::Unknown(m)) => {
                    return Ok(Err(format!("set element {m} is not modelled")))
                }
            };
            let data = match &e.data {
                None => None,
                Some(Expr::Verdict(v, c)) if verdicts => {
                    Some(SetData::Verdict(self.verdict(v, c.as_deref(), loc)?))
                }
                Some(d) => Some(SetData::Other(d.to_string())),
            };
            out.push(SetElem { key, data });
        }
        Ok(Ok(out))
    }

    fn named_set(&self, s: &SetAcc) -> Result<Set, Error> {
        let mut key_types = Vec::new();
        let mut data_type = None;
        let mut fields: Option<Vec<Field>> = None;
        let mut unsupported = None;
        let mut elems = Vec::new();
        for st in &s.def.settings {
            match st {
                SetSetting::Type { key, data, .. } => {
                    key_types = key.clone();
                    data_type = data.as_ref().map(|d| d.join(" . "));
                    fields = key.iter().map(|t| field_of_type(t)).collect();
                    if fields.is_none() {
                        unsupported = Some(format!(
                            "set {} has a key type fwsim does not model ({})",
                            s.def.name,
                            key.join(" . ")
                        ));
                    }
                }
                SetSetting::Typeof { key, data, .. } => {
                    let parts: Vec<&Expr> = match key {
                        Expr::Concat(v) => v.iter().collect(),
                        e => vec![e],
                    };
                    key_types = parts.iter().map(|p| p.to_string()).collect();
                    data_type = data.as_ref().map(|d| d.to_string());
                    fields = parts
                        .iter()
                        .map(|p| match p {
                            Expr::Sel(w) => field_of(w).map(|x| x.0),
                            _ => None,
                        })
                        .collect();
                    if fields.is_none() {
                        unsupported = Some(format!(
                            "set {} has a key fwsim does not model ({key})",
                            s.def.name
                        ));
                    }
                }
                SetSetting::Elements { elements, .. } => elems.extend(elements.iter().cloned()),
                _ => {}
            }
        }
        elems.extend(s.extra.iter().cloned());
        let verdicts = data_type.as_deref() == Some("verdict");
        let mut elements = Vec::new();
        if let Some(f) = &fields {
            match self.elements(f, &elems, verdicts, s.def.loc)? {
                Ok(e) => elements = e,
                Err(why) => unsupported = Some(format!("set {}: {why}", s.def.name)),
            }
        } else if unsupported.is_none() {
            return Err(err(
                s.def.loc,
                format!("set {} has no `type` or `typeof`", s.def.name),
            ));
        }
        Ok(Set {
            name: s.def.name.clone(),
            key_types,
            data_type,
            elements,
            unsupported,
            loc: s.def.loc,
        })
    }

    fn rule(&self, r: &SynRule, sets: &[Set]) -> Result<Rule, Error> {
        let mut matches = Vec::new();
        let mut actions: Vec<Action> = Vec::new();
        let text = r.to_string();
        for st in &r.stmts {
            let loc = st.loc();
            let is_match = matches!(st, Stmt::Match { .. });
            if is_match
                && actions
                    .iter()
                    .any(|a| !matches!(a, Action::Log | Action::None))
            {
                matches.push(Match::Unsupported {
                    what: format!("a match after a statement ({st})"),
                });
                continue;
            }
            match st {
                Stmt::Match {
                    left, op, right, ..
                } => {
                    let right = self.conv.resolve(right, loc, 0)?;
                    self.matches(left, *op, &right, sets, loc, &mut matches)?;
                }
                Stmt::Verdict { verdict, chain, .. } => {
                    actions.push(match self.verdict(verdict, chain.as_deref(), loc)? {
                        Verdict::Accept => Action::Accept,
                        Verdict::Drop => Action::Drop,
                        Verdict::Continue => Action::Continue,
                        Verdict::Return => Action::Return,
                        Verdict::Jump(c) => Action::Jump(c),
                        Verdict::Goto(c) => Action::Goto(c),
                    })
                }
                Stmt::Vmap { key, map, .. } => {
                    actions.push(self.vmap(key, map, sets, loc, &mut matches)?)
                }
                Stmt::Set { left, value, .. } => {
                    let value = self.conv.resolve(value, loc, 0)?;
                    actions.push(set_stmt(left, &value, st))
                }
                Stmt::Counter { .. } | Stmt::Comment { .. } => {}
                Stmt::Nat {
                    kind, to, flags: _, ..
                } => actions.push(self.nat(kind, to.as_ref(), loc, st)?),
                Stmt::Reject { with, .. } => actions.push(Action::Reject {
                    with: reject_with(with, self.family),
                }),
                Stmt::Notrack { .. } => actions.push(Action::NoTrack),
                Stmt::ObjRef { kind, .. } if kind == "counter" => {}
                Stmt::ObjRef { .. } => actions.push(Action::Unsupported {
                    what: st.to_string(),
                }),
                Stmt::Other { words, .. } => match words.first().map(String::as_str) {
                    Some("log") => actions.push(Action::Log),
                    // A fresh token bucket lets the packet through (as `-m limit`).
                    Some("limit") if !words.iter().any(|w| w == "over") => {}
                    _ => {
                        if actions.is_empty() && !words.iter().any(|w| w == "set") {
                            matches.push(Match::Unsupported {
                                what: st.to_string(),
                            })
                        } else {
                            actions.push(Action::Unsupported {
                                what: st.to_string(),
                            })
                        }
                    }
                },
            }
        }
        actions.retain(|a| !matches!(a, Action::None));
        let action = match actions.len() {
            0 => Action::None,
            1 => actions.pop().unwrap_or(Action::None),
            _ => Action::Seq(actions),
        };
        Ok(Rule {
            matches,
            action,
            text,
            loc: r.loc,
        })
    }

    /// The lookup key of a left side: fields and masks, with dependencies; None when a
    /// part is not modelled.
    fn key(&self, left: &Expr, deps: &mut Vec<Match>) -> Option<Vec<Key>> {
        let parts: Vec<&Expr> = match left {
            Expr::Concat(v) => v.iter().collect(),
            e => vec![e],
        };
        let mut out = Vec::new();
        for p in parts {
            let (sel, mask) = match p {
                Expr::Sel(w) => (w, None),
                Expr::Binop { op, left, right } if op == "&" || op == "and" => {
                    match (&**left, &**right) {
                        (Expr::Sel(w), Expr::Value(m)) if parse_num(m).is_some() => {
                            (w, parse_num(m))
                        }
                        // A symbolic mask: `tcp flags & (fin | syn)`, `tcp flags & fin,syn`.
                        (Expr::Sel(w), m) => (w, Some(bits(field_of(w)?.0, m).ok()?)),
                        _ => return None,
                    }
                }
                _ => return None,
            };
            let (field, d) = field_of(sel)?;
            for m in d {
                if !deps.contains(&m) {
                    deps.push(m);
                }
            }
            out.push(Key { field, mask });
        }
        Some(out)
    }

    fn deps_for_family(&self, deps: Vec<Match>) -> Vec<Match> {
        // In ip and ip6 tables the family is implied.
        deps.into_iter()
            .filter(|m| {
                !(matches!(self.family, Family::Ip | Family::Ip6)
                    && matches!(m, Match::Lookup { key, .. } if key.first().map(|k| k.field) == Some(Field::NfProto)))
            })
            .collect()
    }

    fn matches(
        &self,
        left: &Expr,
        op: RelOp,
        right: &Expr,
        sets: &[Set],
        loc: Loc,
        out: &mut Vec<Match>,
    ) -> Result<(), Error> {
        let unsupported = |out: &mut Vec<Match>, why: &str| {
            out.push(Match::Unsupported {
                what: format!(
                    "{left} {}{right}{why}",
                    if op == RelOp::Implicit {
                        String::new()
                    } else {
                        format!("{} ", op_str(op))
                    }
                ),
            });
        };
        let mut deps = Vec::new();
        let Some(key) = self.key(left, &mut deps) else {
            unsupported(out, "");
            return Ok(());
        };
        let deps = self.deps_for_family(deps);
        let neg = op == RelOp::Ne;
        let fields: Vec<Field> = key.iter().map(|k| k.field).collect();
        let bad = |m: String| err(loc, format!("{m} (in `{left} ... {right}`)"));

        // Named set: a lookup.
        if let Expr::SetRef(name) = right {
            if !matches!(op, RelOp::Implicit | RelOp::Eq | RelOp::Ne) {
                return Err(err(
                    loc,
                    format!("`{}` with a set: expected `==`, `!=` or none", op_str(op)),
                ));
            }
            let Some(i) = self.set_names.iter().position(|n| n == name) else {
                return Err(err(loc, format!("no set `@{name}` in this table")));
            };
            let s = &sets[i];
            if s.unsupported.is_none() {
                let kf: Vec<Field> = s
                    .key_types
                    .iter()
                    .filter_map(|t| field_of_type(t))
                    .collect();
                if !kf.is_empty() && kf.len() != fields.len() {
                    return Err(err(
                        loc,
                        format!(
                            "`{left}` has {} fields, set @{name} {}",
                            fields.len(),
                            kf.len()
                        ),
                    ));
                }
            }
            out.extend(deps);
            out.push(Match::Lookup {
                key,
                set: SetRef::Named(i),
                neg,
            });
            return Ok(());
        }

        // Reuse the iptables variants where the meaning is the same.
        if key.len() == 1 {
            let k = key[0];
            let simple_op = matches!(op, RelOp::Implicit | RelOp::Eq | RelOp::Ne);
            let elems: Vec<&Expr> = match right {
                Expr::Set(v) if v.iter().all(|e| e.data.is_none() && e.extra.is_empty()) => {
                    v.iter().map(|e| &e.key).collect()
                }
                e => vec![e],
            };
            let reused: Option<Result<Match, VErr>> = match (k.field, k.mask) {
                (Field::Addr { v6, dir }, None) if simple_op && !matches!(right, Expr::List(_)) => {
                    let nets: Result<Vec<Cidr>, VErr> = elems
                        .iter()
                        .map(|e| match e {
                            Expr::Value(s) => {
                                let (a, len) = match s.split_once('/') {
                                    Some((a, l)) => (a, l.parse::<u8>().ok()),
                                    None => (s.as_str(), Some(if v6 { 128 } else { 32 })),
                                };
                                match (a.parse::<IpAddr>(), len) {
                                    (Ok(ip), Some(len)) if ip.is_ipv6() == v6 => Cidr::new(ip, len)
                                        .map(|c| c.trunc())
                                        .map_err(|_| VErr::Bad(format!("bad prefix `{s}`"))),
                                    _ => Err(VErr::Unknown(s.clone())),
                                }
                            }
                            _ => Err(VErr::Unknown(e.to_string())),
                        })
                        .collect();
                    match nets {
                        Ok(nets) => Some(Ok(Match::Addr { dir, nets, neg })),
                        Err(VErr::Bad(m)) => Some(Err(VErr::Bad(m))),
                        Err(VErr::Unknown(_)) => None, // ranges: the generic lookup
                    }
                }
                (Field::L4Proto, None)
                    if simple_op && elems.len() == 1 && !matches!(right, Expr::List(_)) =>
                {
                    Some(
                        scalar(Field::L4Proto, &right.to_string()).map(|n| Match::Proto {
                            proto: n as u8,
                            neg,
                        }),
                    )
                }
                (Field::Port(dir), None) if simple_op && !matches!(right, Expr::List(_)) => {
                    let rs: Result<Vec<(u16, u16)>, VErr> = elems
                        .iter()
                        .map(|e| match range(k.field, e)? {
                            Range::Num(a, b) => Ok((a as u16, b as u16)),
                            Range::Name(n) => Err(VErr::Unknown(n)),
                        })
                        .collect();
                    Some(rs.map(|ranges| Match::Port { dir, ranges, neg }))
                }
                (Field::Ifname(dir), None) if simple_op && elems.len() == 1 => match right {
                    Expr::Str(n) | Expr::Value(n) => {
                        let name = match n.strip_suffix('*') {
                            Some(p) if !p.ends_with('\\') => format!("{p}+"),
                            _ if n.ends_with('+') => {
                                // A literal `+` would read as the iptables wildcard.
                                unsupported(out, " (interface name ending in `+`)");
                                return Ok(());
                            }
                            _ => n.replace("\\*", "*"),
                        };
                        Some(Ok(Match::Iface { dir, name, neg }))
                    }
                    _ => None,
                },
                (Field::CtState, None) if simple_op => {
                    let b: Result<u128, VErr> = elems
                        .iter()
                        .try_fold(0, |acc, e| Ok(acc | bits(k.field, e)?));
                    Some(b.map(|b| Match::CtState {
                        states: b as u8,
                        neg,
                    }))
                }
                (Field::Mark, m) | (Field::CtMark, m)
                    if simple_op && elems.len() == 1 && !matches!(right, Expr::Set(_)) =>
                {
                    let mask = m.unwrap_or(u32::MAX.into()) as u32;
                    Some(scalar(Field::Mark, &right.to_string()).map(|v| {
                        if k.field == Field::Mark {
                            Match::Mark {
                                value: v as u32,
                                mask,
                                neg,
                            }
                        } else {
                            Match::ConnMark {
                                value: v as u32,
                                mask,
                                neg,
                            }
                        }
                    }))
                }
                (Field::TcpFlags, m) if simple_op && !matches!(right, Expr::Set(_)) => {
                    let r = match (right, m) {
                        // `tcp flags syn / syn,ack`: flags & mask == value.
                        (
                            Expr::Binop {
                                op: o,
                                left: v,
                                right: mk,
                            },
                            None,
                        ) if o == "/" => bits(k.field, v).and_then(|v| Ok((bits(k.field, mk)?, v))),
                        // `tcp flags & mask == value`.
                        (v, Some(mask)) => bits(k.field, v).map(|v| (mask, v)),
                        // `tcp flags == syn`: all flags.
                        (v, None) if op != RelOp::Implicit => bits(k.field, v).map(|v| (0xff, v)),
                        // `tcp flags syn,ack`: any of them is set.
                        (v, None) => match bits(k.field, v) {
                            Ok(b) => {
                                out.extend(deps);
                                out.push(Match::TcpFlags {
                                    mask: b as u8,
                                    comp: 0,
                                    neg: true,
                                });
                                return Ok(());
                            }
                            Err(e) => Err(e),
                        },
                    };
                    Some(r.map(|(mask, comp)| Match::TcpFlags {
                        mask: mask as u8,
                        comp: comp as u8,
                        neg,
                    }))
                }
                // `ct status dnat[,snat]`: any of the bits is set.
                (Field::CtStatus, None) if op != RelOp::Implicit => Some(Err(VErr::Unknown(
                    "a comparison of the whole ct status".into(),
                ))),
                (Field::CtStatus, None) if !matches!(right, Expr::Set(_)) => {
                    match bits(k.field, right) {
                        Ok(b) => {
                            // Any of the bits set: not (status & bits == 0).
                            let (mask, value, neg) = (b, 0, true);
                            out.extend(deps);
                            out.push(Match::Lookup {
                                key: vec![Key {
                                    field: Field::CtStatus,
                                    mask: Some(mask),
                                }],
                                set: SetRef::Anon(Box::new(anon_set(vec![SetElem {
                                    key: Some(vec![Range::Num(value, value)]),
                                    data: None,
                                }]))),
                                neg,
                            });
                            return Ok(());
                        }
                        Err(e) => Some(Err(e)),
                    }
                }
                (Field::IcmpType { v6 }, None)
                    if simple_op && elems.len() == 1 && !matches!(right, Expr::Set(_)) =>
                {
                    Some(scalar(k.field, &right.to_string()).map(|t| Match::Icmp {
                        v6,
                        ty: t as u8,
                        codes: (0, 255),
                        neg,
                    }))
                }
                _ => None,
            };
            match reused {
                Some(Ok(m)) => {
                    out.extend(deps);
                    out.push(m);
                    return Ok(());
                }
                Some(Err(VErr::Bad(m))) => return Err(bad(m)),
                Some(Err(VErr::Unknown(m))) => {
                    unsupported(out, &format!(" ({m} is not modelled)"));
                    return Ok(());
                }
                None => {}
            }
        }

        // Generic: an anonymous set from the right side.
        let elements: Result<Vec<SetElem>, VErr> = match (op, right) {
            (RelOp::Implicit | RelOp::Eq | RelOp::Ne, Expr::Set(v)) => v
                .iter()
                .map(|e| elem_key(&fields, &e.key).map(|key| SetElem { key, data: None }))
                .collect(),
            (RelOp::Implicit | RelOp::Eq | RelOp::Ne, Expr::List(v)) if key.len() == 1 => v
                .iter()
                .map(|e| elem_key(&fields, e).map(|key| SetElem { key, data: None }))
                .collect(),
            (RelOp::Implicit | RelOp::Eq | RelOp::Ne, e) => {
                elem_key(&fields, e).map(|key| vec![SetElem { key, data: None }])
            }
            (_, e) if key.len() == 1 => {
                let max = field_max(fields[0]);
                match range(fields[0], e) {
                    Ok(Range::Num(a, b)) => {
                        let r = match op {
                            RelOp::Lt => (a > 0).then(|| (0, a - 1)),
                            RelOp::Le => Some((0, b)),
                            RelOp::Gt => (b < max).then(|| (b + 1, max)),
                            _ => Some((a, max)),
                        };
                        Ok(r.map(|(a, b)| SetElem {
                            key: Some(vec![Range::Num(a, b)]),
                            data: None,
                        })
                        .into_iter()
                        .collect())
                    }
                    Ok(Range::Name(_)) => {
                        Err(VErr::Unknown(format!("`{} {e}` on names", op_str(op))))
                    }
                    Err(x) => Err(x),
                }
            }
            _ => Err(VErr::Unknown("a comparison of a concatenation".into())),
        };
        match elements {
            Ok(elements) => {
                out.extend(deps);
                out.push(Match::Lookup {
                    key,
                    set: SetRef::Anon(Box::new(anon_set(elements))),
                    neg,
                });
            }
            Err(VErr::Bad(m)) => return Err(bad(m)),
            Err(VErr::Unknown(m)) => unsupported(out, &format!(" ({m} is not modelled)")),
        }
        Ok(())
    }

    fn vmap(
        &self,
        key: &Expr,
        map: &Expr,
        sets: &[Set],
        loc: Loc,
        matches: &mut Vec<Match>,
    ) -> Result<Action, Error> {
        let mut deps = Vec::new();
        let Some(k) = self.key(key, &mut deps) else {
            return Ok(Action::Unsupported {
                what: format!("{key} vmap {map}"),
            });
        };
        let fields: Vec<Field> = k.iter().map(|k| k.field).collect();
        let map = self.conv.resolve(map, loc, 0)?;
        let set = match &map {
            Expr::SetRef(name) => {
                let Some(i) = self.set_names.iter().position(|n| n == name) else {
                    return Err(err(loc, format!("no map `@{name}` in this table")));
                };
                if sets[i].data_type.as_deref() != Some("verdict") {
                    return Err(err(
                        loc,
                        format!("@{name} is not a verdict map (`type ... : verdict`)"),
                    ));
                }
                SetRef::Named(i)
            }
            Expr::Set(elems) => match self.elements(&fields, elems, true, loc)? {
                Ok(elements) => {
                    if elements
                        .iter()
                        .any(|e| !matches!(e.data, Some(SetData::Verdict(_))))
                    {
                        return Err(err(loc, "every element of a vmap needs `: verdict`"));
                    }
                    SetRef::Anon(Box::new(anon_set(elements)))
                }
                Err(why) => {
                    return Ok(Action::Unsupported {
                        what: format!("{key} vmap {map} ({why})"),
                    })
                }
            },
            _ => {
                return Err(err(
                    loc,
                    "expected `@MAP` or `{ key : verdict, ... }` after `vmap`",
                ))
            }
        };
        matches.extend(self.deps_for_family(deps));
        Ok(Action::Vmap { key: k, map: set })
    }

    fn nat(&self, kind: &str, to: Option<&Expr>, loc: Loc, st: &Stmt) -> Result<Action, Error> {
        let unsupported = || Action::Unsupported {
            what: st.to_string(),
        };
        let to = match to {
            None => NatTo {
                addrs: None,
                ports: None,
            },
            Some(e) => {
                let e = self.conv.resolve(e, loc, 0)?;
                let Expr::Value(s) = e else {
                    return Ok(unsupported());
                };
                match nat_to(&s) {
                    Some(t) => t,
                    None => return Err(err(loc, format!("`{s}` is not a NAT target: expected ADDR, ADDR:PORT, [ADDR6]:PORT or :PORT"))),
                }
            }
        };
        Ok(match kind {
            "dnat" if to.addrs.is_some() => Action::Dnat(to),
            "snat" if to.addrs.is_some() => Action::Snat(to),
            "masquerade" => Action::Masquerade,
            "redirect" => Action::Redirect(NatTo {
                addrs: None,
                ports: to.ports,
            }),
            _ => unsupported(),
        })
    }
}

fn op_str(op: RelOp) -> &'static str {
    match op {
        RelOp::Implicit => "",
        RelOp::Eq => "==",
        RelOp::Ne => "!=",
        RelOp::Lt => "<",
        RelOp::Gt => ">",
        RelOp::Le => "<=",
        RelOp::Ge => ">=",
    }
}

/// `ADDR`, `ADDR-ADDR`, `ADDR:PORT[-PORT]`, `[ADDR6]:PORT`, `:PORT`.
fn nat_to(s: &str) -> Option<NatTo> {
    let ports = |p: &str| -> Option<(u16, u16)> {
        match p.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let x = p.parse().ok()?;
                Some((x, x))
            }
        }
    };
    let addrs = |a: &str| -> Option<(IpAddr, IpAddr)> {
        match a.split_once('-') {
            Some((x, y)) => Some((x.parse().ok()?, y.parse().ok()?)),
            None => {
                let x = a.parse().ok()?;
                Some((x, x))
            }
        }
    };
    if let Some(p) = s.strip_prefix(':') {
        return Some(NatTo {
            addrs: None,
            ports: Some(ports(p)?),
        });
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (a, p) = rest.split_once(']')?;
        let p = match p.strip_prefix(':') {
            Some(p) => Some(ports(p)?),
            None if p.is_empty() => None,
            None => return None,
        };
        return Some(NatTo {
            addrs: Some(addrs(a)?),
            ports: p,
        });
    }
    if let Some(a) = addrs(s) {
        return Some(NatTo {
            addrs: Some(a),
            ports: None,
        });
    }
    // IPv4 with a port (IPv6 addresses need brackets).
    let (a, p) = s.rsplit_once(':')?;
    Some(NatTo {
        addrs: Some(addrs(a)?),
        ports: Some(ports(p)?),
    })
}

/// The reject as `PROTO TYPE` (`tcp-reset` for TCP resets); a plain `reject` is the
/// family's default (nft(8): icmp port-unreachable in ip tables, icmpv6 in ip6, icmpx
/// elsewhere), so both spellings read the same.
fn reject_with(with: &[String], family: Family) -> String {
    let w: Vec<&str> = with.iter().map(String::as_str).collect();
    match w.as_slice() {
        [] => match family {
            Family::Ip => "icmp port-unreachable".into(),
            Family::Ip6 => "icmpv6 port-unreachable".into(),
            _ => "icmpx port-unreachable".into(),
        },
        ["tcp", "reset"] => "tcp-reset".into(),
        [p, "type", t] | [p, t] => format!("{p} {t}"),
        _ => with.join(" "),
    }
}

/// `meta mark set ...`, `ct mark set ...`; other harmless fields are no-ops; the rest
/// unsupported.
fn set_stmt(left: &Expr, value: &Expr, st: &Stmt) -> Action {
    let unsupported = || Action::Unsupported {
        what: st.to_string(),
    };
    let Expr::Sel(w) = left else {
        return unsupported();
    };
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    let target = match w.as_slice() {
        ["meta", "mark"] | ["mark"] => Field::Mark,
        ["ct", "mark"] => Field::CtMark,
        // Helpers, MSS clamping, priorities and trace flags do not change a verdict.
        ["ct", "helper"]
        | ["tcp", "option", "maxseg", "size"]
        | ["meta", "priority"]
        | ["meta", "nftrace"]
        | ["nftrace"] => return Action::None,
        _ => return unsupported(),
    };
    // Fold `SRC op v op v ...` into (source, MarkOp).
    fn fold(e: &Expr) -> Option<(Option<Field>, MarkOp)> {
        match e {
            Expr::Value(v) => {
                let n = u32::try_from(parse_num(v)?).ok()?;
                Some((
                    None,
                    MarkOp {
                        clear: u32::MAX,
                        xor: n,
                    },
                ))
            }
            Expr::Sel(w) => {
                let w: Vec<&str> = w.iter().map(String::as_str).collect();
                let f = match w.as_slice() {
                    ["meta", "mark"] | ["mark"] => Field::Mark,
                    ["ct", "mark"] => Field::CtMark,
                    _ => return None,
                };
                Some((Some(f), MarkOp { clear: 0, xor: 0 }))
            }
            Expr::Binop { op, left, right } => {
                let (src, m) = fold(left)?;
                let Expr::Value(v) = &**right else {
                    return None;
                };
                let v = u32::try_from(parse_num(v)?).ok()?;
                let m = match op.as_str() {
                    "&" | "and" => MarkOp {
                        clear: m.clear | !v,
                        xor: m.xor & v,
                    },
                    "|" | "or" => MarkOp {
                        clear: m.clear | v,
                        xor: (m.xor & !v) | v,
                    },
                    "^" | "xor" => MarkOp {
                        clear: m.clear,
                        xor: m.xor ^ v,
                    },
                    _ => return None,
                };
                Some((src, m))
            }
            Expr::Paren(x) => fold(x),
            _ => None,
        }
    }
    let Some((src, op)) = fold(value) else {
        return unsupported();
    };
    match (target, src) {
        (Field::Mark, None | Some(Field::Mark)) => Action::Mark(op),
        (Field::CtMark, None | Some(Field::CtMark)) => Action::SetConnMark(op),
        // mark = ctmark & m: only an `and` mask (no xor) maps onto restore.
        (Field::Mark, Some(Field::CtMark)) if op.xor == 0 => Action::RestoreMark {
            nfmask: u32::MAX,
            ctmask: !op.clear,
        },
        (Field::CtMark, Some(Field::Mark)) if op.xor == 0 => Action::SaveMark {
            nfmask: !op.clear,
            ctmask: u32::MAX,
        },
        _ => unsupported(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::nft::parse;

    fn ir(text: &str) -> Result<Ruleset, Error> {
        convert(&parse(text).map_err(|e| err(e.loc, e.message))?)
    }

    #[test]
    fn converts_and_reuses_iptables_variants() {
        let rs = ir("define lan = { \"br-lan\", \"wl*\" }\ntable inet t {\n chain c { type filter hook input priority srcnat - 5; policy drop;\n  iifname $lan ip saddr 10.0.0.0/8 tcp dport { 22, 80-90 } ct state new,established meta mark & 0xff == 0x1 accept\n }\n}\ntable bridge b { chain f { type filter hook forward priority filter; } }\n").unwrap();
        let c = &rs.tables[0].chains[0];
        assert_eq!(c.base.as_ref().unwrap().priority, 95);
        assert_eq!(rs.tables[1].chains[0].base.as_ref().unwrap().priority, -200);
        let m = &c.rules[0].matches;
        assert!(
            matches!(&m[0], Match::Lookup { key, .. } if key[0].field == Field::Ifname(Dir::Src))
        );
        assert!(m.contains(&Match::Addr {
            dir: Dir::Src,
            nets: vec!["10.0.0.0/8".parse().unwrap()],
            neg: false
        }));
        assert!(m.contains(&Match::Proto {
            proto: 6,
            neg: false
        }));
        assert!(m.contains(&Match::Port {
            dir: Dir::Dst,
            ranges: vec![(22, 22), (80, 90)],
            neg: false
        }));
        assert!(m.contains(&Match::CtState {
            states: ct::NEW | ct::ESTABLISHED,
            neg: false
        }));
        assert!(m.contains(&Match::Mark {
            value: 1,
            mask: 0xff,
            neg: false
        }));
        assert_eq!(c.rules[0].action, Action::Accept);
        assert_eq!(rs.tables[0].origin, Origin::Nft);
    }

    #[test]
    fn mark_statements() {
        let rs = ir("table ip t { chain c {\n meta mark set meta mark & 0xffe4ffff\n meta mark set mark and 0xff00ffff xor 0x40000\n ct mark set mark and 0xff0000\n meta mark set ct mark and 0xff0000\n meta mark set 0x5 accept\n } }\n").unwrap();
        let a: Vec<&Action> = rs.tables[0].chains[0]
            .rules
            .iter()
            .map(|r| &r.action)
            .collect();
        assert_eq!(
            *a[0],
            Action::Mark(MarkOp {
                clear: !0xffe4ffff,
                xor: 0
            })
        );
        let Action::Mark(op) = a[1] else {
            panic!("{:?}", a[1])
        };
        assert_eq!(op.apply(0x1234_5678), (0x1234_5678 & 0xff00ffff) ^ 0x40000);
        assert_eq!(
            *a[2],
            Action::SaveMark {
                nfmask: 0xff0000,
                ctmask: u32::MAX
            }
        );
        assert_eq!(
            *a[3],
            Action::RestoreMark {
                nfmask: u32::MAX,
                ctmask: 0xff0000
            }
        );
        assert_eq!(
            *a[4],
            Action::Seq(vec![
                Action::Mark(MarkOp {
                    clear: u32::MAX,
                    xor: 5
                }),
                Action::Accept
            ])
        );
    }

    #[test]
    fn errors_are_located() {
        let e = ir("table ip t {\n chain b { type filter hook input priority 0; }\n chain c {\n  jump b\n }\n}\n").unwrap_err();
        assert_eq!(e.loc, Loc { line: 4, col: 3 });
        assert!(e.message.contains("base chain"), "{e}");
        let e = ir("table ip t { chain c {\n ip saddr $nope accept } }\n").unwrap_err();
        assert!(e.message.contains("undefined variable `$nope`"), "{e}");
        assert_eq!(e.loc.line, 2);
        let e = ir("table ip t { chain c {\n ip saddr 10.0.0.300 accept } }\n").unwrap_err();
        assert!(e.message.contains("10.0.0.300"), "{e}");
        let e = ir("table ip t { chain c {\n goto nowhere } }\n").unwrap_err();
        assert!(e.message.contains("no chain `nowhere`"), "{e}");
        let e =
            ir("table ip t { chain c { type filter hook input priority bogus; } }\n").unwrap_err();
        assert!(e.message.contains("unknown priority name `bogus`"), "{e}");
        let e = ir("table ip t { chain a { jump b }\n chain b { jump a }\n chain c { type filter hook input priority 0; jump a } }\n").unwrap_err();
        assert!(e.message.contains("jump loop"), "{e}");
        // Through a named verdict map, as the kernel sees it (ELOOP; found by kernel-check).
        let e = ir("table ip t {\n map vm { type inet_service : verdict; elements = { 22 : jump u } }\n chain u {\n tcp dport vmap @vm\n }\n chain c { type filter hook input priority 0; jump u } }\n").unwrap_err();
        assert!(e.message.contains("jump loop"), "{e}");
        assert_eq!(e.loc.line, 4);
        // Two targets of one vmap that are siblings, not a loop.
        ir("table ip t {\n chain a { jump b }\n chain b { accept }\n chain c { type filter hook input priority 0; tcp dport vmap { 22 : jump a, 23 : jump b } } }\n").unwrap();
    }

    #[test]
    fn unknowns_are_unsupported_not_errors() {
        let rs = ir("table inet t { chain c {\n fib daddr . mark type local accept\n queue num 1\n meta iiftype ether drop\n flow offload @ft\n } }\n").unwrap();
        let u = rs.unsupported();
        assert_eq!(u.len(), 4, "{u:?}");
        assert!(u[0].1.contains("fib daddr . mark type local"));
    }
}
