//! The bundled scenario suites all pass on the reference engine, and the k8s-e2e port is whole.

use fwsim::run::{run, RunOptions};
use std::path::PathBuf;

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

#[test]
fn every_bundled_scenario_passes() {
    let report = run(&[scenarios()], &RunOptions::default());
    let text = fwsim::report::human::human(&report, false);
    assert_eq!(report.exit_code(), 0, "{text}");
    assert!(report.expectations() > 0);
    assert_eq!(report.failed(), 0, "{text}");
}

#[test]
fn shards_partition_the_suite() {
    let all = run(&[scenarios()], &RunOptions::default());
    let mut names: Vec<String> = Vec::new();
    for k in 1..=3 {
        let part = run(
            &[scenarios()],
            &RunOptions {
                shard: Some((k, 3)),
                ..Default::default()
            },
        );
        names.extend(part.results.iter().map(|r| r.name.clone()));
    }
    let mut expected: Vec<String> = all.results.iter().map(|r| r.name.clone()).collect();
    names.sort();
    expected.sort();
    assert_eq!(names, expected);
}
