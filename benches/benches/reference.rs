//! Criterion micro-benchmarks of the reference engine on the generated 5,000-pod cluster.
//! `fwsim bench` writes the headline figures as CSV into reports/; this measures latency.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fwsim::gen::{generate_cluster, ClusterShape};
use fwsim::reference::Reference;
use fwsim::values::Protocol;

fn reference(c: &mut Criterion) {
    let cluster = generate_cluster(
        1,
        ClusterShape {
            nodes: 50,
            namespaces: 100,
            pods: 5000,
            policies: 2000,
            services: 0,
        },
    );
    c.bench_function("index 5000 pods 2000 policies", |b| {
        b.iter(|| Reference::new(black_box(&cluster)))
    });
    let engine = Reference::new(&cluster);
    let mut i = 0u32;
    c.bench_function("pod_to_pod verdict", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let s = i % 5000;
            let d = (i / 5000 + i * 31) % 5000;
            engine.pod_to_pod(black_box(s), black_box(d), Some(80), Protocol::Tcp)
        })
    });
}

criterion_group!(benches, reference);
criterion_main!(benches);
