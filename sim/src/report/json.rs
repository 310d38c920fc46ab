//! One JSON object on standard output, as the scenario contract specifies:
//! `{"summary": {...}, "results": [...]}`, plus `errors` and `warnings`.

use crate::run::RunReport;
use serde_json::{json, Value};

pub fn json(report: &RunReport) -> Value {
    let results: Vec<Value> = report
        .results
        .iter()
        .flat_map(|r| r.results.iter())
        .map(|x| {
            json!({
                "scenario": x.scenario,
                "dataplane": x.dataplane.as_str(),
                "expectation": x.expectation,
                "expected": x.expected,
                "actual": x.actual,
                "passed": x.passed,
                "skipped": x.skipped,
                "explanation": x.explanation,
                "location": x.site.to_string(),
            })
        })
        .collect();
    let divergences: Vec<Value> = report
        .results
        .iter()
        .flat_map(|r| r.divergences.iter().map(move |d| (r, d)))
        .map(|(r, d)| {
            json!({
                "scenario": r.name,
                "flow": d.flow,
                "location": d.site.to_string(),
                "verdicts": d.verdicts.iter().map(|(dp, v, why)| json!({
                    "dataplane": dp.as_str(), "actual": v, "explanation": why
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut errors: Vec<Value> = report
        .errors
        .iter()
        .map(|d| json!({"location": d.site.to_string(), "message": d.message}))
        .collect();
    for f in &report.failures {
        for d in &f.errors {
            errors.push(json!({
                "scenario": f.name,
                "location": d.site.to_string(),
                "message": d.message,
            }));
        }
    }
    let warnings: Vec<Value> = report
        .results
        .iter()
        .flat_map(|r| r.warnings.iter())
        .map(|d| json!({"location": d.site.to_string(), "message": d.message}))
        .collect();
    json!({
        "summary": {
            "scenarios": report.results.len() + report.failures.len(),
            "expectations": report.expectations(),
            "passed": report.passed(),
            "failed": report.failed(),
            "skipped": report.skipped(),
            "divergences": report.divergences(),
            "errors": errors.len(),
        },
        "results": results,
        "divergences": divergences,
        "errors": errors,
        "warnings": warnings,
    })
}
