//! Generated iptables-save rulesets and packets for the interpreter benchmark
//! (`fwsim bench netfilter`) and its tests.
//!
//! Contract: the same seed and sizes give the same text and packets (ChaCha8). Each
//! generated packet carries the fate the ruleset was built to give it, so tests can check
//! the generator and the interpreter against each other.
//!
//! - [`linear`]: one INPUT chain (policy DROP) of `n` rules `-s ADDR/32 -p tcp --dport P -j
//!   ACCEPT`. Most packets match none of them and walk the whole chain; some match a rule
//!   in the first 1% of the chain, some a rule anywhere.
//! - [`calico`]: a Calico-like filter table: `cali-INPUT`/`cali-FORWARD` dispatch, two
//!   levels of workload dispatch chains by interface name (`-g cali-fw-caliXXXX`), per
//!   endpoint chains (conntrack accept, mark bits 0x10000 "accepted" and 0x20000 "a policy
//!   in the tier matched", end-of-tier drop) and per policy chains. Policy peers are `-s`
//!   CIDR matches.
//! - [`calico_ipset`]: the same table with the peers as Calico renders them: one
//!   `hash:net` ipset per policy rule (`-m set --match-set cali40s:... src|dst`) holding
//!   1 to 16 endpoint addresses and sometimes a /24 or /16; the sets come as `ipset save`
//!   text in [`Generated::ipsets`].

use crate::values::{CtState, Hook, Packet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// What the generator built a packet to get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    Accept,
    Drop,
}

/// A generated ruleset, its rule count, and packets with the fate each should get.
#[derive(Clone, Debug)]
pub struct Generated {
    pub text: String,
    /// The host's ipsets (`ipset save` text) the ruleset names, if any.
    pub ipsets: Option<String>,
    pub rules: usize,
    pub packets: Vec<(Packet, Expected)>,
}

fn tcp(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, hook: Hook) -> Packet {
    Packet {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        protocol: 6,
        sport: Some(40000),
        dport: Some(dport),
        iif: (hook != Hook::Output).then(|| "eth0".to_string()),
        oif: None,
        hook,
        ctstate: CtState::New,
        mark: 0,
    }
}

/// A linear INPUT chain of `n` rules and `packets` packets (see the module docs).
pub fn linear(seed: u64, n: usize, packets: usize) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Rule i: source 10.x.y.z (distinct: i + 1 spread over 10/8), port from a small set.
    let rule = |i: usize| -> (Ipv4Addr, u16) {
        let a = (i as u32).wrapping_mul(2_654_435_761) % 0x00ff_ffff + 1;
        (
            Ipv4Addr::from(0x0a00_0000 | a),
            [22u16, 80, 443, 8080, 5432][i % 5],
        )
    };
    let mut text = String::with_capacity(n * 70 + 200);
    text.push_str("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for i in 0..n {
        let (src, port) = rule(i);
        let _ = writeln!(
            text,
            "-A INPUT -s {src}/32 -p tcp -m tcp --dport {port} -j ACCEPT"
        );
    }
    text.push_str("COMMIT\n");
    let dst = Ipv4Addr::new(192, 0, 2, 1);
    let mut out = Vec::with_capacity(packets);
    for _ in 0..packets {
        let roll: u32 = rng.random_range(0..100);
        if n > 0 && roll < 5 {
            // Early: one of the first 1% of rules.
            let (src, port) = rule(rng.random_range(0..n.div_ceil(100)));
            out.push((tcp(src, dst, port, Hook::Input), Expected::Accept));
        } else if n > 0 && roll < 15 {
            let (src, port) = rule(rng.random_range(0..n));
            out.push((tcp(src, dst, port, Hook::Input), Expected::Accept));
        } else {
            // 192.168/16 is no rule's source: the whole chain, then the policy.
            let src = Ipv4Addr::from(0xc0a8_0000 | rng.random_range(0..0x1_0000u32));
            out.push((tcp(src, dst, 80, Hook::Input), Expected::Drop));
        }
    }
    Generated {
        rules: n,
        text,
        ipsets: None,
        packets: out,
    }
}

/// Sizes of the Calico-like ruleset.
#[derive(Clone, Copy, Debug)]
pub struct CalicoShape {
    pub endpoints: usize,
    pub policies: usize,
    /// Policies applied to each endpoint, on ingress and on egress.
    pub policies_per_endpoint: usize,
    pub rules_per_policy: usize,
}

impl Default for CalicoShape {
    fn default() -> Self {
        CalicoShape {
            endpoints: 500,
            policies: 200,
            policies_per_endpoint: 3,
            rules_per_policy: 5,
        }
    }
}

/// One policy rule: the peer network, the port, and (ipset variant) more peer networks.
#[derive(Clone)]
struct PolicyRule {
    net: u32,
    prefix: u8,
    port: u16,
    more: Vec<(u32, u8)>,
}

fn in_net(addr: u32, r: &PolicyRule) -> bool {
    let within = |net: u32, prefix: u8| {
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        addr & mask == net & mask
    };
    within(r.net, r.prefix) || r.more.iter().any(|&(n, p)| within(n, p))
}

/// A Calico-like filter table and pod-to-pod / pod-to-host packets (see the module docs).
pub fn calico(seed: u64, shape: CalicoShape, packets: usize) -> Generated {
    calico_gen(seed, shape, packets, false)
}

/// The Calico-like table with ipset peers (see the module docs).
pub fn calico_ipset(seed: u64, shape: CalicoShape, packets: usize) -> Generated {
    calico_gen(seed, shape, packets, true)
}

fn calico_gen(seed: u64, shape: CalicoShape, packets: usize, with_sets: bool) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let e = shape.endpoints.max(1);
    // Endpoint k: interface cali<hex>, address 10.244.(k / 250).(k % 250 + 2).
    let iface = |k: usize| {
        format!(
            "cali{:011x}",
            (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20
        )
    };
    let addr = |k: usize| 0x0af4_0000u32 | (((k / 250) as u32) << 8) | (k % 250 + 2) as u32;
    let policies: Vec<Vec<PolicyRule>> = (0..shape.policies.max(1))
        .map(|_| {
            (0..shape.rules_per_policy)
                .map(|_| {
                    let k = rng.random_range(0..e);
                    let prefix = [32u8, 24, 24, 16][rng.random_range(0..4)];
                    let port = [80u16, 443, 8080, 5432, 6379][rng.random_range(0..5)];
                    let mut more = Vec::new();
                    if with_sets {
                        // A selector's members: endpoint addresses, sometimes a CIDR.
                        for _ in 0..rng.random_range(0..16) {
                            more.push((addr(rng.random_range(0..e)), 32));
                        }
                        if rng.random_bool(0.25) {
                            let p = [24u8, 16][rng.random_range(0..2)];
                            more.push((addr(rng.random_range(0..e)) & (u32::MAX << (32 - p)), p));
                        }
                    }
                    PolicyRule {
                        net: addr(k),
                        prefix,
                        port,
                        more,
                    }
                })
                .collect()
        })
        .collect();
    let pick = |rng: &mut ChaCha8Rng| -> Vec<usize> {
        (0..shape.policies_per_endpoint)
            .map(|_| rng.random_range(0..policies.len()))
            .collect()
    };
    let ingress: Vec<Vec<usize>> = (0..e).map(|_| pick(&mut rng)).collect();
    let egress: Vec<Vec<usize>> = (0..e).map(|_| pick(&mut rng)).collect();

    let mut t = String::new();
    let mut rules = 0usize;
    let mut rule = |t: &mut String, line: String| {
        t.push_str(&line);
        t.push('\n');
        rules += 1;
    };
    t.push_str("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    let fixed = [
        "cali-INPUT",
        "cali-FORWARD",
        "cali-wl-to-host",
        "cali-from-hep-forward",
        "cali-to-hep-forward",
        "cali-from-host-endpoint",
        "cali-from-wl-dispatch",
        "cali-to-wl-dispatch",
    ];
    for c in fixed {
        let _ = writeln!(t, ":{c} - [0:0]");
    }
    let prefixes: Vec<char> = {
        let mut p: Vec<char> = (0..e)
            .map(|k| iface(k).chars().nth(4).unwrap_or('0'))
            .collect();
        p.sort();
        p.dedup();
        p
    };
    for p in &prefixes {
        let _ = writeln!(t, ":cali-from-wl-dispatch-{p} - [0:0]");
        let _ = writeln!(t, ":cali-to-wl-dispatch-{p} - [0:0]");
    }
    for k in 0..e {
        let _ = writeln!(t, ":cali-fw-{} - [0:0]", iface(k));
        let _ = writeln!(t, ":cali-tw-{} - [0:0]", iface(k));
    }
    for p in 0..policies.len() {
        let _ = writeln!(t, ":cali-pi-_pol{p} - [0:0]");
        let _ = writeln!(t, ":cali-po-_pol{p} - [0:0]");
    }
    rule(
        &mut t,
        "-A INPUT -m comment --comment \"cali:Cz_u1IQiXIMmKD4c\" -j cali-INPUT".into(),
    );
    rule(
        &mut t,
        "-A FORWARD -m comment --comment \"cali:wUHhoiAYhphO9Mso\" -j cali-FORWARD".into(),
    );
    rule(&mut t, "-A cali-INPUT -i cali+ -g cali-wl-to-host".into());
    rule(
        &mut t,
        "-A cali-INPUT -j MARK --set-xmark 0x0/0xf0000".into(),
    );
    rule(&mut t, "-A cali-INPUT -j cali-from-host-endpoint".into());
    rule(
        &mut t,
        "-A cali-INPUT -m mark --mark 0x10000/0x10000 -j ACCEPT".into(),
    );
    rule(&mut t, "-A cali-wl-to-host -j cali-from-wl-dispatch".into());
    rule(&mut t, "-A cali-wl-to-host -m comment --comment \"Configured DefaultEndpointToHostAction\" -j ACCEPT".into());
    rule(
        &mut t,
        "-A cali-FORWARD -j MARK --set-xmark 0x0/0xe0000".into(),
    );
    rule(
        &mut t,
        "-A cali-FORWARD -m mark --mark 0x0/0x10000 -j cali-from-hep-forward".into(),
    );
    rule(
        &mut t,
        "-A cali-FORWARD -i cali+ -j cali-from-wl-dispatch".into(),
    );
    rule(
        &mut t,
        "-A cali-FORWARD -o cali+ -j cali-to-wl-dispatch".into(),
    );
    rule(&mut t, "-A cali-FORWARD -j cali-to-hep-forward".into());
    rule(
        &mut t,
        "-A cali-FORWARD -m mark --mark 0x10000/0x10000 -j ACCEPT".into(),
    );
    for (dir, short) in [("from", "fw"), ("to", "tw")] {
        let io = if dir == "from" { "-i" } else { "-o" };
        for p in &prefixes {
            rule(
                &mut t,
                format!("-A cali-{dir}-wl-dispatch {io} cali{p}+ -g cali-{dir}-wl-dispatch-{p}"),
            );
        }
        rule(
            &mut t,
            format!("-A cali-{dir}-wl-dispatch -m comment --comment \"Unknown interface\" -j DROP"),
        );
        for k in 0..e {
            let name = iface(k);
            let p = name.chars().nth(4).unwrap_or('0');
            rule(
                &mut t,
                format!("-A cali-{dir}-wl-dispatch-{p} {io} {name} -g cali-{short}-{name}"),
            );
        }
        for p in &prefixes {
            rule(&mut t, format!("-A cali-{dir}-wl-dispatch-{p} -m comment --comment \"Unknown interface\" -j DROP"));
        }
    }
    for k in 0..e {
        let name = iface(k);
        for (short, pols, kind) in [("fw", &egress[k], "po"), ("tw", &ingress[k], "pi")] {
            let c = format!("cali-{short}-{name}");
            rule(
                &mut t,
                format!("-A {c} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            );
            rule(
                &mut t,
                format!("-A {c} -m conntrack --ctstate INVALID -j DROP"),
            );
            rule(&mut t, format!("-A {c} -j MARK --set-xmark 0x0/0x10000"));
            rule(&mut t, format!("-A {c} -m comment --comment \"Start of policies\" -j MARK --set-xmark 0x0/0x20000"));
            for &p in pols.iter() {
                rule(
                    &mut t,
                    format!("-A {c} -m mark --mark 0x0/0x20000 -j cali-{kind}-_pol{p}"),
                );
                rule(&mut t, format!("-A {c} -m comment --comment \"Return if policy accepted\" -m mark --mark 0x10000/0x10000 -j RETURN"));
            }
            rule(&mut t, format!("-A {c} -m comment --comment \"Drop if no policies passed packet\" -m mark --mark 0x0/0x20000 -j DROP"));
            rule(
                &mut t,
                format!("-A {c} -m comment --comment \"Drop if no profiles matched\" -j DROP"),
            );
        }
    }
    let mut sets = String::new();
    for (p, pol) in policies.iter().enumerate() {
        for (i, r) in pol.iter().enumerate() {
            if !with_sets {
                break;
            }
            let _ = writeln!(
                sets,
                "create cali40s:p{p}r{i} hash:net family inet hashsize 1024 maxelem 1048576"
            );
            let mut members: Vec<(u32, u8)> = std::iter::once((r.net, r.prefix))
                .chain(r.more.iter().copied())
                .map(|(n, pl)| (n & (u32::MAX << (32 - pl)), pl))
                .collect();
            members.sort_unstable();
            members.dedup();
            for (n, pl) in members {
                let _ = writeln!(sets, "add cali40s:p{p}r{i} {}/{pl}", Ipv4Addr::from(n));
            }
        }
        for (kind, peer) in [("pi", "-s"), ("po", "-d")] {
            let c = format!("cali-{kind}-_pol{p}");
            for (i, r) in pol.iter().enumerate() {
                let peer = if with_sets {
                    let dir = if peer == "-s" { "src" } else { "dst" };
                    format!("-m set --match-set cali40s:p{p}r{i} {dir}")
                } else {
                    format!("{peer} {}/{}", Ipv4Addr::from(r.net), r.prefix)
                };
                rule(
                    &mut t,
                    format!(
                        "-A {c} -p tcp -m tcp --dport {} {peer} -j MARK --set-xmark 0x10000/0x10000",
                        r.port,
                    ),
                );
                rule(
                    &mut t,
                    format!("-A {c} -m mark --mark 0x10000/0x10000 -j RETURN"),
                );
            }
        }
    }
    t.push_str("COMMIT\n");

    // The fate: the source endpoint's egress policies must allow the destination (peer =
    // destination), then the destination's ingress policies the source. Established packets
    // are accepted by the first endpoint chain.
    let allows = |pols: &[usize], peer: u32, port: u16| {
        pols.iter().any(|&p| {
            policies[p]
                .iter()
                .any(|r| r.port == port && in_net(peer, r))
        })
    };
    let mut out = Vec::with_capacity(packets);
    for _ in 0..packets {
        let s = rng.random_range(0..e);
        let d = rng.random_range(0..e);
        let port = [80u16, 443, 8080, 5432, 6379][rng.random_range(0..5)];
        let established = rng.random_bool(0.2);
        let to_host = rng.random_bool(0.1);
        let (src, dst) = (addr(s), addr(d));
        let mut p = tcp(
            Ipv4Addr::from(src),
            Ipv4Addr::from(dst),
            port,
            Hook::Forward,
        );
        p.iif = Some(iface(s));
        p.oif = Some(iface(d));
        if established {
            p.ctstate = CtState::Established;
        }
        let expected = if to_host {
            p.hook = Hook::Input;
            p.oif = None;
            p.dst = IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1));
            if established || allows(&egress[s], 0xc0a8_0001, port) {
                Expected::Accept
            } else {
                Expected::Drop
            }
        } else if established || (allows(&egress[s], dst, port) && allows(&ingress[d], src, port)) {
            Expected::Accept
        } else {
            Expected::Drop
        };
        out.push((p, expected));
    }
    Generated {
        text: t,
        ipsets: with_sets.then_some(sets),
        rules,
        packets: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::interp::{walk, Fate};
    use crate::netfilter::read_ruleset;

    fn check(g: &Generated) -> (usize, usize) {
        let mut rs = read_ruleset(&g.text).unwrap_or_else(|e| panic!("{}: {}", e.loc, e.message));
        if let Some(sets) = &g.ipsets {
            let sets = crate::netfilter::read_ipsets(sets)
                .unwrap_or_else(|e| panic!("{}: {}", e.loc, e.message));
            crate::netfilter::attach_ipsets(&mut rs, sets).unwrap();
        }
        let n: usize = rs
            .tables
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.rules.len())
            .sum();
        assert_eq!(n, g.rules);
        let (mut acc, mut drop) = (0, 0);
        for (p, want) in &g.packets {
            let w = walk(&rs, p);
            match (want, &w.fate) {
                (Expected::Accept, Fate::Accept) => acc += 1,
                (Expected::Drop, Fate::Drop) => drop += 1,
                _ => panic!("{p}: expected {want:?}\n{w}"),
            }
        }
        (acc, drop)
    }

    #[test]
    fn linear_chain_fates() {
        let g = linear(7, 2_000, 300);
        assert_eq!(g.text, linear(7, 2_000, 300).text, "seeded");
        let (acc, drop) = check(&g);
        assert!(acc > 0 && drop > acc, "{acc} accepted, {drop} dropped");
    }

    #[test]
    fn calico_like_fates() {
        let shape = CalicoShape {
            endpoints: 60,
            policies: 20,
            policies_per_endpoint: 2,
            rules_per_policy: 4,
        };
        let g = calico(3, shape, 400);
        assert_eq!(g.text, calico(3, shape, 400).text, "seeded");
        let (acc, drop) = check(&g);
        assert!(acc > 0 && drop > 0, "{acc} accepted, {drop} dropped");
        let g = calico_ipset(3, shape, 400);
        assert_eq!(g.ipsets, calico_ipset(3, shape, 400).ipsets, "seeded");
        assert!(g.text.contains("--match-set cali40s:"));
        let (acc2, drop2) = check(&g);
        assert!(acc2 > 0 && drop2 > 0, "{acc2} accepted, {drop2} dropped");
        // The sets hold more peers than the single CIDRs: more packets get through.
        assert!(acc2 > acc, "{acc2} vs {acc}");
    }
}
