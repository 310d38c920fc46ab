//! Finding scenario documents under files and folders.

use crate::diag::Diagnostic;
use crate::syntax::yaml::{self, Node};
use crate::values::{Loc, Site};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One `kind: Scenario` document and the file it came from.
#[derive(Clone, Debug)]
pub struct ScenarioDoc {
    pub file: Arc<PathBuf>,
    pub node: Node,
}

#[derive(Debug, Default)]
pub struct Discovered {
    pub docs: Vec<ScenarioDoc>,
    pub errors: Vec<Diagnostic>,
}

/// Read a file as text, or say why not.
pub fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read file: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {}): expected a YAML file",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Parse a file's YAML documents, with errors as diagnostics.
pub fn read_documents(file: &Arc<PathBuf>) -> Result<Vec<Node>, Diagnostic> {
    let text =
        read_text(file).map_err(|m| Diagnostic::error(Site::new(file, Loc::default()), m))?;
    yaml::parse_documents(&text)
        .map_err(|e| Diagnostic::error(Site::new(file, e.loc.unwrap_or_default()), e.message))
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<Diagnostic>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(Diagnostic::error(
                Site::new(&Arc::new(dir.to_path_buf()), Loc::default()),
                format!("cannot read folder: {e}"),
            ));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(&p, out, errors);
        } else if is_yaml(&p) {
            out.push(p);
        }
    }
}

/// Every scenario document under `paths` (files, or folders searched recursively in name
/// order). Documents that are not `kind: Scenario` are ignored.
pub fn discover(paths: &[PathBuf]) -> Discovered {
    let mut out = Discovered::default();
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut files, &mut out.errors);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            out.errors.push(Diagnostic::error(
                Site::new(&Arc::new(p.clone()), Loc::default()),
                "no such file or folder",
            ));
        }
    }
    for f in files {
        let file = Arc::new(f);
        match read_documents(&file) {
            Ok(nodes) => keep_scenarios(&file, nodes, &mut out),
            Err(d) => out.errors.push(d),
        }
    }
    out
}

/// The `kind: Scenario` documents among `nodes`.
fn keep_scenarios(file: &Arc<PathBuf>, nodes: Vec<Node>, out: &mut Discovered) {
    for node in nodes {
        if node.get("kind").and_then(Node::as_str) == Some("Scenario") {
            out.docs.push(ScenarioDoc {
                file: file.clone(),
                node,
            });
        }
    }
}

/// The scenario documents of a text, as if read from a file named `name` (generated
/// scenarios: the fuzzers load them through the same path as files). Paths inside resolve
/// against the current folder.
pub fn discover_text(name: &str, text: &str) -> Discovered {
    let mut out = Discovered::default();
    let file = Arc::new(PathBuf::from(name));
    match yaml::parse_documents(text) {
        Ok(nodes) => keep_scenarios(&file, nodes, &mut out),
        Err(e) => out.errors.push(Diagnostic::error(
            Site::new(&file, e.loc.unwrap_or_default()),
            e.message,
        )),
    }
    out
}
