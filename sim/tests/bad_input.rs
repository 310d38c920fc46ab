//! Bad input: every case is a clear error naming file, line and column, exit status 2,
//! never a panic; the other scenarios of the run still run.

use fwsim::run::{run, RunOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

const HEAD: &str = "apiVersion: fwsim/v1\nkind: Scenario\n";

const CLUSTER: &str = "cluster:
  namespaces:
    x: {ns: x}
  pods:
    - {name: x/a, labels: {pod: a}}
    - {name: x/b, labels: {pod: b}}
";

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Run one bad scenario beside a good one; return the error lines (file:line:col: message).
fn errors_of(body: &str) -> Vec<String> {
    errors_in("bad.yaml", body)
}

fn errors_in(file: &str, body: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "good.yaml",
        format!(
            "{HEAD}name: good\n{CLUSTER}expect:\n  - flow: x/a -> x/b:80\n    verdict: allow\n"
        )
        .as_bytes(),
    );
    write(dir.path(), file, body.as_bytes());
    let report = run(&[dir.path().to_path_buf()], &RunOptions::default());
    assert_eq!(report.exit_code(), 2, "bad input must give exit status 2");
    assert_eq!(report.results.len(), 1, "the good scenario still runs");
    assert_eq!(report.results[0].passed(), 1);
    let mut out: Vec<String> = report.errors.iter().map(|d| d.to_string()).collect();
    for f in &report.failures {
        out.extend(f.errors.iter().map(|d| d.to_string()));
    }
    let prefix = format!("{}/", dir.path().display());
    out.iter().map(|l| l.replace(&prefix, "")).collect()
}

fn assert_error(body: &str, location: &str, needle: &str) {
    let errors = errors_of(body);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(location) && e.contains(needle)),
        "expected an error at {location} containing {needle:?}, got {errors:#?}"
    );
}

#[test]
fn yaml_syntax_error() {
    assert_error(
        &format!("{HEAD}name: bad\ncluster: {{namespaces: [x\n"),
        "bad.yaml:4:23",
        "YAML syntax error",
    );
}

#[test]
fn misspelled_policy_field() {
    let body = format!(
        "{HEAD}name: bad\n{CLUSTER}policies:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {{name: p, namespace: x}}
    spec:
      podSelector: {{}}
      ingres: []
"
    );
    assert_error(
        &body,
        "bad.yaml:16:7",
        "unknown field `ingres`, expected one of",
    );
}

#[test]
fn misspelled_scenario_field() {
    assert_error(
        &format!("{HEAD}name: bad\n{CLUSTER}expects: []\n"),
        "bad.yaml:10:1",
        "unknown field `expects`",
    );
}

#[test]
fn wrong_types() {
    assert_error(
        &format!("{HEAD}name: bad\ncluster:\n  namespaces:\n    x: {{ns: x}}\n  pods:\n    - {{name: x/a, labels: [a, b]}}\n"),
        "bad.yaml:8:",
        "invalid type: sequence, expected a map",
    );
    assert_error(
        &format!("{HEAD}name: bad\n{CLUSTER}expect:\n  - flow: {{from: x/a, to: x/b, port: eighty}}\n    verdict: allow\n"),
        "bad.yaml:11:38",
        "invalid type",
    );
}

#[test]
fn invalid_cidr() {
    let body = format!(
        "{HEAD}name: bad\n{CLUSTER}policies:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {{name: p, namespace: x}}
    spec:
      podSelector: {{}}
      ingress:
        - from:
            - ipBlock: {{cidr: 10.0.0.0/33}}
"
    );
    assert_error(&body, "bad.yaml:18:31", "not a valid CIDR");
}

#[test]
fn invalid_ports() {
    let body = format!(
        "{HEAD}name: bad\n{CLUSTER}policies:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {{name: p, namespace: x}}
    spec:
      podSelector: {{}}
      ingress:
        - ports: [{{port: 70000}}]
"
    );
    assert_error(&body, "bad.yaml:17:26", "out of range");
    assert_error(
        &format!("{HEAD}name: bad\n{CLUSTER}expect:\n  - flow: x/a -> x/b:99999/TCP\n    verdict: allow\n"),
        "bad.yaml:11:18",
        "out of range",
    );
}

#[test]
fn unknown_selector_operator() {
    let body = format!(
        "{HEAD}name: bad\n{CLUSTER}policies:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {{name: p, namespace: x}}
    spec:
      podSelector:
        matchExpressions:
          - {{key: pod, operator: Equals, values: [a]}}
"
    );
    assert_error(
        &body,
        "bad.yaml:17:34",
        "unknown variant `Equals`, expected one of `In`, `NotIn`, `Exists`, `DoesNotExist`",
    );
}

#[test]
fn pod_in_undeclared_namespace() {
    assert_error(
        &format!(
            "{HEAD}name: bad\ncluster:\n  namespaces:\n    x: {{}}\n  pods:\n    - {{name: y/a}}\n"
        ),
        "bad.yaml:8:14",
        "namespace `y`, which is not declared",
    );
}

#[test]
fn duplicate_names() {
    assert_error(
        &format!("{HEAD}name: bad\ncluster:\n  namespaces:\n    x: {{}}\n  pods:\n    - {{name: x/a}}\n    - {{name: x/a}}\n"),
        "bad.yaml:9:14",
        "duplicate pod `x/a`",
    );
    let errors = errors_in("later.yaml", &format!("{HEAD}name: good\n{CLUSTER}"));
    assert!(
        errors.iter().any(|e| e.starts_with("later.yaml:1:1")
            && e.contains("duplicate scenario name `good`: already used at")),
        "{errors:#?}"
    );
    assert_error(
        &format!("{HEAD}name: bad\ncluster:\n  namespaces:\n    x: {{}}\n    x: {{}}\n"),
        "bad.yaml:7:5",
        "duplicate key `x`",
    );
}

#[test]
fn unknown_endpoints_and_dataplanes() {
    assert_error(
        &format!(
            "{HEAD}name: bad\n{CLUSTER}expect:\n  - flow: x/a -> x/zz:80\n    verdict: allow\n"
        ),
        "bad.yaml:11:18",
        "no pod `x/zz`",
    );
    assert_error(
        &format!("{HEAD}name: bad\ndataplanes: [reference, calico]\n{CLUSTER}"),
        "bad.yaml:4:25",
        "unknown dataplane `calico`",
    );
    assert_error(
        &format!("{HEAD}name: bad\n{CLUSTER}expect:\n  - matrix:\n      port: 80\n      table: |\n        -   x/a x/b\n        x/a .   Y\n        x/b .   .\n"),
        "bad.yaml:15:17",
        "cell `Y`",
    );
}

#[test]
fn unreadable_files() {
    assert_error(
        &format!("{HEAD}name: bad\ncluster: missing.yaml\n"),
        "bad.yaml:4:10",
        "cannot load cluster file `missing.yaml`",
    );
    let errors = errors_of("\u{0}\u{1}binary garbage \u{7f}");
    assert!(!errors.is_empty());
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "latin1.yaml", b"name: caf\xe9\n");
    let report = run(&[dir.path().to_path_buf()], &RunOptions::default());
    assert_eq!(report.exit_code(), 2);
    assert!(
        report.errors[0].message.contains("not UTF-8"),
        "{:?}",
        report.errors
    );
}

#[test]
fn the_binary_exits_2_and_names_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        format!("{HEAD}name: bad\ncluster:\n  namespaces: {{x: {{}}}}\n  pods: [{{name: x/a, ip: 10.0.0.300}}]\n").as_bytes(),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_fwsim"))
        .arg("run")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bad.yaml:6:26: error: `10.0.0.300` is not an IP address"),
        "{stdout}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_fwsim"))
        .args(["run", "--shard", "3/2", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_host_addresses_are_located() {
    let body = format!(
        "{HEAD}name: h\nruleset: |\n  *filter\n  :INPUT ACCEPT [0:0]\n  COMMIT\nhost:\n  addresses: [10.0.0.1/24, 10.0.0.300]\n  routes:\n    - {{to: 10.1.0.0/33, dev: eth0}}\nexpect:\n  - packet: {{src: 192.0.2.1, dst: 10.0.0.1, protocol: TCP, dport: 22}}\n    verdict: accept\n"
    );
    assert_error(&body, "bad.yaml:9:28", "expected an IP address");
    assert_error(&body, "bad.yaml:11:12", "route `to`");
}

#[test]
fn bad_ipsets_in_a_host_scenario() {
    let host = "apiVersion: fwsim/v1\nkind: Scenario\nname: h\n";
    // Inline ipsets: located in the scenario file, from the line after `ipsets: |`.
    assert_error(
        &format!("{host}ipsets: |\n  create a hash:ip\n  add a 10.0.0.999\nruleset: |\n  *filter\n  :INPUT ACCEPT [0:0]\n  -A INPUT -m set --match-set a src -j DROP\n  COMMIT\nexpect:\n  - packet: {{src: 10.0.0.1, dst: 10.0.0.2}}\n    verdict: drop\n"),
        "bad.yaml:6:9:",
        "expected an IPv4 address",
    );
    // A rule naming a set the ipsets do not define: located at the rule.
    assert_error(
        &format!("{host}ipsets: |\n  create a hash:ip\nruleset: |\n  *filter\n  :INPUT ACCEPT [0:0]\n  -A INPUT -m set --match-set b src -j DROP\n  COMMIT\nexpect:\n  - packet: {{src: 10.0.0.1, dst: 10.0.0.2}}\n    verdict: drop\n"),
        "bad.yaml:9:3:",
        "ipset `b` does not exist",
    );
    // `ipsets` without `ruleset`.
    assert_error(
        &format!("{host}ipsets: a.ipsets\n{CLUSTER}expect:\n  - flow: x/a -> x/b:80\n    verdict: allow\n"),
        "bad.yaml:4:1:",
        "single-host",
    );
}

#[test]
fn sequences_refuse_a_given_ctstate() {
    let body = format!(
        "{HEAD}name: s\nruleset: |\n  *filter\n  :INPUT ACCEPT [0:0]\n  COMMIT\nexpect:\n  - sequence:\n      - packet: {{src: 192.0.2.1, dst: 10.0.0.1, protocol: TCP, dport: 22, ctstate: established}}\n        verdict: accept\n"
    );
    assert_error(&body, "bad.yaml:10:84", "leave it out");
}
