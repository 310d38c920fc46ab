//! Properties of the reference engine on generated clusters (seeded, replayable):
//! the fast matcher agrees with the explaining one, explanations agree with verdicts,
//! and NetworkPolicy's monotonicity holds.

use fwsim::cluster::{Direction, Endpoint, Flow, Policy, Rule};
use fwsim::gen::{generate_cluster, ClusterShape};
use fwsim::reference::{Reference, Side, Verdict};
use fwsim::values::Protocol;

const PORTS: [(Option<u16>, Protocol); 6] = [
    (Some(80), Protocol::Tcp),
    (Some(8080), Protocol::Tcp),
    (Some(8050), Protocol::Tcp),
    (Some(53), Protocol::Udp),
    (Some(9090), Protocol::Tcp),
    (None, Protocol::Icmp),
];

fn shape() -> ClusterShape {
    ClusterShape {
        nodes: 3,
        namespaces: 6,
        pods: 60,
        policies: 25,
        services: 0,
    }
}

#[test]
fn fast_path_agrees_with_explained_verdicts() {
    for seed in 0..20 {
        let cluster = generate_cluster(seed, shape());
        let engine = Reference::new(&cluster);
        let n = cluster.pods.len() as u32;
        for s in 0..n {
            for d in 0..n {
                for &(port, protocol) in &PORTS {
                    let fast = engine.pod_to_pod(s, d, port, protocol);
                    let flow = Flow {
                        from: Endpoint::Pod(s),
                        to: Endpoint::Pod(d),
                        port,
                        protocol,
                    };
                    let (outcome, why) = engine.explain(&flow);
                    let slow = outcome.verdict() == Verdict::Allow;
                    assert_eq!(
                        fast,
                        slow,
                        "seed {seed}: {} fast={fast} slow={slow}\n{why}",
                        flow.display(&cluster)
                    );
                    assert_eq!(engine.verdict(&flow), outcome.verdict());
                    let text = why.to_string();
                    if s != d {
                        assert_eq!(text.contains("denied"), !slow, "seed {seed}: {text}");
                    }
                }
            }
        }
    }
}

/// Adding a policy never removes an allowed flow whose pods it does not select.
#[test]
fn adding_a_policy_keeps_flows_of_unselected_pods() {
    for seed in 0..20 {
        let base = generate_cluster(seed, shape());
        let donor = generate_cluster(seed + 1000, shape());
        for extra in donor.policies.iter().take(5) {
            let mut grown = base.clone();
            grown.policies.push(extra.clone());
            let before = Reference::new(&base);
            let after = Reference::new(&grown);
            let selects = |p: u32| {
                let pod = &grown.pods[p as usize];
                pod.ns == extra.ns && extra.pod_selector.matches(&pod.labels)
            };
            for s in 0..base.pods.len() as u32 {
                for d in 0..base.pods.len() as u32 {
                    if selects(s) || selects(d) {
                        continue;
                    }
                    for &(port, protocol) in &PORTS {
                        assert_eq!(
                            before.pod_to_pod(s, d, port, protocol),
                            after.pod_to_pod(s, d, port, protocol),
                            "seed {seed}"
                        );
                    }
                }
            }
        }
    }
}

/// Adding a rule to a policy never turns an allowed flow into a denied one.
#[test]
fn adding_a_rule_never_denies() {
    for seed in 0..20 {
        let base = generate_cluster(seed, shape());
        let donor = generate_cluster(seed + 2000, shape());
        let extra_rules: Vec<Rule> = donor
            .policies
            .iter()
            .flat_map(|p| p.ingress.iter().flatten().chain(p.egress.iter().flatten()))
            .take(6)
            .cloned()
            .collect();
        for (i, rule) in extra_rules.iter().enumerate() {
            let mut grown = base.clone();
            let target: &mut Policy = &mut grown.policies[i % base.policies.len()];
            let dir = if i % 2 == 0 {
                Direction::Ingress
            } else {
                Direction::Egress
            };
            match dir {
                Direction::Ingress => target.ingress.get_or_insert_with(Vec::new),
                Direction::Egress => target.egress.get_or_insert_with(Vec::new),
            }
            .push(rule.clone());
            // A policy that gains a direction isolates pods: only compare when it had it.
            let had = base.policies[i % base.policies.len()].rules(dir).is_some();
            if !had {
                continue;
            }
            let before = Reference::new(&base);
            let after = Reference::new(&grown);
            for s in 0..base.pods.len() as u32 {
                for d in 0..base.pods.len() as u32 {
                    for &(port, protocol) in &PORTS {
                        if before.pod_to_pod(s, d, port, protocol) {
                            assert!(after.pod_to_pod(s, d, port, protocol), "seed {seed}");
                        }
                    }
                }
            }
        }
    }
}

/// A pod no policy selects is open in both directions.
#[test]
fn unselected_pods_are_not_isolated() {
    let cluster = generate_cluster(7, shape());
    let engine = Reference::new(&cluster);
    let mut found = 0;
    for p in 0..cluster.pods.len() as u32 {
        let pod = &cluster.pods[p as usize];
        let selected = cluster
            .policies
            .iter()
            .any(|pol| pol.ns == pod.ns && pol.pod_selector.matches(&pod.labels));
        if !selected {
            found += 1;
            for dir in [Direction::Ingress, Direction::Egress] {
                let side = engine.side(
                    p,
                    dir,
                    fwsim::reference::Other::Pod(0),
                    Some(80),
                    Protocol::Tcp,
                );
                assert_eq!(side, Side::NotIsolated);
            }
        }
    }
    assert!(found > 0, "seed 7 should leave some pod unselected");
}
