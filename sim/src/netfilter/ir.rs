//! The netfilter IR: one representation for rulesets read from iptables-save (legacy or
//! nft backend) and nft text (later nft JSON). The interpreter evaluates only this.
//!
//! Contract: an IR ruleset is checked: jumps and gotos name chains that exist (by index),
//! every base chain has a hook, a priority and a policy. What fwsim does not model is kept
//! as [`Match::Unsupported`] / [`Action::Unsupported`] with its text: a packet that reaches
//! it gets the verdict "inconclusive", never a guess.

use crate::values::{Cidr, Loc};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Ip,
    Ip6,
    Inet,
    Arp,
    Bridge,
    Netdev,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Arp => "arp",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
    Ingress,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
            Hook::Ingress => "ingress",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

/// A chain registered at a hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseChain {
    pub kind: ChainType,
    pub hook: Hook,
    pub priority: i32,
    pub policy: Policy,
}

pub type ChainId = usize;

/// Where an address match looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    Src,
    Dst,
}

/// Conntrack states, as a bit set.
pub mod ct {
    pub const INVALID: u8 = 1;
    pub const NEW: u8 = 2;
    pub const ESTABLISHED: u8 = 4;
    pub const RELATED: u8 = 8;
    pub const UNTRACKED: u8 = 16;
    /// `--ctstate DNAT` / `SNAT`: virtual states (the connection is NATed).
    pub const DNAT: u8 = 32;
    pub const SNAT: u8 = 64;
}

/// addrtype types, as a bit set (values of the kernel's RTN_* shifted).
pub mod addrtype {
    pub const UNSPEC: u16 = 1 << 0;
    pub const UNICAST: u16 = 1 << 1;
    pub const LOCAL: u16 = 1 << 2;
    pub const BROADCAST: u16 = 1 << 3;
    pub const ANYCAST: u16 = 1 << 4;
    pub const MULTICAST: u16 = 1 << 5;
    pub const BLACKHOLE: u16 = 1 << 6;
    pub const UNREACHABLE: u16 = 1 << 7;
    pub const PROHIBIT: u16 = 1 << 8;
    pub const THROW: u16 = 1 << 9;
    pub const NAT: u16 = 1 << 10;
    pub const XRESOLVE: u16 = 1 << 11;
    pub const NAMES: [(&str, u16); 12] = [
        ("UNSPEC", UNSPEC),
        ("UNICAST", UNICAST),
        ("LOCAL", LOCAL),
        ("BROADCAST", BROADCAST),
        ("ANYCAST", ANYCAST),
        ("MULTICAST", MULTICAST),
        ("BLACKHOLE", BLACKHOLE),
        ("UNREACHABLE", UNREACHABLE),
        ("PROHIBIT", PROHIBIT),
        ("THROW", THROW),
        ("NAT", NAT),
        ("XRESOLVE", XRESOLVE),
    ];
}

#[derive(Clone, Debug, PartialEq)]
pub enum Statistic {
    /// Matches with this probability.
    Random { probability: f64 },
    /// Matches every `every`-th packet, starting with number `packet` (0-based counter).
    Nth { every: u32, packet: u32 },
}

/// One match of a rule. Every match can be negated where the source syntax allows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Match {
    /// `-s` / `-d`: any of the networks.
    Addr {
        dir: Dir,
        nets: Vec<Cidr>,
        neg: bool,
    },
    /// `-p`: IP protocol number (the L4 protocol).
    Proto { proto: u8, neg: bool },
    /// `-i` / `-o`: interface name; a trailing `+` matches any suffix.
    Iface { dir: Dir, name: String, neg: bool },
    /// `-f`: non-first fragments.
    Fragment { neg: bool },
    /// tcp/udp/sctp/dccp ports, or multiport `--sports`/`--dports`: any of the ranges.
    Port {
        dir: Dir,
        ranges: Vec<(u16, u16)>,
        neg: bool,
    },
    /// multiport `--ports`: source or destination port in any of the ranges.
    AnyPort { ranges: Vec<(u16, u16)>, neg: bool },
    /// `--tcp-flags MASK COMP` (`--syn` is `SYN,RST,ACK,FIN SYN`).
    TcpFlags { mask: u8, comp: u8, neg: bool },
    /// icmp / icmpv6 type (255 = any) and optional code range.
    Icmp {
        v6: bool,
        ty: u8,
        codes: (u8, u8),
        neg: bool,
    },
    /// conntrack `--ctstate` / state `--state`: the packet's state is in the set.
    CtState { states: u8, neg: bool },
    /// `-m mark --mark V/M`: (mark & M) == V.
    Mark { value: u32, mask: u32, neg: bool },
    /// `-m connmark --mark V/M`: (ctmark & M) == V.
    ConnMark { value: u32, mask: u32, neg: bool },
    /// `-m set --match-set NAME src,dst`: membership of the tuple in the host's ipset
    /// ([`Ruleset::ipsets`]); `--return-nomatch` makes only `nomatch` elements members.
    Set {
        name: String,
        dirs: Vec<Dir>,
        neg: bool,
        return_nomatch: bool,
    },
    /// `-m addrtype`.
    AddrType {
        src: Option<(u16, bool)>,
        dst: Option<(u16, bool)>,
        limit_in: bool,
        limit_out: bool,
    },
    /// `-m statistic`.
    Statistic { mode: Statistic, neg: bool },
    /// nft: the key (one field, or a concatenation) is in the set, XOR `neg`. Covers
    /// comparisons the variants above do not (`ct status`, `meta nfproto`, sets of
    /// addresses and ports, `<`/`>`), named sets (`@s`) and anonymous ones (`{ ... }`).
    /// A field the packet does not have (a port of ICMP, `ct mark` without conntrack)
    /// makes the match false whatever `neg` (the kernel's NFT_BREAK).
    Lookup {
        key: Vec<Key>,
        set: SetRef,
        neg: bool,
    },
    /// Anything fwsim does not model: reaching it makes the verdict inconclusive.
    Unsupported { what: String },
}

/// A packet field read by nft lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `ip saddr`/`ip daddr` (v6 false), `ip6 saddr`/`ip6 daddr`.
    Addr {
        v6: bool,
        dir: Dir,
    },
    /// `meta l4proto`, `ip protocol`, `ip6 nexthdr`.
    L4Proto,
    /// `tcp`/`udp`/`sctp`/`dccp`/`udplite`/`th` `sport`/`dport`.
    Port(Dir),
    /// nft `th sport`/`th dport`: the 16 bits at offset 0/2 of whatever transport header the
    /// packet has (no protocol dependency): ports for TCP/UDP/SCTP/DCCP/UDP-Lite, ICMP's
    /// type and code, or its checksum.
    ThPort(Dir),
    TcpFlags,
    IcmpType {
        v6: bool,
    },
    IcmpCode {
        v6: bool,
    },
    /// `meta mark`.
    Mark,
    /// `ct mark` (no conntrack: the field is absent).
    CtMark,
    /// `ct state`: one of the [`ct`] bits.
    CtState,
    /// `ct status`: the [`ct::DNAT`]/[`ct::SNAT`] bits; other bits are not modelled.
    CtStatus,
    /// `ct direction`: 0 original, 1 reply.
    CtDirection,
    /// `meta nfproto`: 2 (ipv4) or 10 (ipv6).
    NfProto,
    /// `meta protocol`: the ethertype.
    EtherType,
    /// `iifname`/`iif` (`dir` Src) and `oifname`/`oif` (Dst): names; `iif` is compared by
    /// name too (the interface index of a name is not modelled).
    Ifname(Dir),
    /// nft `fib saddr|daddr [. iif|. oif] type`: the address's route type, an RTN_* number
    /// (1 unicast, 2 local, 3 broadcast, 5 multicast, ...); `dev` the interface limit.
    FibType {
        dir: Dir,
        dev: Option<Dir>,
    },
    /// nft `fib saddr|daddr [. iif|. oif] oif|oifname`: the device of the route to the
    /// address, by name; "" when there is none (nft's `missing`), or when `dev` limits the
    /// lookup to another device.
    FibOif {
        dir: Dir,
        dev: Option<Dir>,
    },
}

/// One field of a lookup key, with the `& mask` written before the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub field: Field,
    pub mask: Option<u128>,
}

/// One field of a set element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Range {
    /// Inclusive numeric range (addresses as integers, ports, marks, protocol numbers).
    Num(u128, u128),
    /// An interface name; a trailing `*` matches any suffix.
    Name(String),
}

/// A verdict as map data (`vmap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Return,
    Jump(ChainId),
    Goto(ChainId),
}

#[derive(Clone, Debug, PartialEq)]
pub enum SetData {
    Verdict(Verdict),
    /// Data fwsim does not interpret (NAT addresses, object names), as written.
    Other(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SetElem {
    /// One range per key field; None is the catch-all element `*`.
    pub key: Option<Vec<Range>>,
    pub data: Option<SetData>,
}

/// A named set or map of an nft table, or an anonymous one.
#[derive(Clone, Debug, PartialEq)]
pub struct Set {
    pub name: String,
    /// The key's field types as written (`ipv4_addr`, `inet_service`...).
    pub key_types: Vec<String>,
    /// A map's data type (`verdict`, `ipv4_addr`...); None for a set.
    pub data_type: Option<String>,
    pub elements: Vec<SetElem>,
    /// Why lookups in this set are inconclusive (element types fwsim cannot read).
    pub unsupported: Option<String>,
    pub loc: Loc,
}

impl Set {
    /// The element matching `key` (exact or interval elements first, then the catch-all).
    pub fn find(&self, key: &[KeyValue]) -> Option<&SetElem> {
        self.elements
            .iter()
            .find(|e| {
                e.key.as_ref().is_some_and(|k| {
                    k.len() == key.len() && k.iter().zip(key).all(|(r, v)| v.within(r))
                })
            })
            .or_else(|| self.elements.iter().find(|e| e.key.is_none()))
    }
}

/// A packet's value of one key field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyValue {
    Num(u128),
    Name(String),
}

impl KeyValue {
    pub fn within(&self, r: &Range) -> bool {
        match (self, r) {
            (KeyValue::Num(v), Range::Num(a, b)) => a <= v && v <= b,
            (KeyValue::Name(n), Range::Name(p)) => match p.strip_suffix('*') {
                Some(prefix) if !p.ends_with("\\*") => n.starts_with(prefix),
                _ => n == &p.replace("\\*", "*"),
            },
            _ => false,
        }
    }
}

/// Which set a lookup or vmap uses.
#[derive(Clone, Debug, PartialEq)]
pub enum SetRef {
    /// Index into the table's [`Table::sets`].
    Named(usize),
    Anon(Box<Set>),
}

/// How a mark is changed: mark = (mark & !clear) ^ xor (MARK --set-xmark semantics, which
/// every other form reduces to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkOp {
    pub clear: u32,
    pub xor: u32,
}

impl MarkOp {
    pub fn apply(self, mark: u32) -> u32 {
        (mark & !self.clear) ^ self.xor
    }
}

/// Where a NAT rule maps a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatTo {
    /// Address range (None: keep the address, as REDIRECT/MASQUERADE choose it).
    pub addrs: Option<(std::net::IpAddr, std::net::IpAddr)>,
    pub ports: Option<(u16, u16)>,
}

/// What a rule does when all its matches match.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// No target: the rule only counts.
    None,
    Accept,
    Drop,
    /// REJECT; its argument as written (e.g. `icmp-port-unreachable`, `tcp-reset`).
    Reject {
        with: String,
    },
    Return,
    Jump(ChainId),
    Goto(ChainId),
    /// MARK.
    Mark(MarkOp),
    /// CONNMARK --set-xmark (on the connection's mark).
    SetConnMark(MarkOp),
    /// CONNMARK --save-mark: ctmark = (ctmark & ~ctmask) | (mark & nfmask).
    SaveMark {
        nfmask: u32,
        ctmask: u32,
    },
    /// CONNMARK --restore-mark: mark = (mark & ~nfmask) | (ctmark & ctmask).
    RestoreMark {
        nfmask: u32,
        ctmask: u32,
    },
    /// LOG, NFLOG, TRACE, counters: continue.
    Log,
    /// NOTRACK / CT --notrack: the packet is untracked.
    NoTrack,
    Dnat(NatTo),
    Snat(NatTo),
    Masquerade,
    Redirect(NatTo),
    /// nft `continue`: go on with the next rule.
    Continue,
    /// nft `KEY vmap MAP`: the verdict of the element matching the key; no element: the
    /// rule does not match (next rule).
    Vmap {
        key: Vec<Key>,
        map: SetRef,
    },
    /// Several statements of one nft rule, in order (`ct mark set ... accept`).
    Seq(Vec<Action>),
    Unsupported {
        what: String,
    },
}

impl Action {
    /// The chains this action may jump or go to, verdict maps' data included (`sets` are
    /// the table's named sets).
    pub fn jump_targets(&self, sets: &[Set], out: &mut Vec<ChainId>) {
        let verdicts = |set: &Set, out: &mut Vec<ChainId>| {
            for e in &set.elements {
                if let Some(SetData::Verdict(Verdict::Jump(to) | Verdict::Goto(to))) = e.data {
                    out.push(to);
                }
            }
        };
        match self {
            Action::Jump(to) | Action::Goto(to) => out.push(*to),
            Action::Seq(v) => v.iter().for_each(|a| a.jump_targets(sets, out)),
            Action::Vmap {
                map: SetRef::Anon(set),
                ..
            } => verdicts(set, out),
            Action::Vmap {
                map: SetRef::Named(i),
                ..
            } => {
                if let Some(set) = sets.get(*i) {
                    verdicts(set, out)
                }
            }
            _ => {}
        }
    }

    /// Does evaluation continue with the next rule after this action?
    pub fn continues(&self) -> bool {
        matches!(
            self,
            Action::None
                | Action::Mark(_)
                | Action::SetConnMark(_)
                | Action::SaveMark { .. }
                | Action::RestoreMark { .. }
                | Action::Log
                | Action::NoTrack
                | Action::Continue
        ) || matches!(self, Action::Seq(v) if v.iter().all(Action::continues))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub action: Action,
    /// The rule as written (for traces and reports).
    pub text: String,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub name: String,
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

/// Which tool wrote a table (iptables tables of the two backends behave alike for fwsim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Iptables,
    Nft,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub family: Family,
    pub name: String,
    pub origin: Origin,
    pub chains: Vec<Chain>,
    /// nft named sets and maps (iptables tables have none).
    pub sets: Vec<Set>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Ruleset {
    pub tables: Vec<Table>,
    /// The host's ipsets (global to the host, not per table). None: not given, so `-m set`
    /// is inconclusive; Some: every `-m set` names one of them (checked when attached).
    pub ipsets: Option<super::ipset::Ipsets>,
}

impl Ruleset {
    /// Some rule matches an ipset (`-m set`).
    pub fn uses_ipsets(&self) -> bool {
        self.tables.iter().any(|t| {
            t.chains.iter().any(|c| {
                c.rules
                    .iter()
                    .any(|r| r.matches.iter().any(|m| matches!(m, Match::Set { .. })))
            })
        })
    }

    /// Base chains registered at the same hook with the same priority (nat chains among
    /// themselves, others among themselves), in families that can see the same packet:
    /// the kernel runs the one registered last first (H9), which nft documents as
    /// undefined. One message per pair, in ruleset order.
    pub fn priority_ties(&self) -> Vec<String> {
        let mut seen: Vec<(usize, &Table, &Chain, &BaseChain)> = Vec::new();
        for (ti, t) in self.tables.iter().enumerate() {
            for c in &t.chains {
                if let Some(b) = &c.base {
                    seen.push((ti, t, c, b));
                }
            }
        }
        let overlap = |a: Family, b: Family| {
            a == b
                || matches!(
                    (a, b),
                    (Family::Inet, Family::Ip | Family::Ip6)
                        | (Family::Ip | Family::Ip6, Family::Inet)
                )
        };
        let mut out = Vec::new();
        for (i, (_, t1, c1, b1)) in seen.iter().enumerate() {
            for (_, t2, c2, b2) in &seen[i + 1..] {
                let nat1 = b1.kind == ChainType::Nat;
                let nat2 = b2.kind == ChainType::Nat;
                if b1.hook == b2.hook
                    && b1.priority == b2.priority
                    && nat1 == nat2
                    && overlap(t1.family, t2.family)
                {
                    out.push(format!(
                        "{} {} chain {} and {} {} chain {} both hook {} at priority {}: the kernel runs the one registered last ({} {} {}) first; nft calls this order undefined",
                        t1.family.as_str(), t1.name, c1.name,
                        t2.family.as_str(), t2.name, c2.name,
                        b1.hook.as_str(), b1.priority,
                        t2.family.as_str(), t2.name, c2.name
                    ));
                }
            }
        }
        out
    }

    /// Every rule that fwsim does not model, with where it is.
    pub fn unsupported(&self) -> Vec<(Loc, String)> {
        let mut out = Vec::new();
        for t in &self.tables {
            for c in &t.chains {
                for r in &c.rules {
                    for m in &r.matches {
                        if let Match::Unsupported { what } = m {
                            out.push((r.loc, what.clone()));
                        }
                    }
                    let mut stack = vec![&r.action];
                    while let Some(a) = stack.pop() {
                        match a {
                            Action::Unsupported { what } => out.push((r.loc, what.clone())),
                            Action::Seq(v) => stack.extend(v.iter().rev()),
                            _ => {}
                        }
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        })
    }
}
