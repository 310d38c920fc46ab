//! Random host rulesets and probes for the kernel check (and, later, the fuzzers).
//!
//! Contract: [`generate`] gives, for a seed, one [`GenRuleset`]: an abstract ruleset in the
//! common subset of iptables and nft (tables raw, mangle, nat and filter of one family;
//! built-in chains with policies; user chains reached by jump and goto without loops;
//! addresses, protocols, ports, multiport, interfaces with wildcards, conntrack state, marks
//! and connmarks, TCP flags, ICMP types, comments; ACCEPT, DROP, REJECT variants, RETURN,
//! MARK, CONNMARK, NOTRACK, DNAT, SNAT, MASQUERADE). It prints as `iptables-save` text
//! ([`GenRuleset::to_iptables`]) and as nft text ([`GenRuleset::to_nft`]) with the same
//! meaning; both load into the kernel (every rule is valid where it is placed). Probes are
//! drawn from the same small pools of addresses and ports so that rules hit.
//!
//! Addresses fit the kernel check's lab (`kernel::lab`): the DUT's own addresses (input
//! path) and the 10.201.0.0/24, fd00:201::/64 network behind it (forward path); sources are
//! documentation networks and the sender. Nothing is drawn that routing would drop.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write;
use std::net::IpAddr;

const SRC4: [&str; 4] = [
    "198.51.100.7",
    "198.51.100.200",
    "203.0.113.9",
    "10.200.0.1",
];
const DST4_IN: [&str; 2] = ["10.200.0.2", "10.201.0.1"];
const DST4_FWD: [&str; 2] = ["10.201.0.2", "10.201.0.77"];
const SRC6: [&str; 4] = [
    "2001:db8::5",
    "2001:db8:1::9",
    "2001:db8::1:5",
    "fd00:200::1",
];
const DST6_IN: [&str; 2] = ["fd00:200::2", "fd00:201::1"];
const DST6_FWD: [&str; 2] = ["fd00:201::2", "fd00:201::77"];
const PORTS: [u16; 7] = [22, 53, 80, 443, 1024, 8080, 40000];
const IFACES_IN: [&str; 4] = ["dut0", "dut+", "dut1", "eth+"];
const IFACES_OUT: [&str; 3] = ["dut1", "dut+", "dut0"];

/// One table of the generated ruleset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenTable {
    Raw,
    Mangle,
    Nat,
    Filter,
    Security,
}

impl GenTable {
    pub const ALL: [GenTable; 5] = [
        GenTable::Raw,
        GenTable::Mangle,
        GenTable::Nat,
        GenTable::Filter,
        GenTable::Security,
    ];
    pub fn name(self) -> &'static str {
        match self {
            GenTable::Raw => "raw",
            GenTable::Mangle => "mangle",
            GenTable::Nat => "nat",
            GenTable::Filter => "filter",
            GenTable::Security => "security",
        }
    }
    /// Built-in chains, in iptables-save order.
    pub fn builtins(self) -> &'static [&'static str] {
        match self {
            GenTable::Raw => &["PREROUTING", "OUTPUT"],
            GenTable::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            GenTable::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
            GenTable::Filter | GenTable::Security => &["INPUT", "FORWARD", "OUTPUT"],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum GenMatch {
    Src(String, bool),
    Dst(String, bool),
    /// Protocol name (tcp, udp, icmp, ipv6-icmp), negated or not.
    Proto(&'static str, bool),
    /// Needs a positive tcp/udp Proto before it in the rule.
    Dport(u16, u16, bool),
    Sport(u16, u16, bool),
    Multiport(Vec<(u16, u16)>, bool),
    Iif(&'static str, bool),
    Oif(&'static str, bool),
    CtState(Vec<&'static str>, bool),
    Mark(u32, u32, bool),
    ConnMark(u32, u32, bool),
    /// `--syn` (needs Proto tcp).
    Syn(bool),
    /// echo-request (needs Proto icmp / ipv6-icmp).
    IcmpEcho(bool),
    Comment(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum GenTarget {
    None,
    Accept,
    Drop,
    Reject(&'static str),
    Return,
    Jump(String),
    Goto(String),
    /// `MARK --set-xmark value/mask`.
    Mark(u32, u32),
    /// `CONNMARK --set-xmark value/mask`.
    ConnMark(u32, u32),
    SaveMark,
    RestoreMark,
    NoTrack,
    /// DNAT to this address and port (the address stays local or forwarded as it was).
    Dnat(String, u16),
    Snat(String),
    Masquerade,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GenRule {
    pub matches: Vec<GenMatch>,
    pub target: GenTarget,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GenChain {
    pub name: String,
    /// Built-in chains have a policy (ACCEPT or DROP); user chains none.
    pub policy: Option<bool>,
    pub rules: Vec<GenRule>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GenTableDef {
    pub table: GenTable,
    pub chains: Vec<GenChain>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GenRuleset {
    pub v6: bool,
    pub tables: Vec<GenTableDef>,
    /// An nft-only `inet` table printed after the others by [`GenRuleset::to_nft`]: named
    /// and anonymous sets, intervals, concatenations, verdict maps, `continue`, base chains
    /// at their own priorities on the same hooks as the iptables-like tables, and nat
    /// chains at priorities other than the NAT hook's. The iptables texts have no such
    /// table (nor does fwsim see one when it reads them).
    pub nft_extra: Option<String>,
}

/// One probe: a NEW packet from the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenProbe {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub sport: u16,
    pub dport: u16,
    /// To one of the DUT's addresses (else forwarded).
    pub local: bool,
    /// Part of an established connection (UDP or ICMP echo; the kernel check seeds the
    /// conntrack entry first). Its tuple is unique in its batch: UDP source port 50000 +
    /// its index, ICMP echo id = its marker.
    pub established: bool,
}

fn pick<T: Copy, R: Rng>(rng: &mut R, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn cidr<R: Rng>(rng: &mut R, v6: bool, addrs: &[&str]) -> String {
    let a: IpAddr = pick(rng, addrs).parse().expect("pool address");
    let len = if v6 {
        pick(rng, &[16u8, 32, 64, 112, 128])
    } else {
        pick(rng, &[8u8, 16, 24, 30, 32])
    };
    let net = ipnet::IpNet::new(a, len).expect("prefix length").trunc();
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn port_range<R: Rng>(rng: &mut R) -> (u16, u16) {
    let p = pick(rng, &PORTS);
    match rng.random_range(0..4) {
        0 => (p, p.saturating_add(rng.random_range(1..100))),
        1 => (p.saturating_sub(rng.random_range(1..30)), p),
        _ => (p, p),
    }
}

fn mark_value<R: Rng>(rng: &mut R) -> (u32, u32) {
    let mask = pick(rng, &[0xffff_ffffu32, 0x1_0000, 0x2_0000, 0xff, 0x3_0000]);
    let v = pick(rng, &[0u32, 0x1_0000, 0x2_0000, 0x1, 0x3_0000, 0x42]) & mask;
    (v, mask)
}

/// Where a chain is reachable from, for validity of matches and targets.
#[derive(Clone, Copy, Default)]
struct Reach {
    pre: bool,
    input: bool,
    fwd: bool,
    out: bool,
    post: bool,
}

impl Reach {
    fn of(builtin: &str) -> Reach {
        let mut r = Reach::default();
        match builtin {
            "PREROUTING" => r.pre = true,
            "INPUT" => r.input = true,
            "FORWARD" => r.fwd = true,
            "OUTPUT" => r.out = true,
            "POSTROUTING" => r.post = true,
            _ => {}
        }
        r
    }
    fn or(self, o: Reach) -> Reach {
        Reach {
            pre: self.pre || o.pre,
            input: self.input || o.input,
            fwd: self.fwd || o.fwd,
            out: self.out || o.out,
            post: self.post || o.post,
        }
    }
    /// `-i` is valid: no OUTPUT/POSTROUTING.
    fn iif_ok(self) -> bool {
        !self.out && !self.post
    }
    /// `-o` is valid: no PREROUTING/INPUT.
    fn oif_ok(self) -> bool {
        !self.pre && !self.input
    }
}

/// What a target needs from the rule's protocol match.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Nothing,
    /// `-p tcp` (REJECT --reject-with tcp-reset).
    Tcp,
    /// `-p tcp` or `-p udp` (NAT to a port).
    Ports,
}

struct Gen {
    rng: ChaCha8Rng,
    v6: bool,
}

impl Gen {
    fn src_pool(&self) -> Vec<&'static str> {
        if self.v6 {
            SRC6.to_vec()
        } else {
            SRC4.to_vec()
        }
    }
    fn dst_pool(&self) -> Vec<&'static str> {
        let (a, b) = if self.v6 {
            (DST6_IN, DST6_FWD)
        } else {
            (DST4_IN, DST4_FWD)
        };
        a.iter().chain(b.iter()).copied().collect()
    }

    fn matches(&mut self, table: GenTable, reach: Reach, need: Need) -> Vec<GenMatch> {
        let mut m = Vec::new();
        let n = self.rng.random_range(0..4);
        let icmp = if self.v6 { "ipv6-icmp" } else { "icmp" };
        // At most one protocol match, first; port and flag matches only after a positive one.
        let proto = if need == Need::Tcp {
            Some("tcp")
        } else if need == Need::Ports {
            Some(pick(&mut self.rng, &["tcp", "udp"]))
        } else if self.rng.random_bool(0.5) {
            Some(pick(&mut self.rng, &["tcp", "udp", icmp]))
        } else {
            None
        };
        let neg_proto = need == Need::Nothing && proto.is_some() && self.rng.random_bool(0.15);
        if let Some(p) = proto {
            m.push(GenMatch::Proto(p, neg_proto));
        }
        for _ in 0..n {
            let neg = self.rng.random_bool(0.2);
            let k = self.rng.random_range(0..10);
            match k {
                0 => {
                    let pool = self.src_pool();
                    m.push(GenMatch::Src(cidr(&mut self.rng, self.v6, &pool), neg))
                }
                1 => {
                    let pool = self.dst_pool();
                    m.push(GenMatch::Dst(cidr(&mut self.rng, self.v6, &pool), neg))
                }
                2 | 3 => match proto {
                    Some("tcp") | Some("udp") if !neg_proto => {
                        let (a, b) = port_range(&mut self.rng);
                        match self.rng.random_range(0..4) {
                            0 => m.push(GenMatch::Sport(a, b, neg)),
                            1 => {
                                let n = self.rng.random_range(1..4);
                                let list = (0..n).map(|_| port_range(&mut self.rng)).collect();
                                m.push(GenMatch::Multiport(list, neg))
                            }
                            _ => m.push(GenMatch::Dport(a, b, neg)),
                        }
                    }
                    Some("tcp") if !neg_proto => m.push(GenMatch::Syn(neg)),
                    Some(p) if p == icmp && !neg_proto => m.push(GenMatch::IcmpEcho(neg)),
                    _ => {}
                },
                4 if reach.iif_ok() => m.push(GenMatch::Iif(pick(&mut self.rng, &IFACES_IN), neg)),
                5 if reach.oif_ok() => m.push(GenMatch::Oif(pick(&mut self.rng, &IFACES_OUT), neg)),
                6 | 7 => {
                    let all = ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"];
                    let mut states: Vec<&str> = all
                        .iter()
                        .copied()
                        .filter(|_| self.rng.random_bool(0.4))
                        .collect();
                    if states.is_empty() {
                        states.push(pick(&mut self.rng, &all));
                    }
                    m.push(GenMatch::CtState(states, neg))
                }
                8 => {
                    let (v, mask) = mark_value(&mut self.rng);
                    m.push(GenMatch::Mark(v, mask, neg))
                }
                9 if table != GenTable::Raw => {
                    let (v, mask) = mark_value(&mut self.rng);
                    m.push(GenMatch::ConnMark(v, mask, neg))
                }
                _ => {}
            }
        }
        // One match of each kind (iptables refuses `-s` twice, and one port option per
        // module instance).
        let mut kinds = Vec::new();
        m.retain(|x| {
            let k = match x {
                GenMatch::Src(..) => 0,
                GenMatch::Dst(..) => 1,
                GenMatch::Proto(..) => 2,
                GenMatch::Dport(..) | GenMatch::Sport(..) | GenMatch::Multiport(..) => 3,
                GenMatch::Iif(..) => 4,
                GenMatch::Oif(..) => 5,
                GenMatch::CtState(..) => 6,
                GenMatch::Mark(..) => 7,
                GenMatch::ConnMark(..) => 8,
                GenMatch::Syn(..) => 9,
                GenMatch::IcmpEcho(..) => 10,
                GenMatch::Comment(..) => 11,
            };
            if kinds.contains(&k) {
                false
            } else {
                kinds.push(k);
                true
            }
        });
        if self.rng.random_bool(0.1) {
            m.push(GenMatch::Comment(format!(
                "c{}",
                self.rng.random_range(0..100)
            )));
        }
        m
    }

    fn target(&mut self, table: GenTable, reach: Reach, users: &[String]) -> (GenTarget, Need) {
        let flow = |rng: &mut ChaCha8Rng| -> GenTarget {
            match rng.random_range(0..9) {
                0..=2 => GenTarget::Accept,
                3 => GenTarget::Drop,
                4 => GenTarget::Return,
                5 => GenTarget::None,
                _ if !users.is_empty() => {
                    let c = users[rng.random_range(0..users.len())].clone();
                    if rng.random_bool(0.5) {
                        GenTarget::Jump(c)
                    } else {
                        GenTarget::Goto(c)
                    }
                }
                _ => GenTarget::Accept,
            }
        };
        let r = self.rng.random_range(0..10);
        match table {
            GenTable::Filter if r < 2 => {
                if self.rng.random_bool(0.3) {
                    (GenTarget::Reject("tcp-reset"), Need::Tcp)
                } else if self.v6 {
                    (
                        GenTarget::Reject(pick(
                            &mut self.rng,
                            &["icmp6-port-unreachable", "icmp6-adm-prohibited"],
                        )),
                        Need::Nothing,
                    )
                } else {
                    (
                        GenTarget::Reject(pick(
                            &mut self.rng,
                            &[
                                "icmp-port-unreachable",
                                "icmp-host-prohibited",
                                "icmp-admin-prohibited",
                            ],
                        )),
                        Need::Nothing,
                    )
                }
            }
            GenTable::Mangle if r < 3 => {
                let (v, m) = mark_value(&mut self.rng);
                (GenTarget::Mark(v, m), Need::Nothing)
            }
            GenTable::Mangle | GenTable::Filter if r < 4 => {
                let t = match self.rng.random_range(0..3) {
                    0 => {
                        let (v, m) = mark_value(&mut self.rng);
                        GenTarget::ConnMark(v, m)
                    }
                    1 => GenTarget::SaveMark,
                    _ => GenTarget::RestoreMark,
                };
                (t, Need::Nothing)
            }
            GenTable::Raw if r < 3 => (GenTarget::NoTrack, Need::Nothing),
            GenTable::Nat if r < 4 => {
                if reach.pre && !reach.input && !reach.post && !reach.out {
                    // DNAT keeping the destination's path: local stays local.
                    let to = if self.v6 { "fd00:200::2" } else { "10.200.0.2" };
                    (
                        GenTarget::Dnat(to.into(), pick(&mut self.rng, &PORTS)),
                        Need::Ports,
                    )
                } else if (reach.post || reach.input) && !reach.pre && !reach.out {
                    if reach.post && !reach.input && self.rng.random_bool(0.5) {
                        (GenTarget::Masquerade, Need::Nothing)
                    } else {
                        let pool = self.src_pool();
                        (
                            GenTarget::Snat(pick(&mut self.rng, &pool).into()),
                            Need::Nothing,
                        )
                    }
                } else {
                    (GenTarget::Accept, Need::Nothing)
                }
            }
            GenTable::Nat => {
                // No DROP/REJECT in nat.
                let t = flow(&mut self.rng);
                (
                    if t == GenTarget::Drop {
                        GenTarget::Accept
                    } else {
                        t
                    },
                    Need::Nothing,
                )
            }
            _ => (flow(&mut self.rng), Need::Nothing),
        }
    }
}

/// Generate one ruleset.
pub fn generate(seed: u64) -> GenRuleset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v6 = rng.random_bool(0.3);
    let mut g = Gen { rng, v6 };
    let mut tables = Vec::new();
    for table in GenTable::ALL {
        let used = table == GenTable::Filter || g.rng.random_bool(0.45);
        let n_users = if used { g.rng.random_range(0..4) } else { 0 };
        let users: Vec<String> = (0..n_users).map(|i| format!("c{}", i + 1)).collect();
        // Reachability: built-ins first, users in order (a user chain jumps only to later ones).
        let mut chains: Vec<GenChain> = Vec::new();
        let mut reach: Vec<Reach> = vec![Reach::default(); users.len()];
        let mut all_rules: Vec<(usize, Vec<GenRule>)> = Vec::new();
        for b in table.builtins() {
            // Mostly ACCEPT: a DROP policy anywhere on the path drops most probes, and a
            // check where nearly every verdict is "drop" proves little.
            let p_drop = if table == GenTable::Filter { 0.2 } else { 0.06 };
            let policy = table == GenTable::Nat || !g.rng.random_bool(p_drop);
            chains.push(GenChain {
                name: b.to_string(),
                policy: Some(policy),
                rules: Vec::new(),
            });
        }
        let nb = chains.len();
        for u in &users {
            chains.push(GenChain {
                name: u.clone(),
                policy: None,
                rules: Vec::new(),
            });
        }
        if used {
            for ci in 0..chains.len() {
                let r = if ci < nb {
                    Reach::of(&chains[ci].name)
                } else {
                    reach[ci - nb]
                };
                if ci >= nb && !(r.pre || r.input || r.fwd || r.out || r.post) {
                    continue; // unreachable user chain: stays empty
                }
                let later: Vec<String> = if ci < nb {
                    users.clone()
                } else {
                    users[ci - nb + 1..].to_vec()
                };
                let n = g.rng.random_range(0..6);
                let mut rules = Vec::new();
                for _ in 0..n {
                    let (target, need) = g.target(table, r, &later);
                    let matches = g.matches(table, r, need);
                    if let GenTarget::Jump(t) | GenTarget::Goto(t) = &target {
                        let ti = users.iter().position(|u| u == t).expect("user chain");
                        reach[ti] = reach[ti].or(r);
                    }
                    rules.push(GenRule { matches, target });
                }
                all_rules.push((ci, rules));
            }
        }
        for (ci, rules) in all_rules {
            chains[ci].rules = rules;
        }
        // Nat chains reachable from both PREROUTING and POSTROUTING etc. could make a
        // NAT target invalid; targets were chosen with the reach known at the time, and a
        // later jump widens it: drop most NAT targets that became invalid; keep one in ten,
        // so that the kernel check also sees rulesets the kernel must refuse (and fwsim
        // with it).
        if table == GenTable::Nat {
            for ci in nb..chains.len() {
                let r = reach[ci - nb];
                for rule in &mut chains[ci].rules {
                    let ok = match rule.target {
                        GenTarget::Dnat(..) => !r.input && !r.post && !r.out,
                        GenTarget::Snat(_) => !r.pre && !r.out,
                        GenTarget::Masquerade => !r.pre && !r.out && !r.input,
                        _ => true,
                    };
                    if !ok && !g.rng.random_bool(0.1) {
                        rule.target = GenTarget::Accept;
                    }
                }
            }
        }
        for ci in nb..chains.len() {
            let r = reach[ci - nb];
            for rule in &mut chains[ci].rules {
                rule.matches.retain(|m| match m {
                    GenMatch::Iif(..) => r.iif_ok(),
                    GenMatch::Oif(..) => r.oif_ok(),
                    _ => true,
                });
            }
        }
        tables.push(GenTableDef { table, chains });
    }
    let nft_extra = g.rng.random_bool(0.7).then(|| nft_extra(&mut g));
    GenRuleset {
        v6,
        tables,
        nft_extra,
    }
}

/// The nft-only table (see [`GenRuleset::nft_extra`]).
fn nft_extra(g: &mut Gen) -> String {
    let rng = &mut g.rng;
    let v6 = g.v6;
    let ip = if v6 { "ip6" } else { "ip" };
    let mut s = String::from("table inet extra {\n");
    // Sets: addresses (intervals, auto-merged), services, a concatenation, a verdict map.
    let addrs = |rng: &mut ChaCha8Rng, n: usize| -> Vec<String> {
        let pool: Vec<&str> = if v6 {
            SRC6.iter()
                .chain(DST6_IN.iter())
                .chain(DST6_FWD.iter())
                .copied()
                .collect()
        } else {
            SRC4.iter()
                .chain(DST4_IN.iter())
                .chain(DST4_FWD.iter())
                .copied()
                .collect()
        };
        (0..n).map(|_| cidr(rng, v6, &pool)).collect()
    };
    let n = rng.random_range(1..4);
    let _ = writeln!(
        s,
        "\tset addrs {{\n\t\ttype {}\n\t\tflags interval\n\t\tauto-merge\n\t\telements = {{ {} }}\n\t}}",
        if v6 { "ipv6_addr" } else { "ipv4_addr" },
        addrs(rng, n).join(", ")
    );
    let n = rng.random_range(1..4);
    let svc: Vec<String> = (0..n)
        .map(|_| {
            let (a, b) = port_range(rng);
            ports(a, b, "-")
        })
        .collect();
    let _ = writeln!(
        s,
        "\tset svc {{\n\t\ttype inet_service\n\t\tflags interval\n\t\tauto-merge\n\t\telements = {{ {} }}\n\t}}",
        svc.join(", ")
    );
    let n = rng.random_range(1..4);
    let mut pairs: Vec<String> = (0..n)
        .map(|_| {
            let d = pick(rng, if v6 { &DST6_IN } else { &DST4_IN });
            format!("{d} . {}", pick(rng, &PORTS))
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    let _ = writeln!(
        s,
        "\tset dst_svc {{\n\t\ttype {} . inet_service\n\t\telements = {{ {} }}\n\t}}",
        if v6 { "ipv6_addr" } else { "ipv4_addr" },
        pairs.join(", ")
    );
    let verdicts = ["accept", "drop", "continue", "jump u1", "goto u2"];
    let mut keys: Vec<u16> = (0..rng.random_range(1..5))
        .map(|_| pick(rng, &PORTS))
        .collect();
    keys.sort();
    keys.dedup();
    let elems: Vec<String> = keys
        .iter()
        .map(|k| format!("{k} : {}", pick(rng, &verdicts)))
        .collect();
    let _ = writeln!(
        s,
        "\tmap ports_vm {{\n\t\ttype inet_service : verdict\n\t\telements = {{ {} }}\n\t}}",
        elems.join(", ")
    );
    // One rule of the extra table; `user` rules do not jump (u1 may goto u2 only).
    let rule = |rng: &mut ChaCha8Rng, chain: &str, hook: &str| -> String {
        let verdict = |rng: &mut ChaCha8Rng| -> &'static str {
            match chain {
                "u2" => pick(rng, &["accept", "drop", "continue", "return", "counter"]),
                "u1" => pick(rng, &["accept", "drop", "continue", "return", "goto u2"]),
                _ => pick(
                    rng,
                    &[
                        "accept", "drop", "continue", "counter", "jump u1", "goto u2",
                    ],
                ),
            }
        };
        let neg = if rng.random_bool(0.2) { "!= " } else { "" };
        let wild = rng.random_bool(0.05);
        match rng.random_range(0..12) {
            0 => format!("{ip} saddr {neg}@addrs {}", verdict(rng)),
            1 => format!("{ip} daddr {neg}@addrs {}", verdict(rng)),
            2 => format!("meta l4proto {{ tcp, udp }} th dport {neg}@svc {}", verdict(rng)),
            3 => format!("{ip} daddr . tcp dport @dst_svc {}", verdict(rng)),
            // The named map jumps to u1 and u2: only base chains use it (a loop otherwise).
            4 if !chain.starts_with('u') => "tcp dport vmap @ports_vm".to_string(),
            5 => {
                let plain = ["accept", "drop", "continue"];
                let verdicts: &[&str] = if chain.starts_with('u') { &plain } else { &verdicts };
                let a = pick(rng, &PORTS);
                let b = pick(rng, &PORTS);
                if a == b {
                    format!("udp dport vmap {{ {a} : {} }}", pick(rng, verdicts))
                } else {
                    format!(
                        "udp dport vmap {{ {a} : {}, {b} : {} }}",
                        pick(rng, verdicts),
                        pick(rng, verdicts)
                    )
                }
            }
            6 => format!(
                "meta l4proto . th dport {neg}{{ tcp . {}, udp . {} }} {}",
                pick(rng, &PORTS),
                pick(rng, &PORTS),
                verdict(rng)
            ),
            7 => {
                let a = addrs(rng, 2);
                format!("{ip} saddr {neg}{{ {} }} {}", a.join(", "), verdict(rng))
            }
            8 => format!(
                "meta mark set meta mark | {:#x}",
                pick(rng, &[0x1u32, 0x10, 0x1_0000])
            ),
            9 => format!(
                "meta mark & {:#x} {}{:#x} {}",
                pick(rng, &[0x1u32, 0x10, 0x1_0000]),
                if neg.is_empty() { "== " } else { "!= " },
                pick(rng, &[0u32, 0x1, 0x10, 0x1_0000]),
                verdict(rng)
            ),
            10 if hook != "prerouting" && hook != "input" || chain.starts_with('u') => {
                format!("oifname {neg}\"dut1\" {}", verdict(rng))
            }
            10 => format!("iifname {neg}\"dut*\" {}", verdict(rng)),
            // fib: the lab host's addresses and routes decide (kernel::check::dut_host).
            // fib is valid only on some hooks (nft_fib_validate): `oif` results not in
            // OUTPUT and POSTROUTING; base chains only here.
            // One in twenty ignores where fib is valid: the kernel must refuse, and fwsim too.
            11 if (wild || !chain.starts_with('u')) && rng.random_bool(0.4) => match rng.random_range(0..4) {
                0 => format!("fib daddr type {neg}local {}", verdict(rng)),
                1 => format!("fib daddr type {{ broadcast, multicast }} {}", verdict(rng)),
                2 if wild || hook != "postrouting" => {
                    format!("fib saddr . iif oif missing {}", verdict(rng))
                }
                3 if wild || hook != "postrouting" => format!(
                    "fib saddr oifname {neg}\"{}\" {}",
                    pick(rng, &["dut0", "dut1"]),
                    verdict(rng)
                ),
                _ => format!("fib daddr type != unicast {}", verdict(rng)),
            },
            _ => format!(
                "ct state vmap {{ new : {}, established : accept, invalid : drop, untracked : accept }}",
                pick(rng, &["accept", "drop", "continue"])
            ),
        }
    };
    // Base chains on the probes' hooks, at priorities no other chain has.
    let mut prios = vec![-250, -160, -120, -95, -10, 10, 60, 120, 200];
    let hooks = ["prerouting", "input", "forward", "postrouting"];
    let nbase = rng.random_range(1..4);
    for b in 0..nbase {
        let hook = pick(rng, &hooks);
        let prio = prios.remove(rng.random_range(0..prios.len()));
        let policy = if rng.random_bool(0.1) {
            "drop"
        } else {
            "accept"
        };
        let _ = writeln!(
            s,
            "\tchain base{b} {{\n\t\ttype filter hook {hook} priority {prio}; policy {policy};"
        );
        for _ in 0..rng.random_range(1..6) {
            let r = rule(rng, "base", hook);
            let _ = writeln!(s, "\t\t{r}");
        }
        s.push_str("\t}\n");
    }
    // A nat chain off the NAT hook's own priority: nat chains run inside the NAT hook
    // (-100 in prerouting), ordered among themselves by their priorities.
    if rng.random_bool(0.5) {
        let prio = pick(rng, &[-90, -110, -100]);
        let to = if v6 { "[fd00:200::2]" } else { "10.200.0.2" };
        let fam = if v6 { "ip6" } else { "ip" };
        let _ = writeln!(
            s,
            "\tchain nat0 {{\n\t\ttype nat hook prerouting priority {prio}; policy accept;\n\t\ttcp dport {} dnat {fam} to {to}:{}\n\t}}",
            pick(rng, &PORTS),
            pick(rng, &PORTS)
        );
    }
    for u in ["u1", "u2"] {
        let _ = writeln!(s, "\tchain {u} {{");
        for _ in 0..rng.random_range(0..4) {
            let r = rule(rng, u, "any");
            let _ = writeln!(s, "\t\t{r}");
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    s
}

/// Probes for a ruleset: `n` NEW packets from the pools.
pub fn probes(seed: u64, v6: bool, n: usize) -> Vec<GenProbe> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|j| {
            let src: IpAddr = pick(&mut rng, if v6 { &SRC6 } else { &SRC4 })
                .parse()
                .expect("pool");
            let local = rng.random_bool(0.6);
            let pool: &[&str] = match (v6, local) {
                (false, true) => &DST4_IN,
                (false, false) => &DST4_FWD,
                (true, true) => &DST6_IN,
                (true, false) => &DST6_FWD,
            };
            let dst: IpAddr = pick(&mut rng, pool).parse().expect("pool");
            let protocol = pick(&mut rng, &[6u8, 6, 17, if v6 { 58 } else { 1 }]);
            let mut sport = pick(&mut rng, &PORTS);
            let dport = pick(&mut rng, &PORTS);
            let established = protocol != 6 && rng.random_bool(0.3);
            if established && protocol == 17 {
                sport = 50_000 + j as u16;
            }
            GenProbe {
                src,
                dst,
                protocol,
                sport,
                dport,
                local,
                established,
            }
        })
        .collect()
}

/// Probes for the kernel check's connection mode: as [`probes`], all NEW (no seeded
/// entries), each TCP or UDP probe with a source port of its own (41000 + its index), so
/// that no two connections of a batch share a tuple and NAT never has to pick another port.
pub fn connection_probes(seed: u64, v6: bool, n: usize) -> Vec<GenProbe> {
    let mut ps = probes(seed, v6, n);
    for (j, p) in ps.iter_mut().enumerate() {
        p.established = false;
        if matches!(p.protocol, 6 | 17) {
            p.sport = 41_000 + j as u16;
        }
    }
    ps
}

fn ports(a: u16, b: u16, sep: &str) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}{sep}{b}")
    }
}

fn bang(neg: bool) -> &'static str {
    if neg {
        "! "
    } else {
        ""
    }
}

fn ne(neg: bool) -> &'static str {
    if neg {
        "!= "
    } else {
        ""
    }
}

impl GenRuleset {
    /// `iptables-save` text (ip6tables-save for IPv6) as iptables-legacy writes it; every
    /// table, every built-in chain.
    pub fn to_iptables(&self) -> String {
        self.to_iptables_for(false)
    }

    /// The same, with the header of `iptables-nft-save` when `nft_backend` (the security
    /// table then sits at priority 150 instead of 50, and fwsim reads the header).
    pub fn to_iptables_for(&self, nft_backend: bool) -> String {
        let mut s = String::new();
        let tool = match (self.v6, nft_backend) {
            (false, false) => "iptables-save v1.8.9",
            (true, false) => "ip6tables-save v1.8.9",
            (false, true) => "iptables-nft-save v1.8.9 (nf_tables)",
            (true, true) => "ip6tables-nft-save v1.8.9 (nf_tables)",
        };
        let _ = writeln!(s, "# Generated by {tool} (fwsim kernel-check)");
        for t in &self.tables {
            let _ = writeln!(s, "*{}", t.table.name());
            for c in &t.chains {
                let pol = match c.policy {
                    Some(true) => "ACCEPT",
                    Some(false) => "DROP",
                    None => "-",
                };
                let _ = writeln!(s, ":{} {} [0:0]", c.name, pol);
            }
            for c in &t.chains {
                for r in &c.rules {
                    let _ = write!(s, "-A {}", c.name);
                    for m in &r.matches {
                        s.push(' ');
                        s.push_str(&ipt_match(m, &r.matches, self.v6));
                    }
                    let t = ipt_target(&r.target, self.v6);
                    if !t.is_empty() {
                        s.push(' ');
                        s.push_str(&t);
                    }
                    s.push('\n');
                }
            }
            s.push_str("COMMIT\n");
        }
        s
    }

    /// nft text: one table per iptables table, named as it, base chains at the iptables
    /// tables' priorities.
    pub fn to_nft(&self) -> String {
        let fam = if self.v6 { "ip6" } else { "ip" };
        let mut s = String::new();
        for t in &self.tables {
            let _ = writeln!(s, "table {fam} {} {{", t.table.name());
            for c in &t.chains {
                let _ = writeln!(s, "\tchain {} {{", c.name);
                if let Some(policy) = c.policy {
                    let hook = c.name.to_lowercase();
                    let (ty, prio) = match (t.table, c.name.as_str()) {
                        (GenTable::Raw, _) => ("filter", "raw"),
                        (GenTable::Mangle, "OUTPUT") => ("route", "mangle"),
                        (GenTable::Mangle, _) => ("filter", "mangle"),
                        // nft 1.0.6 takes `dstnat`/`srcnat` only on prerouting/postrouting.
                        (GenTable::Nat, "PREROUTING") => ("nat", "dstnat"),
                        (GenTable::Nat, "OUTPUT") => ("nat", "-100"),
                        (GenTable::Nat, "INPUT") => ("nat", "100"),
                        (GenTable::Nat, _) => ("nat", "srcnat"),
                        (GenTable::Filter, _) => ("filter", "filter"),
                        (GenTable::Security, _) => ("filter", "security"),
                    };
                    let _ = writeln!(
                        s,
                        "\t\ttype {ty} hook {hook} priority {prio}; policy {};",
                        if policy { "accept" } else { "drop" }
                    );
                }
                for r in &c.rules {
                    s.push_str("\t\t");
                    let mut parts: Vec<String> = Vec::new();
                    let mut comment = None;
                    for m in &r.matches {
                        match m {
                            GenMatch::Comment(c) => comment = Some(c.clone()),
                            _ => parts.push(nft_match(m, &r.matches, self.v6)),
                        }
                    }
                    parts.retain(|p| !p.is_empty());
                    parts.push(nft_target(&r.target, self.v6));
                    if let Some(c) = comment {
                        parts.push(format!("comment \"{c}\""));
                    }
                    s.push_str(&parts.join(" "));
                    s.push('\n');
                }
                s.push_str("\t}\n");
            }
            s.push_str("}\n");
        }
        if let Some(extra) = &self.nft_extra {
            s.push_str(extra);
        }
        s
    }
}

fn proto_of(ms: &[GenMatch]) -> &'static str {
    ms.iter()
        .find_map(|m| match m {
            GenMatch::Proto(p, false) => Some(*p),
            _ => None,
        })
        .unwrap_or("tcp")
}

/// As iptables-save prints it: every module named (`-p tcp -m tcp --dport 22`).
fn ipt_match(m: &GenMatch, all: &[GenMatch], v6: bool) -> String {
    let l4 = proto_of(all);
    match m {
        GenMatch::Src(a, n) => format!("{}-s {a}", bang(*n)),
        GenMatch::Dst(a, n) => format!("{}-d {a}", bang(*n)),
        GenMatch::Proto(p, n) => format!("{}-p {p}", bang(*n)),
        GenMatch::Dport(a, b, n) => {
            format!("-m {l4} {}--dport {}", bang(*n), ports(*a, *b, ":"))
        }
        GenMatch::Sport(a, b, n) => {
            format!("-m {l4} {}--sport {}", bang(*n), ports(*a, *b, ":"))
        }
        GenMatch::Multiport(list, n) => format!(
            "-m multiport {}--dports {}",
            bang(*n),
            list.iter()
                .map(|(a, b)| ports(*a, *b, ":"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        GenMatch::Iif(i, n) => format!("{}-i {i}", bang(*n)),
        GenMatch::Oif(i, n) => format!("{}-o {i}", bang(*n)),
        GenMatch::CtState(st, n) => format!("-m conntrack {}--ctstate {}", bang(*n), st.join(",")),
        GenMatch::Mark(v, m, n) => format!("-m mark {}--mark {v:#x}/{m:#x}", bang(*n)),
        GenMatch::ConnMark(v, m, n) => format!("-m connmark {}--mark {v:#x}/{m:#x}", bang(*n)),
        GenMatch::Syn(n) => format!("-m tcp {}--syn", bang(*n)),
        GenMatch::IcmpEcho(n) => {
            if v6 {
                format!("-m icmp6 {}--icmpv6-type 128", bang(*n))
            } else {
                format!("-m icmp {}--icmp-type 8", bang(*n))
            }
        }
        GenMatch::Comment(c) => format!("-m comment --comment \"{c}\""),
    }
}

fn ipt_target(t: &GenTarget, v6: bool) -> String {
    match t {
        GenTarget::None => String::new(),
        GenTarget::Accept => "-j ACCEPT".into(),
        GenTarget::Drop => "-j DROP".into(),
        GenTarget::Reject(w) => format!("-j REJECT --reject-with {w}"),
        GenTarget::Return => "-j RETURN".into(),
        GenTarget::Jump(c) => format!("-j {c}"),
        GenTarget::Goto(c) => format!("-g {c}"),
        GenTarget::Mark(v, m) => format!("-j MARK --set-xmark {v:#x}/{m:#x}"),
        GenTarget::ConnMark(v, m) => format!("-j CONNMARK --set-xmark {v:#x}/{m:#x}"),
        GenTarget::SaveMark => {
            "-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff".into()
        }
        GenTarget::RestoreMark => {
            "-j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff".into()
        }
        GenTarget::NoTrack => "-j CT --notrack".into(),
        GenTarget::Dnat(a, p) => {
            if v6 {
                format!("-j DNAT --to-destination [{a}]:{p}")
            } else {
                format!("-j DNAT --to-destination {a}:{p}")
            }
        }
        GenTarget::Snat(a) => format!("-j SNAT --to-source {a}"),
        GenTarget::Masquerade => "-j MASQUERADE".into(),
    }
}

fn nft_match(m: &GenMatch, all: &[GenMatch], v6: bool) -> String {
    let ip = if v6 { "ip6" } else { "ip" };
    let l4 = proto_of(all);
    match m {
        GenMatch::Src(a, n) => format!("{ip} saddr {}{a}", ne(*n)),
        GenMatch::Dst(a, n) => format!("{ip} daddr {}{a}", ne(*n)),
        GenMatch::Proto(p, n) => {
            let p = if *p == "ipv6-icmp" { "ipv6-icmp" } else { p };
            format!("meta l4proto {}{p}", ne(*n))
        }
        GenMatch::Dport(a, b, n) => format!("{l4} dport {}{}", ne(*n), ports(*a, *b, "-")),
        GenMatch::Sport(a, b, n) => format!("{l4} sport {}{}", ne(*n), ports(*a, *b, "-")),
        GenMatch::Multiport(list, n) => format!(
            "{l4} dport {}{{ {} }}",
            ne(*n),
            list.iter()
                .map(|(a, b)| ports(*a, *b, "-"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        GenMatch::Iif(i, n) => format!("iifname {}\"{}\"", ne(*n), i.replace('+', "*")),
        GenMatch::Oif(i, n) => format!("oifname {}\"{}\"", ne(*n), i.replace('+', "*")),
        GenMatch::CtState(st, n) => format!(
            "ct state {}{{ {} }}",
            ne(*n),
            st.iter()
                .map(|s| s.to_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        GenMatch::Mark(v, m, n) => format!(
            "meta mark & {m:#x} {}{v:#x}",
            if *n { "!= " } else { "== " }
        ),
        GenMatch::ConnMark(v, m, n) => {
            format!("ct mark & {m:#x} {}{v:#x}", if *n { "!= " } else { "== " })
        }
        GenMatch::Syn(n) => format!(
            "tcp flags & (fin|syn|rst|ack) {}syn",
            if *n { "!= " } else { "== " }
        ),
        GenMatch::IcmpEcho(n) => {
            if v6 {
                format!("icmpv6 type {}echo-request", ne(*n))
            } else {
                format!("icmp type {}echo-request", ne(*n))
            }
        }
        GenMatch::Comment(_) => String::new(),
    }
}

fn nft_target(t: &GenTarget, v6: bool) -> String {
    match t {
        GenTarget::None => "counter".into(),
        GenTarget::Accept => "accept".into(),
        GenTarget::Drop => "drop".into(),
        GenTarget::Reject(w) => match *w {
            "tcp-reset" => "reject with tcp reset".into(),
            "icmp-port-unreachable" => "reject with icmp type port-unreachable".into(),
            "icmp-host-prohibited" => "reject with icmp type host-prohibited".into(),
            "icmp-admin-prohibited" => "reject with icmp type admin-prohibited".into(),
            "icmp6-port-unreachable" => "reject with icmpv6 type port-unreachable".into(),
            "icmp6-adm-prohibited" => "reject with icmpv6 type admin-prohibited".into(),
            other => format!("reject with {other}"),
        },
        GenTarget::Return => "return".into(),
        GenTarget::Jump(c) => format!("jump {c}"),
        GenTarget::Goto(c) => format!("goto {c}"),
        GenTarget::Mark(v, m) => format!("meta mark set meta mark & {:#x} ^ {v:#x}", !m),
        GenTarget::ConnMark(v, m) => format!("ct mark set ct mark & {:#x} ^ {v:#x}", !m),
        GenTarget::SaveMark => "ct mark set meta mark".into(),
        GenTarget::RestoreMark => "meta mark set ct mark".into(),
        GenTarget::NoTrack => "notrack".into(),
        GenTarget::Dnat(a, p) => {
            if v6 {
                format!("dnat to [{a}]:{p}")
            } else {
                format!("dnat to {a}:{p}")
            }
        }
        GenTarget::Snat(a) => format!("snat to {a}"),
        GenTarget::Masquerade => "masquerade".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rulesets_parse_and_are_deterministic() {
        for seed in 0..300 {
            let g = generate(seed);
            assert_eq!(g, generate(seed));
            let text = g.to_iptables();
            crate::netfilter::read_ruleset(&text)
                .unwrap_or_else(|e| panic!("seed {seed}: {}: {}\n{text}", e.loc, e.message));
        }
    }
}
