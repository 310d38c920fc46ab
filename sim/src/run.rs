//! `fwsim run`: discover scenarios under paths, select them (tags, shard), load, evaluate.
//!
//! Contract: [`run`] never fails as a whole. A scenario that cannot be loaded is reported
//! with its diagnostics and the others still run. Exit status: 0 when every expectation
//! holds on every dataplane evaluated and no divergence was found, 1 otherwise, 2 when any
//! input was unusable.

use crate::diag::Diagnostic;
use crate::scenario::{self, Dataplane, ScenarioResult};
use crate::values::Site;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Evaluate these instead of each scenario's own list.
    pub dataplanes: Option<Vec<Dataplane>>,
    /// Only scenarios carrying one of these tags (all when empty).
    pub tags: Vec<String>,
    /// (K, N): only the K-th (1-based) of N stable shards.
    pub shard: Option<(u32, u32)>,
}

/// A scenario that could not be loaded.
#[derive(Clone, Debug)]
pub struct LoadFailure {
    pub name: Option<String>,
    pub site: Site,
    pub errors: Vec<Diagnostic>,
}

#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub results: Vec<ScenarioResult>,
    pub failures: Vec<LoadFailure>,
    /// Problems outside any one scenario (unreadable files, YAML syntax errors).
    pub errors: Vec<Diagnostic>,
}

impl RunReport {
    pub fn expectations(&self) -> usize {
        self.results.iter().map(|r| r.results.len()).sum()
    }
    pub fn passed(&self) -> usize {
        self.results.iter().map(|r| r.passed()).sum()
    }
    pub fn failed(&self) -> usize {
        self.results.iter().map(|r| r.failed()).sum()
    }
    pub fn skipped(&self) -> usize {
        self.results.iter().map(|r| r.skipped()).sum()
    }
    pub fn divergences(&self) -> usize {
        self.results.iter().map(|r| r.divergences.len()).sum()
    }

    pub fn exit_code(&self) -> i32 {
        if !self.errors.is_empty() || !self.failures.is_empty() {
            2
        } else if self.failed() > 0 || self.divergences() > 0 {
            1
        } else {
            0
        }
    }
}

/// FNV-1a: a hash that never changes between versions or machines, for stable shards.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Parse `K/N` (1 ≤ K ≤ N).
pub fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let err = || format!("shard `{text}`: expected K/N with 1 <= K <= N, such as 2/4");
    let (k, n) = text.split_once('/').ok_or_else(err)?;
    let k: u32 = k.trim().parse().map_err(|_| err())?;
    let n: u32 = n.trim().parse().map_err(|_| err())?;
    if k == 0 || n == 0 || k > n {
        return Err(err());
    }
    Ok((k, n))
}

pub fn run(paths: &[PathBuf], opts: &RunOptions) -> RunReport {
    let found = scenario::discover(paths);
    let mut report = RunReport {
        errors: found.errors,
        ..Default::default()
    };
    // Headers first: names must be unique across the run; tags and shards select.
    let mut selected = Vec::new();
    let mut names: HashMap<String, Site> = HashMap::new();
    for doc in found.docs {
        let (head, _) = match scenario::header_of_doc(&doc) {
            Ok(h) => h,
            Err(d) => {
                report.failures.push(LoadFailure {
                    name: doc
                        .node
                        .get("name")
                        .and_then(|n| n.as_str())
                        .map(str::to_string),
                    site: Site::new(&doc.file, doc.node.loc),
                    errors: vec![d],
                });
                continue;
            }
        };
        if let Some(first) = names.get(&head.name) {
            report.failures.push(LoadFailure {
                name: Some(head.name.clone()),
                site: head.site.clone(),
                errors: vec![Diagnostic::error(
                    head.site.clone(),
                    format!(
                        "duplicate scenario name `{}`: already used at {first}; names must be unique within a run",
                        head.name
                    ),
                )],
            });
            continue;
        }
        names.insert(head.name.clone(), head.site.clone());
        if !opts.tags.is_empty() && !head.tags.iter().any(|t| opts.tags.contains(t)) {
            continue;
        }
        if let Some((k, n)) = opts.shard {
            if stable_hash(&head.name) % u64::from(n) != u64::from(k - 1) {
                continue;
            }
        }
        selected.push((head, doc));
    }
    let outcomes: Vec<Result<ScenarioResult, LoadFailure>> = selected
        .par_iter()
        .map(|(head, doc)| match scenario::load(doc) {
            Ok(s) => Ok(scenario::evaluate(&s, opts.dataplanes.as_deref())),
            Err(errors) => Err(LoadFailure {
                name: Some(head.name.clone()),
                site: head.site.clone(),
                errors,
            }),
        })
        .collect();
    for o in outcomes {
        match o {
            Ok(r) => report.results.push(r),
            Err(f) => report.failures.push(f),
        }
    }
    report
}
