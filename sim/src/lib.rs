//! fwsim: evaluate Kubernetes NetworkPolicies and the netfilter rules that implement them,
//! side by side, and find every place where they disagree.
//!
//! Layers, each depending only on those above it (see ARCHITECTURE.md):
//! values → cluster (checked model) → syntax (YAML, Kubernetes objects, scenarios) →
//! reference (NetworkPolicy semantics) → scenario (load, evaluate) → run, report → CLI.

pub mod bench;
pub mod cluster;
pub mod diag;
pub mod gen;
pub mod netfilter;
pub mod reference;
pub mod report;
pub mod run;
pub mod scenario;
pub mod syntax;
pub mod values;
