//! fwsim: evaluate Kubernetes NetworkPolicies and the netfilter rules that implement them,
//! side by side, and find every place where they disagree.
//!
//! Layers, each depending only on those above it (see ARCHITECTURE.md):
//! values → cluster (checked model) → syntax (YAML, Kubernetes objects, scenarios) →
//! reference (NetworkPolicy semantics) → scenario (load, evaluate) → run, report → CLI.

pub mod bench;
pub mod cluster;
pub mod diag;
pub mod fuzzing;
pub mod gen;
pub mod kernel;
pub mod netfilter;
pub mod reference;
pub mod report;
pub mod run;
pub mod scenario;
pub mod syntax;
pub mod values;

/// Test support shared by the library's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    /// The shared ruleset corpus files with one of `extensions`, in name order; None (and a
    /// printed reason) where `../shared/rulesets` is absent, so corpus tests skip.
    pub fn corpus(extensions: &[&str]) -> Option<Vec<PathBuf>> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/rulesets");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipped: {} is absent", dir.display());
            return None;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.contains(&e))
            })
            .collect();
        paths.sort();
        Some(paths)
    }
}
