//! The packet walk: one packet through a host's netfilter hooks, as the kernel runs them.
//!
//! Contract: [`walk`] cannot fail. It returns the packet's fate and the trace of every rule
//! it touched. What fwsim cannot decide (an unsupported match or target, an interface or
//! port the packet does not give, a set whose members are unknown) makes the fate
//! [`Fate::Inconclusive`] naming the rule, never a guess. `statistic` matches are
//! enumerated: every branch is walked, and the fate is that of all branches when they
//! agree, inconclusive when they do not.
//!
//! The model (see docs/netfilter-semantics.md for the sources):
//! - Paths: input = PREROUTING, INPUT; forward = PREROUTING, FORWARD, POSTROUTING;
//!   output = OUTPUT, POSTROUTING. The packet's `hook` is the routing decision: a DNAT in
//!   PREROUTING changes the addresses later hooks see, not the path.
//! - At each hook every base chain registered there (iptables tables at their fixed
//!   priorities, nft base chains at theirs) runs in priority order; equal priorities keep
//!   ruleset order. `accept` ends only the current base chain; `drop` and `reject` end the
//!   packet.
//! - Conntrack runs at priority -200 in PREROUTING and OUTPUT: before it, a packet has no
//!   conntrack entry (ctstate matches see INVALID, connmark matches fail); NOTRACK before it
//!   makes the packet UNTRACKED.
//! - NAT chains run only for the first packet of a connection (ctstate NEW, tracked); the
//!   first NAT target (or accept) ends the NAT chain; DNAT and SNAT set the DNAT/SNAT
//!   conntrack bits seen by later `--ctstate DNAT` matches.
//! - TCP flags: a NEW packet is a SYN, any other an ACK. ICMP: an echo request (v6: 128).

use super::ir::*;
use crate::values::{CtState, Hook as PacketHook, Packet};
use std::net::IpAddr;

/// The end of a packet's walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    Accept,
    Drop,
    Reject(String),
    /// fwsim cannot decide; the reason names the rule.
    Inconclusive(String),
}

impl Fate {
    pub fn as_str(&self) -> &'static str {
        match self {
            Fate::Accept => "accept",
            Fate::Drop => "drop",
            Fate::Reject(_) => "reject",
            Fate::Inconclusive(_) => "inconclusive",
        }
    }
}

/// One rule (or chain policy) the packet touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub hook: Hook,
    /// `ip filter`, `ip6 nat`, `inet fw4`...
    pub table: String,
    pub chain: String,
    /// 1-based rule number; None for the chain's policy.
    pub rule: Option<usize>,
    pub text: String,
    /// What happened: `match: jump x`, `no match`, `policy accept`...
    pub effect: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    pub fate: Fate,
    pub trace: Vec<Step>,
    /// The packet's mark at the end.
    pub mark: u32,
    /// The path taken: the packet's own, or the one routing chose after a DNAT on a known
    /// [`Host`].
    pub path: PacketHook,
    /// In a sequence: what conntrack made of the packet (new connection, or which one).
    pub conntrack: Option<String>,
    /// The packet as it left, when accepted and fully known (every statistic branch alike).
    pub out: Option<Out>,
}

impl Walk {
    /// The path taken: `input path`, `forward path` or `output path`.
    pub fn path_name(&self) -> &'static str {
        match self.path {
            PacketHook::Input => "input path",
            PacketHook::Forward => "forward path",
            PacketHook::Output => "output path",
        }
    }
}

/// One line per rule touched, like `nft monitor trace`, offline; then the verdict.
impl std::fmt::Display for Walk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(ct) = &self.conntrack {
            writeln!(f, "conntrack: {ct}")?;
        }
        for s in &self.trace {
            match s.rule {
                Some(n) => writeln!(
                    f,
                    "{} {} {} rule {}: {} => {}",
                    s.hook.as_str(),
                    s.table,
                    s.chain,
                    n,
                    s.text,
                    s.effect
                )?,
                None => writeln!(
                    f,
                    "{} {} {}: {}",
                    s.hook.as_str(),
                    s.table,
                    s.chain,
                    s.effect
                )?,
            }
        }
        write!(f, "verdict: {}", self.fate.as_str())?;
        if let Fate::Inconclusive(why) | Fate::Reject(why) = &self.fate {
            write!(f, " ({why})")?;
        }
        Ok(())
    }
}

/// Conntrack's view of the packet while it walks.
#[derive(Clone, Debug)]
struct State {
    src: IpAddr,
    dst: IpAddr,
    sport: Option<u16>,
    dport: Option<u16>,
    iif: Option<String>,
    oif: Option<String>,
    /// Why the source / destination address or port is no longer known (a NAT whose
    /// result the model cannot tell: MASQUERADE without the host's addresses, REDIRECT
    /// in PREROUTING, a NAT to a range). A match reading it is inconclusive.
    src_why: Option<String>,
    dst_why: Option<String>,
    sport_why: Option<String>,
    dport_why: Option<String>,
    /// REDIRECT moved the packet to a local address (which one is not known).
    redirected: bool,
    /// The conntrack state: the packet's own, or (in a sequence) the table's.
    ctstate: CtState,
    /// In a sequence: the connection the packet belongs to (index, reply direction).
    conn: Option<(usize, bool)>,
    /// In a sequence: the tuple of a new connection, as conntrack saw it.
    orig: Option<Tuple>,
    mark: u32,
    ctmark: u32,
    /// Conntrack attached (false before the conntrack hook).
    tracked_yet: bool,
    untracked: bool,
    nat_bits: u8,
}

enum Truth {
    Yes,
    No,
    Unknown(String),
}

fn truth(b: bool) -> Truth {
    if b {
        Truth::Yes
    } else {
        Truth::No
    }
}

fn negate(t: Truth, neg: bool) -> Truth {
    match (t, neg) {
        (Truth::Yes, true) => Truth::No,
        (Truth::No, true) => Truth::Yes,
        (t, _) => t,
    }
}

/// A walk over one choice of every `statistic` match met so far.
struct Run<'a> {
    rs: &'a Ruleset,
    host: Option<&'a Host>,
    /// In a sequence: the connections so far (read only; the update is returned).
    ct: Option<&'a Conntrack>,
    update: Option<CtUpdate>,
    /// In a sequence: what conntrack made of the packet, for the trace.
    note: Option<String>,
    /// The packet as it left (set when accepted).
    out: Option<Out>,
    path: PacketHook,
    packet: &'a Packet,
    /// Decisions for the statistic matches met in order; past its end, `false` is taken and
    /// the point recorded.
    choices: Vec<bool>,
    taken: usize,
    trace: Vec<Step>,
    max_steps: usize,
}

const MAX_BRANCHES: usize = 64;
/// Rule evaluations per packet before the walk gives up (inconclusive): loops are refused
/// when loading, but nested jumps can still multiply. The bound is this or four times the
/// ruleset's rules, whichever is larger, so that a 100,000-rule chain fits.
const MAX_STEPS: usize = 100_000;

/// What the simulator knows of the host besides its ruleset: its own addresses and its
/// routes. With it, a packet whose destination a DNAT in PREROUTING changed is routed
/// again, as the kernel does (`ip_rcv_finish` routes after PREROUTING): to a local address
/// it takes the input path, else the forward path out of the route's interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Host {
    pub addresses: Vec<IpAddr>,
    /// The networks of those addresses (an address given with a prefix): their IPv4
    /// broadcast addresses are BROADCAST to addrtype.
    pub networks: Vec<crate::values::Cidr>,
    /// (destination network, output interface); the longest prefix wins.
    pub routes: Vec<(crate::values::Cidr, String)>,
    /// (interface, its address): MASQUERADE takes the output interface's address.
    pub iface_addrs: Vec<(String, IpAddr)>,
    /// The routes are the host's whole routing table (a node snapshot, `--addr`/`--route`):
    /// a received packet that routing cannot deliver is refused after PREROUTING (no
    /// route, a route to nowhere, stored with the device `:blackhole`, `:unreachable` or
    /// `:prohibit`, forwarding off), as the kernel's `ip_route_input` refuses it. A forwarded packet placed without an output device is
    /// such a packet, unless a DNAT in PREROUTING gives it a destination that routes.
    pub complete: bool,
    /// Forwarding is off (`net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding` = 0):
    /// (IPv4, IPv6).
    pub no_forwarding: (bool, bool),
}

impl Host {
    /// The address's type as `addrtype` and `fib ... type` see it (M10, E8): the local
    /// routing table's view, without an interface limit. IPv6 addresses that are neither
    /// local nor multicast are UNICAST (the host is taken to have a default route).
    pub fn addr_type(&self, a: IpAddr) -> u16 {
        use addrtype::*;
        match a {
            IpAddr::V4(v) => {
                if v.octets()[0] == 0 || v.is_broadcast() {
                    BROADCAST
                } else if v.is_multicast() {
                    MULTICAST
                } else if v.is_loopback() || self.addresses.contains(&a) {
                    LOCAL
                } else if self.networks.iter().any(|n| {
                    n.prefix_len() < 31 && matches!(n, ipnet::IpNet::V4(_)) && n.broadcast() == a
                }) {
                    BROADCAST
                } else {
                    UNICAST
                }
            }
            IpAddr::V6(v) => {
                if v.is_loopback() || self.addresses.contains(&a) {
                    LOCAL
                } else if v.is_multicast() {
                    MULTICAST
                } else {
                    UNICAST
                }
            }
        }
    }

    /// The output device of the longest-prefix route to `dst`; "" for a route to nowhere.
    pub fn route(&self, dst: IpAddr) -> Option<&str> {
        self.best_route(dst)
            .map(|dev| if dev.starts_with(':') { "" } else { dev })
    }

    /// The route's device as stored: a route to nowhere is `:blackhole`, `:unreachable` or
    /// `:prohibit` (no device name has a colon).
    fn best_route(&self, dst: IpAddr) -> Option<&str> {
        self.routes
            .iter()
            .filter(|(net, _)| net.contains(&dst))
            .max_by_key(|(net, _)| net.prefix_len())
            .map(|(_, dev)| dev.as_str())
    }

    /// On a host whose routes are complete: whether routing refuses to forward a received
    /// packet from `src` to `dst` (ip_route_input_slow, ip_error), with why: an ICMP error
    /// (rate-limited per source: ip_rt_error_burst) when the kernel answers, else a silent
    /// drop (a blackhole, forwarding off, or no route back to `src` for the error).
    pub fn unroutable(&self, src: IpAddr, dst: IpAddr) -> Option<(Fate, String)> {
        let off = if dst.is_ipv4() {
            self.no_forwarding.0
        } else {
            self.no_forwarding.1
        };
        // The ICMP error is routed back to the source like any packet the host sends.
        let answers = matches!(self.route(src), Some(d) if !d.is_empty());
        let (icmp, what) = match self.best_route(dst) {
            Some(":blackhole") => {
                return Some((
                    Fate::Drop,
                    format!("routing: a blackhole route to {dst}: dropped"),
                ))
            }
            _ if off => {
                return Some((
                    Fate::Drop,
                    format!("routing: forwarding is off, {dst} is not this host's: dropped"),
                ))
            }
            None => ("net-unreachable", format!("no route to {dst}")),
            Some(":unreachable") => ("host-unreachable", format!("an unreachable route to {dst}")),
            Some(":prohibit") => ("admin-prohibited", format!("a prohibit route to {dst}")),
            Some(_) => return None,
        };
        Some(if answers {
            let why = format!(
                "routing: {what}: {icmp} (the kernel's ICMP error, rate-limited per source)"
            );
            (Fate::Reject(why.clone()), why)
        } else {
            (
                Fate::Drop,
                format!("routing: {what}, and no route back to {src} for the ICMP error: dropped"),
            )
        })
    }
}

/// Walk `packet` through `ruleset` on a host of which nothing else is known (a DNAT does
/// not change the packet's path).
pub fn walk(ruleset: &Ruleset, packet: &Packet) -> Walk {
    walk_on(ruleset, packet, None)
}

/// Walk `packet` through `ruleset` on `host`.
pub fn walk_on(ruleset: &Ruleset, packet: &Packet, host: Option<&Host>) -> Walk {
    combine(walk_inner(ruleset, packet, host, None))
}

/// Walk the next packet of a sequence: its conntrack state is not the packet's `ctstate`
/// but what the connections so far make it (a reply is ESTABLISHED, and gets the NAT of its
/// connection undone, N8), and an accepted packet of a new connection adds it (confirm).
/// When the statistic branches of a walk leave the table differently, later packets are
/// inconclusive.
pub fn walk_seq(
    ruleset: &Ruleset,
    packet: &Packet,
    host: Option<&Host>,
    ct: &mut Conntrack,
) -> Walk {
    if let Some(why) = &ct.unknown {
        return unknown_table(packet, why);
    }
    let branches = walk_inner(ruleset, packet, host, Some(ct));
    let first = branches[0].update.clone();
    if branches.iter().any(|b| b.update != first) {
        ct.unknown = Some("its connection depends on which statistic branch it took".into());
    } else if let Some(u) = first {
        ct.apply(u);
    }
    combine(branches)
}

/// Like [`walk_seq`], but every `statistic` branch apart: each branch's walk (with its
/// `out` packet) and the conntrack table it leaves. A packet path that must follow each
/// branch on (kube-proxy's choice of a service endpoint) uses this. Always at least one.
pub fn walk_seq_branches(
    ruleset: &Ruleset,
    packet: &Packet,
    host: Option<&Host>,
    ct: &Conntrack,
) -> Vec<(Walk, Conntrack)> {
    if let Some(why) = &ct.unknown {
        return vec![(unknown_table(packet, why), ct.clone())];
    }
    walk_inner(ruleset, packet, host, Some(ct))
        .into_iter()
        .map(|b| {
            let mut table = ct.clone();
            if let Some(u) = b.update {
                table.apply(u);
            }
            let walk = Walk {
                fate: b.fate,
                trace: b.trace,
                mark: b.mark,
                path: b.path,
                conntrack: b.note,
                out: b.out,
            };
            (walk, table)
        })
        .collect()
}

fn unknown_table(packet: &Packet, why: &str) -> Walk {
    Walk {
        fate: Fate::Inconclusive(format!("an earlier packet of the sequence: {why}")),
        trace: Vec::new(),
        mark: packet.mark,
        path: packet.hook,
        conntrack: None,
        out: None,
    }
}

/// One statistic branch of a walk.
struct Branch {
    fate: Fate,
    trace: Vec<Step>,
    mark: u32,
    path: PacketHook,
    note: Option<String>,
    update: Option<CtUpdate>,
    out: Option<Out>,
}

/// The branches' common fate, or inconclusive when they differ; the first branch's trace.
fn combine(mut branches: Vec<Branch>) -> Walk {
    let first = branches.remove(0);
    let fate = match branches
        .iter()
        .find(|b| b.fate.as_str() != first.fate.as_str())
    {
        Some(other) => Fate::Inconclusive(format!(
            "the verdict depends on a statistic match: {} on one branch, {} on another",
            first.fate.as_str(),
            other.fate.as_str()
        )),
        None => first.fate,
    };
    let same_out = branches.iter().all(|b| b.out == first.out);
    Walk {
        fate,
        trace: first.trace,
        mark: first.mark,
        path: first.path,
        conntrack: first.note,
        out: if same_out { first.out } else { None },
    }
}

fn walk_inner(
    ruleset: &Ruleset,
    packet: &Packet,
    host: Option<&Host>,
    ct: Option<&Conntrack>,
) -> Vec<Branch> {
    // Enumerate statistic branches depth-first.
    let mut pending: Vec<Vec<bool>> = vec![Vec::new()];
    let mut branches: Vec<Branch> = Vec::new();
    let rules: usize = ruleset
        .tables
        .iter()
        .flat_map(|t| &t.chains)
        .map(|c| c.rules.len())
        .sum();
    let max_steps = MAX_STEPS.max(rules.saturating_mul(4));
    while let Some(choices) = pending.pop() {
        if branches.len() >= MAX_BRANCHES {
            let first = branches.swap_remove(0);
            return vec![Branch {
                fate: Fate::Inconclusive(format!("more than {MAX_BRANCHES} statistic branches")),
                trace: first.trace,
                mark: 0,
                path: packet.hook,
                note: None,
                update: Some(CtUpdate::Unknown("too many statistic branches".into())),
                out: None,
            }];
        }
        let fixed = choices.len();
        let mut run = Run {
            rs: ruleset,
            host,
            ct,
            update: None,
            note: None,
            out: None,
            path: packet.hook,
            packet,
            choices,
            taken: 0,
            trace: Vec::new(),
            max_steps,
        };
        let (fate, mark) = run.go();
        // Every decision taken past the fixed prefix defaulted to false: queue its twin.
        for i in fixed..run.taken {
            let mut alt = run.choices[..i].to_vec();
            alt.push(true);
            pending.push(alt);
        }
        branches.push(Branch {
            fate,
            trace: std::mem::take(&mut run.trace),
            mark,
            path: run.path,
            note: run.note.take(),
            update: run.update.take(),
            out: run.out.take(),
        });
    }
    branches
}

/// The packet as it leaves the host's last hook (after every NAT), when it was accepted
/// and every field is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// The output interface (forward and output paths), as routing or the packet gave it.
    pub oif: Option<String>,
}

/// A connection's tuple (ports None for ICMP and other port-less protocols).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuple {
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

impl std::fmt::Display for Tuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ep = |a: IpAddr, p: Option<u16>| match (a, p) {
            (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
            (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
            (a, None) => a.to_string(),
        };
        write!(
            f,
            "protocol {} {} -> {}",
            self.proto,
            ep(self.src, self.sport),
            ep(self.dst, self.dport)
        )
    }
}

/// A confirmed connection: its original tuple (as conntrack first saw it, before NAT) and
/// its reply tuple (the inverse of the tuple after NAT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    pub orig: Tuple,
    pub reply: Tuple,
    /// The DNAT/SNAT status bits (`--ctstate DNAT`, `ct status dnat`).
    pub nat_bits: u8,
    pub mark: u32,
    /// A reply-direction packet was seen: later packets are ESTABLISHED.
    pub seen_reply: bool,
}

/// The conntrack table of one host across a sequence of packets (a fresh one per sequence).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conntrack {
    pub conns: Vec<Conn>,
    /// Why the table is no longer known (a NAT to a range, statistic branches that differ).
    pub unknown: Option<String>,
}

/// What one walk does to the table.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CtUpdate {
    /// A reply-direction packet was looked up (dropped later or not).
    Seen {
        conn: usize,
        reply: bool,
    },
    /// An accepted packet of an existing connection: its mark now.
    Existing {
        conn: usize,
        reply: bool,
        mark: u32,
    },
    New(Conn),
    Unknown(String),
}

impl Conntrack {
    /// The connection a packet with tuple `t` belongs to, and whether it is a reply.
    fn find(&self, t: &Tuple) -> Option<(usize, bool)> {
        self.conns.iter().enumerate().find_map(|(i, c)| {
            if c.orig == *t {
                Some((i, false))
            } else if c.reply == *t {
                Some((i, true))
            } else {
                None
            }
        })
    }

    fn apply(&mut self, u: CtUpdate) {
        match u {
            CtUpdate::Seen { conn, reply } => self.conns[conn].seen_reply |= reply,
            CtUpdate::Existing { conn, reply, mark } => {
                let c = &mut self.conns[conn];
                c.seen_reply |= reply;
                c.mark = mark;
            }
            CtUpdate::New(c) => self.conns.push(c),
            CtUpdate::Unknown(why) => self.unknown = Some(why),
        }
    }
}

/// N8: a later packet of a connection is translated as its binding says, destination at
/// the DST-manip hooks (PREROUTING, OUTPUT), source at the SRC-manip hooks (INPUT,
/// POSTROUTING): an original packet toward the inverse of the reply tuple, a reply toward
/// the inverse of the original tuple (a DNAT's reply gets its source back, an SNAT's reply
/// its destination).
fn apply_binding(c: &Conn, reply: bool, hook: Hook, st: &mut State) {
    let (src, dst, sport, dport) = if reply {
        (c.orig.dst, c.orig.src, c.orig.dport, c.orig.sport)
    } else {
        (c.reply.dst, c.reply.src, c.reply.dport, c.reply.sport)
    };
    match hook {
        Hook::Prerouting | Hook::Output => {
            st.dst = dst;
            st.dport = dport;
        }
        Hook::Input | Hook::Postrouting => {
            st.src = src;
            st.sport = sport;
        }
        _ => {}
    }
}

/// One hook function registered at a hook: a base chain, or the NAT hook with every nat
/// base chain of the hook inside it.
struct Entry {
    priority: i32,
    nat: bool,
    chains: Vec<(usize, usize)>,
}

/// The NAT hook's own priority (H8): -100 in PREROUTING and OUTPUT, 100 in INPUT and
/// POSTROUTING.
fn nat_hook_priority(hook: Hook) -> i32 {
    match hook {
        Hook::Input | Hook::Postrouting => 100,
        _ => -100,
    }
}

/// The hook functions at `hook`, in the order the kernel runs them (H8, H9): by priority;
/// at equal priorities the one registered last (later in the ruleset) first. Nat chains run
/// inside the NAT hook at its fixed priority, ordered among themselves the same way; the
/// NAT hook registers with the first nat chain.
fn hook_entries(rs: &Ruleset, hook: Hook, v4: bool) -> Vec<Entry> {
    // (priority, registration order, table, chain)
    let mut plain: Vec<(i32, usize, usize, usize)> = Vec::new();
    let mut nat: Vec<(i32, usize, usize, usize)> = Vec::new();
    let mut order = 0usize;
    // The NAT core registers its hook at every hook with the first nat chain of the family
    // (nf_nat_register_fn): later packets of a connection are translated there even where no
    // nat chain of that hook exists.
    let mut nat_core: Option<usize> = None;
    for (ti, t) in rs.tables.iter().enumerate() {
        for (ci, c) in t.chains.iter().enumerate() {
            let Some(b) = &c.base else { continue };
            order += 1;
            if b.kind == ChainType::Nat && family_applies(t.family, v4) {
                nat_core.get_or_insert(order);
            }
            if b.hook != hook || !family_applies(t.family, v4) {
                continue;
            }
            if b.kind == ChainType::Nat {
                nat.push((b.priority, order, ti, ci));
            } else {
                plain.push((b.priority, order, ti, ci));
            }
        }
    }
    let key = |e: &(i32, usize, usize, usize)| (e.0, std::cmp::Reverse(e.1));
    plain.sort_by_key(key);
    nat.sort_by_key(key);
    let mut entries: Vec<(i32, std::cmp::Reverse<usize>, Entry)> = plain
        .into_iter()
        .map(|(p, o, ti, ci)| {
            (
                p,
                std::cmp::Reverse(o),
                Entry {
                    priority: p,
                    nat: false,
                    chains: vec![(ti, ci)],
                },
            )
        })
        .collect();
    if let Some(first) = nat_core {
        let p = nat_hook_priority(hook);
        entries.push((
            p,
            std::cmp::Reverse(first),
            Entry {
                priority: p,
                nat: true,
                chains: nat.iter().map(|e| (e.2, e.3)).collect(),
            },
        ));
    }
    entries.sort_by_key(|e| (e.0, e.1));
    entries.into_iter().map(|e| e.2).collect()
}

fn family_applies(f: Family, v4: bool) -> bool {
    match f {
        Family::Ip => v4,
        Family::Ip6 => !v4,
        Family::Inet => true,
        _ => false,
    }
}

fn iface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl State {
    fn addr(&self, dir: Dir) -> Result<IpAddr, String> {
        match dir {
            Dir::Src => self.src_why.clone().map_or(Ok(self.src), Err),
            Dir::Dst => self.dst_why.clone().map_or(Ok(self.dst), Err),
        }
    }
    fn port(&self, dir: Dir) -> Result<Option<u16>, String> {
        match dir {
            Dir::Src => self.sport_why.clone().map_or(Ok(self.sport), Err),
            Dir::Dst => self.dport_why.clone().map_or(Ok(self.dport), Err),
        }
    }
}

/// A NAT's port part: one port is known, a range is the kernel's choice.
fn nat_ports(
    ports: Option<(u16, u16)>,
    port: &mut Option<u16>,
    why: &mut Option<String>,
    what: &str,
) {
    if let Some((lo, hi)) = ports {
        if lo == hi {
            *port = Some(lo);
            *why = None;
        } else {
            *why = Some(format!(
                "{what} to the ports {lo}-{hi}: the kernel picks the port"
            ));
        }
    }
}

impl<'a> Run<'a> {
    fn go(&mut self) -> (Fate, u32) {
        let p = self.packet;
        let mut hooks: &[Hook] = match p.hook {
            PacketHook::Input => &[Hook::Prerouting, Hook::Input],
            PacketHook::Forward => &[Hook::Prerouting, Hook::Forward, Hook::Postrouting],
            PacketHook::Output => &[Hook::Output, Hook::Postrouting],
        };
        let mut st = State {
            src: p.src,
            dst: p.dst,
            sport: p.sport,
            dport: p.dport,
            iif: p.iif.clone(),
            oif: p.oif.clone(),
            src_why: None,
            dst_why: None,
            sport_why: None,
            dport_why: None,
            redirected: false,
            ctstate: p.ctstate,
            conn: None,
            orig: None,
            mark: p.mark,
            ctmark: 0,
            tracked_yet: false,
            untracked: p.ctstate == CtState::Untracked,
            nat_bits: 0,
        };
        let v4 = p.src.is_ipv4();
        let mut steps = 0usize;
        let mut at = 0;
        'hooks: while at < hooks.len() {
            let hook = hooks[at];
            at += 1;
            let ct_hook = matches!(hook, Hook::Prerouting | Hook::Output);
            if !ct_hook {
                self.track(&mut st);
            }
            for entry in hook_entries(self.rs, hook, v4) {
                if ct_hook && entry.priority > -200 {
                    self.track(&mut st);
                }
                if entry.nat {
                    // The NAT hook (N2): no chain runs without a ct or for a packet that is
                    // not the first of its connection; the first chain that binds ends it.
                    // A later packet of a connection gets its binding applied (N8).
                    if let (Some((ci, reply)), Some(ct)) = (st.conn, self.ct) {
                        if !st.untracked {
                            let before = (st.src, st.sport, st.dst, st.dport);
                            apply_binding(&ct.conns[ci], reply, hook, &mut st);
                            let after = (st.src, st.sport, st.dst, st.dport);
                            if before != after {
                                let ep = |a: IpAddr, p: Option<u16>| match p {
                                    Some(p) => format!("{a}:{p}"),
                                    None => a.to_string(),
                                };
                                self.trace.push(Step {
                                    hook,
                                    table: "conntrack".into(),
                                    chain: "nat".into(),
                                    rule: None,
                                    text: String::new(),
                                    effect: format!(
                                        "connection {} {}: {} -> {} becomes {} -> {}",
                                        ci + 1,
                                        if reply {
                                            "reply, NAT undone"
                                        } else {
                                            "NAT applied"
                                        },
                                        ep(before.0, before.1),
                                        ep(before.2, before.3),
                                        ep(after.0, after.1),
                                        ep(after.2, after.3)
                                    ),
                                });
                            }
                        }
                        continue;
                    }
                    let first = matches!(st.ctstate, CtState::New | CtState::Related)
                        && !st.untracked
                        && st.tracked_yet;
                    if !first {
                        continue;
                    }
                }
                for &(ti, ci) in &entry.chains {
                    let base = self.rs.tables[ti].chains[ci]
                        .base
                        .clone()
                        .expect("base chain");
                    let bits = st.nat_bits;
                    if let Some(f) = self.run_base(hook, ti, ci, &base, &mut st, &mut steps) {
                        if matches!(f, Fate::Accept) {
                            // Only a planted bug (NftAcceptFinal) ends a base chain with a
                            // final accept: the packet skips every later chain and hook.
                            self.track(&mut st);
                            break 'hooks;
                        }
                        return (f, st.mark);
                    }
                    if entry.nat && st.nat_bits != bits {
                        break;
                    }
                }
            }
            if ct_hook {
                self.track(&mut st);
            }
            // Routing again after OUTPUT, on a known host, when a DNAT moved the destination
            // (ip_route_me_harder): the output interface follows the new destination.
            if let (Hook::Output, Some(host)) = (hook, self.host) {
                if st.dst != p.dst && st.dst_why.is_none() {
                    st.oif = host.route(st.dst).map(str::to_string);
                }
            }
            // Routing after PREROUTING, on a known host, when a DNAT moved the destination.
            if let (Hook::Prerouting, Some(host)) = (hook, self.host) {
                if st.dst_why.is_some() && !st.redirected {
                    return (
                        Fate::Inconclusive(format!(
                            "the route after PREROUTING depends on the new destination: {}",
                            st.dst_why.clone().unwrap_or_default()
                        )),
                        st.mark,
                    );
                }
                if st.dst != p.dst || st.redirected {
                    if st.redirected || host.addresses.contains(&st.dst) {
                        hooks = &[Hook::Prerouting, Hook::Input];
                        self.path = PacketHook::Input;
                        st.oif = None;
                    } else {
                        hooks = &[Hook::Prerouting, Hook::Forward, Hook::Postrouting];
                        self.path = PacketHook::Forward;
                        st.oif = host.route(st.dst).map(str::to_string);
                    }
                }
                // On a complete host, routing itself may refuse to forward the packet
                // (placed without an output device, or re-routed after a DNAT).
                if host.complete
                    && self.path == PacketHook::Forward
                    && (st.oif.is_none() || st.dst != p.dst)
                {
                    if let Some((fate, why)) = host.unroutable(st.src, st.dst) {
                        self.trace.push(Step {
                            hook: Hook::Prerouting,
                            table: "routing".into(),
                            chain: "after PREROUTING".into(),
                            rule: None,
                            text: String::new(),
                            effect: why,
                        });
                        return (fate, st.mark);
                    }
                }
            }
        }
        self.confirm(&st);
        let known = [&st.src_why, &st.dst_why, &st.sport_why, &st.dport_why]
            .iter()
            .all(|w| w.is_none())
            && !st.redirected;
        if known {
            self.out = Some(Out {
                src: st.src,
                dst: st.dst,
                sport: st.sport,
                dport: st.dport,
                oif: st.oif.clone(),
            });
        }
        (Fate::Accept, st.mark)
    }

    /// Conntrack attaches to the packet (at -200 in PREROUTING/OUTPUT, or at the first hook
    /// after them). In a sequence, the packet's connection is looked up by its tuple.
    fn track(&mut self, st: &mut State) {
        if st.tracked_yet {
            return;
        }
        st.tracked_yet = true;
        let Some(ct) = self.ct else { return };
        if st.untracked {
            return;
        }
        let t = Tuple {
            proto: self.packet.protocol,
            src: st.src,
            dst: st.dst,
            sport: st.sport,
            dport: st.dport,
        };
        match ct.find(&t) {
            Some((i, reply)) => {
                let c = &ct.conns[i];
                st.conn = Some((i, reply));
                st.ctstate = if reply || c.seen_reply {
                    CtState::Established
                } else {
                    CtState::New
                };
                st.ctmark = c.mark;
                st.nat_bits = c.nat_bits;
                self.note = Some(format!(
                    "{} of connection {} ({}), {}",
                    if reply { "reply" } else { "original direction" },
                    i + 1,
                    c.orig,
                    if st.ctstate == CtState::Established {
                        "established"
                    } else {
                        "new"
                    }
                ));
                // The reply direction is seen now, whatever happens to the packet later.
                self.update = Some(CtUpdate::Seen { conn: i, reply });
            }
            None => {
                self.note = Some(format!("new connection ({t})"));
                st.ctstate = CtState::New;
                st.orig = Some(t);
            }
        }
    }

    /// An accepted packet confirms its new connection (nf_confirm, INT_MAX in INPUT and
    /// POSTROUTING); an existing connection keeps its mark changes.
    fn confirm(&mut self, st: &State) {
        if self.ct.is_none() || st.untracked {
            return;
        }
        if let Some((i, reply)) = st.conn {
            self.update = Some(CtUpdate::Existing {
                conn: i,
                reply,
                mark: st.ctmark,
            });
            return;
        }
        let Some(orig) = st.orig.clone() else { return };
        if let Some(why) = [&st.src_why, &st.dst_why, &st.sport_why, &st.dport_why]
            .into_iter()
            .flatten()
            .next()
        {
            self.update = Some(CtUpdate::Unknown(why.clone()));
            return;
        }
        self.update = Some(CtUpdate::New(Conn {
            reply: Tuple {
                proto: orig.proto,
                src: st.dst,
                dst: st.src,
                sport: st.dport,
                dport: st.sport,
            },
            orig,
            nat_bits: st.nat_bits,
            mark: st.ctmark,
            seen_reply: false,
        }));
    }

    /// Run one base chain. None: accepted (go on to the next base chain).
    fn run_base(
        &mut self,
        hook: Hook,
        ti: usize,
        ci: usize,
        base: &BaseChain,
        st: &mut State,
        steps: &mut usize,
    ) -> Option<Fate> {
        let table = &self.rs.tables[ti];
        let tname = format!("{} {}", table.family.as_str(), table.name);
        // The call stack: (chain, next rule).
        let mut stack: Vec<(usize, usize)> = Vec::new();
        let mut chain = ci;
        let mut i = 0usize;
        loop {
            *steps += 1;
            if *steps > self.max_steps {
                return Some(Fate::Inconclusive(format!(
                    "more than {} rule evaluations (a loop?) in {tname}",
                    self.max_steps
                )));
            }
            let c = &table.chains[chain];
            let Some(rule) = c.rules.get(i) else {
                // End of chain: return to the caller, or the base chain's policy.
                match stack.pop() {
                    Some((ch, next)) => {
                        chain = ch;
                        i = next;
                        continue;
                    }
                    None => {
                        self.trace.push(Step {
                            hook,
                            table: tname.clone(),
                            chain: table.chains[ci].name.clone(),
                            rule: None,
                            text: String::new(),
                            effect: format!("policy {}", base.policy),
                        });
                        return match base.policy {
                            Policy::Accept => None,
                            Policy::Drop => Some(Fate::Drop),
                        };
                    }
                }
            };
            let mut unknown = None;
            let mut matched = true;
            for m in &rule.matches {
                match self.eval(m, ti, hook, st) {
                    Truth::Yes => {}
                    Truth::No => {
                        matched = false;
                        break;
                    }
                    Truth::Unknown(why) => {
                        unknown.get_or_insert(why);
                    }
                }
            }
            let mut step = Step {
                hook,
                table: tname.clone(),
                chain: c.name.clone(),
                rule: Some(i + 1),
                text: rule.text.clone(),
                effect: String::new(),
            };
            if !matched {
                step.effect = "no match".into();
                self.trace.push(step);
                i += 1;
                continue;
            }
            if let Some(why) = unknown {
                step.effect = format!("inconclusive: {why}");
                self.trace.push(step);
                return Some(Fate::Inconclusive(format!(
                    "{tname} chain {} rule {}: {why}: {}",
                    c.name,
                    i + 1,
                    rule.text
                )));
            }
            step.effect = "match".into();
            self.trace.push(step);
            let last = self.trace.len() - 1;
            match self.act(&rule.action, ti, hook, st, last) {
                Flow::Next => {}
                Flow::Miss => {
                    self.trace[last].effect = "no match (not in map)".into();
                }
                Flow::Accept => return None,
                Flow::End(f) => return Some(f),
                Flow::Return => {
                    // As if the chain ended here: back to the caller, or the policy.
                    i = c.rules.len();
                    continue;
                }
                Flow::Jump(to) => {
                    stack.push((chain, i + 1));
                    chain = to;
                    i = 0;
                    continue;
                }
                Flow::Goto(to) => {
                    if crate::planted::is(crate::planted::Bug::GotoAsJump) {
                        // Planted: a goto pushes its return point, as a jump does.
                        stack.push((chain, i + 1));
                    }
                    chain = to;
                    i = 0;
                    continue;
                }
                Flow::Unsupported(what) => {
                    self.trace[last].effect = format!("inconclusive: {what}");
                    return Some(Fate::Inconclusive(format!(
                        "{tname} chain {} rule {}: {what}: {}",
                        c.name,
                        i + 1,
                        rule.text
                    )));
                }
            }
            i += 1;
        }
    }

    fn eval(&mut self, m: &Match, ti: usize, hook: Hook, st: &State) -> Truth {
        let p = self.packet;
        match m {
            Match::Addr { dir, nets, neg } => {
                let a = match st.addr(*dir) {
                    Ok(a) => a,
                    Err(why) => return Truth::Unknown(why),
                };
                negate(truth(nets.iter().any(|n| n.contains(&a))), *neg)
            }
            Match::Proto { proto, neg } => negate(truth(*proto == 0 || *proto == p.protocol), *neg),
            Match::Iface { dir, name, neg } => {
                // Which interfaces exist on this hook: none in (empty name), or the packet's.
                let has = match (dir, hook) {
                    // OUTPUT and POSTROUTING have no input device, even for forwarded packets.
                    (Dir::Src, Hook::Output | Hook::Postrouting) => Some(""),
                    (Dir::Dst, Hook::Prerouting | Hook::Input) => Some(""),
                    (Dir::Src, _) => st.iif.as_deref(),
                    (Dir::Dst, _) => st.oif.as_deref(),
                };
                match has {
                    Some(n) => negate(truth(iface_matches(name, n)), *neg),
                    None => Truth::Unknown(format!(
                        "the packet gives no {} interface",
                        if *dir == Dir::Src {
                            "input (iif)"
                        } else {
                            "output (oif)"
                        }
                    )),
                }
            }
            Match::Fragment { neg } => negate(Truth::No, *neg),
            Match::Port { dir, ranges, neg } => {
                let port = match st.port(*dir) {
                    Ok(p) => p,
                    Err(why) => return Truth::Unknown(why),
                };
                match port {
                    Some(x) => negate(truth(ranges.iter().any(|(a, b)| *a <= x && x <= *b)), *neg),
                    None if has_ports(p.protocol) => Truth::Unknown(format!(
                        "the packet gives no {} port",
                        if *dir == Dir::Src {
                            "source (sport)"
                        } else {
                            "destination (dport)"
                        }
                    )),
                    None => Truth::No,
                }
            }
            Match::AnyPort { ranges, neg } => {
                if let Some(why) = st.sport_why.as_ref().or(st.dport_why.as_ref()) {
                    return Truth::Unknown(why.clone());
                }
                let inr = |x: Option<u16>| {
                    x.is_some_and(|x| ranges.iter().any(|(a, b)| *a <= x && x <= *b))
                };
                if has_ports(p.protocol)
                    && (st.sport.is_none() || st.dport.is_none())
                    && !inr(st.sport)
                    && !inr(st.dport)
                {
                    return Truth::Unknown("the packet gives no source or destination port".into());
                }
                negate(truth(inr(st.sport) || inr(st.dport)), *neg)
            }
            Match::TcpFlags { mask, comp, neg } => {
                if p.protocol != 6 {
                    return Truth::No;
                }
                let flags: u8 = if st.ctstate == CtState::New {
                    0x02
                } else {
                    0x10
                };
                negate(truth(flags & mask == *comp), *neg)
            }
            Match::Icmp { v6, ty, codes, neg } => {
                let proto = if *v6 { 58 } else { 1 };
                if p.protocol != proto {
                    return Truth::No;
                }
                let (pt, pc) = if *v6 { (128u8, 0u8) } else { (8, 0) };
                negate(
                    truth(*ty == 255 || (*ty == pt && codes.0 <= pc && pc <= codes.1)),
                    *neg,
                )
            }
            Match::CtState { states, neg } => {
                let bit = self.ct_bit(st);
                let virt = if st.tracked_yet && !st.untracked {
                    st.nat_bits
                } else {
                    0
                };
                negate(truth((bit | virt) & states != 0), *neg)
            }
            Match::Mark { value, mask, neg } => negate(truth(st.mark & mask == *value), *neg),
            Match::ConnMark { value, mask, neg } => {
                if !st.tracked_yet || st.untracked || st.ctstate == CtState::Invalid {
                    // No conntrack entry: the connmark match fails, negated or not.
                    return Truth::No;
                }
                negate(truth(st.ctmark & mask == *value), *neg)
            }
            Match::Set {
                name,
                dirs,
                neg,
                return_nomatch,
            } => {
                let Some(sets) = &self.rs.ipsets else {
                    return Truth::Unknown(format!(
                        "the members of ipset `{name}` are not known (give the ipsets: --ipsets FILE, or `ipsets:` in a scenario)"
                    ));
                };
                // Devices as the hook has them: none (Ok(None)), the packet's, or unknown.
                let dev = |d: Dir| -> Result<Option<&str>, ()> {
                    match (d, hook) {
                        (Dir::Src, Hook::Output | Hook::Postrouting) => Ok(None),
                        (Dir::Dst, Hook::Prerouting | Hook::Input) => Ok(None),
                        (Dir::Src, _) => st.iif.as_deref().map(Some).ok_or(()),
                        (Dir::Dst, _) => st.oif.as_deref().map(Some).ok_or(()),
                    }
                };
                let view = super::ipset::View {
                    src: st.src,
                    dst: st.dst,
                    proto: p.protocol,
                    sport: st.sport,
                    dport: st.dport,
                    iif: dev(Dir::Src),
                    oif: dev(Dir::Dst),
                };
                match sets.test(name, &view, dirs, *return_nomatch) {
                    Ok(member) => negate(truth(member), *neg),
                    Err(why) => Truth::Unknown(why),
                }
            }
            Match::AddrType {
                src,
                dst,
                limit_in,
                limit_out,
            } => {
                let Some(host) = self.host else {
                    return Truth::Unknown(
                        "addrtype needs the host's addresses (a scenario's `host:`), which are not given"
                            .into(),
                    );
                };
                if *limit_in || *limit_out {
                    return Truth::Unknown(
                        "addrtype --limit-iface-in/out needs the interface of each host address, which is not modelled"
                            .into(),
                    );
                }
                let ok = |spec: &Option<(u16, bool)>, a: IpAddr| match spec {
                    None => true,
                    Some((mask, neg)) => (host.addr_type(a) & mask != 0) != *neg,
                };
                if let (Some(why), Some(_)) | (_, Some(why)) = (
                    src.as_ref().and(st.src_why.as_ref()),
                    dst.as_ref().and(st.dst_why.as_ref()),
                ) {
                    return Truth::Unknown(why.clone());
                }
                truth(ok(src, st.src) && ok(dst, st.dst))
            }
            Match::Statistic { neg, .. } => {
                let choice = if self.taken < self.choices.len() {
                    self.choices[self.taken]
                } else {
                    self.choices.push(false);
                    false
                };
                self.taken += 1;
                negate(truth(choice), *neg)
            }
            Match::Lookup { key, set, neg } => {
                let set = self.set(ti, set);
                if let Some(why) = &set.unsupported {
                    return Truth::Unknown(why.clone());
                }
                match self.key(key, hook, st) {
                    KeyRead::Absent => Truth::No,
                    KeyRead::Value(v, unknown) => match lookup(set, &v) {
                        Found::Elem(_) => negate(Truth::Yes, *neg),
                        Found::None => negate(Truth::No, *neg),
                        Found::Maybe => Truth::Unknown(unknown.unwrap_or_default()),
                    },
                }
            }
            Match::Unsupported { what } => Truth::Unknown(format!("unsupported match {what}")),
        }
    }

    fn set<'s>(&self, ti: usize, r: &'s SetRef) -> &'s Set
    where
        'a: 's,
    {
        match r {
            SetRef::Anon(s) => s,
            SetRef::Named(i) => &self.rs.tables[ti].sets[*i],
        }
    }

    /// The packet's value of a lookup key. A component fwsim cannot read is None (the
    /// first such reason is kept): membership may still be decided by the others.
    fn key(&self, key: &[Key], hook: Hook, st: &State) -> KeyRead {
        let mut out = Vec::with_capacity(key.len());
        let mut unknown = None;
        for k in key {
            let known = u128::from(ct::DNAT | ct::SNAT);
            if k.field == Field::CtStatus && k.mask.is_none_or(|m| m & !known != 0) {
                unknown.get_or_insert_with(|| {
                    "ct status bits other than dnat/snat are not modelled".to_string()
                });
                out.push(None);
                continue;
            }
            match self.field(k.field, hook, st) {
                Read::Value(mut v) => {
                    let Some(x) = v.pop() else {
                        return KeyRead::Absent;
                    };
                    out.push(Some(match (x, k.mask) {
                        (KeyValue::Num(n), Some(m)) => KeyValue::Num(n & m),
                        (x, _) => x,
                    }));
                }
                Read::Absent => return KeyRead::Absent,
                Read::Unknown(why) => {
                    unknown.get_or_insert(why);
                    out.push(None);
                }
            }
        }
        KeyRead::Value(out, unknown)
    }

    fn field(&self, f: Field, hook: Hook, st: &State) -> Read {
        let p = self.packet;
        let v4 = st.src.is_ipv4();
        let num = |n: u128| Read::Value(vec![KeyValue::Num(n)]);
        let has_ct = st.tracked_yet && !st.untracked && st.ctstate != CtState::Invalid;
        match f {
            Field::Addr { v6, dir } => {
                if v6 == v4 {
                    return Read::Absent;
                }
                let a = match st.addr(dir) {
                    Ok(a) => a,
                    Err(why) => return Read::Unknown(why),
                };
                num(match a {
                    IpAddr::V4(a) => u128::from(u32::from(a)),
                    IpAddr::V6(a) => u128::from(a),
                })
            }
            Field::L4Proto => num(p.protocol.into()),
            Field::Port(dir) => {
                let port = match st.port(dir) {
                    Ok(p) => p,
                    Err(why) => return Read::Unknown(why),
                };
                match port {
                    Some(x) => num(x.into()),
                    None if has_ports(p.protocol) => Read::Unknown(format!(
                        "the packet gives no {} port",
                        if dir == Dir::Src {
                            "source (sport)"
                        } else {
                            "destination (dport)"
                        }
                    )),
                    None => Read::Absent,
                }
            }
            Field::ThPort(dir) => {
                let port = match st.port(dir) {
                    Ok(p) => p,
                    Err(why) => return Read::Unknown(why),
                };
                let icmp = p.protocol == if v4 { 1 } else { 58 };
                match port {
                    Some(x) if has_ports(p.protocol) => num(x.into()),
                    // An echo request: type and code, then the checksum.
                    _ if icmp && dir == Dir::Src => num(if v4 { 8 << 8 } else { 128 << 8 }),
                    _ if icmp => Read::Unknown(
                        "`th dport` of an ICMP packet reads its checksum, which is not modelled"
                            .into(),
                    ),
                    _ => Read::Unknown(format!(
                        "`th {}` reads the transport header of protocol {}, which is not modelled",
                        if dir == Dir::Src { "sport" } else { "dport" },
                        p.protocol
                    )),
                }
            }
            Field::TcpFlags => {
                if p.protocol != 6 {
                    return Read::Absent;
                }
                num(if st.ctstate == CtState::New {
                    0x02
                } else {
                    0x10
                })
            }
            Field::IcmpType { v6 } | Field::IcmpCode { v6 } => {
                if p.protocol != if v6 { 58 } else { 1 } {
                    return Read::Absent;
                }
                if matches!(f, Field::IcmpCode { .. }) {
                    num(0)
                } else {
                    num(if v6 { 128 } else { 8 })
                }
            }
            Field::Mark => num(st.mark.into()),
            Field::CtMark => {
                if !has_ct {
                    return Read::Absent;
                }
                num(st.ctmark.into())
            }
            Field::CtState => num(self.ct_bit(st).into()),
            Field::CtStatus => {
                if !has_ct {
                    return Read::Absent;
                }
                // Only the NAT bits are known; `key` refuses masks reaching other bits.
                num(st.nat_bits.into())
            }
            Field::CtDirection => {
                if !has_ct {
                    return Read::Absent;
                }
                match (st.conn, st.ctstate) {
                    (Some((_, reply)), _) => num(u128::from(reply)),
                    (None, CtState::New) => num(0),
                    _ => Read::Unknown("the packet's conntrack direction is not given".into()),
                }
            }
            Field::NfProto => num(if v4 { 2 } else { 10 }),
            Field::EtherType => num(if v4 { 0x0800 } else { 0x86dd }),
            Field::FibType { dir, dev } => {
                let Some(host) = self.host else {
                    return Read::Unknown(
                        "fib needs the host's addresses (a scenario's `host:`), which are not given"
                            .into(),
                    );
                };
                if dev.is_some() {
                    return Read::Unknown(
                        "fib ... type limited to an interface needs the interface of each host address, which is not modelled"
                            .into(),
                    );
                }
                match st.addr(dir) {
                    Ok(a) => num(host.addr_type(a).trailing_zeros().into()),
                    Err(why) => Read::Unknown(why),
                }
            }
            Field::FibOif { dir, dev } => {
                let Some(host) = self.host else {
                    return Read::Unknown(
                        "fib needs the host's routes (a scenario's `host:`), which are not given"
                            .into(),
                    );
                };
                let a = match st.addr(dir) {
                    Ok(a) => a,
                    Err(why) => return Read::Unknown(why),
                };
                if host.addr_type(a) != addrtype::UNICAST {
                    return Read::Unknown(format!(
                        "fib ... oif of {a}: routes to local, broadcast and multicast addresses are not modelled"
                    ));
                }
                let route = host.route(a).unwrap_or("");
                let name = match dev {
                    None => route,
                    Some(d) => {
                        let limit = if d == Dir::Src { &st.iif } else { &st.oif };
                        match limit {
                            Some(l) if l == route => route,
                            Some(_) => "",
                            None => {
                                return Read::Unknown(
                                    "the packet gives no interface for the fib lookup".into(),
                                )
                            }
                        }
                    }
                };
                Read::Value(vec![KeyValue::Name(name.to_string())])
            }
            Field::Ifname(dir) => {
                let has = match (dir, hook) {
                    (Dir::Src, Hook::Output | Hook::Postrouting) => Some(""),
                    (Dir::Dst, Hook::Prerouting | Hook::Input) => Some(""),
                    (Dir::Src, _) => st.iif.as_deref(),
                    (Dir::Dst, _) => st.oif.as_deref(),
                };
                match has {
                    Some(n) => Read::Value(vec![KeyValue::Name(n.to_string())]),
                    None => Read::Unknown(format!(
                        "the packet gives no {} interface",
                        if dir == Dir::Src {
                            "input (iif)"
                        } else {
                            "output (oif)"
                        }
                    )),
                }
            }
        }
    }

    fn ct_bit(&self, st: &State) -> u8 {
        if !st.tracked_yet && !st.untracked {
            ct::INVALID
        } else if st.untracked {
            ct::UNTRACKED
        } else {
            match st.ctstate {
                CtState::New => ct::NEW,
                CtState::Established => ct::ESTABLISHED,
                CtState::Related => ct::RELATED,
                CtState::Invalid => ct::INVALID,
                CtState::Untracked => ct::UNTRACKED,
            }
        }
    }

    /// Carry out a rule's action (its matches matched).
    fn act(&mut self, action: &Action, ti: usize, hook: Hook, st: &mut State, last: usize) -> Flow {
        let table = &self.rs.tables[ti];
        match action {
            Action::None | Action::Log | Action::Continue => Flow::Next,
            Action::Accept => {
                self.trace[last].effect = "match: accept".into();
                if crate::planted::is(crate::planted::Bug::NftAcceptFinal)
                    && table.origin == Origin::Nft
                {
                    // Planted: an nft accept ends the packet's walk, not only its base chain.
                    return Flow::End(Fate::Accept);
                }
                Flow::Accept
            }
            Action::Drop => {
                self.trace[last].effect = "match: drop".into();
                Flow::End(Fate::Drop)
            }
            Action::Reject { with } => {
                self.trace[last].effect = format!("match: reject ({with})");
                Flow::End(Fate::Reject(with.clone()))
            }
            Action::Return => {
                self.trace[last].effect = "match: return".into();
                Flow::Return
            }
            Action::Jump(to) => {
                self.trace[last].effect = format!("match: jump {}", table.chains[*to].name);
                Flow::Jump(*to)
            }
            Action::Goto(to) => {
                self.trace[last].effect = format!("match: goto {}", table.chains[*to].name);
                Flow::Goto(*to)
            }
            Action::Mark(op) => {
                st.mark = op.apply(st.mark);
                self.trace[last].effect = format!("match: mark set {:#x}", st.mark);
                Flow::Next
            }
            Action::SetConnMark(op) => {
                if st.tracked_yet && !st.untracked {
                    st.ctmark = op.apply(st.ctmark);
                }
                Flow::Next
            }
            Action::SaveMark { nfmask, ctmask } => {
                if st.tracked_yet && !st.untracked {
                    st.ctmark = (st.ctmark & !ctmask) | (st.mark & nfmask);
                }
                Flow::Next
            }
            Action::RestoreMark { nfmask, ctmask } => {
                if st.tracked_yet && !st.untracked {
                    st.mark = (st.mark & !nfmask) | (st.ctmark & ctmask);
                }
                Flow::Next
            }
            Action::NoTrack => {
                if !st.tracked_yet {
                    st.untracked = true;
                }
                Flow::Next
            }
            Action::Dnat(to) | Action::Redirect(to) => {
                let redirect = matches!(action, Action::Redirect(_));
                if redirect {
                    // N6: in OUTPUT to the loopback address; in PREROUTING to the primary
                    // address of the input interface, which fwsim does not know.
                    if hook == Hook::Output {
                        st.dst = if st.dst.is_ipv4() {
                            IpAddr::from([127, 0, 0, 1])
                        } else {
                            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                        };
                        st.dst_why = None;
                    } else {
                        st.dst_why = Some(
                            "REDIRECT made the destination the input interface's address, which is not modelled"
                                .into(),
                        );
                        st.redirected = true;
                    }
                } else if let Some((lo, hi)) = to.addrs {
                    if lo == hi {
                        st.dst = lo;
                        st.dst_why = None;
                    } else {
                        st.dst_why = Some(format!(
                            "DNAT to the range {lo}-{hi}: the kernel picks the address"
                        ));
                    }
                }
                nat_ports(to.ports, &mut st.dport, &mut st.dport_why, "DNAT");
                st.nat_bits |= ct::DNAT;
                self.trace[last].effect = if redirect {
                    "match: redirect"
                } else {
                    "match: dnat"
                }
                .into();
                Flow::Accept
            }
            Action::Snat(to) => {
                if let Some((lo, hi)) = to.addrs {
                    if lo == hi {
                        st.src = lo;
                        st.src_why = None;
                    } else {
                        st.src_why = Some(format!(
                            "SNAT to the range {lo}-{hi}: the kernel picks the address"
                        ));
                    }
                }
                nat_ports(to.ports, &mut st.sport, &mut st.sport_why, "SNAT");
                st.nat_bits |= ct::SNAT;
                self.trace[last].effect = "match: snat".into();
                Flow::Accept
            }
            Action::Masquerade => {
                // N7: the source becomes the output interface's address toward the next
                // hop; fwsim knows it when the destination is on one of the host's networks.
                let dst = st.dst;
                let own = self.host.and_then(|h| {
                    let family = |a: &IpAddr| a.is_ipv4() == dst.is_ipv4();
                    let by_oif = st.oif.as_deref().and_then(|oif| {
                        h.iface_addrs
                            .iter()
                            .find(|(i, a)| i == oif && family(a))
                            .or_else(|| {
                                // An output device without an address of its own (a
                                // Calico veth): inet_select_addr falls back to the first
                                // device, in device order, with a global address.
                                h.iface_addrs.iter().find(|(_, a)| family(a))
                            })
                            .map(|(_, a)| *a)
                    });
                    by_oif.or_else(|| {
                        h.addresses.iter().copied().find(|a| {
                            a.is_ipv4() == dst.is_ipv4()
                                && h.networks.iter().any(|n| n.contains(a) && n.contains(&dst))
                        })
                    })
                });
                match own {
                    Some(a) if st.dst_why.is_none() => {
                        st.src = a;
                        st.src_why = None;
                    }
                    _ => {
                        st.src_why = Some(
                            "MASQUERADE chose the output interface's address, which is not known (give the host's addresses with their networks)"
                                .into(),
                        )
                    }
                }
                st.nat_bits |= ct::SNAT;
                self.trace[last].effect = "match: masquerade".into();
                Flow::Accept
            }
            Action::Seq(actions) => {
                for a in actions {
                    match self.act(a, ti, hook, st, last) {
                        Flow::Next => {}
                        other => return other,
                    }
                }
                Flow::Next
            }
            Action::Vmap { key, map } => {
                let set = self.set(ti, map);
                if let Some(why) = &set.unsupported {
                    return Flow::Unsupported(why.clone());
                }
                let data = match self.key(key, hook, st) {
                    KeyRead::Absent => return Flow::Miss,
                    KeyRead::Value(v, unknown) => match lookup(set, &v) {
                        Found::None => None,
                        Found::Elem(e) => Some(e.data.clone()),
                        Found::Maybe => return Flow::Unsupported(unknown.unwrap_or_default()),
                    },
                };
                let verdict = match data {
                    None => return Flow::Miss,
                    Some(Some(SetData::Verdict(v))) => v,
                    Some(_) => {
                        return Flow::Unsupported(format!("map {} has no verdict data", set.name))
                    }
                };
                let (action, what) = match verdict {
                    Verdict::Accept => (Action::Accept, "accept".to_string()),
                    Verdict::Drop => (Action::Drop, "drop".to_string()),
                    Verdict::Continue => (Action::Continue, "continue".to_string()),
                    Verdict::Return => (Action::Return, "return".to_string()),
                    Verdict::Jump(c) => (Action::Jump(c), format!("jump {}", table.chains[c].name)),
                    Verdict::Goto(c) => (Action::Goto(c), format!("goto {}", table.chains[c].name)),
                };
                let flow = self.act(&action, ti, hook, st, last);
                self.trace[last].effect = format!("match: vmap {what}");
                flow
            }
            Action::Unsupported { what } => Flow::Unsupported(format!("unsupported target {what}")),
        }
    }
}

/// What an action leaves the walk to do.
enum Flow {
    /// Next rule.
    Next,
    /// A vmap found no element: the rule did not match after all.
    Miss,
    /// End of this base chain (accept, NAT).
    Accept,
    End(Fate),
    Return,
    Jump(usize),
    Goto(usize),
    Unsupported(String),
}

/// A packet field read: its value, absent (the rule does not match), or not known.
enum Read {
    Value(Vec<KeyValue>),
    Absent,
    Unknown(String),
}

/// A lookup key as read from the packet: None components are unknown (the reason given).
enum KeyRead {
    Value(Vec<Option<KeyValue>>, Option<String>),
    Absent,
}

/// What a lookup found.
enum Found<'s> {
    /// This element (a specific one, or the catch-all `*` when none can match).
    Elem(&'s SetElem),
    /// A specific element matches on the known components: the answer depends on the
    /// unknown ones.
    Maybe,
    None,
}

/// Set lookup with unknown key components (None) as wildcards.
fn lookup<'s>(set: &'s Set, key: &[Option<KeyValue>]) -> Found<'s> {
    if key.iter().all(Option::is_some) {
        let full: Vec<KeyValue> = key.iter().flatten().cloned().collect();
        return set.find(&full).map_or(Found::None, Found::Elem);
    }
    let specific = set.elements.iter().any(|e| {
        e.key.as_ref().is_some_and(|k| {
            k.len() == key.len()
                && k.iter()
                    .zip(key)
                    .all(|(r, v)| v.as_ref().is_none_or(|v| v.within(r)))
        })
    });
    if specific {
        return Found::Maybe;
    }
    set.elements
        .iter()
        .find(|e| e.key.is_none())
        .map_or(Found::None, Found::Elem)
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::from_iptables::{convert, IpVersion};
    use crate::syntax::iptables::parse;

    fn packet(text: &str) -> Packet {
        let mut p = Packet {
            src: "198.51.100.4".parse().unwrap(),
            dst: "10.0.0.1".parse().unwrap(),
            protocol: 6,
            sport: Some(40000),
            dport: Some(22),
            iif: Some("eth0".into()),
            oif: None,
            hook: PacketHook::Input,
            ctstate: CtState::New,
            mark: 0,
        };
        for kv in text.split_whitespace() {
            let (k, v) = kv.split_once('=').unwrap();
            match k {
                "src" => p.src = v.parse().unwrap(),
                "dst" => p.dst = v.parse().unwrap(),
                "dport" => p.dport = Some(v.parse().unwrap()),
                "sport" => p.sport = Some(v.parse().unwrap()),
                "proto" => p.protocol = v.parse().unwrap(),
                "iif" => p.iif = Some(v.into()),
                "oif" => p.oif = Some(v.into()),
                "hook" => {
                    p.hook = match v {
                        "forward" => PacketHook::Forward,
                        "output" => PacketHook::Output,
                        _ => PacketHook::Input,
                    }
                }
                "ct" => {
                    p.ctstate = match v {
                        "established" => CtState::Established,
                        _ => CtState::New,
                    }
                }
                _ => panic!("{k}"),
            }
        }
        p
    }

    fn fate(rules: &str, p: &str) -> Fate {
        let rs = convert(&parse(rules).unwrap(), IpVersion::V4).unwrap();
        walk(&rs, &packet(p)).fate
    }

    #[test]
    fn policies_jumps_gotos_and_returns() {
        let rules = "*filter\n:INPUT DROP [0:0]\n:a - [0:0]\n:b - [0:0]\n-A INPUT -j a\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A a -g b\n-A a -j DROP\n-A b -p tcp --dport 80 -j ACCEPT\nCOMMIT\n";
        // goto b, end of b returns to INPUT (the caller of a), not to a: so no DROP in a.
        assert_eq!(fate(rules, "dport=22"), Fate::Accept);
        assert_eq!(fate(rules, "dport=80"), Fate::Accept);
        assert_eq!(fate(rules, "dport=23"), Fate::Drop);
        // RETURN goes back to the caller; RETURN in a base chain applies its policy.
        let rules = "*filter\n:INPUT DROP [0:0]\n:a - [0:0]\n-A INPUT -j a\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUT -p tcp --dport 23 -j RETURN\n-A INPUT -j ACCEPT\n-A a -p tcp --dport 22:23 -j RETURN\n-A a -j DROP\nCOMMIT\n";
        assert_eq!(fate(rules, "dport=22"), Fate::Accept);
        assert_eq!(fate(rules, "dport=23"), Fate::Drop);
        assert_eq!(fate(rules, "dport=24"), Fate::Drop);
    }

    #[test]
    fn accept_ends_only_its_base_chain() {
        let rules = "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j DROP\nCOMMIT\n";
        assert_eq!(fate(rules, "dport=22"), Fate::Drop);
    }

    #[test]
    fn marks_cross_tables_and_notrack() {
        let rules = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp --dport 4789 -j NOTRACK\nCOMMIT\n*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -i eth0 -j MARK --set-xmark 0x10000/0x10000\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n-A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT\n-A INPUT -m mark --mark 0x10000/0x10000 -p tcp -j REJECT --reject-with tcp-reset\nCOMMIT\n";
        assert_eq!(fate(rules, "proto=17 dport=4789"), Fate::Accept);
        assert_eq!(fate(rules, "dport=22"), Fate::Reject("tcp-reset".into()));
        assert_eq!(fate(rules, "dport=22 iif=eth1"), Fate::Drop);
    }

    #[test]
    fn nat_only_on_new_and_dnat_rewrites() {
        let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.9:8080\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -d 10.0.0.9 --dport 8080 -m conntrack --ctstate DNAT -j ACCEPT\nCOMMIT\n";
        assert_eq!(fate(rules, "dport=80"), Fate::Accept);
        // An established packet is not NATed by the nat table (no binding modelled): drop.
        assert_eq!(fate(rules, "dport=80 ct=established"), Fate::Drop);
    }

    #[test]
    fn unknowns_are_inconclusive_and_statistic_enumerated() {
        let rules =
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m owner --uid-owner 0 -j DROP\nCOMMIT\n";
        assert!(matches!(fate(rules, "dport=22"), Fate::Inconclusive(_)));
        let rules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m owner --uid-owner 0 -j DROP\nCOMMIT\n";
        assert_eq!(fate(rules, "dport=22"), Fate::Accept);
        let rules = "*filter\n:INPUT ACCEPT [0:0]\n:x - [0:0]\n-A INPUT -m statistic --mode random --probability 0.5 -j x\n-A INPUT -j x\n-A x -j ACCEPT\nCOMMIT\n";
        assert_eq!(fate(rules, "dport=22"), Fate::Accept);
        let rules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m statistic --mode random --probability 0.5 -j DROP\nCOMMIT\n";
        assert!(
            matches!(fate(rules, "dport=22"), Fate::Inconclusive(m) if m.contains("statistic"))
        );
    }

    /// addrtype against a known host (M10), and the route chosen again after a DNAT (H13).
    #[test]
    fn addrtype_and_rerouting_on_a_known_host() {
        let host = Host {
            iface_addrs: Vec::new(),
            complete: false,
            no_forwarding: (false, false),
            addresses: vec!["10.0.0.1".parse().unwrap()],
            networks: vec!["10.0.0.0/24".parse().unwrap()],
            routes: vec![
                ("10.0.0.0/24".parse().unwrap(), "eth0".into()),
                ("0.0.0.0/0".parse().unwrap(), "eth1".into()),
            ],
        };
        let rules = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n-A INPUT -m addrtype --dst-type LOCAL -p tcp --dport 22 -j ACCEPT\n-A INPUT -m addrtype --dst-type BROADCAST,MULTICAST -j ACCEPT\n-A INPUT -m addrtype ! --src-type UNICAST -j REJECT\n-A FORWARD -o eth1 -p tcp --dport 443 -j ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 8443 -j DNAT --to-destination 203.0.113.9:443\nCOMMIT\n";
        let rs = convert(&parse(rules).unwrap(), IpVersion::V4).unwrap();
        let on = |p: &str| walk_on(&rs, &packet(p), Some(&host));
        // Without the host, addrtype cannot be decided.
        assert!(matches!(
            walk(&rs, &packet("dst=10.0.0.1")).fate,
            Fate::Inconclusive(m) if m.contains("host")
        ));
        assert_eq!(on("dst=10.0.0.1").fate, Fate::Accept);
        // 127/8 is LOCAL too; another address is UNICAST: no rule, policy drop.
        assert_eq!(on("dst=127.0.0.5").fate, Fate::Accept);
        assert_eq!(on("dst=10.0.0.9").fate, Fate::Drop);
        // The subnet's broadcast, the limited broadcast and multicast.
        assert_eq!(on("dst=10.0.0.255 dport=9").fate, Fate::Accept);
        assert_eq!(on("dst=255.255.255.255 dport=9").fate, Fate::Accept);
        assert_eq!(on("dst=224.0.0.5 dport=9").fate, Fate::Accept);
        // A LOCAL source is not UNICAST: rejected.
        assert_eq!(
            on("src=10.0.0.1 dst=10.0.0.9 dport=9").fate,
            Fate::Reject("icmp-port-unreachable".into())
        );
        // DNAT to a remote address: forwarded out of eth1 (the default route).
        let w = on("dst=10.0.0.1 dport=8443");
        assert_eq!(w.fate, Fate::Accept);
        assert_eq!(w.path, PacketHook::Forward);
        // Without the host, the path stays input (and the DNATed port is dropped there).
        let w = walk(&rs, &packet("dst=10.0.0.1 dport=8443"));
        assert_eq!(w.path, PacketHook::Input);
    }

    /// What a NAT leaves unknown is never guessed (N6, N7; found by kernel-check, where a
    /// chain after MASQUERADE matched the old source).
    #[test]
    fn nat_results_fwsim_cannot_know_are_inconclusive() {
        let rules = "table ip t {\n chain post { type nat hook postrouting priority srcnat; policy accept;\n  oifname \"eth1\" masquerade\n }\n chain late { type filter hook postrouting priority 200; policy accept;\n  ip saddr 198.51.100.0/24 drop\n }\n chain pre { type nat hook prerouting priority dstnat; policy accept;\n  tcp dport 8080 redirect to :80\n  tcp dport 8443 dnat to 10.9.0.1-10.9.0.2\n }\n chain fwd { type filter hook forward priority 0; policy accept;\n  ip daddr 10.9.0.1 drop\n  tcp dport 80 accept\n }\n}\n";
        let rs = crate::netfilter::read_ruleset(rules).unwrap();
        let fwd = "src=198.51.100.4 dst=10.1.0.9 hook=forward oif=eth1 dport=443";
        assert!(
            matches!(walk(&rs, &packet(fwd)).fate, Fate::Inconclusive(m) if m.contains("MASQUERADE"))
        );
        let host = Host {
            iface_addrs: Vec::new(),
            complete: false,
            no_forwarding: (false, false),
            addresses: vec!["10.1.0.1".parse().unwrap()],
            networks: vec!["10.1.0.0/24".parse().unwrap()],
            routes: vec![("10.1.0.0/24".parse().unwrap(), "eth1".into())],
        };
        // Known host: the source becomes 10.1.0.1, which `late` does not drop.
        assert_eq!(walk_on(&rs, &packet(fwd), Some(&host)).fate, Fate::Accept);
        // REDIRECT: local, address unknown; the port is known.
        let w = walk_on(
            &rs,
            &packet("dst=10.1.0.9 hook=forward oif=eth1 dport=8080"),
            Some(&host),
        );
        assert_eq!(w.path, PacketHook::Input);
        assert_eq!(w.fate, Fate::Accept);
        // DNAT to a range: the address is the kernel's pick.
        assert!(
            matches!(walk(&rs, &packet("dst=10.1.0.9 hook=forward oif=eth1 dport=8443")).fate, Fate::Inconclusive(m) if m.contains("range"))
        );
    }

    /// nft `fib` on a known host (E8): `type` as addrtype, `oif` by route, `. iif` limiting
    /// the lookup to the input interface (the rp-filter idiom).
    #[test]
    fn nft_fib_on_a_known_host() {
        let host = Host {
            iface_addrs: Vec::new(),
            complete: false,
            no_forwarding: (false, false),
            addresses: vec!["10.0.0.1".parse().unwrap()],
            networks: vec!["10.0.0.0/24".parse().unwrap()],
            routes: vec![
                ("10.0.0.0/24".parse().unwrap(), "eth1".into()),
                ("0.0.0.0/0".parse().unwrap(), "eth0".into()),
            ],
        };
        let rules = "table inet t {\n chain pre { type filter hook prerouting priority 0; policy accept;\n  fib saddr . iif oif missing drop\n  fib daddr type { broadcast, multicast } drop\n }\n chain in { type filter hook input priority 0; policy drop;\n  fib daddr type local tcp dport 22 accept\n }\n}\n";
        let rs = crate::netfilter::read_ruleset(rules).unwrap();
        let on = |p: &str| walk_on(&rs, &packet(p), Some(&host)).fate;
        assert!(
            matches!(walk(&rs, &packet("dst=10.0.0.1")).fate, Fate::Inconclusive(m) if m.contains("host"))
        );
        // From the internet on eth0 (the default route's device): passes rp-filter.
        assert_eq!(on("dst=10.0.0.1"), Fate::Accept);
        assert_eq!(on("dst=10.0.0.1 dport=23"), Fate::Drop);
        // A source of eth1's network arriving on eth0: no route back through eth0.
        assert_eq!(on("src=10.0.0.7 dst=10.0.0.1"), Fate::Drop);
        assert_eq!(on("src=10.0.0.7 dst=10.0.0.1 iif=eth1"), Fate::Accept);
        // The subnet's broadcast address.
        assert_eq!(on("dst=10.0.0.255"), Fate::Drop);
    }

    /// Connections across packets (N2, N8): the reply of a DNATed connection is ESTABLISHED
    /// and gets its source translated back at POSTROUTING; a packet that is not part of it
    /// is NEW; an SNATed connection's reply gets its destination back in PREROUTING and is
    /// routed to the client.
    #[test]
    fn sequences_track_connections_and_undo_nat_on_replies() {
        let rules = "table ip t {\n chain pre { type nat hook prerouting priority dstnat; policy accept;\n  ip daddr 203.0.113.10 tcp dport 80 dnat to 10.0.0.9:8080\n }\n chain post { type nat hook postrouting priority srcnat; policy accept;\n  ip saddr 10.0.0.0/24 oifname \"eth0\" ip daddr != 203.0.113.0/24 snat to 203.0.113.1\n }\n chain fwd { type filter hook forward priority 0; policy drop;\n  ct state established accept\n  ip daddr 10.0.0.9 tcp dport 8080 ct status dnat accept\n  iifname \"eth1\" accept\n }\n chain late { type filter hook postrouting priority 200; policy accept;\n  ip saddr 10.0.0.9 oifname \"eth0\" drop\n }\n}\n";
        let rs = crate::netfilter::read_ruleset(rules).unwrap();
        let host = Host {
            iface_addrs: Vec::new(),
            complete: false,
            no_forwarding: (false, false),
            addresses: vec!["203.0.113.1".parse().unwrap(), "10.0.0.1".parse().unwrap()],
            networks: vec![
                "203.0.113.0/24".parse().unwrap(),
                "10.0.0.0/24".parse().unwrap(),
            ],
            routes: vec![
                ("10.0.0.0/24".parse().unwrap(), "eth1".into()),
                ("0.0.0.0/0".parse().unwrap(), "eth0".into()),
            ],
        };
        let mut ct = Conntrack::default();
        let mut step = |p: &str| walk_seq(&rs, &packet(p), Some(&host), &mut ct);
        let client = "src=198.51.100.4 dst=203.0.113.10 dport=80 hook=forward iif=eth0 oif=eth1";
        assert_eq!(step(client).fate, Fate::Accept);
        // The server's reply: ESTABLISHED, source back to 203.0.113.10:80 before `late`.
        let reply =
            "src=10.0.0.9 dst=198.51.100.4 sport=8080 dport=40000 hook=forward iif=eth1 oif=eth0";
        assert_eq!(step(reply).fate, Fate::Accept);
        // Without the connection (a single packet said established) `late` sees 10.0.0.9.
        let mut single = packet(reply);
        single.ctstate = CtState::Established;
        single.sport = Some(8080);
        assert_eq!(walk_on(&rs, &single, Some(&host)).fate, Fate::Drop);
        // Not the connection's reply (another port): NEW from eth1, accepted by the last
        // rule, then SNATed; the tuple differs, so `late` sees the SNATed source.
        let other =
            "src=10.0.0.9 dst=198.51.100.4 sport=8080 dport=40001 hook=forward iif=eth1 oif=eth0";
        assert_eq!(step(other).fate, Fate::Accept);
        // That connection's reply comes to 203.0.113.1:40000... no: SNAT kept the port; the
        // reply to 203.0.113.1 port 8080 is de-SNATed to 10.0.0.9 and routed to eth1.
        let back = "src=198.51.100.4 dst=203.0.113.1 sport=40001 dport=8080 hook=input iif=eth0";
        let w = step(back);
        assert_eq!(w.path, PacketHook::Forward);
        assert_eq!(w.fate, Fate::Accept);
        assert_eq!(ct.conns.len(), 2);
        assert!(ct.conns.iter().all(|c| c.seen_reply));
    }

    fn nft_fate(rules: &str, p: &str) -> Fate {
        let rs = crate::netfilter::read_ruleset(rules)
            .unwrap_or_else(|e| panic!("{}: {}", e.loc, e.message));
        walk(&rs, &packet(p)).fate
    }

    #[test]
    fn nft_accept_ends_only_its_base_chain_and_priorities_order() {
        // Two tables at the input hook: accept in the first (priority -10) does not stop
        // the second (priority 10), whose drop is final.
        let rules = "table inet b {\n chain in { type filter hook input priority filter + 10; policy accept;\n  tcp dport 22 drop\n }\n}\ntable ip a {\n chain in { type filter hook input priority -10; policy drop;\n  accept\n }\n}\n";
        assert_eq!(nft_fate(rules, "dport=22"), Fate::Drop);
        assert_eq!(nft_fate(rules, "dport=80"), Fate::Accept);
        // The ip table does not see IPv6: only the inet one runs.
        assert_eq!(
            nft_fate(rules, "src=2001:db8::1 dst=2001:db8::2 dport=80"),
            Fate::Accept
        );
        let rules6 =
            "table ip a { chain in { type filter hook input priority 0; policy drop; } }\n";
        assert_eq!(
            nft_fate(rules6, "src=2001:db8::1 dst=2001:db8::2"),
            Fate::Accept
        );
        assert_eq!(nft_fate(rules6, "dport=80"), Fate::Drop);
    }

    /// `th` reads raw transport-header bytes with no protocol dependency: for an ICMP echo
    /// request `th sport` is type and code (8, 0), `th dport` the checksum (not modelled).
    /// A concatenation whose known part rules out every element is decided anyway.
    /// (Found by kernel-check: fwsim had called an ICMP packet's `th dport` absent.)
    #[test]
    fn nft_th_on_icmp_and_partly_known_keys() {
        let t = |body: &str| {
            format!("table inet t {{\n chain in {{ type filter hook input priority 0; policy accept;\n  {body}\n }}\n}}\n")
        };
        let icmp = "proto=1";
        let r = t("meta l4proto . th dport != { tcp . 443, udp . 53 } drop");
        assert_eq!(nft_fate(&r, icmp), Fate::Drop);
        assert_eq!(nft_fate(&r, "dport=443"), Fate::Accept);
        assert_eq!(nft_fate(&r, "dport=444"), Fate::Drop);
        let r = t("meta l4proto . th dport { tcp . 22 } drop");
        assert_eq!(nft_fate(&r, icmp), Fate::Accept);
        let r = t("meta l4proto . th dport { icmp . 22 } drop");
        assert!(matches!(nft_fate(&r, icmp), Fate::Inconclusive(m) if m.contains("checksum")));
        let r = t("th dport 22 drop");
        assert!(matches!(nft_fate(&r, icmp), Fate::Inconclusive(_)));
        assert_eq!(nft_fate(&r, "dport=22"), Fate::Drop);
        let r = t("th sport 2048 drop");
        assert_eq!(nft_fate(&r, icmp), Fate::Drop);
        // A vmap whose only candidate for the known part is the catch-all.
        let r = t("meta l4proto . th dport vmap { tcp . 22 : accept, * : drop }");
        assert_eq!(nft_fate(&r, icmp), Fate::Drop);
    }

    #[test]
    fn nft_vmap_dispatch() {
        let rules = "table inet t {\n map ifs { type ifname : verdict; elements = { \"eth0\" : jump from_eth0, \"lo\" : accept } }\n chain in { type filter hook input priority 0; policy drop;\n  ct state vmap { established : accept, invalid : drop }\n  iifname vmap @ifs\n  tcp dport 80 accept\n }\n chain from_eth0 { tcp dport 22 accept }\n}\n";
        assert_eq!(nft_fate(rules, "ct=established dport=9"), Fate::Accept);
        assert_eq!(nft_fate(rules, "dport=22"), Fate::Accept); // eth0 → from_eth0
        assert_eq!(nft_fate(rules, "dport=23"), Fate::Drop); // back from from_eth0, policy
        assert_eq!(nft_fate(rules, "dport=23 iif=lo"), Fate::Accept);
        // Not in the map: the rule does not match; the next one decides.
        assert_eq!(nft_fate(rules, "dport=80 iif=eth9"), Fate::Accept);
        assert_eq!(nft_fate(rules, "dport=81 iif=eth9"), Fate::Drop);
    }

    #[test]
    fn nft_named_interval_and_concatenated_sets() {
        let rules = "table ip t {\n set nets { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 192.168.1.10-192.168.1.20 } }\n set svc { type ipv4_addr . inet_service; flags interval; elements = { 10.1.0.0/16 . 22, 10.2.0.1 . 8000-8080 } }\n chain in { type filter hook input priority 0; policy drop;\n  ip daddr . tcp dport @svc accept\n  ip saddr @nets tcp dport 443 accept\n  ip saddr != @nets udp dport 53 accept\n }\n}\n";
        assert_eq!(nft_fate(rules, "dst=10.1.2.3 dport=22"), Fate::Accept);
        assert_eq!(nft_fate(rules, "dst=10.1.2.3 dport=23"), Fate::Drop);
        assert_eq!(nft_fate(rules, "dst=10.2.0.1 dport=8080"), Fate::Accept);
        assert_eq!(nft_fate(rules, "dst=10.2.0.1 dport=8081"), Fate::Drop);
        assert_eq!(nft_fate(rules, "src=10.9.9.9 dport=443"), Fate::Accept);
        assert_eq!(nft_fate(rules, "src=192.168.1.15 dport=443"), Fate::Accept);
        assert_eq!(nft_fate(rules, "src=192.168.1.21 dport=443"), Fate::Drop);
        assert_eq!(
            nft_fate(rules, "src=192.168.1.21 proto=17 dport=53"),
            Fate::Accept
        );
        assert_eq!(
            nft_fate(rules, "src=10.0.0.1 proto=17 dport=53"),
            Fate::Drop
        );
        // `tcp dport` needs TCP: a UDP packet to 443 does not match it.
        assert_eq!(
            nft_fate(rules, "src=10.9.9.9 proto=17 dport=443"),
            Fate::Drop
        );
    }

    #[test]
    fn nft_continue_goto_return_and_marks() {
        // `continue` goes on; goto then the end of the chain returns to the base chain's
        // caller level: the base chain's policy, not the rule after the goto.
        let rules = "table inet t {\n chain in { type filter hook input priority 0; policy drop;\n  tcp dport 22 continue\n  tcp dport 22 meta mark set meta mark | 0x10\n  meta mark & 0x10 == 0x10 goto g\n  accept\n }\n chain g { tcp dport 22 return\n }\n}\n";
        assert_eq!(nft_fate(rules, "dport=22"), Fate::Drop);
        assert_eq!(nft_fate(rules, "dport=23"), Fate::Accept);
        // jump then the end of the chain comes back to the next rule.
        let rules = rules.replace("goto g", "jump g");
        assert_eq!(nft_fate(&rules, "dport=22"), Fate::Accept);
        // Interface wildcards and negations on a hook without that interface.
        let rules = "table inet t { chain out { type filter hook output priority 0; policy accept;\n iifname != \"eth*\" oifname \"cali*\" drop } }\n";
        assert_eq!(nft_fate(rules, "hook=output oif=cali123"), Fate::Drop);
        assert_eq!(nft_fate(rules, "hook=output oif=eth0"), Fate::Accept);
    }

    #[test]
    fn nft_unknowns_and_dependencies() {
        let rules = "table inet t { chain in { type filter hook input priority 0; policy accept;\n  fib daddr type local tcp dport 22 drop\n  ip saddr != 10.0.0.0/8 udp dport 53 drop\n } }\n";
        assert!(matches!(nft_fate(rules, "dport=22"), Fate::Inconclusive(m) if m.contains("fib")));
        // `ip saddr != ...` does not match an IPv6 packet (its dependency fails).
        assert_eq!(
            nft_fate(rules, "src=2001:db8::1 dst=2001:db8::2 proto=17 dport=53"),
            Fate::Accept
        );
        assert_eq!(
            nft_fate(rules, "src=192.0.2.1 proto=17 dport=53"),
            Fate::Drop
        );
        // NAT chains run for new connections; dnat sets the ct status bit.
        let rules = "table ip n { chain pre { type nat hook prerouting priority dstnat; policy accept;\n  tcp dport 80 dnat to 10.0.0.9:8080 } }\ntable ip f { chain in { type filter hook input priority 0; policy drop;\n  ct status dnat ip daddr 10.0.0.9 tcp dport 8080 accept } }\n";
        assert_eq!(nft_fate(rules, "dport=80"), Fate::Accept);
        assert_eq!(nft_fate(rules, "dport=80 ct=established"), Fate::Drop);
    }
}
