//! JUnit XML: one test suite per scenario file, one test case per scenario and dataplane.

use crate::run::RunReport;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::collections::BTreeMap;

pub fn junit(report: &RunReport) -> String {
    let mut suites: BTreeMap<String, TestSuite> = BTreeMap::new();
    for r in &report.results {
        let file = r.site.file.display().to_string();
        let suite = suites
            .entry(file.clone())
            .or_insert_with(|| TestSuite::new(file.clone()));
        for &dp in &r.dataplanes {
            let rows: Vec<_> = r.results.iter().filter(|x| x.dataplane == dp).collect();
            let failed: Vec<_> = rows.iter().filter(|x| !x.passed && !x.skipped).collect();
            let divergent: Vec<_> = r
                .divergences
                .iter()
                .filter(|d| d.verdicts.iter().any(|v| v.0 == dp))
                .collect();
            let status = if !failed.is_empty() || !divergent.is_empty() {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!(
                    "{} of {} expectations failed, {} divergences",
                    failed.len(),
                    rows.len(),
                    divergent.len()
                ));
                let mut text = String::new();
                for f in &failed {
                    text.push_str(&format!(
                        "{} ({}): expected {}, got {}\n{}\n",
                        f.expectation, f.site, f.expected, f.actual, f.explanation
                    ));
                }
                for d in &divergent {
                    text.push_str(&format!("divergence on {} ({})\n", d.flow, d.site));
                }
                s.set_description(text);
                s
            } else if !rows.is_empty() && rows.iter().all(|x| x.skipped) {
                let mut s = TestCaseStatus::skipped();
                s.set_message(rows[0].explanation.clone());
                s
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(format!("{} [{}]", r.name, dp), status);
            case.set_classname(file.clone());
            case.set_assertions(rows.len());
            suite.add_test_case(case);
        }
    }
    for f in &report.failures {
        let file = f.site.file.display().to_string();
        let suite = suites
            .entry(file.clone())
            .or_insert_with(|| TestSuite::new(file.clone()));
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        s.set_message("the scenario could not be loaded");
        s.set_description(
            f.errors
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        );
        let name = f.name.clone().unwrap_or_else(|| f.site.to_string());
        let mut case = TestCase::new(name, s);
        case.set_classname(file);
        suite.add_test_case(case);
    }
    let mut junit = Report::new("fwsim");
    junit.add_test_suites(suites.into_values());
    junit.to_string().unwrap_or_default()
}
