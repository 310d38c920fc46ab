//! Node snapshots against the kernel: real rulesets loaded into a namespace, the
//! namespace collected with `fwsim collect --netns`, random packets traced through the
//! snapshot (their path derived from its routes, as `fwsim trace --node` does) and the same
//! packets sent through the kernel. Every verdict fwsim gives must be the kernel's, and
//! fwsim must give one (not inconclusive) for at least 95% of the packets.
//!
//! Rulesets: the shared corpus (`../shared/rulesets`, where present: Calico, Docker,
//! kube-proxy, firewalld, OpenWrt...) and what fwsim's own renderers write for a bundled
//! scenario (kube-proxy's and Calico's iptables rules). Needs root and the iptables,
//! nftables and ipset tools; skips, saying why, without them.

use fwsim::gen::ruleset::GenProbe;
use fwsim::kernel::check::{agrees, judge_collected};
use fwsim::kernel::{available, Backend};
use fwsim::snapshot::place::{place, Given, Placed};
use rand::{Rng, SeedableRng};
use std::net::IpAddr;
use std::path::PathBuf;

/// Addresses and ports a ruleset text mentions (the packets that reach its rules).
fn mentioned(text: &str) -> (Vec<ipnet::IpNet>, Vec<u16>) {
    let mut nets = Vec::new();
    let mut ports = Vec::new();
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '{' | '}' | '"' | '[' | ']'))
        .filter(|w| !w.is_empty())
        .collect();
    for (i, w) in words.iter().enumerate() {
        let w = w.trim_end_matches(';');
        if let Ok(n) = w.parse::<ipnet::IpNet>() {
            nets.push(n.trunc());
        } else if let Ok(a) = w.parse::<IpAddr>() {
            nets.push(a.into());
        } else if let Some((a, _)) = w.split_once(':').filter(|_| w.contains('.')) {
            if let Ok(a) = a.parse::<IpAddr>() {
                nets.push(a.into());
            }
        }
        let prev = if i > 0 { words[i - 1] } else { "" };
        if matches!(
            prev,
            "--dport" | "--dports" | "dport" | "--sport" | "sport" | "--to-ports"
        ) {
            for p in w.split([':', '-']) {
                if let Ok(p) = p.parse::<u16>() {
                    ports.push(p);
                }
            }
        }
    }
    nets.retain(|n| n.addr().is_ipv4());
    nets.sort();
    nets.dedup();
    ports.sort();
    ports.dedup();
    (nets, ports)
}

fn pick<T: Copy>(rng: &mut impl Rng, v: &[T]) -> T {
    v[rng.random_range(0..v.len())]
}

/// A random address inside `net` (a host of it, avoiding its network and broadcast).
fn inside(rng: &mut impl Rng, net: ipnet::IpNet) -> IpAddr {
    match net {
        ipnet::IpNet::V4(n) => {
            let size = 1u64 << (32 - n.prefix_len() as u64);
            let base = u32::from(n.network()) as u64;
            let off = if size > 2 {
                rng.random_range(1..size - 1)
            } else {
                0
            };
            IpAddr::V4(((base + off) as u32).into())
        }
        ipnet::IpNet::V6(n) => IpAddr::V6(n.network()),
    }
}

/// Random IPv4 packets arriving on the lab's `dut0`: to the DUT's addresses, to the
/// neighbour behind `dut1`, to what the ruleset names, to routes to nowhere, anywhere.
fn probes(text: &str, seed: u64, n: usize) -> Vec<GenProbe> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (nets, ports) = mentioned(text);
    let fixed: Vec<IpAddr> = ["10.200.0.2", "10.201.0.1", "10.201.0.2", "10.201.0.77"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let common = [22u16, 53, 80, 443, 2379, 6443, 8080, 10250, 30080];
    (0..n)
        .map(|_| {
            let dst = match rng.random_range(0..10) {
                0..=2 => pick(&mut rng, &fixed),
                3..=6 if !nets.is_empty() => {
                    let n = pick(&mut rng, &nets);
                    inside(&mut rng, n)
                }
                7 => inside(&mut rng, "10.99.0.0/16".parse().unwrap()),
                8 => inside(&mut rng, "10.98.0.0/16".parse().unwrap()),
                _ => IpAddr::V4(rng.random::<u32>().into()),
            };
            let src = match rng.random_range(0..4) {
                0 => "10.200.0.1".parse().unwrap(),
                1 if !nets.is_empty() => {
                    let n = pick(&mut rng, &nets);
                    inside(&mut rng, n)
                }
                _ => IpAddr::V4(rng.random::<u32>().into()),
            };
            let protocol = pick(&mut rng, &[6u8, 6, 17, 1]);
            let dport = match rng.random_range(0..3) {
                0 if !ports.is_empty() => pick(&mut rng, &ports),
                1 => pick(&mut rng, &common),
                _ => rng.random_range(1..65535),
            };
            GenProbe {
                src,
                dst,
                protocol,
                sport: rng.random_range(1024..65535),
                dport,
                local: false,
                established: false,
            }
        })
        .filter(|p| {
            // Sources the lab cannot send as (its own, multicast, loopback, broadcast), and
            // destinations in the lab's networks without a neighbour (the kernel's ICMP
            // host-unreachable would come seconds later).
            let bad = |a: IpAddr| match a {
                IpAddr::V4(v) => {
                    v.is_multicast()
                        || v.is_loopback()
                        || v.is_broadcast()
                        || v.octets()[0] == 0
                        || v.octets()[0] >= 224
                }
                _ => true,
            };
            let lab_hole = |a: IpAddr| {
                let s = a.to_string();
                (s.starts_with("10.201.0.") || s.starts_with("10.200.0."))
                    && !fixed.contains(&a)
                    && s != "10.200.0.1"
            };
            !bad(p.src)
                && !bad(p.dst)
                && !lab_hole(p.dst)
                && !lab_hole(p.src)
                && !fixed[..2].contains(&p.src)
        })
        .collect()
}

/// The rulesets to check: the shared corpus's IPv4 iptables and nft files, and what the
/// renderers write for a bundled scenario's node.
fn rulesets() -> Vec<(String, String, Backend)> {
    let mut out = Vec::new();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/rulesets");
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let backend = if name.ends_with(".iptables") {
                    // Alternate the backends, so that iptables-nft's tables (also listed by
                    // nft) are read once.
                    if out.len() % 2 == 0 {
                        Backend::Legacy
                    } else {
                        Backend::IptablesNft
                    }
                } else if name.ends_with(".nft") {
                    Backend::Nft
                } else {
                    continue;
                };
                out.push((name, std::fs::read_to_string(&p).unwrap(), backend));
            }
        }
        Err(_) => eprintln!(
            "{} is absent: only fwsim's rendered rulesets are checked",
            dir.display()
        ),
    }
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/dataplanes/host-firewalls.yaml");
    let found = fwsim::scenario::discover(&[scenario]);
    for doc in found.docs.iter().take(1) {
        let s = fwsim::scenario::load(doc).expect("bundled scenario loads");
        if let fwsim::scenario::Body::Cluster { cluster, hosts, .. } = &s.body {
            let r = fwsim::render::render(cluster, fwsim::render::Flavor::CalicoIptables, hosts)
                .expect("renders");
            let n = &r.nodes[0];
            if let Some(t) = &n.iptables {
                // Its ipsets go first (the rules name them).
                let text = format!("{}{}", n.ipsets.clone().unwrap_or_default(), t);
                out.push((
                    format!("rendered calico-iptables + kube-proxy ({})", n.name),
                    text,
                    Backend::Legacy,
                ));
            }
        }
    }
    out
}

#[test]
fn traces_on_collected_snapshots_are_the_kernels_verdicts() {
    if let Err(e) = available(&[Backend::Legacy, Backend::IptablesNft, Backend::Nft]) {
        eprintln!("skipped: {e}");
        return;
    }
    let extra = |cmd: &str| {
        cmd.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let dut_commands = vec![
        extra("ip route add blackhole 10.99.0.0/16"),
        extra("ip route add unreachable 10.98.0.0/17"),
        extra("ip route add prohibit 10.98.128.0/17"),
    ];
    let (mut total, mut decided, mut checked_files) = (0usize, 0usize, 0usize);
    let mut wrong = Vec::new();
    let mut by_fate: std::collections::BTreeMap<String, usize> = Default::default();
    for (i, (name, text, backend)) in rulesets().into_iter().enumerate() {
        let (sets, rules) = match fwsim::netfilter::split_ipsets(&text) {
            Some((s, r)) => (Some(s), r),
            None => (None, text.clone()),
        };
        let at = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/rulesets")
            .join(&name);
        if rules.contains("ip6tables") || fwsim::netfilter::read_ruleset_file(&text, &at).is_err() {
            eprintln!("{name}: not an IPv4 ruleset fwsim reads: left out");
            continue;
        }
        let probes = probes(&rules, 1000 + i as u64, 120);
        let dir = tempfile::tempdir().unwrap();
        let fates = match judge_collected(
            backend,
            false,
            &rules,
            sets.as_deref(),
            &dut_commands,
            &probes,
            dir.path(),
        ) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{name}: the kernel does not load it here, left out: {e}");
                continue;
            }
        };
        let mut snap = fwsim::snapshot::read(dir.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The harness's observer is not the node's: leave it out.
        let (kept, files): (Vec<_>, Vec<_>) = snap
            .ruleset
            .tables
            .drain(..)
            .zip(snap.table_files.drain(..))
            .filter(|(t, _)| t.name != fwsim::kernel::observer::TABLE)
            .unzip();
        snap.ruleset.tables = kept;
        snap.table_files = files;
        checked_files += 1;
        let (mut file_total, mut file_decided) = (0, 0);
        for (p, kernel) in probes.iter().zip(&fates) {
            let args = vec![
                format!("src={}", p.src),
                format!("dst={}", p.dst),
                format!("protocol={}", p.protocol),
                format!("sport={}", p.sport),
                format!("dport={}", p.dport),
                "iif=dut0".into(),
            ];
            let args: Vec<String> = match p.protocol {
                1 => args.into_iter().filter(|a| !a.contains("port")).collect(),
                _ => args,
            };
            let packet = fwsim::scenario::packet_from_args(&args).unwrap();
            file_total += 1;
            let (fate, path, trace) = match place(&snap, packet, Given::of_args(&args)) {
                Placed::Walk(p, _) => {
                    let w = fwsim::netfilter::interp::walk_on(&snap.ruleset, &p, Some(&snap.host));
                    (w.fate.clone(), w.path, w.to_string())
                }
                Placed::Dropped(p, _, why) => (fwsim::netfilter::interp::Fate::Drop, p.hook, why),
                Placed::Undecided(p, _, why) => (
                    fwsim::netfilter::interp::Fate::Inconclusive(why.clone()),
                    p.hook,
                    why,
                ),
            };
            if let fwsim::netfilter::interp::Fate::Inconclusive(_) = fate {
                continue;
            }
            file_decided += 1;
            *by_fate
                .entry(format!("{} ({:?})", kernel.as_str(), path))
                .or_default() += 1;
            // The kernel's ICMP errors for routes to nowhere are rate-limited per source:
            // a routing reject may arrive as a silent drop.
            let routing_reject = matches!(&fate, fwsim::netfilter::interp::Fate::Reject(w) if w.starts_with("routing:"));
            let ok = agrees(*kernel, &fate, path)
                || (routing_reject && *kernel == fwsim::kernel::observer::KernelFate::Drop);
            if !ok {
                wrong.push(format!(
                    "{name}: {args:?}: kernel {}, fwsim {}\n{trace}",
                    kernel.as_str(),
                    fate.as_str()
                ));
            }
        }
        eprintln!(
            "{name} ({}): {file_decided} of {file_total} decided",
            backend.as_str()
        );
        total += file_total;
        decided += file_decided;
    }
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked_files >= 1);
    eprintln!(
        "{checked_files} rulesets, {decided} of {total} packets decided; kernel fates: {by_fate:?}"
    );
    // The packets reach every fate: the check is not one-sided.
    assert!(by_fate.len() >= 4, "{by_fate:?}");
    assert!(
        decided * 100 >= total * 95,
        "only {decided} of {total} packets decided"
    );
}
