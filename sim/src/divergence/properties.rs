//! Properties of NetworkPolicy semantics and of the rendered dataplanes, checked with
//! quickcheck over generated cases (a case is drawn from a quickcheck-chosen seed, so a
//! failure prints the seed that replays it):
//! - adding a policy never removes an allowed flow between pods it does not select;
//! - adding a rule to a policy's existing rule list never turns allow into deny;
//! - printing the rendered rules and reading them back preserves every verdict;
//! - a minimized case still diverges (with a planted bug, on this thread only).
//!
//! Each monotonicity property holds for the reference and for calico-iptables alike.

use super::{check_case, load_case};
use crate::cluster::{Endpoint, Flow};
use crate::gen::case::{Case, GPolicy};
use crate::reference::{Reference, Verdict};
use crate::render::Flavor;
use quickcheck::{QuickCheck, TestResult};
use rand::SeedableRng;
use serde_json::json;

fn case(seed: u64) -> Case {
    Case::generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))
}

/// A case's flows, their reference verdicts, and their calico-iptables verdicts (None
/// where inconclusive).
type Verdicts = (Vec<Flow>, Vec<Verdict>, Vec<Option<Verdict>>);

/// Reference and calico-iptables verdicts of every flow.
fn verdicts(c: &Case) -> Option<Verdicts> {
    let (cluster, flows) = load_case(c).ok()?;
    let r = Reference::new(&cluster);
    let reference = flows.iter().map(|f| r.verdict(f)).collect();
    let rendered = crate::render::render(&cluster, Flavor::CalicoIptables, &[]).ok()?;
    let path = crate::path::ClusterPath::new(&cluster, &rendered).ok()?;
    let dataplane = flows.iter().map(|f| path.flow(f).verdict.ok()).collect();
    Some((flows, reference, dataplane))
}

fn pod_of(e: &Endpoint, cluster: &crate::cluster::Cluster) -> Option<String> {
    match e {
        Endpoint::Pod(p) => Some(cluster.pod_name(*p)),
        _ => None,
    }
}

/// A new policy selecting only pods labelled `app=<app>` in namespace `ns`, denying all.
fn extra_policy(ns: &str, app: &str) -> GPolicy {
    GPolicy {
        ns: ns.to_string(),
        name: "added".into(),
        spec: json!({
            "podSelector": {"matchLabels": {"app": app}},
            "policyTypes": ["Ingress", "Egress"],
        }),
    }
}

fn adding_a_policy_keeps_unselected_pods_allowed(seed: u64, pick: u8) -> TestResult {
    let base = case(seed);
    if base.namespaces.is_empty() {
        return TestResult::discard();
    }
    let ns = base.namespaces[pick as usize % base.namespaces.len()]
        .0
        .clone();
    let app = ["a", "b", "c"][pick as usize % 3];
    let Some((flows, before_ref, before_dp)) = verdicts(&base) else {
        return TestResult::discard();
    };
    let mut more = base.clone();
    more.policies.push(extra_policy(&ns, app));
    let Some((_, after_ref, after_dp)) = verdicts(&more) else {
        return TestResult::failed();
    };
    let Ok((cluster, _)) = load_case(&base) else {
        return TestResult::discard();
    };
    let selected = |e: &Endpoint| {
        pod_of(e, &cluster).is_some_and(|name| {
            base.pods.iter().any(|p| {
                p.qualified() == name
                    && p.ns == ns
                    && p.labels.iter().any(|(k, v)| k == "app" && v == app)
            })
        })
    };
    for (i, f) in flows.iter().enumerate() {
        // Services reach endpoints the new policy may select: only direct flows count.
        if matches!(f.to, Endpoint::Service(_)) || selected(&f.from) || selected(&f.to) {
            continue;
        }
        if before_ref[i] == Verdict::Allow && after_ref[i] != Verdict::Allow {
            return TestResult::error(format!("reference: {} lost", f.display(&cluster)));
        }
        if before_dp[i] == Some(Verdict::Allow) && after_dp[i].is_some_and(|v| v != Verdict::Allow)
        {
            return TestResult::error(format!("calico-iptables: {} lost", f.display(&cluster)));
        }
    }
    TestResult::passed()
}

fn adding_a_rule_never_denies_more(seed: u64, pick: u8) -> TestResult {
    let base = case(seed);
    // A policy with an existing rule list to extend.
    let Some((pi, dir)) = base.policies.iter().enumerate().find_map(|(i, p)| {
        ["ingress", "egress"]
            .into_iter()
            .find(|d| p.spec.get(*d).is_some_and(|v| v.is_array()))
            .map(|d| (i, d))
    }) else {
        return TestResult::discard();
    };
    let Some((flows, before_ref, before_dp)) = verdicts(&base) else {
        return TestResult::discard();
    };
    let mut more = base.clone();
    let key = if dir == "ingress" { "from" } else { "to" };
    let rule = match pick % 3 {
        0 => json!({}),
        1 => json!({ key: [{"podSelector": {}}] }),
        _ => json!({"ports": [{"protocol": "TCP", "port": 80}]}),
    };
    more.policies[pi].spec[dir]
        .as_array_mut()
        .expect("a list")
        .push(rule);
    let Some((_, after_ref, after_dp)) = verdicts(&more) else {
        return TestResult::failed();
    };
    for (i, f) in flows.iter().enumerate() {
        if before_ref[i] == Verdict::Allow && after_ref[i] == Verdict::Deny {
            return TestResult::error(format!("reference: flow {i} ({f:?}) became deny"));
        }
        if before_dp[i] == Some(Verdict::Allow) && after_dp[i] == Some(Verdict::Deny) {
            return TestResult::error(format!("calico-iptables: flow {i} ({f:?}) became deny"));
        }
    }
    TestResult::passed()
}

/// The rendered iptables-save and nft texts printed by fwsim's printers and read back give
/// the same verdict on every flow.
fn printing_and_reading_back_keeps_verdicts(seed: u64) -> TestResult {
    let c = case(seed);
    let Ok((cluster, flows)) = load_case(&c) else {
        return TestResult::discard();
    };
    for flavor in [Flavor::CalicoIptables, Flavor::CalicoNftables] {
        let Ok(rendered) = crate::render::render(&cluster, flavor, &[]) else {
            return TestResult::failed();
        };
        let mut again = rendered.clone();
        for n in &mut again.nodes {
            if let Some(t) = &n.iptables {
                let save = crate::syntax::iptables::parse(t).expect("rendered text parses");
                n.iptables = Some(save.to_string());
            }
            if let Some(t) = &n.nft {
                let file = crate::syntax::nft::parse(t).expect("rendered text parses");
                n.nft = Some(file.to_string());
            }
        }
        let (Ok(a), Ok(b)) = (
            crate::path::ClusterPath::new(&cluster, &rendered),
            crate::path::ClusterPath::new(&cluster, &again),
        ) else {
            return TestResult::failed();
        };
        for f in &flows {
            if a.flow(f).verdict != b.flow(f).verdict {
                return TestResult::error(format!("{flavor:?}: {}", f.display(&cluster)));
            }
        }
    }
    TestResult::passed()
}

/// With a planted bug, a case that diverges still diverges once minimized, and is no
/// larger.
fn a_minimized_case_still_diverges(seed: u64, which: u8) -> TestResult {
    use crate::planted::Bug;
    let bug = [
        Bug::AndPeersAsOr,
        Bug::PolicyTypesNoIngress,
        Bug::EstablishedNotAccepted,
    ][which as usize % 3];
    let _planted = crate::planted::plant_here(bug);
    let c = case(seed);
    let diverges = |c: &Case| !check_case(c, Flavor::CalicoIptables).findings.is_empty();
    if !diverges(&c) {
        return TestResult::discard();
    }
    let small = super::minimize::minimize(&c, &diverges);
    TestResult::from_bool(
        diverges(&small)
            && small.pods.len() <= c.pods.len()
            && small.policies.len() <= c.policies.len()
            && small.flows.len() == 1,
    )
}

#[test]
fn adding_a_policy_never_removes_an_allowed_flow_of_an_unselected_pod() {
    QuickCheck::new()
        .tests(60)
        .quickcheck(adding_a_policy_keeps_unselected_pods_allowed as fn(u64, u8) -> TestResult);
}

#[test]
fn adding_a_rule_to_a_policy_never_turns_allow_into_deny() {
    QuickCheck::new()
        .tests(60)
        .quickcheck(adding_a_rule_never_denies_more as fn(u64, u8) -> TestResult);
}

#[test]
fn printing_and_re_parsing_preserves_verdicts() {
    QuickCheck::new()
        .tests(30)
        .quickcheck(printing_and_reading_back_keeps_verdicts as fn(u64) -> TestResult);
}

#[test]
fn a_minimized_case_still_diverges_property() {
    QuickCheck::new()
        .tests(40)
        .max_tests(2000)
        .quickcheck(a_minimized_case_still_diverges as fn(u64, u8) -> TestResult);
}
