//! Replays every committed fuzz input (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`)
//! through the oracles the cargo-fuzz targets call, on the stable toolchain: a crash once
//! found stays fixed. Also checks that the seeds reach the stage they were written for, so
//! the corpus keeps exercising the whole pipeline.

use fwsim::fuzzing::{self, Outcome};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Files of `fuzz/<kind>/<target>/`, in name order (hidden files skipped).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && !name(p).starts_with('.'))
        .collect();
    v.sort();
    v
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn replay(target: &str, oracle: fn(&[u8]) -> Outcome) -> Vec<(String, Outcome)> {
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        for p in inputs(kind, target) {
            let data = std::fs::read(&p).unwrap();
            out.push((name(&p), oracle(&data)));
        }
    }
    out
}

#[test]
fn iptables_save_corpus() {
    let seen = replay("iptables_save", fuzzing::iptables_save);
    let accepted = seen.iter().filter(|(_, o)| *o == Outcome::Accepted).count();
    assert!(accepted >= 5, "the valid seeds must convert: {seen:?}");
    // Seeds named err-* are bad input: refused, never accepted.
    for (n, o) in &seen {
        if n.starts_with("err-") {
            assert!(*o != Outcome::Accepted, "{n} was accepted");
        }
    }
}

#[test]
fn scenario_yaml_corpus() {
    let seen = replay("scenario_yaml", fuzzing::scenario_yaml);
    assert!(
        seen.iter().filter(|(_, o)| *o == Outcome::Accepted).count() >= 2,
        "the valid seeds must load: {seen:?}"
    );
    assert!(
        seen.iter().any(|(_, o)| *o == Outcome::Refused),
        "a seed with errors must be refused: {seen:?}"
    );
}

#[test]
fn ipset_save_corpus() {
    let seen = replay("ipset_save", fuzzing::ipset_save);
    let accepted = seen.iter().filter(|(_, o)| *o == Outcome::Accepted).count();
    assert!(accepted >= 2, "the valid seeds must build: {seen:?}");
    for (n, o) in &seen {
        if n.starts_with("err-") {
            assert!(*o != Outcome::Accepted, "{n} was accepted");
        }
    }
}

#[test]
fn nft_text_corpus() {
    let seen = replay("nft_text", fuzzing::nft_text);
    assert!(
        seen.iter().filter(|(_, o)| *o == Outcome::Accepted).count() >= 2,
        "the valid seeds must convert: {seen:?}"
    );
    assert!(
        seen.iter().any(|(_, o)| *o == Outcome::SyntaxError),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(_, o)| *o == Outcome::Refused), "{seen:?}");
    for (n, o) in &seen {
        if n.starts_with("err-") {
            assert!(*o != Outcome::Accepted, "{n} was accepted");
        }
    }
}

#[test]
fn nft_json_corpus() {
    let seen = replay("nft_json", fuzzing::nft_json);
    assert!(
        seen.iter().filter(|(_, o)| *o == Outcome::Accepted).count() >= 2,
        "the valid seeds must convert: {seen:?}"
    );
    for (n, o) in &seen {
        if n.starts_with("err-") {
            assert!(*o != Outcome::Accepted, "{n} was accepted");
        }
    }
}

#[test]
fn oracles_take_any_bytes() {
    for data in [
        &b""[..],
        b"\xff\xfe\x00garbage",
        b"*filter\n",
        b"*filter\nCOMMIT\n",
        b"# only a comment\n",
        b"---\n...\n",
        b"[",
        b"{",
        b"{\"nftables\": []}",
        b"{\"nftables\": [{}]}",
        b"table ip t { chain c { } }",
    ] {
        fuzzing::iptables_save(data);
        fuzzing::scenario_yaml(data);
        fuzzing::ipset_save(data);
        fuzzing::nft_text(data);
        fuzzing::nft_json(data);
    }
    assert_eq!(fuzzing::iptables_save(b"\xff"), Outcome::NotText);
    assert_eq!(
        fuzzing::iptables_save(b"*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"),
        Outcome::Accepted
    );
}

/// The divergence targets' seeds (random bytes that drive the generators) replay without a
/// divergence on stable: the Calico dataplanes agree with the reference on their cases,
/// and the iptables and nft readings of their rulesets agree.
#[test]
fn divergence_corpora() {
    use fwsim::render::Flavor;
    let ipt = replay("calico_iptables", |d| {
        fuzzing::calico_divergence(d, Flavor::CalicoIptables)
    });
    let nft = replay("calico_nftables", |d| {
        fuzzing::calico_divergence(d, Flavor::CalicoNftables)
    });
    let rs = replay("iptables_vs_nft", fuzzing::iptables_vs_nft);
    let fast = replay("reference_fast", fuzzing::reference_fast);
    for seen in [&ipt, &nft, &rs, &fast] {
        assert!(
            seen.iter().filter(|(_, o)| *o == Outcome::Accepted).count() >= 4,
            "{seen:?}"
        );
    }
}
