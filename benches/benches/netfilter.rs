//! Criterion micro-benchmarks of the netfilter interpreter on generated rulesets (seed 1).
//! `fwsim bench netfilter` writes the headline figures as CSV into reports/; this measures
//! the latency of one walk.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fwsim::gen::bench_rulesets::{calico, linear, CalicoShape};
use fwsim::netfilter::{interp::walk, read_ruleset};

fn netfilter(c: &mut Criterion) {
    let g = linear(1, 1_000, 64);
    let rs = read_ruleset(&g.text).expect("generated rulesets read");
    let mut i = 0usize;
    c.bench_function("walk linear 1k rules", |b| {
        b.iter(|| {
            i += 1;
            walk(black_box(&rs), &g.packets[i % g.packets.len()].0)
        })
    });
    c.bench_function("parse+convert linear 1k rules", |b| {
        b.iter(|| read_ruleset(black_box(&g.text)))
    });
    let g = calico(1, CalicoShape::default(), 256);
    let rs = read_ruleset(&g.text).expect("generated rulesets read");
    c.bench_function("walk calico-like 500 endpoints", |b| {
        b.iter(|| {
            i += 1;
            walk(black_box(&rs), &g.packets[i % g.packets.len()].0)
        })
    });
}

criterion_group!(benches, netfilter);
criterion_main!(benches);
