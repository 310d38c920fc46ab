//! A generated cluster shaped like a real multi-tenant one: namespaces with team and env
//! labels, pods of a few apps and tiers with named ports, and policies of every common
//! shape (default deny, pod and namespace selectors, both ANDed, ipBlocks, numeric, named
//! and ranged ports, egress rules).

use crate::cluster::{
    Cluster, ClusterBuilder, ContainerPort, Peer, PodSpec, PortMatch, PortRef, Requirement, Rule,
    Selector,
};
use crate::values::{Labels, Loc, Protocol, Site};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
pub struct ClusterShape {
    pub nodes: usize,
    pub namespaces: usize,
    pub pods: usize,
    pub policies: usize,
    /// Services, each selecting one app of one namespace, port 80 to the pods' named port
    /// `http` (cluster IPs from 10.96.0.0/16).
    pub services: usize,
}

const APPS: [&str; 10] = [
    "web", "api", "db", "cache", "queue", "auth", "search", "billing", "mail", "metrics",
];
const TIERS: [&str; 3] = ["frontend", "backend", "data"];
const TEAMS: [&str; 5] = ["red", "blue", "green", "gold", "gray"];
const ENVS: [&str; 3] = ["prod", "staging", "dev"];

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pick<'a, R: Rng>(rng: &mut R, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn pod_selector<R: Rng>(rng: &mut R) -> Selector {
    match rng.random_range(0..4) {
        0 => Selector::default(),
        1 | 2 => Selector {
            match_labels: vec![("app".into(), pick(rng, &APPS).into())],
            expressions: vec![],
        },
        _ => Selector {
            match_labels: vec![],
            expressions: vec![Requirement::In(
                "tier".into(),
                vec![pick(rng, &TIERS).into(), pick(rng, &TIERS).into()],
            )],
        },
    }
}

fn peer<R: Rng>(rng: &mut R) -> Peer {
    match rng.random_range(0..6) {
        0 | 1 => Peer::Pods {
            namespaces: None,
            pods: Some(pod_selector(rng)),
        },
        2 => Peer::Pods {
            namespaces: Some(Selector {
                match_labels: vec![("team".into(), pick(rng, &TEAMS).into())],
                expressions: vec![],
            }),
            pods: None,
        },
        3 => Peer::Pods {
            namespaces: Some(Selector {
                match_labels: vec![("env".into(), pick(rng, &ENVS).into())],
                expressions: vec![],
            }),
            pods: Some(pod_selector(rng)),
        },
        4 => Peer::Pods {
            namespaces: Some(Selector::default()),
            pods: Some(Selector {
                match_labels: vec![("app".into(), pick(rng, &APPS).into())],
                expressions: vec![],
            }),
        },
        _ => {
            let a = rng.random_range(0..=255u8);
            Peer::IpBlock {
                cidr: format!("10.{a}.0.0/16").parse().unwrap(),
                except: vec![format!("10.{a}.{}.0/24", rng.random_range(0..=255u8))
                    .parse()
                    .unwrap()],
            }
        }
    }
}

fn ports<R: Rng>(rng: &mut R) -> Option<Vec<PortMatch>> {
    match rng.random_range(0..5) {
        0 => None,
        1 => Some(vec![PortMatch {
            protocol: Protocol::Tcp,
            port: Some(PortRef::Name("http".into())),
            end_port: None,
        }]),
        2 => Some(vec![PortMatch {
            protocol: Protocol::Tcp,
            port: Some(PortRef::Number(8000)),
            end_port: Some(8100),
        }]),
        _ => Some(vec![
            PortMatch {
                protocol: Protocol::Tcp,
                port: Some(PortRef::Number(80)),
                end_port: None,
            },
            PortMatch {
                protocol: Protocol::Udp,
                port: Some(PortRef::Number(53)),
                end_port: None,
            },
        ]),
    }
}

fn rules<R: Rng>(rng: &mut R) -> Vec<Rule> {
    (0..rng.random_range(1..=3))
        .map(|_| Rule {
            peers: if rng.random_range(0..8) == 0 {
                None
            } else {
                Some((0..rng.random_range(1..=3)).map(|_| peer(rng)).collect())
            },
            ports: ports(rng),
        })
        .collect()
}

/// Generate a cluster of the given shape from `seed`.
pub fn generate_cluster(seed: u64, shape: ClusterShape) -> Cluster {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let site = Site::new(&Arc::new("<generated>".into()), Loc::default());
    let mut b = ClusterBuilder::new();
    for n in 0..shape.nodes.max(1) {
        b.node(
            format!("node-{}", n + 1),
            IpAddr::V4(Ipv4Addr::new(
                192,
                168,
                (n / 250) as u8,
                (n % 250 + 1) as u8,
            )),
            Some(
                format!("10.{}.{}.0/24", 100 + n / 256, n % 256)
                    .parse()
                    .unwrap(),
            ),
            site.clone(),
        );
    }
    let ns_names: Vec<String> = (0..shape.namespaces).map(|i| format!("ns-{i}")).collect();
    for name in &ns_names {
        b.namespace(
            name.clone(),
            labels(&[
                ("team", pick(&mut rng, &TEAMS)),
                ("env", pick(&mut rng, &ENVS)),
            ]),
            site.clone(),
        );
    }
    for p in 0..shape.pods {
        let ns = &ns_names[p % shape.namespaces];
        let app = pick(&mut rng, &APPS);
        let http = if rng.random_bool(0.5) { 80 } else { 8080 };
        b.pod(PodSpec {
            namespace: ns.clone(),
            name: format!("{app}-{p}"),
            labels: labels(&[("app", app), ("tier", pick(&mut rng, &TIERS))]),
            node: None,
            ip: None,
            ports: vec![
                ContainerPort {
                    name: Some("http".into()),
                    port: http,
                    protocol: Protocol::Tcp,
                },
                ContainerPort {
                    name: Some("metrics".into()),
                    port: 9090,
                    protocol: Protocol::Tcp,
                },
            ],
            site: site.clone(),
        });
    }
    for i in 0..shape.services {
        let ns = &ns_names[i % shape.namespaces];
        let app = pick(&mut rng, &APPS);
        b.service(crate::cluster::ServiceSpec {
            namespace: ns.clone(),
            name: format!("{app}-svc-{i}"),
            cluster_ip: Some(IpAddr::V4(Ipv4Addr::new(
                10,
                96,
                (i / 250) as u8,
                (i % 250 + 1) as u8,
            ))),
            selector: Some(labels(&[("app", app)])),
            ports: vec![crate::cluster::ServicePort {
                name: Some("http".into()),
                port: 80,
                target: crate::cluster::TargetPort::Name("http".into()),
                protocol: Protocol::Tcp,
            }],
            site: site.clone(),
        });
    }
    for i in 0..shape.policies {
        let ns = &ns_names[rng.random_range(0..shape.namespaces)];
        let (ingress, egress) = match rng.random_range(0..10) {
            0 => (Some(vec![]), None),         // default deny ingress
            1 => (Some(vec![]), Some(vec![])), // default deny all
            2 | 3 => (Some(rules(&mut rng)), Some(rules(&mut rng))),
            4 => (None, Some(rules(&mut rng))),
            _ => (Some(rules(&mut rng)), None),
        };
        b.policy(
            ns.clone(),
            format!("policy-{i}"),
            pod_selector(&mut rng),
            ingress,
            egress,
            true,
            site.clone(),
        );
    }
    b.build().expect("generated clusters are valid")
}
