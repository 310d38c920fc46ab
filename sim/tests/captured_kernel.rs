//! The round trip through the real kernel: every cluster scenario CI runs on the `kernel`
//! dataplane is built in network namespaces with fwsim's rendered calico-iptables rules
//! (the `kernel` dataplane's lab), each node namespace is collected with `fwsim collect
//! --netns`, and the `captured` dataplane walks every flow of the scenario through those
//! snapshots. It must agree with the kernel (real packets) on every flow the kernel
//! evaluates, skip none of them, and agree with calico-iptables (the same rules, walked by
//! fwsim on fwsim's own layout) and with the scenario's expectation.
//!
//! Needs root and the iptables, ipset and iproute2 tools; skips, saying why, without them.
//!
//! `FWSIM_WRITE_CAPTURED=DIR` also keeps the snapshots, one directory per scenario, each
//! holding one snapshot per node (how the fixtures under scenarios/captured/ are written).

use fwsim::cluster::Flow;
use fwsim::kernel::cluster::ClusterKernel;
use fwsim::kernel::KernelError;
use fwsim::reference::Verdict;
use fwsim::render::Flavor;
use fwsim::scenario::{Body, Dataplane, ExpectKind};
use fwsim::syntax::matrix::Cell;
use std::path::PathBuf;

/// The files `.ci/run` (scripts/test.sh) runs with `--dataplanes ...,kernel`.
const CI_KERNEL_SCENARIOS: &[&str] = &[
    "scenarios/dataplanes/host-firewalls.yaml",
    "scenarios/dataplanes/calico.yaml",
    "scenarios/semantics/node-traffic.yaml",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn verdict_text(v: &Result<(Verdict, String), String>) -> String {
    match v {
        Ok((v, _)) => v.as_str().to_string(),
        Err(why) => format!("skipped ({})", why.lines().next().unwrap_or("")),
    }
}

#[test]
fn captured_snapshots_of_the_kernel_lab_agree_with_the_kernel_on_every_ci_scenario() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let keep = std::env::var_os("FWSIM_WRITE_CAPTURED").map(PathBuf::from);
    let paths: Vec<PathBuf> = CI_KERNEL_SCENARIOS.iter().map(|p| root().join(p)).collect();
    let found = fwsim::scenario::discover(&paths);
    assert!(found.errors.is_empty(), "{:?}", found.errors);
    let tmp = tempfile::tempdir().unwrap();
    let (mut flows_seen, mut kernel_decided, mut disagreements) = (0, 0, Vec::new());
    let mut scenarios = 0;
    for doc in &found.docs {
        let s = fwsim::scenario::load(doc).unwrap_or_else(|e| panic!("{e:?}"));
        let Body::Cluster {
            cluster,
            hosts,
            expects,
            ..
        } = &s.body
        else {
            continue;
        };
        let rendered = fwsim::render::render(cluster, Flavor::CalicoIptables, hosts).unwrap();
        let lab = match ClusterKernel::new(cluster, &rendered) {
            Ok(k) => k,
            Err(KernelError::Unavailable(why)) => {
                eprintln!("skipped: {why}");
                return;
            }
            Err(e) => panic!("{}: {e}", s.name),
        };
        scenarios += 1;
        let dir = match &keep {
            Some(d) => d.join(&s.name),
            None => tmp.path().join(&s.name),
        };
        let mut snaps = Vec::new();
        for (i, n) in cluster.nodes.iter().enumerate() {
            let out = dir.join(&n.name);
            let _ = std::fs::remove_dir_all(&out);
            let report = fwsim::snapshot::collect::collect(
                Some(lab.node_namespace(i as u32)),
                &out,
                Some(&n.name),
            )
            .unwrap_or_else(|e| panic!("{}: collect {}: {e}", s.name, n.name));
            assert!(
                report.failed.is_empty(),
                "{}: collect {}: {:?}",
                s.name,
                n.name,
                report.failed
            );
            snaps.push(fwsim::snapshot::read(&out).unwrap_or_else(|d| panic!("{d}")));
        }
        let snap_refs: Vec<&fwsim::snapshot::Snapshot> = snaps.iter().collect();
        let captured = fwsim::captured::path(cluster, &snap_refs)
            .unwrap_or_else(|e| panic!("{}: captured: {e}", s.name));
        let calico = fwsim::path::ClusterPath::new(cluster, &rendered).unwrap();
        // Every flow and checked cell, with calico-iptables' expected verdict.
        let mut flows: Vec<(Flow, Verdict)> = Vec::new();
        for e in expects {
            let expected = |base: Verdict| {
                e.except
                    .iter()
                    .find(|(d, _)| *d == Dataplane::CalicoIptables)
                    .map(|(_, v)| *v)
                    .unwrap_or(base)
            };
            match &e.kind {
                ExpectKind::Flow { flow, verdict } => {
                    flows.push((flow.clone(), expected(*verdict)))
                }
                ExpectKind::Matrix {
                    port,
                    protocol,
                    rows,
                    cols,
                    cells,
                } => {
                    for c in cells {
                        let base = match c.expected {
                            Cell::Allow => Verdict::Allow,
                            Cell::Deny => Verdict::Deny,
                            Cell::Unchecked => continue,
                        };
                        flows.push((
                            Flow {
                                from: rows[c.row].clone(),
                                to: cols[c.col].clone(),
                                port: *port,
                                protocol: *protocol,
                            },
                            expected(base),
                        ));
                    }
                }
            }
        }
        for (flow, expected) in flows {
            flows_seen += 1;
            let text = flow.display(cluster);
            let kernel = lab.flow(&flow);
            let cap = captured.flow(&flow);
            let cal = calico.flow(&flow);
            let cap_v = cap.verdict.clone();
            let problem = match (&kernel, &cap_v) {
                (Ok((k, _)), Ok(c)) if k == c => None,
                (Ok(_), _) => Some("captured differs from the kernel"),
                (Err(_), _) => None,
            };
            if kernel.is_ok() {
                kernel_decided += 1;
            }
            let problem = problem
                .or_else(|| {
                    (cap_v.as_ref().ok() != cal.verdict.as_ref().ok())
                        .then_some("captured differs from calico-iptables")
                })
                .or_else(|| {
                    (cap_v.as_ref().ok() != Some(&expected))
                        .then_some("captured differs from the expectation")
                });
            if let Some(p) = problem {
                disagreements.push(format!(
                    "{}: {text}: {p}: expected {}, kernel {}, calico-iptables {:?}, captured {:?}\n{}",
                    s.name,
                    expected.as_str(),
                    verdict_text(&kernel),
                    cal.verdict,
                    cap_v,
                    cap.explanation
                ));
            }
        }
        drop(lab);
    }
    eprintln!(
        "{scenarios} scenarios, {flows_seen} flows: the kernel decided {kernel_decided}; {} disagreements",
        disagreements.len()
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
}
