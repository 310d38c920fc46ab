//! `nodes:` in a scenario (the captured dataplane's snapshots): bad inputs get located
//! errors. Uses the fixtures under scenarios/captured/ (written by fwsim's kernel lab);
//! no root needed.

use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/captured")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

const CLUSTER: &str = "apiVersion: fwsim/v1\nkind: Scenario\nname: t\ndataplanes: [reference, captured]\ncluster:\n  nodes:\n    - {name: node-1, ip: 192.168.0.1, podCIDR: 10.244.1.0/24}\n    - {name: node-2, ip: 192.168.0.2, podCIDR: 10.244.2.0/24}\n  namespaces: {x: {}}\n  pods:\n    - {name: x/a, labels: {app: a}, node: node-1, ip: 10.244.1.10}\n    - {name: x/b, labels: {app: b}, node: node-2, ip: 10.244.2.10}\n";

/// Load `scenario` written in `dir`: the error messages, each with its place.
fn errors(dir: &Path, scenario: &str) -> Vec<String> {
    let file = dir.join("s.yaml");
    std::fs::write(&file, scenario).unwrap();
    let found = fwsim::scenario::discover(&[file]);
    assert!(found.errors.is_empty(), "{:?}", found.errors);
    match fwsim::scenario::load(&found.docs[0]) {
        Ok(_) => Vec::new(),
        Err(ds) => ds.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn snapshots_load_and_bad_ones_get_located_errors() {
    let src = fixture("calico-drops-encapsulated-traffic-from-pods");
    if !src.is_dir() {
        panic!("the fixture {} is missing", src.display());
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    copy_dir(&src.join("node-1"), &d.join("snaps/node-1"));
    copy_dir(&src.join("node-2"), &d.join("snaps/node-2"));

    // Both forms load.
    let ok = format!("{CLUSTER}nodes: snaps\nexpect: []\n");
    assert_eq!(errors(d, &ok), Vec::<String>::new());
    let ok =
        format!("{CLUSTER}nodes:\n  node-1: snaps/node-1\n  node-2: snaps/node-2\nexpect: []\n");
    assert_eq!(errors(d, &ok), Vec::<String>::new());

    // A snapshot for a node the cluster does not have: at its key.
    let bad =
        format!("{CLUSTER}nodes:\n  node-1: snaps/node-1\n  node-9: snaps/node-2\nexpect: []\n");
    let e = errors(d, &bad);
    assert!(
        e.iter().any(|m| m.contains("s.yaml:15:3")
            && m.contains("is node `node-2`'s (its node.yaml says so), not `node-9`'s")),
        "{e:?}"
    );
    // One directory holding two snapshots of one node.
    copy_dir(&src.join("node-1"), &d.join("snaps/node-1-again"));
    let e = errors(d, &format!("{CLUSTER}nodes: snaps\nexpect: []\n"));
    assert!(
        e.iter()
            .any(|m| m.contains("s.yaml:13:8") && m.contains("two snapshots for node `node-1`")),
        "{e:?}"
    );
    std::fs::remove_dir_all(d.join("snaps/node-1-again")).unwrap();
    // A snapshot named after a node the cluster lacks (no node.yaml: the directory's name).
    copy_dir(&src.join("node-1"), &d.join("snaps/node-7"));
    std::fs::remove_file(d.join("snaps/node-7/node.yaml")).unwrap();
    let e = errors(d, &format!("{CLUSTER}nodes: snaps\nexpect: []\n"));
    assert!(
        e.iter()
            .any(|m| m.contains("s.yaml:13:8") && m.contains("a snapshot for node `node-7`")),
        "{e:?}"
    );
    std::fs::remove_dir_all(d.join("snaps/node-7")).unwrap();
    // A truncated JSON file: located in that file.
    let addr = d.join("snaps/node-2/ip-addr.json");
    let text = std::fs::read_to_string(&addr).unwrap();
    std::fs::write(&addr, &text[..text.len() / 2]).unwrap();
    let e = errors(d, &format!("{CLUSTER}nodes: snaps\nexpect: []\n"));
    assert!(
        e.iter().any(|m| m.contains("node-2/ip-addr.json:")),
        "{e:?}"
    );
    // The CLI: exit 2 for it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fwsim"))
        .args(["run", d.join("s.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn the_captured_fixtures_run_without_root() {
    let dir = fixture("");
    let found = fwsim::scenario::discover(&[dir]);
    assert!(found.errors.is_empty(), "{:?}", found.errors);
    let mut captured = 0;
    for doc in &found.docs {
        let s = fwsim::scenario::load(doc).unwrap_or_else(|e| panic!("{e:?}"));
        let r = fwsim::scenario::evaluate(&s, None);
        let rows: Vec<_> = r
            .results
            .iter()
            .filter(|r| r.dataplane == fwsim::scenario::Dataplane::Captured)
            .collect();
        assert!(rows.iter().all(|r| !r.skipped), "{}: skipped", s.name);
        captured += rows.len();
        assert!(r.ok(), "{}: {:?}", s.name, r.results);
    }
    assert!(captured >= 10, "{captured} captured results");
}
