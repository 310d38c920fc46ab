//! Human output: a line per scenario and dataplane; for a failure, the flow, the expected
//! and actual verdicts and the explanation; a failing matrix printed as the upstream
//! Kubernetes netpol e2e tests print it (expected, observed, comparison), then the
//! explanation of each wrong cell.

use crate::run::RunReport;
use crate::scenario::{MatrixReport, ScenarioResult};
use crate::syntax::matrix::Cell;
use std::fmt::Write;

fn table(out: &mut String, m: &MatrixReport, cell: impl Fn(usize, usize) -> String) {
    let width = m
        .rows
        .iter()
        .chain(m.cols.iter())
        .map(|s| s.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let _ = write!(out, "      {:<width$}", "-");
    for c in &m.cols {
        let _ = write!(out, " {c:<width$}");
    }
    out.push('\n');
    for (r, name) in m.rows.iter().enumerate() {
        let _ = write!(out, "      {name:<width$}");
        for c in 0..m.cols.len() {
            let _ = write!(out, " {:<width$}", cell(r, c));
        }
        out.push('\n');
    }
}

fn matrix(out: &mut String, m: &MatrixReport) {
    let port = m.port.map(|p| format!("{p}/")).unwrap_or_default();
    let _ = writeln!(
        out,
        "  [{}] matrix {port}{} ({}): {} of its cells are wrong",
        m.dataplane,
        m.protocol,
        m.site,
        m.wrong.len()
    );
    let _ = writeln!(out, "    expected:");
    table(out, m, |r, c| {
        match m.expected[r][c] {
            Cell::Allow => ".",
            Cell::Deny => "X",
            Cell::Unchecked => "?",
        }
        .into()
    });
    let _ = writeln!(out, "    observed:");
    table(out, m, |r, c| {
        crate::scenario::observed_cell(m.observed[r][c]).into()
    });
    let _ = writeln!(out, "    comparison (. same, X different):");
    table(out, m, |r, c| {
        if m.wrong.iter().any(|w| w.0 == r && w.1 == c) {
            "X".into()
        } else {
            ".".into()
        }
    });
    for (r, c, why) in &m.wrong {
        let _ = writeln!(
            out,
            "    {} -> {}: expected {}, observed {}",
            m.rows[*r],
            m.cols[*c],
            match m.expected[*r][*c] {
                Cell::Allow => "allow",
                _ => "deny",
            },
            m.observed[*r][*c].map(|v| v.as_str()).unwrap_or("?")
        );
        for line in why.lines() {
            let _ = writeln!(out, "      {line}");
        }
    }
}

fn scenario(out: &mut String, r: &ScenarioResult, verbose: bool) {
    for &dp in &r.dataplanes {
        let rows: Vec<_> = r.results.iter().filter(|x| x.dataplane == dp).collect();
        let failed = rows.iter().filter(|x| !x.passed && !x.skipped).count();
        let skipped = rows.iter().filter(|x| x.skipped).count();
        let status = if failed > 0 {
            "FAIL"
        } else if skipped == rows.len() && !rows.is_empty() {
            "SKIP"
        } else {
            "PASS"
        };
        if status == "PASS" && !verbose {
            continue;
        }
        let _ = write!(out, "{status}  {} [{dp}]  ({})", r.name, r.site);
        let _ = write!(out, "  {} passed", rows.iter().filter(|x| x.passed).count());
        if failed > 0 {
            let _ = write!(out, ", {failed} failed");
        }
        if skipped > 0 {
            let _ = write!(
                out,
                ", {skipped} skipped: {}",
                rows.iter()
                    .find(|x| x.skipped)
                    .map(|x| x.explanation.as_str())
                    .unwrap_or("")
            );
        }
        out.push('\n');
        if failed == 0 {
            continue;
        }
        for m in r
            .matrices
            .iter()
            .filter(|m| m.dataplane == dp && !m.wrong.is_empty())
        {
            matrix(out, m);
        }
        // Failed flows (matrix cells were printed with their matrix).
        for x in rows
            .iter()
            .filter(|x| !x.passed && !x.skipped && !x.in_matrix)
        {
            let _ = writeln!(
                out,
                "  [{dp}] {} ({}): expected {}, got {}",
                x.expectation, x.site, x.expected, x.actual
            );
            for line in x.explanation.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    for d in &r.divergences {
        let _ = writeln!(out, "DIVERGENCE  {}: {} ({})", r.name, d.flow, d.site);
        for (dp, v, why) in &d.verdicts {
            let _ = writeln!(out, "  [{dp}] {v}");
            for line in why.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
}

/// The whole report as text. `verbose` also lists passing scenarios.
pub fn human(report: &RunReport, verbose: bool) -> String {
    let mut out = String::new();
    for e in &report.errors {
        let _ = writeln!(out, "{e}");
    }
    for f in &report.failures {
        let _ = writeln!(
            out,
            "ERROR {} ({}): the scenario could not be loaded",
            f.name.as_deref().unwrap_or("<unnamed>"),
            f.site
        );
        for d in &f.errors {
            let _ = writeln!(out, "  {d}");
        }
    }
    for r in &report.results {
        for w in &r.warnings {
            let _ = writeln!(out, "{w}");
        }
        scenario(&mut out, r, verbose);
    }
    let _ = writeln!(
        out,
        "{} scenarios ({} not loadable), {} expectations: {} passed, {} failed, {} skipped; {} divergences",
        report.results.len() + report.failures.len(),
        report.failures.len(),
        report.expectations(),
        report.passed(),
        report.failed(),
        report.skipped(),
        report.divergences()
    );
    out
}
