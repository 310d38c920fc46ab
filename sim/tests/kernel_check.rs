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
        plant: None,
    };
    let report = run(&opts, |_, _, _| {}).expect("kernel check runs");
    print!("{report}");
    for (b, r) in &report.backends {
        assert_eq!(r.cases, 600, "{}", b.as_str());
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
