//! The simulator against the Linux kernel (needs root and iptables/nftables; skips, saying
//! why, where they are missing). Each test makes its own namespaces and deletes them.

use fwsim::kernel::check::{run, CheckOptions};
use fwsim::kernel::{available, Backend};
use fwsim::netfilter::ir::{Action, Policy, Ruleset};

fn backends() -> Vec<Backend> {
    vec![Backend::Legacy, Backend::IptablesNft]
}

fn skip(backends: &[Backend]) -> bool {
    match available(backends) {
        Ok(()) => false,
        Err(e) => {
            eprintln!("skipped: {e}");
            true
        }
    }
}

#[test]
fn simulator_agrees_with_the_kernel() {
    let backends = backends();
    if skip(&backends) {
        return;
    }
    let opts = CheckOptions {
        seed: 20261130,
        cases: 600,
        probes_per_ruleset: 20,
        backends,
        out_dir: None,
        connections: true,
        plant: None,
    };
    let report = run(&opts, |_, _, _| {}).expect("kernel check runs");
    print!("{report}");
    for (b, r) in &report.backends {
        // The probes, and the replies of connection mode's forwarded UDP connections.
        assert_eq!(r.cases, 600 + r.replies, "{}", b.as_str());
        assert!(r.replies > 0, "connection mode sent no reply: {report}");
        assert!(
            r.load_errors.is_empty() && r.parse_errors.is_empty(),
            "{report}"
        );
        // Every kind of verdict was exercised, so agreement means something.
        assert!(r.kernel_fates.iter().all(|&n| n > 0), "{report}");
        assert_eq!(r.disagree, 0, "{report}");
        assert!(
            r.inconclusive * 20 < r.cases,
            "too many inconclusive: {report}"
        );
    }
    assert!(report.clean());
}

/// A wrong semantics planted in the simulator (drop policies read as accept, accepts
/// as drops) must show up as disagreements: the check can fail.
#[test]
fn planted_wrong_semantics_is_caught() {
    let backends = vec![Backend::Legacy];
    if skip(&backends) {
        return;
    }
    fn plant(rs: &mut Ruleset) {
        for t in &mut rs.tables {
            for c in &mut t.chains {
                if let Some(b) = &mut c.base {
                    b.policy = Policy::Accept;
                }
                for r in &mut c.rules {
                    if r.action == Action::Accept {
                        r.action = Action::Drop;
                    }
                }
            }
        }
    }
    let opts = CheckOptions {
        seed: 7,
        cases: 200,
        probes_per_ruleset: 20,
        backends,
        out_dir: None,
        connections: true,
        plant: Some(plant),
    };
    let report = run(&opts, |_, _, _| {}).expect("kernel check runs");
    assert!(report.disagreements.len() > 20, "{report}");
    assert!(!report.clean());
}

/// Established probes really are established in the kernel: a simulator that forgets the
/// ESTABLISHED state in `--ctstate` / `ct state` matches disagrees with it.
#[test]
fn established_probes_are_seeded() {
    let backends = vec![Backend::Legacy];
    if skip(&backends) {
        return;
    }
    fn plant(rs: &mut Ruleset) {
        for t in &mut rs.tables {
            for c in &mut t.chains {
                for r in &mut c.rules {
                    for m in &mut r.matches {
                        if let fwsim::netfilter::ir::Match::CtState { states, .. } = m {
                            *states &= !fwsim::netfilter::ir::ct::ESTABLISHED;
                        }
                    }
                }
            }
        }
    }
    let opts = CheckOptions {
        seed: 11,
        cases: 600,
        probes_per_ruleset: 20,
        backends,
        out_dir: None,
        connections: true,
        plant: Some(plant),
    };
    let report = run(&opts, |_, _, _| {}).expect("kernel check runs");
    assert!(!report.disagreements.is_empty(), "{report}");
    assert!(
        report
            .disagreements
            .iter()
            .all(|d| d.packet.ctstate == fwsim::values::CtState::Established),
        "{report}"
    );
}

/// ipsets: the sets and rules below loaded into the kernel (`ipset restore`, then
/// iptables-restore), probes over address/port pools chosen around the sets' boundaries
/// (nomatch holes, netmask, families, interfaces, list:set members), and fwsim's verdict
/// on each compared with the kernel's. A planted wrong semantics (one negation flipped)
/// must disagree somewhere, so the comparison can fail.
#[test]
fn ipsets_agree_with_the_kernel() {
    use fwsim::gen::ruleset::GenProbe;
    use fwsim::kernel::check::{agrees, dut_host, judge, packet_of};
    use fwsim::kernel::observer::KernelFate;
    use fwsim::netfilter::interp::{walk_on, Fate};
    use fwsim::netfilter::ir::Match;

    let backends = backends();
    if skip(&backends) {
        return;
    }
    const SETS: &str = "\
create six hash:ip family inet6
add six 2001:db8::1
create blocked hash:net family inet
add blocked 192.168.0.0/16
add blocked 192.168.7.0/24 nomatch
add blocked 192.168.7.128/25
create web hash:ip,port family inet
add web 10.201.0.2,tcp:80
add web 10.201.0.2,udp:53
add web 10.200.0.2,icmp:echo-request
add web 10.201.0.3,tcp:8000-8090
create ifs hash:net,iface family inet
add ifs 172.16.0.0/12,dut0
add ifs 10.200.0.0/24,dut1
create ports bitmap:port range 0-65535
add ports 30080
create h1 hash:ip family inet
add h1 203.0.113.9
create h2 hash:ip family inet netmask 24
add h2 198.51.100.70
create lst list:set size 8
add lst h1
add lst h2
create mixed list:set size 8
add mixed six
create ipi hash:ip,port,ip family inet
add ipi 10.200.0.1,tcp:22,10.201.0.1
create ipn hash:ip,port,net family inet
add ipn 10.200.0.2,tcp:443,10.200.0.0/24
add ipn 10.200.0.2,tcp:443,10.200.0.0/28 nomatch
";
    const RULES: &str = "\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:sets - [0:0]
-A INPUT -j sets
-A FORWARD -j sets
-A sets -m set --match-set mixed src -j REJECT
-A sets -p udp --dport 7 -m set ! --match-set mixed src -j ACCEPT
-A sets -m set --match-set blocked src -j DROP
-A sets -p tcp -m set --match-set blocked src --return-nomatch -j REJECT --reject-with tcp-reset
-A sets -m set --match-set web dst -j REJECT
-A sets -m set --match-set web dst,dst -j ACCEPT
-A sets -p udp -m set --match-set ifs src,src -j ACCEPT
-A sets -p tcp -m set --match-set ifs src,dst -j REJECT --reject-with tcp-reset
-A sets -m set --match-set ports dst -j ACCEPT
-A sets -m set --match-set lst src -j REJECT
-A sets -m set --match-set ipi src,dst,dst -j ACCEPT
-A sets -m set --match-set ipn dst,dst,src -j ACCEPT
-A sets -p tcp --dport 8080 -j ACCEPT
COMMIT
";
    let srcs = [
        "192.168.1.5",
        "192.168.7.5",
        "192.168.7.200",
        "10.200.0.1",
        "10.200.0.100",
        "203.0.113.9",
        "198.51.100.7",
        "198.51.101.7",
        "172.16.0.1",
    ];
    let dsts = ["10.200.0.2", "10.201.0.1", "10.201.0.2", "10.201.0.3"];
    let ports = [22u16, 80, 53, 8080, 7, 30080, 443];
    let mut probes = Vec::new();
    for s in srcs {
        for d in dsts {
            for proto in [6u8, 17, 1] {
                for &dport in if proto == 1 { &ports[..1] } else { &ports[..] } {
                    probes.push(GenProbe {
                        src: s.parse().unwrap(),
                        dst: d.parse().unwrap(),
                        protocol: proto,
                        sport: 40000,
                        dport,
                        local: d == "10.200.0.2" || d == "10.201.0.1",
                        established: false,
                    });
                }
            }
        }
    }
    let host = dut_host();
    let mut rs = fwsim::netfilter::read_ruleset(RULES).unwrap();
    fwsim::netfilter::attach_ipsets(&mut rs, fwsim::netfilter::read_ipsets(SETS).unwrap()).unwrap();
    let mut planted = rs.clone();
    for c in &mut planted.tables[0].chains {
        for r in &mut c.rules {
            for m in &mut r.matches {
                if let Match::Set { name, neg, .. } = m {
                    if name == "lst" {
                        *neg = !*neg;
                    }
                }
            }
        }
    }
    for b in backends {
        let kernel = match judge(b, false, RULES, Some(SETS), &probes) {
            Ok(k) => k,
            Err(fwsim::kernel::KernelError::Unavailable(m)) => {
                eprintln!("skipped: {m}");
                return;
            }
            Err(e) => panic!("{}: {e}", b.as_str()),
        };
        let (mut agree, mut planted_disagree) = (0, 0);
        let mut fates = [0usize; 4];
        let mut bad = Vec::new();
        for (p, k) in probes.iter().zip(&kernel) {
            fates[*k as usize] += 1;
            let packet = packet_of(p);
            let w = walk_on(&rs, &packet, Some(&host));
            assert!(!matches!(w.fate, Fate::Inconclusive(_)), "{packet}: {}", w);
            if agrees(*k, &w.fate, w.path) {
                agree += 1;
            } else {
                bad.push(format!("{packet}: kernel {}, fwsim\n{w}", k.as_str()));
            }
            let wp = walk_on(&planted, &packet, Some(&host));
            if !agrees(*k, &wp.fate, wp.path) {
                planted_disagree += 1;
            }
        }
        println!(
            "ipsets [{}]: {agree}/{} probes agree; kernel: {} accept (input), {} accept (forward), {} reject, {} drop; planted: {planted_disagree} disagree",
            b.as_str(),
            probes.len(),
            fates[0],
            fates[1],
            fates[2],
            fates[3]
        );
        assert!(
            bad.is_empty(),
            "{} disagreements:\n{}",
            bad.len(),
            bad.join("\n")
        );
        assert!(fates.iter().all(|&n| n > 0), "{fates:?}");
        assert!(planted_disagree > 0);
        let _ = KernelFate::Drop;
    }
}

/// ipsets on IPv6: ip6tables rules with inet6 sets (hash:net with nomatch, hash:ip,port
/// with ICMPv6 and UDP, hash:ip netmask 64), probes compared with the kernel's verdicts.
#[test]
fn ipsets_agree_with_the_kernel_on_ipv6() {
    use fwsim::gen::ruleset::GenProbe;
    use fwsim::kernel::check::{agrees, dut_host, judge, packet_of};
    use fwsim::netfilter::interp::{walk_on, Fate};

    let backends = backends();
    if skip(&backends) {
        return;
    }
    const SETS: &str = "\
create n6 hash:net family inet6
add n6 2001:db8::/32
add n6 2001:db8:7::/48 nomatch
add n6 2001:db8:7:8000::/49
create p6 hash:ip,port family inet6
add p6 fd00:201::2,ipv6-icmp:echo-request
add p6 fd00:201::2,udp:53
add p6 fd00:200::2,tcp:22
create m6 hash:ip family inet6 netmask 64
add m6 2001:db9::1
";
    const RULES: &str = "# Generated by ip6tables-save
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m set --match-set n6 src -p tcp -j REJECT --reject-with tcp-reset
-A INPUT -m set --match-set p6 dst,dst -j ACCEPT
-A FORWARD -m set ! --match-set n6 src -m set --match-set p6 dst,dst -j ACCEPT
-A FORWARD -m set --match-set m6 src -j REJECT
COMMIT
";
    let srcs = [
        "2001:db8::1",
        "2001:db8:7::1",
        "2001:db8:7:8000::1",
        "2001:db9::ffff",
        "2001:db9:0:1::1",
        "fd00:200::1",
    ];
    let dsts = ["fd00:200::2", "fd00:201::1", "fd00:201::2"];
    let mut probes = Vec::new();
    for s in srcs {
        for d in dsts {
            for (proto, dport) in [(6u8, 22u16), (6, 80), (17, 53), (17, 54), (58, 0)] {
                probes.push(GenProbe {
                    src: s.parse().unwrap(),
                    dst: d.parse().unwrap(),
                    protocol: proto,
                    sport: 40000,
                    dport,
                    local: d != "fd00:201::2",
                    established: false,
                });
            }
        }
    }
    let host = dut_host();
    let mut rs = fwsim::netfilter::read_ruleset(RULES).unwrap();
    fwsim::netfilter::attach_ipsets(&mut rs, fwsim::netfilter::read_ipsets(SETS).unwrap()).unwrap();
    for b in backends {
        let kernel = match judge(b, true, RULES, Some(SETS), &probes) {
            Ok(k) => k,
            Err(fwsim::kernel::KernelError::Unavailable(m)) => {
                eprintln!("skipped: {m}");
                return;
            }
            Err(e) => panic!("{}: {e}", b.as_str()),
        };
        let mut fates = [0usize; 4];
        let mut bad = Vec::new();
        for (p, k) in probes.iter().zip(&kernel) {
            fates[*k as usize] += 1;
            let packet = packet_of(p);
            let w = walk_on(&rs, &packet, Some(&host));
            assert!(!matches!(w.fate, Fate::Inconclusive(_)), "{packet}: {w}");
            if !agrees(*k, &w.fate, w.path) {
                bad.push(format!("{packet}: kernel {}, fwsim\n{w}", k.as_str()));
            }
        }
        println!(
            "ipsets IPv6 [{}]: {}/{} probes agree; kernel: {fates:?} (accept input, accept forward, reject, drop)",
            b.as_str(),
            probes.len() - bad.len(),
            probes.len()
        );
        assert!(
            bad.is_empty(),
            "{} disagreements:\n{}",
            bad.len(),
            bad.join("\n")
        );
        assert!(fates.iter().all(|&n| n > 0), "{fates:?}");
    }
}

/// `fwsim parse --to iptables` keeps the meaning as the kernel sees it: generated rulesets
/// loaded as nft, and their translation loaded with iptables-legacy-restore, give every
/// probe the same fate.
#[test]
fn nft_to_iptables_translation_agrees_in_the_kernel() {
    use fwsim::gen::ruleset::{generate, probes};
    use fwsim::kernel::check::judge;
    let backends = vec![Backend::Legacy, Backend::Nft];
    if skip(&backends) {
        return;
    }
    let mut compared = 0;
    for seed in 100..112u64 {
        let mut g = generate(seed);
        g.nft_extra = None;
        let nft = g.to_nft();
        let Ok(rs) = fwsim::netfilter::read_ruleset(&nft) else {
            continue;
        };
        let ipt = fwsim::netfilter::to_iptables::to_iptables(&rs).expect("translates");
        let ps = probes(seed, g.v6, 20);
        let a = judge(Backend::Nft, g.v6, &nft, None, &ps).expect("nft loads");
        let b = judge(Backend::Legacy, g.v6, &ipt, None, &ps).expect("the translation loads");
        assert_eq!(a, b, "seed {seed}\n{nft}\n{ipt}");
        compared += ps.len();
    }
    assert!(compared >= 200, "{compared}");
}
