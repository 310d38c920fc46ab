//! Seeded generators of clusters and policies, and of iptables rulesets with packets
//! (benchmarks now; fuzzing later).
//!
//! Contract: the same seed and sizes give the same cluster, on every machine and version
//! of Rust (ChaCha8, no hash-ordered iteration).

mod cluster;
pub mod ruleset;

pub use cluster::{generate_cluster, ClusterShape};
