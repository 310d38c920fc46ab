//! fwsim: evaluate Kubernetes NetworkPolicies and the netfilter rules that implement them,
//! side by side, and find every place where they disagree.
//!
//! Layers, each depending only on those above it (see ARCHITECTURE.md):
//! values → cluster (checked model) → syntax (YAML, Kubernetes objects, scenarios) →
//! reference (NetworkPolicy semantics) → scenario (load, evaluate) → run, report → CLI.

pub mod bench;
pub mod captured;
pub mod cluster;
pub mod diag;
pub mod divergence;
pub mod fuzzing;
pub mod gen;
pub mod kernel;
pub mod netfilter;
pub mod path;
pub mod planted;
pub mod reference;
pub mod render;
pub mod report;
pub mod run;
pub mod scenario;
pub mod snapshot;
pub mod syntax;
pub mod values;

/// Test support shared by the library's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    /// The shared ruleset corpus files with one of `extensions`, in name order; None (and a
    /// printed reason) where `../shared/rulesets` is absent, so corpus tests skip.
    pub fn corpus(extensions: &[&str]) -> Option<Vec<PathBuf>> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/rulesets");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipped: {} is absent", dir.display());
            return None;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.contains(&e))
            })
            .collect();
        paths.sort();
        Some(paths)
    }

    /// The cluster of the first scenario of a scenario text (panics when it does not load).
    pub fn cluster_of(yaml: &str) -> crate::cluster::Cluster {
        let found = crate::scenario::discover_text("<test>", yaml);
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        let s = crate::scenario::load(&found.docs[0]).unwrap();
        match s.body {
            crate::scenario::Body::Cluster { cluster, .. } => *cluster,
            _ => panic!("not a cluster"),
        }
    }

    /// A throwaway network namespace to run `nft` in (deleted on drop), so nothing touches
    /// the host's ruleset. None (and a printed reason) without root, `ip` or `nft`.
    pub struct Netns {
        name: String,
    }

    impl Netns {
        pub fn new(tag: &str) -> Option<Netns> {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "fwsim-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let ok = std::process::Command::new("ip")
                .args(["netns", "add", &name])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !ok {
                eprintln!("skipped: cannot create a network namespace (not root, or no `ip`)");
                return None;
            }
            let ns = Netns { name };
            match ns.nft(&["list", "ruleset"], None) {
                Ok(_) => Some(ns),
                Err(e) => {
                    eprintln!("skipped: nft does not run here: {e}");
                    None
                }
            }
        }

        /// The namespace's name (`ip netns exec NAME`).
        pub fn name(&self) -> &str {
            &self.name
        }

        /// `PROGRAM ARGS < stdin` in the namespace: stdout, or stderr as the error.
        pub fn run(&self, argv: &[&str], stdin: Option<&str>) -> Result<String, String> {
            use std::io::Write;
            let mut child = std::process::Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(argv)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("{}: {e}", argv[0]))?;
            if let Some(mut input) = child.stdin.take() {
                input
                    .write_all(stdin.unwrap_or("").as_bytes())
                    .map_err(|e| e.to_string())?;
            }
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }

        /// `nft ARGS [-f FILE-with-text]` in the namespace: stdout, or stderr as the error.
        pub fn nft(&self, args: &[&str], file_text: Option<&str>) -> Result<String, String> {
            let mut cmd = std::process::Command::new("ip");
            cmd.args(["netns", "exec", &self.name, "nft"]).args(args);
            let path = std::env::temp_dir().join(format!("{}.in", self.name));
            if let Some(t) = file_text {
                std::fs::write(&path, t).map_err(|e| e.to_string())?;
                cmd.arg("-f").arg(&path);
            }
            let out = cmd.output().map_err(|e| e.to_string());
            let _ = std::fs::remove_file(&path);
            let out = out?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.name])
                .output();
        }
    }

    /// A Debug rendering without locations, rule texts and Unsupported reasons: what two
    /// syntaxes of the same ruleset must agree on.
    pub fn normalized<T: std::fmt::Debug>(x: &T) -> String {
        let d = format!("{x:?}");
        let mut out = String::with_capacity(d.len());
        let b = d.as_bytes();
        let mut i = 0;
        while i < d.len() {
            let rest = &d[i..];
            if rest.starts_with("loc: Loc {") {
                i += rest.find('}').map_or(rest.len(), |j| j + 1);
                continue;
            }
            if let Some(key) = ["text: \"", "what: \""]
                .iter()
                .find(|k| rest.starts_with(**k))
            {
                out.push_str(key);
                let mut j = i + key.len();
                while j < d.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                i = j;
                continue;
            }
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
        out
    }
}
