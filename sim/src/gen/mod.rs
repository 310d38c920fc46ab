//! Seeded generators: clusters and policies (benchmarks), iptables rulesets with packets
//! for the interpreter benchmark (`bench_rulesets`), and random rulesets and probes in the
//! common subset of iptables and nft for the kernel check and fuzzers (`ruleset`).
//!
//! Contract: the same seed and sizes give the same cluster, on every machine and version
//! of Rust (ChaCha8, no hash-ordered iteration).

pub mod bench_rulesets;
pub mod case;
mod cluster;
pub mod ruleset;

pub use cluster::{generate_cluster, ClusterShape};
