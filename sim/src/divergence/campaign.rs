//! `fwsim fuzz`: run targets for a while on every core, minimize each finding and write it
//! where `fwsim run` replays it.
//!
//! Contract:
//! - Case `i` of a run with seed `S` is generated from `case_seed(S, i)` alone: the run is
//!   reproducible whatever the number of jobs, and one case replays with
//!   [`replay`] from its case seed.
//! - A cluster target's finding is minimized ([`super::minimize`]) and written as a
//!   scenario (`<target>-<case seed>.yaml`) whose expectations are the reference engine's
//!   verdicts (the semantics), naming `reference` and the target's dataplane: `fwsim run`
//!   on it fails while the divergence lasts. An `iptables-vs-nft` finding is written as
//!   both rulesets, the probe and both traces (`.txt`): which reading is right is the
//!   kernel's call (`fwsim kernel-check --seed`).
//! - Progress goes through a callback (the CLI draws it); nothing here prints.

use super::{check_case, Target};
use crate::gen::case::Case;
use crate::kernel::check::case_seed;
use crate::reference::Reference;
use rand::SeedableRng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct Options {
    pub targets: Vec<Target>,
    /// Seconds per target.
    pub seconds: f64,
    pub seed: u64,
    pub jobs: usize,
    /// Where findings are written (None: not written).
    pub out_dir: Option<PathBuf>,
    /// Findings minimized and written per target; later ones are only counted.
    pub max_written: usize,
    /// Stop a target at its first finding (measuring time to find).
    pub stop_at_first: bool,
}

/// A finding, minimized.
#[derive(Clone, Debug)]
pub struct Written {
    pub case_seed: u64,
    /// The file written, if any.
    pub path: Option<PathBuf>,
    /// What diverged, one line.
    pub summary: String,
    /// Size of the minimized case: pods, policies (cluster targets).
    pub pods: usize,
    pub policies: usize,
    /// Cases run and seconds spent before it was found.
    pub after_cases: u64,
    pub after_seconds: f64,
}

#[derive(Clone, Debug, Default)]
pub struct TargetReport {
    pub target: Option<Target>,
    pub cases: u64,
    pub seconds: f64,
    /// Cases with at least one finding.
    pub failing_cases: u64,
    pub written: Vec<Written>,
    /// Flows (or probes) the dataplane could not decide.
    pub inconclusive: u64,
    /// Flows that differ as the real CNI is documented to.
    pub known: u64,
    /// Cases the loader refused (as the API server would).
    pub refused: u64,
    /// Flows (or probes) compared.
    pub compared: u64,
}

impl TargetReport {
    pub fn cases_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.cases as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// What one case of a target gave.
#[derive(Clone, Debug, Default)]
struct CaseOutcome {
    finding: Option<String>,
    inconclusive: u64,
    known: u64,
    refused: bool,
    compared: u64,
}

fn run_case(target: Target, cs: u64) -> CaseOutcome {
    match target {
        Target::CalicoIptables | Target::CalicoNftables => {
            let flavor = target.flavor().expect("cluster target");
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cs);
            let case = Case::generate(&mut rng);
            let r = check_case(&case, flavor);
            CaseOutcome {
                finding: r
                    .broken
                    .clone()
                    .or_else(|| r.findings.first().map(|f| f.flow.clone())),
                inconclusive: r.inconclusive as u64,
                known: r.known as u64,
                refused: !r.loaded,
                compared: r.flows as u64,
            }
        }
        Target::IptablesVsNft => {
            let r = iptables_vs_nft(cs);
            CaseOutcome {
                finding: r
                    .first
                    .map(|(p, a, b)| format!("{p}: iptables {a}, nft {b}")),
                inconclusive: r.inconclusive,
                known: 0,
                refused: r.refused,
                compared: r.compared,
            }
        }
        Target::ReferenceFast => {
            let r = reference_fast(cs);
            CaseOutcome {
                finding: r.0,
                compared: r.1,
                ..CaseOutcome::default()
            }
        }
    }
}

/// Run the campaign; `progress(target, cases, findings)` is called after every batch.
pub fn run(opts: &Options, progress: &(dyn Fn(Target, u64, u64) + Sync)) -> Vec<TargetReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .expect("thread pool");
    let mut reports = Vec::new();
    for &target in &opts.targets {
        let start = Instant::now();
        let mut rep = TargetReport {
            target: Some(target),
            ..TargetReport::default()
        };
        let batch = (opts.jobs.max(1) * 4) as u64;
        let mut next = 0u64;
        'outer: while start.elapsed().as_secs_f64() < opts.seconds {
            let ids: Vec<u64> = (next..next + batch).collect();
            next += batch;
            let outs: Vec<(u64, CaseOutcome)> = pool.install(|| {
                ids.par_iter()
                    .map(|&i| (i, run_case(target, case_seed(opts.seed, i))))
                    .collect()
            });
            for (i, o) in outs {
                rep.cases += 1;
                rep.inconclusive += o.inconclusive;
                rep.known += o.known;
                rep.refused += u64::from(o.refused);
                rep.compared += o.compared;
                if let Some(summary) = o.finding {
                    rep.failing_cases += 1;
                    if rep.written.len() < opts.max_written {
                        // Time to find: before the minimizer runs.
                        let found_at = start.elapsed().as_secs_f64();
                        let cs = case_seed(opts.seed, i);
                        let mut w = write_finding(target, cs, opts.out_dir.as_deref(), summary);
                        w.after_cases = i + 1;
                        w.after_seconds = found_at;
                        rep.written.push(w);
                    }
                    if opts.stop_at_first {
                        progress(target, rep.cases, rep.failing_cases);
                        break 'outer;
                    }
                }
            }
            progress(target, rep.cases, rep.failing_cases);
        }
        rep.seconds = start.elapsed().as_secs_f64();
        reports.push(rep);
    }
    reports
}

/// Minimize a finding and write it; the summary names the minimized flow.
fn write_finding(target: Target, cs: u64, dir: Option<&Path>, summary: String) -> Written {
    let mut w = Written {
        case_seed: cs,
        path: None,
        summary,
        pods: 0,
        policies: 0,
        after_cases: 0,
        after_seconds: 0.0,
    };
    match target {
        Target::CalicoIptables | Target::CalicoNftables => {
            let flavor = target.flavor().expect("cluster target");
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cs);
            let case = Case::generate(&mut rng);
            let small = super::minimize::minimize(&case, &|c| {
                let r = check_case(c, flavor);
                r.broken.is_some() || !r.findings.is_empty()
            });
            let report = check_case(&small, flavor);
            if let Some(f) = report.findings.first() {
                w.summary = format!(
                    "{}: reference {}, {} {}",
                    f.flow,
                    f.reference.as_str(),
                    target,
                    f.dataplane.as_str()
                );
            }
            w.pods = small.pods.len();
            w.policies = small.policies.len();
            if let Some(dir) = dir {
                w.path = write_case(target, cs, dir, &small, &report).ok();
            }
        }
        Target::IptablesVsNft => {
            if let Some(dir) = dir {
                let r = iptables_vs_nft(cs);
                let path = dir.join(format!("{target}-{cs}.txt"));
                let text = format!(
                    "# fwsim fuzz --target {target}: the same generated ruleset read as iptables-save and as nft\n# disagrees on a probe. Replay: fwsim fuzz --target {target} --replay {cs}\n# Which reading is right: fwsim kernel-check (the kernel decides).\n\n{}\n",
                    r.report
                );
                if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&path, text).is_ok() {
                    w.path = Some(path);
                }
            }
        }
        Target::ReferenceFast => {}
    }
    w
}

/// The minimized case as a scenario, expectations from the reference.
fn write_case(
    target: Target,
    cs: u64,
    dir: &Path,
    case: &Case,
    report: &super::CaseReport,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = match crate::planted::active() {
        Some(b) => format!("{target}-{}-{cs}", b.name()),
        None => format!("{target}-{cs}"),
    };
    let verdicts = super::reference_verdicts(case).unwrap_or_default();
    let planted = crate::planted::active()
        .map(|b| format!(" --planted {}", b.name()))
        .unwrap_or_default();
    let mut header = format!(
        "Found by `fwsim fuzz --target {target}{planted}` (case seed {cs}), minimized.\nReplay: fwsim run {0}/{name}.yaml   or   fwsim fuzz --target {target}{planted} --replay {cs}\nThe expectations are the reference engine's verdicts (NetworkPolicy semantics).\n",
        dir.display()
    );
    for f in &report.findings {
        header.push_str(&format!(
            "Diverges: {}: reference {}, {target} {}\n",
            f.flow,
            f.reference.as_str(),
            f.dataplane.as_str()
        ));
    }
    if let Some(b) = crate::planted::active() {
        header.push_str(&format!("Planted bug: {}\n", b.name()));
    }
    let hosts = if case.hardened {
        let file = format!("{name}.host.iptables");
        std::fs::write(
            dir.join(&file),
            crate::gen::case::hardened_firewall(target != Target::CalicoIptables),
        )?;
        Some(file)
    } else {
        None
    };
    let mut text = case.to_yaml(
        &name,
        &header,
        &["reference", target.name()],
        Some(&verdicts),
    );
    if let Some(file) = hosts {
        text = text.replacen(
            "cluster:\n",
            &format!("hosts:\n  \"*\": {file}\ncluster:\n"),
            1,
        );
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// One case of a target, for `--replay`: what it found, in words.
pub fn replay(target: Target, cs: u64) -> String {
    match target {
        Target::CalicoIptables | Target::CalicoNftables => {
            let flavor = target.flavor().expect("cluster target");
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cs);
            let case = Case::generate(&mut rng);
            let r = check_case(&case, flavor);
            let mut out = case.to_yaml(
                &format!("{target}-{cs}"),
                "",
                &["reference", target.name()],
                None,
            );
            out.push_str(&format!(
                "\n# {} flows, {} inconclusive, {} known differences, loaded: {}\n",
                r.flows, r.inconclusive, r.known, r.loaded
            ));
            if let Some(b) = &r.broken {
                out.push_str(&format!("# broken: {b}\n"));
            }
            for f in &r.findings {
                out.push_str(&format!(
                    "\nDIVERGENCE {}: reference {}, {target} {}\n[reference]\n{}\n[{target}]\n{}\n",
                    f.flow,
                    f.reference.as_str(),
                    f.dataplane.as_str(),
                    f.reference_why,
                    f.dataplane_why
                ));
            }
            out
        }
        Target::IptablesVsNft => iptables_vs_nft(cs).report,
        Target::ReferenceFast => reference_fast(cs)
            .0
            .unwrap_or_else(|| "no finding".to_string()),
    }
}

/// One `iptables-vs-nft` case: the report of its first disagreement, if any.
pub fn iptables_vs_nft_case(cs: u64) -> Option<String> {
    let r = iptables_vs_nft(cs);
    r.first.map(|_| r.report)
}

struct RulesetOutcome {
    first: Option<(String, String, String)>,
    inconclusive: u64,
    compared: u64,
    refused: bool,
    report: String,
}

/// The same generated ruleset as iptables-save and as nft (without the nft-only table):
/// every probe must get the same fate from both readings.
fn iptables_vs_nft(cs: u64) -> RulesetOutcome {
    use crate::netfilter::interp::{walk_on, Fate};
    let mut g = crate::gen::ruleset::generate(cs);
    g.nft_extra = None;
    let ipt_text = g.to_iptables();
    let nft_text = g.to_nft();
    let mut out = RulesetOutcome {
        first: None,
        inconclusive: 0,
        compared: 0,
        refused: false,
        report: String::new(),
    };
    let (Ok(a), Ok(b)) = (
        crate::netfilter::read_ruleset(&ipt_text),
        crate::netfilter::read_ruleset(&nft_text),
    ) else {
        out.refused = true;
        return out;
    };
    let host = crate::kernel::check::dut_host();
    for p in crate::gen::ruleset::probes(cs, g.v6, 20) {
        let packet = crate::kernel::check::packet_of(&p);
        let wa = walk_on(&a, &packet, Some(&host));
        let wb = walk_on(&b, &packet, Some(&host));
        if matches!(wa.fate, Fate::Inconclusive(_)) || matches!(wb.fate, Fate::Inconclusive(_)) {
            out.inconclusive += 1;
            continue;
        }
        out.compared += 1;
        if wa.fate.as_str() != wb.fate.as_str() && out.first.is_none() {
            out.first = Some((
                packet.to_string(),
                wa.fate.as_str().to_string(),
                wb.fate.as_str().to_string(),
            ));
            out.report = format!(
                "probe: {packet}\n\n== iptables-save ==\n{ipt_text}\n== nft ==\n{nft_text}\n== walk (iptables) ==\n{wa}\n\n== walk (nft) ==\n{wb}\n"
            );
        }
    }
    // A connection sequence: one conntrack table per reading, NEW and ESTABLISHED
    // packets and replies as the kernel check sends them.
    if out.first.is_none() {
        use crate::netfilter::interp::{walk_seq, Conntrack};
        let (mut ca, mut cb) = (Conntrack::default(), Conntrack::default());
        for p in crate::gen::ruleset::connection_probes(cs, g.v6, 12) {
            let packet = crate::kernel::check::packet_of(&p);
            let wa = walk_seq(&a, &packet, Some(&host), &mut ca);
            let wb = walk_seq(&b, &packet, Some(&host), &mut cb);
            if matches!(wa.fate, Fate::Inconclusive(_)) || matches!(wb.fate, Fate::Inconclusive(_))
            {
                out.inconclusive += 1;
                continue;
            }
            out.compared += 1;
            if wa.fate.as_str() != wb.fate.as_str() {
                out.first = Some((
                    format!("{packet} (in a sequence)"),
                    wa.fate.as_str().to_string(),
                    wb.fate.as_str().to_string(),
                ));
                out.report = format!(
                    "sequence packet: {packet}\n\n== iptables-save ==\n{ipt_text}\n== nft ==\n{nft_text}\n== walk (iptables) ==\n{wa}\n\n== walk (nft) ==\n{wb}\n"
                );
                break;
            }
        }
    }
    if out.first.is_none() {
        out.report = format!(
            "no disagreement: {} probes compared, {} inconclusive",
            out.compared, out.inconclusive
        );
    }
    out
}

/// The reference engine's fast pod-to-pod path against its full evaluation, on a small
/// generated cluster, for every pod pair on a few ports: the first mismatch, and the
/// number of verdicts compared.
pub fn reference_fast(cs: u64) -> (Option<String>, u64) {
    use crate::cluster::{Endpoint, Flow};
    use crate::values::Protocol;
    let cluster = crate::gen::generate_cluster(
        cs,
        crate::gen::ClusterShape {
            nodes: 2,
            namespaces: 3,
            pods: 12,
            policies: 6,
            services: 0,
        },
    );
    let r = Reference::new(&cluster);
    let n = cluster.pods.len() as u32;
    let mut compared = 0;
    for s in 0..n {
        for d in 0..n {
            for (port, proto) in [
                (Some(80), Protocol::Tcp),
                (Some(8080), Protocol::Tcp),
                (Some(9090), Protocol::Tcp),
                (Some(53), Protocol::Udp),
                (None, Protocol::Icmp),
            ] {
                compared += 1;
                let fast = r.pod_to_pod(s, d, port, proto);
                let flow = Flow {
                    from: Endpoint::Pod(s),
                    to: Endpoint::Pod(d),
                    port,
                    protocol: proto,
                };
                let full = r.verdict(&flow) == crate::reference::Verdict::Allow;
                if fast != full {
                    return (
                        Some(format!(
                            "{}: fast path {fast}, full evaluation {full}",
                            flow.display(&cluster)
                        )),
                        compared,
                    );
                }
            }
        }
    }
    (None, compared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_campaign_finds_nothing_without_a_planted_bug() {
        let opts = Options {
            targets: Target::ALL.to_vec(),
            seconds: 0.5,
            seed: 7,
            jobs: 2,
            out_dir: None,
            max_written: 3,
            stop_at_first: false,
        };
        for r in run(&opts, &|_, _, _| {}) {
            assert!(r.cases > 0, "{:?}", r.target);
            assert_eq!(r.failing_cases, 0, "{:?}: {:?}", r.target, r.written);
            assert!(r.compared > 0, "{:?}", r.target);
        }
    }
}
