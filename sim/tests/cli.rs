//! `fwsim run` end to end: exit codes, JSON, JUnit, tags, dataplanes, the failing-matrix print.

use std::path::Path;
use std::process::Command;

const SCENARIO: &str = "apiVersion: fwsim/v1
kind: Scenario
name: wrong on purpose
tags: [demo]
cluster:
  namespaces: {x: {}, y: {}}
  pods:
    - {name: x/a, labels: {app: a}}
    - {name: x/b, labels: {app: b}}
    - {name: y/c, labels: {app: c}}
policies:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: only-from-y, namespace: x}
    spec:
      podSelector: {matchLabels: {app: a}}
      ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]}]
expect:
  - flow: y/c -> x/a:80/TCP
    verdict: allow
  - matrix:
      port: 80
      table: |
        -   x/a x/b y/c
        x/a .   .   .
        x/b .   .   .
        y/c .   .   .
---
apiVersion: fwsim/v1
kind: Scenario
name: cluster on the netfilter dataplane
tags: [other]
dataplanes: [reference, netfilter]
cluster:
  namespaces: {x: {}}
  pods: [{name: x/a}, {name: x/b}]
expect:
  - flow: x/a -> x/b:80/TCP
    verdict: allow
";

fn fwsim(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fwsim"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn failing_matrix_is_printed_like_upstream() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), SCENARIO).unwrap();
    let (code, out) = fwsim(dir.path(), &["run", "s.yaml"]);
    assert_eq!(code, 1, "{out}");
    for needle in [
        "FAIL  wrong on purpose [reference]",
        "matrix 80/TCP",
        "expected:",
        "observed:",
        "comparison (. same, X different):",
        "x/b -> x/a: expected allow, observed deny",
        "ingress to x/a: denied: isolated by x/only-from-y",
        "SKIP  cluster on the netfilter dataplane [netfilter]",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    // The observed table has exactly one X (x/b -> x/a).
    let observed: String = out
        .split("observed:")
        .nth(1)
        .unwrap()
        .split("comparison")
        .next()
        .unwrap()
        .to_string();
    assert_eq!(observed.matches(" X").count(), 1, "{observed}");
}

#[test]
fn json_junit_tags_and_dataplanes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), SCENARIO).unwrap();
    let (code, out) = fwsim(
        dir.path(),
        &["run", "s.yaml", "--format", "json", "--junit", "j.xml"],
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = &v["summary"];
    assert_eq!(s["scenarios"], 2);
    // 1 flow + 9 cells, and 1 flow on each of two dataplanes.
    assert_eq!(s["expectations"], 12);
    assert_eq!(s["failed"], 1);
    assert_eq!(s["skipped"], 1);
    assert_eq!(s["passed"], 10);
    assert_eq!(s["divergences"], 0);
    let results = v["results"].as_array().unwrap();
    let wrong: Vec<_> = results
        .iter()
        .filter(|r| r["passed"] == false && r["skipped"] == false)
        .collect();
    assert_eq!(wrong.len(), 1);
    assert_eq!(wrong[0]["expectation"], "x/b -> x/a:80/TCP");
    assert_eq!(wrong[0]["expected"], "allow");
    assert_eq!(wrong[0]["actual"], "deny");
    for key in [
        "scenario",
        "dataplane",
        "expectation",
        "expected",
        "actual",
        "passed",
        "explanation",
    ] {
        assert!(results[0].get(key).is_some(), "{key}");
    }
    let junit = std::fs::read_to_string(dir.path().join("j.xml")).unwrap();
    assert!(junit.contains("wrong on purpose [reference]"), "{junit}");
    assert!(junit.contains("<failure"), "{junit}");
    assert!(junit.contains("<skipped"), "{junit}");

    let (code, out) = fwsim(dir.path(), &["run", "s.yaml", "--tag", "other"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = fwsim(
        dir.path(),
        &[
            "run",
            "s.yaml",
            "--tag",
            "other",
            "--dataplanes",
            "reference",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["skipped"], 0);
    assert_eq!(v["summary"]["passed"], 1);
    let (code, _) = fwsim(dir.path(), &["run", "s.yaml", "--dataplanes", "calico"]);
    assert_eq!(code, 2);
}

#[test]
fn parse_and_trace_a_ruleset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.iptables"),
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:ssh - [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ssh\n-A INPUT -m owner --uid-owner 0 -j ACCEPT\n-A ssh -s 192.0.2.0/24 -j ACCEPT\nCOMMIT\n",
    )
    .unwrap();
    let (code, out) = fwsim(dir.path(), &["parse", "r.iptables"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("-A INPUT -p tcp -m tcp --dport 22 -j ssh"),
        "{out}"
    );
    let (code, out) = fwsim(
        dir.path(),
        &[
            "trace",
            "r.iptables",
            "src=192.0.2.9",
            "dst=10.0.0.1",
            "protocol=tcp",
            "dport=22",
            "iif=eth0",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "accept");
    let trace = v["trace"].as_array().unwrap();
    assert_eq!(trace[0]["chain"], "INPUT");
    assert_eq!(trace[0]["effect"], "match: jump ssh");
    assert_eq!(trace[1]["chain"], "ssh");
    assert_eq!(trace[1]["effect"], "match: accept");
    // Not port 22: the owner match is not modelled, so the verdict is inconclusive.
    let (_, out) = fwsim(
        dir.path(),
        &[
            "trace",
            "r.iptables",
            "src=192.0.2.9",
            "dst=10.0.0.1",
            "protocol=tcp",
            "dport=80",
            "iif=eth0",
        ],
    );
    assert!(out.contains("verdict: inconclusive"), "{out}");
    assert!(out.contains("unsupported match -m owner"), "{out}");
    std::fs::write(
        dir.path().join("bad.iptables"),
        "*filter\n:INPUT DROP [0:0]\n-A INPUT -j nowhere\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fwsim"))
        .current_dir(dir.path())
        .args(["parse", "bad.iptables"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("bad.iptables:4:1: error: table `filter` (line 1) ends without COMMIT"));
}
