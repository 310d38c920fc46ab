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

/// The k8s-e2e port has every upstream connectivity case: 48 files, 42 TCP, 3 UDP, 3 SCTP,
/// each with at least one matrix, all 9 pods in every matrix.
#[test]
fn k8s_e2e_port_is_whole() {
    let dir = scenarios().join("k8s-e2e");
    let report = run(std::slice::from_ref(&dir), &RunOptions::default());
    assert_eq!(report.exit_code(), 0);
    let mut files: Vec<String> = report
        .results
        .iter()
        .map(|r| r.site.file.display().to_string())
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), 48, "{files:#?}");
    let count = |tag: &str| {
        let tagged = run(
            std::slice::from_ref(&dir),
            &RunOptions {
                tags: vec![tag.to_string()],
                ..Default::default()
            },
        );
        let mut f: Vec<String> = tagged
            .results
            .iter()
            .map(|r| r.site.file.display().to_string())
            .collect();
        f.sort();
        f.dedup();
        f.len()
    };
    assert_eq!((count("tcp"), count("udp"), count("sctp")), (42, 3, 3));
    for r in &report.results {
        assert!(!r.matrices.is_empty(), "{} has no matrix", r.name);
        for m in &r.matrices {
            assert_eq!((m.rows.len(), m.cols.len()), (9, 9), "{}", r.name);
        }
    }
}
