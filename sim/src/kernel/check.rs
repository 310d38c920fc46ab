//! `fwsim kernel-check`: generated rulesets and probes, judged by the kernel and by the
//! simulator, compared probe by probe.
//!
//! Contract: for each backend, `cases` (ruleset, probe) pairs are checked: `cases /
//! probes_per_ruleset` rulesets from [`crate::gen::ruleset::generate`] (case seeds derived
//! from the run's seed, so any ruleset replays alone), each printed in the backend's syntax,
//! loaded into the DUT, and parsed back by fwsim from the very text loaded. Every probe's
//! kernel fate (accepted on input, accepted on forward, rejected, dropped) is compared
//! with the simulator's verdict on the same packet. A disagreement is written as a
//! single-host scenario whose expectation is the kernel's verdict.

use super::lab::{Lab, LabSpec, DUT_ADDRS, DUT_IN, DUT_OUT};
use super::observer::{self, KernelFate, SENTINEL4, SENTINEL6};
use super::probe::{Probe, Sender};
use super::{available, Backend, KernelError};
use crate::gen::ruleset::{connection_probes, generate, probes, GenProbe, GenRuleset};
use crate::netfilter::interp::{walk_on, Fate, Host};
use crate::netfilter::interp::{walk_seq, Conntrack};
use crate::values::{CtState, Hook, Packet};
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub seed: u64,
    /// (ruleset, probe) pairs per backend.
    pub cases: usize,
    pub probes_per_ruleset: usize,
    pub backends: Vec<Backend>,
    /// Where disagreements are written as scenarios (None: not written).
    pub out_dir: Option<PathBuf>,
    /// Every third ruleset in connection mode (see [`run`]).
    pub connections: bool,
    /// Applied to fwsim's IR before it walks the probes: None in real checks; tests plant
    /// a wrong semantics with it to show that the check catches it.
    pub plant: Option<fn(&mut crate::netfilter::ir::Ruleset)>,
}

/// One probe on which the kernel and fwsim disagree.
#[derive(Clone, Debug)]
pub struct Disagreement {
    pub backend: Backend,
    pub case_seed: u64,
    pub packet: Packet,
    pub kernel: KernelFate,
    pub fwsim: String,
    pub ruleset: String,
    pub trace: String,
    pub file: Option<PathBuf>,
}

#[derive(Clone, Debug, Default)]
pub struct BackendReport {
    pub rulesets: usize,
    pub cases: usize,
    pub agree: usize,
    pub disagree: usize,
    /// fwsim said inconclusive (not counted as agreement).
    pub inconclusive: usize,
    /// A few of the inconclusive reasons (case seed, reason).
    pub inconclusive_examples: Vec<(u64, String)>,
    /// The kernel's fates over all cases: accept (input), accept (forward), reject, drop.
    pub kernel_fates: [usize; 4],
    /// Rulesets the kernel refused to load but fwsim read (fwsim too lenient, or a
    /// generator bug), with the kernel's message.
    pub load_errors: Vec<(u64, String)>,
    /// Cases that were replies of connections (connection mode), and how many of those
    /// connections were NATed.
    pub replies: usize,
    pub nat_replies: usize,
    /// Rulesets the kernel and fwsim both refused (the generator makes some on purpose:
    /// a target or `fib` used from a hook where it is not valid).
    pub refused_both: usize,
    /// Rulesets fwsim could not read although the kernel loaded them.
    pub parse_errors: Vec<(u64, String)>,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub seed: u64,
    pub backends: Vec<(Backend, BackendReport)>,
    pub disagreements: Vec<Disagreement>,
}

impl CheckReport {
    /// True when every case agreed and nothing failed to load or parse.
    pub fn clean(&self) -> bool {
        self.backends
            .iter()
            .all(|(_, r)| r.disagree == 0 && r.load_errors.is_empty() && r.parse_errors.is_empty())
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "kernel-check seed {}", self.seed)?;
        for (b, r) in &self.backends {
            writeln!(
                f,
                "  {:<16} {} rulesets ({} refused by both), {} cases: {} agree, {} disagree, {} inconclusive; {} refused by the kernel only, {} by fwsim only; {:.1} s, {:.0} cases/s",
                b.as_str(),
                r.rulesets,
                r.refused_both,
                r.cases,
                r.agree,
                r.disagree,
                r.inconclusive,
                r.load_errors.len(),
                r.parse_errors.len(),
                r.seconds,
                r.cases as f64 / r.seconds.max(1e-9)
            )?;
            writeln!(
                f,
                "    kernel verdicts: {} accept (input), {} accept (forward), {} reject, {} drop; {} replies of connections ({} NATed)",
                r.kernel_fates[0], r.kernel_fates[1], r.kernel_fates[2], r.kernel_fates[3],
                r.replies, r.nat_replies
            )?;
            for (seed, m) in &r.inconclusive_examples {
                writeln!(f, "    inconclusive (case seed {seed}): {m}")?;
            }
            for (seed, m) in r.load_errors.iter().take(5) {
                writeln!(f, "    refused by the kernel only (case seed {seed}): {m}")?;
            }
            for (seed, m) in r.parse_errors.iter().take(5) {
                writeln!(f, "    refused by fwsim only (case seed {seed}): {m}")?;
            }
        }
        for d in self.disagreements.iter().take(20) {
            writeln!(
                f,
                "  DISAGREE [{}] case seed {}: {}\n    kernel: {}, fwsim: {}{}",
                d.backend.as_str(),
                d.case_seed,
                d.packet,
                d.kernel.as_str(),
                d.fwsim,
                match &d.file {
                    Some(p) => format!("\n    written to {}", p.display()),
                    None => String::new(),
                }
            )?;
        }
        if self.disagreements.len() > 20 {
            writeln!(f, "  ... and {} more", self.disagreements.len() - 20)?;
        }
        Ok(())
    }
}

/// The seed of ruleset `i` of a run with `seed` (SplitMix64 of both: stable, spread).
pub fn case_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The packet fwsim walks for a probe: as the DUT sees it arriving on `dut0`.
pub fn packet_of(p: &GenProbe) -> Packet {
    let ports = matches!(p.protocol, 6 | 17);
    Packet {
        src: p.src,
        dst: p.dst,
        protocol: p.protocol,
        sport: ports.then_some(p.sport),
        dport: ports.then_some(p.dport),
        iif: Some(DUT_IN.into()),
        oif: (!p.local).then(|| DUT_OUT.into()),
        hook: if p.local { Hook::Input } else { Hook::Forward },
        ctstate: if p.established {
            CtState::Established
        } else {
            CtState::New
        },
        mark: 0,
    }
}

/// Seed the conntrack entry of an established probe (`marker`): both directions seen, as
/// after a reply (docs/kernel-harness-notes.md §6: without SEEN_REPLY the probe is NEW).
fn seed_conntrack(lab: &Lab, p: &GenProbe, marker: u16) -> Result<(), KernelError> {
    let (src, dst) = (p.src.to_string(), p.dst.to_string());
    let (sport, dport, id) = (p.sport.to_string(), p.dport.to_string(), marker.to_string());
    let mut args = vec!["conntrack", "-I", "-s", &src, "-d", &dst];
    match (p.protocol, p.src.is_ipv4()) {
        (17, _) => args.extend(["-p", "udp", "--sport", &sport, "--dport", &dport]),
        (_, true) => args.extend([
            "-p",
            "icmp",
            "--icmp-type",
            "8",
            "--icmp-code",
            "0",
            "--icmp-id",
            &id,
        ]),
        (_, false) => args.extend([
            "-p",
            "icmpv6",
            "--icmpv6-type",
            "128",
            "--icmpv6-code",
            "0",
            "--icmpv6-id",
            &id,
        ]),
    }
    args.extend(["-t", "120", "-u", "SEEN_REPLY"]);
    lab.in_dut(&args, None).map(|_| ())
}

fn text_for(g: &GenRuleset, backend: Backend) -> String {
    match backend {
        Backend::Nft => g.to_nft(),
        Backend::Legacy => g.to_iptables_for(false),
        Backend::IptablesNft => g.to_iptables_for(true),
    }
}

pub(crate) fn load(lab: &Lab, backend: Backend, v6: bool, text: &str) -> Result<(), KernelError> {
    load_with(lab, backend, v6, text, false)
}

/// [`load`], with the observer letting accepted probes through when `pass` (connection
/// mode).
fn load_with(
    lab: &Lab,
    backend: Backend,
    v6: bool,
    text: &str,
    pass: bool,
) -> Result<(), KernelError> {
    let obs = observer::table_with(pass);
    match backend {
        Backend::Nft => {
            lab.in_dut(
                &["nft", "-f", "-"],
                Some(&format!("flush ruleset\n{obs}{text}")),
            )?;
        }
        Backend::Legacy | Backend::IptablesNft => {
            lab.in_dut(&["nft", "-f", "-"], Some(&format!("flush ruleset\n{obs}")))?;
            let tool = match (backend, v6) {
                (Backend::Legacy, false) => "iptables-legacy-restore",
                (Backend::Legacy, true) => "ip6tables-legacy-restore",
                (_, false) => "iptables-nft-restore",
                (_, true) => "ip6tables-nft-restore",
            };
            lab.in_dut(&[tool], Some(text))?;
        }
    }
    Ok(())
}

fn read_until_sentinel(lab: &Lab, marker: u16) -> Result<observer::Seen, KernelError> {
    for attempt in 0..200 {
        let json = lab.in_dut(
            &["nft", "-j", "list", "table", "inet", observer::TABLE],
            None,
        )?;
        let seen = observer::parse(&json)?;
        if seen.sentinel.contains(&u32::from(marker)) {
            return Ok(seen);
        }
        std::thread::sleep(std::time::Duration::from_millis(1 + attempt));
    }
    Err(KernelError::Tool(
        "the sentinel probe never reached the DUT (is the lab's veth up?)".into(),
    ))
}

/// Is the address on the receiver's side of the DUT (where a reply can be sent from)?
fn on_receiver_side(a: std::net::IpAddr) -> bool {
    let nets: [crate::values::Cidr; 2] = [
        "10.201.0.0/24".parse().expect("lab network"),
        "fd00:201::/64".parse().expect("lab network"),
    ];
    let own = DUT_ADDRS
        .iter()
        .any(|d| d.parse::<std::net::IpAddr>().ok() == Some(a));
    !own && nets.iter().any(|n| n.contains(&a))
}

/// The lab's DUT as the simulator sees it: its addresses and routes.
pub fn dut_host() -> Host {
    let net = |s: &str| s.parse().expect("lab network");
    Host {
        iface_addrs: Vec::new(),
        complete: false,
        no_forwarding: (false, false),
        addresses: DUT_ADDRS
            .iter()
            .map(|a| a.parse().expect("lab address"))
            .collect(),
        networks: vec![
            net("10.200.0.0/24"),
            net("10.201.0.0/24"),
            net("fd00:200::/64"),
            net("fd00:201::/64"),
        ],
        routes: vec![
            (net("10.200.0.0/24"), DUT_IN.into()),
            (net("10.201.0.0/24"), DUT_OUT.into()),
            (net("fd00:200::/64"), DUT_IN.into()),
            (net("fd00:201::/64"), DUT_OUT.into()),
            (net("0.0.0.0/0"), DUT_IN.into()),
            (net("::/0"), DUT_IN.into()),
        ],
    }
}

fn agree(kernel: KernelFate, fate: &Fate, path: Hook) -> bool {
    match fate {
        Fate::Accept => {
            kernel
                == if path == Hook::Input {
                    KernelFate::AcceptInput
                } else {
                    KernelFate::AcceptForward
                }
        }
        Fate::Drop => kernel == KernelFate::Drop,
        Fate::Reject(_) => kernel == KernelFate::Reject,
        Fate::Inconclusive(_) => false,
    }
}

/// Load one given ruleset (iptables-save text for the iptables backends, nft text for
/// `nft`), after the given ipsets (`ipset restore` text, loaded first: rules name them),
/// into a fresh lab; send `probes`; return the kernel's fate of each, in order. Generic:
/// the caller compares with the simulator (see `sim/tests/kernel_check.rs`).
pub fn judge(
    backend: Backend,
    v6: bool,
    ruleset: &str,
    ipsets: Option<&str>,
    probes: &[GenProbe],
) -> Result<Vec<KernelFate>, KernelError> {
    judge_with(backend, v6, ruleset, ipsets, probes, |_| Ok(()))
}

/// [`judge`], with `between` run on the loaded lab before the probes are sent.
fn judge_with(
    backend: Backend,
    v6: bool,
    ruleset: &str,
    ipsets: Option<&str>,
    probes: &[GenProbe],
    between: impl FnOnce(&Lab) -> Result<(), KernelError>,
) -> Result<Vec<KernelFate>, KernelError> {
    available(&[backend])?;
    if ipsets.is_some() && !super::on_path("ipset") {
        return Err(KernelError::Unavailable(
            "missing tools: ipset (Debian package ipset)".into(),
        ));
    }
    if probes.len() >= usize::from(u16::MAX) {
        return Err(KernelError::Tool("too many probes (at most 65534)".into()));
    }
    let (lab, sender) = loaded_lab(&LabSpec::default(), backend, v6, ruleset, ipsets)?;
    between(&lab)?;
    let probes_: Vec<Probe> = probes
        .iter()
        .enumerate()
        .map(|(j, p)| probe_of(p, j))
        .collect();
    let seen = send_and_observe(&lab, &sender, &probes_)?;
    Ok(probes
        .iter()
        .enumerate()
        .map(|(j, p)| seen.fate(j as u16 + 1, p.protocol == 6))
        .collect())
}

/// [`judge`] with a node snapshot in between: after the ruleset is loaded and
/// `dut_commands` (such as extra routes) have run in the DUT, `fwsim collect` writes the
/// DUT's snapshot into `out`; then the probes are sent. The snapshot holds the observer's
/// table too ([`observer::TABLE`]): it is the harness's, and a caller walking the
/// snapshot leaves it out.
pub fn judge_collected(
    backend: Backend,
    v6: bool,
    ruleset: &str,
    ipsets: Option<&str>,
    dut_commands: &[Vec<String>],
    probes: &[GenProbe],
    out: &std::path::Path,
) -> Result<Vec<KernelFate>, KernelError> {
    judge_with(backend, v6, ruleset, ipsets, probes, |lab| {
        for c in dut_commands {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            lab.in_dut(&args, None)?;
        }
        let report = crate::snapshot::collect::collect(Some(&lab.dut), out, Some("dut"))
            .map_err(KernelError::Tool)?;
        match report.failed.first() {
            Some((file, why)) => Err(KernelError::Tool(format!("collect: {file}: {why}"))),
            None => Ok(()),
        }
    })
}

/// A fresh lab shaped by `spec` with `ipsets` (if any) and then `ruleset` loaded into its
/// DUT as `backend` loads it, and a sender in it.
pub(crate) fn loaded_lab(
    spec: &LabSpec,
    backend: Backend,
    v6: bool,
    ruleset: &str,
    ipsets: Option<&str>,
) -> Result<(Lab, Sender), KernelError> {
    let lab = Lab::create_unique(spec)?;
    let sender = Sender::open(&Lab::path(&lab.snd))?;
    if let Some(sets) = ipsets {
        // Sets live in the DUT's namespace only; they go with it.
        lab.in_dut(&["ipset", "restore"], Some(sets))?;
    }
    load(&lab, backend, v6, ruleset)?;
    Ok((lab, sender))
}

/// The probe for generated probe number `j` (marker `j + 1`).
fn probe_of(p: &GenProbe, j: usize) -> Probe {
    Probe {
        src: p.src,
        dst: p.dst,
        protocol: p.protocol,
        sport: p.sport,
        dport: p.dport,
        marker: j as u16 + 1,
    }
}

/// Send a batch (markers 1..=n, in order), then a sentinel of each family, and read what
/// the observer saw once the sentinel arrived (every probe before it has then been through
/// the DUT: one veth, one queue).
pub(crate) fn send_and_observe(
    lab: &Lab,
    sender: &Sender,
    probes: &[Probe],
) -> Result<observer::Seen, KernelError> {
    for p in probes {
        sender.send(p)?;
    }
    let sentinel = probes.iter().map(|p| p.marker).max().unwrap_or(0) + 1;
    for (s, d) in [(SENTINEL4, DUT_ADDRS[0]), (SENTINEL6, DUT_ADDRS[2])] {
        sender.send(&Probe {
            src: s.parse().expect("sentinel address"),
            dst: d.parse().expect("DUT address"),
            protocol: 17,
            sport: 9,
            dport: 9,
            marker: sentinel,
        })?;
    }
    read_until_sentinel(lab, sentinel)
}

/// Does the simulator's fate (on the path it took) agree with the kernel's?
pub fn agrees(kernel: KernelFate, fate: &Fate, path: Hook) -> bool {
    agree(kernel, fate, path)
}

/// Run the check. `progress(backend, done, total)` is called after each ruleset.
pub fn run(
    opts: &CheckOptions,
    mut progress: impl FnMut(Backend, usize, usize),
) -> Result<CheckReport, KernelError> {
    available(&opts.backends)?;
    let per = opts.probes_per_ruleset.clamp(1, 60_000);
    let rulesets = opts.cases.div_ceil(per);
    let mut report = CheckReport {
        seed: opts.seed,
        ..Default::default()
    };
    for &backend in &opts.backends {
        // Unique per process and per lab: tests run checks in parallel.
        let lab = Lab::create_unique(&LabSpec::default())?;
        let sender = Sender::open(&Lab::path(&lab.snd))?;
        let receiver = Sender::open(&Lab::path(&lab.rcv))?;
        let host = dut_host();
        let start = Instant::now();
        let mut r = BackendReport::default();
        for i in 0..rulesets {
            let cs = case_seed(opts.seed, i as u64);
            let g = generate(cs);
            let text = text_for(&g, backend);
            let n = per.min(opts.cases - i * per);
            let ps = probes(cs, g.v6, n);
            r.rulesets += 1;
            if let Err(e) = load(&lab, backend, g.v6, &text) {
                match crate::netfilter::read_ruleset(&text) {
                    Err(_) => r.refused_both += 1,
                    Ok(_) => r.load_errors.push((cs, e.to_string())),
                }
                progress(backend, i + 1, rulesets);
                continue;
            }
            let rs = match crate::netfilter::read_ruleset(&text) {
                Ok(mut rs) => {
                    if let Some(plant) = opts.plant {
                        plant(&mut rs);
                    }
                    rs
                }
                Err(e) => {
                    r.parse_errors
                        .push((cs, format!("{}: {}", e.loc, e.message)));
                    progress(backend, i + 1, rulesets);
                    continue;
                }
            };
            // Every third ruleset in connection mode: the observer lets accepted probes
            // through, so their connections are confirmed; the batch is one sequence for
            // fwsim (one conntrack table), and the UDP connections forwarded through the DUT
            // get a reply from the receiver's side.
            let conn_mode = opts.connections && i % 3 == 2;
            let ps = if conn_mode {
                connection_probes(cs, g.v6, n)
            } else {
                ps
            };
            if conn_mode {
                load_with(&lab, backend, g.v6, &text, true)?;
            }
            for (j, p) in ps.iter().enumerate() {
                if p.established {
                    seed_conntrack(&lab, p, j as u16 + 1)?;
                }
            }
            let batch: Vec<Probe> = ps.iter().enumerate().map(|(j, p)| probe_of(p, j)).collect();
            let seen = send_and_observe(&lab, &sender, &batch)?;
            if ps.iter().any(|p| p.established) {
                lab.in_dut(&["conntrack", "-F"], None)?;
            }
            let mut ct = Conntrack::default();
            let mut cases: Vec<(Packet, KernelFate, crate::netfilter::interp::Walk, usize)> =
                Vec::new();
            for (j, p) in ps.iter().enumerate() {
                let kernel = seen.fate(j as u16 + 1, p.protocol == 6);
                let packet = packet_of(p);
                let w = if conn_mode {
                    walk_seq(&rs, &packet, Some(&host), &mut ct)
                } else {
                    walk_on(&rs, &packet, Some(&host))
                };
                cases.push((packet, kernel, w, j));
            }
            if conn_mode {
                // Replies, from the receiver's side, of the UDP connections fwsim confirmed
                // through the DUT; markers after the batch's sentinel.
                let back: Vec<Packet> = ct
                    .conns
                    .iter()
                    .filter(|c| c.orig.proto == 17 && on_receiver_side(c.reply.src))
                    .inspect(|c| {
                        r.replies += 1;
                        if c.nat_bits != 0 {
                            r.nat_replies += 1;
                        }
                    })
                    .map(|c| {
                        let local = DUT_ADDRS
                            .iter()
                            .any(|a| a.parse::<std::net::IpAddr>().ok() == Some(c.reply.dst));
                        Packet {
                            src: c.reply.src,
                            dst: c.reply.dst,
                            protocol: 17,
                            sport: c.reply.sport,
                            dport: c.reply.dport,
                            iif: Some(DUT_OUT.into()),
                            oif: (!local).then(|| host.route(c.reply.dst).unwrap_or(DUT_IN).into()),
                            hook: if local { Hook::Input } else { Hook::Forward },
                            ctstate: CtState::New,
                            mark: 0,
                        }
                    })
                    .collect();
                let first = ps.len() as u16 + 2;
                let replies: Vec<Probe> = back
                    .iter()
                    .enumerate()
                    .map(|(k, p)| Probe {
                        src: p.src,
                        dst: p.dst,
                        protocol: 17,
                        sport: p.sport.unwrap_or(9),
                        dport: p.dport.unwrap_or(9),
                        marker: first + k as u16,
                    })
                    .collect();
                if !replies.is_empty() {
                    let seen = send_and_observe(&lab, &receiver, &replies)?;
                    for (k, p) in back.into_iter().enumerate() {
                        let kernel = seen.fate(first + k as u16, false);
                        let w = walk_seq(&rs, &p, Some(&host), &mut ct);
                        cases.push((p, kernel, w, ps.len() + k));
                    }
                }
                lab.in_dut(&["conntrack", "-F"], None)?;
            }
            for (packet, kernel, w, j) in cases {
                r.cases += 1;
                r.kernel_fates[kernel as usize] += 1;
                if let Fate::Inconclusive(why) = &w.fate {
                    r.inconclusive += 1;
                    if r.inconclusive_examples.len() < 5 {
                        r.inconclusive_examples.push((cs, why.clone()));
                    }
                    continue;
                }
                if agree(kernel, &w.fate, w.path) {
                    r.agree += 1;
                    continue;
                }
                r.disagree += 1;
                let mut d = Disagreement {
                    backend,
                    case_seed: cs,
                    packet,
                    kernel,
                    fwsim: w.fate.as_str().to_string(),
                    ruleset: text.clone(),
                    trace: w.to_string(),
                    file: None,
                };
                if let Some(dir) = &opts.out_dir {
                    d.file = write_scenario(dir, &d, j).ok();
                }
                report.disagreements.push(d);
            }
            progress(backend, i + 1, rulesets);
        }
        r.seconds = start.elapsed().as_secs_f64();
        drop(sender);
        drop(receiver);
        drop(lab);
        report.backends.push((backend, r));
    }
    Ok(report)
}

fn proto_name(p: u8) -> String {
    match p {
        6 => "TCP".into(),
        17 => "UDP".into(),
        1 => "ICMP".into(),
        n => n.to_string(),
    }
}

/// The disagreement as a single-host scenario: the kernel's verdict is the expectation.
pub fn scenario_text(d: &Disagreement, probe: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Found by `fwsim kernel-check` ({}): the kernel and fwsim disagree on this packet.\n# The expectation is the kernel's verdict ({}); fwsim said {}.\n# fwsim's trace:",
        d.backend.as_str(),
        d.kernel.as_str(),
        d.fwsim
    );
    for line in d.trace.lines() {
        let _ = writeln!(s, "#   {line}");
    }
    let _ = writeln!(s, "apiVersion: fwsim/v1\nkind: Scenario");
    let _ = writeln!(
        s,
        "name: kernel-check/{} case {} probe {}",
        d.backend.as_str(),
        d.case_seed,
        probe + 1
    );
    let _ = writeln!(s, "tags: [kernel-check, {}]", d.backend.as_str());
    s.push_str("ruleset: |\n");
    for line in d.ruleset.lines() {
        let _ = writeln!(s, "  {line}");
    }
    let p = &d.packet;
    let _ = write!(
        s,
        "expect:\n  - packet: {{src: {}, dst: {}, protocol: {}",
        p.src,
        p.dst,
        proto_name(p.protocol)
    );
    if let Some(x) = p.sport {
        let _ = write!(s, ", sport: {x}");
    }
    if let Some(x) = p.dport {
        let _ = write!(s, ", dport: {x}");
    }
    if let Some(x) = &p.iif {
        let _ = write!(s, ", iif: {x}");
    }
    if let Some(x) = &p.oif {
        let _ = write!(s, ", oif: {x}");
    }
    let hook = match p.hook {
        Hook::Input => "input",
        Hook::Forward => "forward",
        Hook::Output => "output",
    };
    let verdict = match d.kernel {
        KernelFate::AcceptInput | KernelFate::AcceptForward => "accept",
        KernelFate::Reject => "reject",
        KernelFate::Drop => "drop",
    };
    let _ = writeln!(s, ", hook: {hook}}}\n    verdict: {verdict}");
    s
}

fn write_scenario(
    dir: &std::path::Path,
    d: &Disagreement,
    probe: usize,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(
        "{}-{}-{}.yaml",
        d.backend.as_str(),
        d.case_seed,
        probe + 1
    ));
    std::fs::write(&path, scenario_text(d, probe))?;
    Ok(path)
}

/// Append one row per backend to a CSV file (created with a header when missing): date,
/// commit, seed, backend, rulesets, cases, agree, disagree, inconclusive, rulesets refused by
/// the kernel only (`load_errors`) and by fwsim only (`parse_errors`), seconds, cases per
/// second, rulesets refused by both.
pub fn append_csv(report: &CheckReport, path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let new = !path.exists();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    if new {
        w.write_record([
            "date",
            "commit",
            "seed",
            "backend",
            "rulesets",
            "cases",
            "agree",
            "disagree",
            "inconclusive",
            "load_errors",
            "parse_errors",
            "seconds",
            "cases_per_sec",
            "refused_both",
        ])?;
    }
    let (date, commit) = (crate::bench::today(), crate::bench::commit());
    for (b, r) in &report.backends {
        w.write_record([
            date.clone(),
            commit.clone(),
            report.seed.to_string(),
            b.as_str().to_string(),
            r.rulesets.to_string(),
            r.cases.to_string(),
            r.agree.to_string(),
            r.disagree.to_string(),
            r.inconclusive.to_string(),
            r.load_errors.len().to_string(),
            r.parse_errors.len().to_string(),
            format!("{:.2}", r.seconds),
            format!("{:.0}", r.cases as f64 / r.seconds.max(1e-9)),
            r.refused_both.to_string(),
        ])?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&bytes)
}
