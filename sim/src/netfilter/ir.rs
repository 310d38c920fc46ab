//! The netfilter IR: one representation for rulesets read from iptables-save (legacy or
//! nft backend) and, later, nft text and JSON. The interpreter evaluates only this.
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
    /// `-m set --match-set NAME src,dst`: membership of the tuple.
    Set {
        name: String,
        dirs: Vec<Dir>,
        neg: bool,
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
    /// Anything fwsim does not model: reaching it makes the verdict inconclusive.
    Unsupported { what: String },
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
    Unsupported {
        what: String,
    },
}

impl Action {
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
        )
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
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Ruleset {
    pub tables: Vec<Table>,
}

impl Ruleset {
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
                    if let Action::Unsupported { what } = &r.action {
                        out.push((r.loc, what.clone()));
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
