//! nft `include`: the tokens of the files an nft text includes, spliced in where the
//! `include "PATH"` statement stands, as nft's scanner reads them (scanner.l: include
//! files are pushed onto the input; a glob is expanded by glob(3), sorted, and may match
//! nothing; a directory includes its files in name order).
//!
//! Contract: [`expand`] returns the whole token stream, or an error located at the
//! top-level `include` line that names the included file, its line and column and the
//! chain of includes (a missing file, a file that is not UTF-8, a lexical error in it,
//! more than [`MAX_INCLUDE_DEPTH`] levels, a file including itself). Tokens an include
//! brought stand at the top-level include line (semantic errors and rule locations point
//! there); each carries its origin for parse errors. Relative paths are relative to the
//! including file's directory. Wildcards are read in the file name only.

use super::nft::{lex, Error, Tk, Token};
use crate::values::Loc;
use std::path::{Path, PathBuf};

/// nft's own bound (include.h: MAX_INCLUDE_DEPTH 16).
pub(super) const MAX_INCLUDE_DEPTH: usize = 16;

/// The tokens of `text` (the file at `path`) with every include expanded, and per token
/// its origin (None: written in `text` itself).
pub(super) fn expand(text: &str, path: &Path) -> Result<(Vec<Token>, Vec<Option<String>>), Error> {
    let mut chain = vec![path.to_path_buf()];
    let toks = lex(text)?;
    let mut out = Vec::new();
    let mut origins = Vec::new();
    splice(toks, path, &mut chain, None, &mut out, &mut origins)?;
    Ok((out, origins))
}

/// Is token `i` the start of a statement (after a newline, `;`, `{` or at the start)?
fn at_statement_start(toks: &[Token], i: usize) -> bool {
    i == 0 || matches!(toks[i - 1].tk, Tk::Nl | Tk::Sym(";") | Tk::Sym("{"))
}

/// Append `toks` (of the file `path`) to `out`, expanding includes. `site`: the
/// top-level include line every token of this file stands at, and the text naming where
/// this file was included from (None at the top level).
fn splice(
    toks: Vec<Token>,
    path: &Path,
    chain: &mut Vec<PathBuf>,
    site: Option<(Loc, &str)>,
    out: &mut Vec<Token>,
    origins: &mut Vec<Option<String>>,
) -> Result<(), Error> {
    let mut i = 0;
    while i < toks.len() {
        let is_include = matches!(&toks[i].tk, Tk::Word(w) if w == "include")
            && at_statement_start(&toks, i)
            && matches!(toks.get(i + 1).map(|t| &t.tk), Some(Tk::Str(_)));
        if !is_include {
            let mut t = toks[i].clone();
            let origin = site.map(|(at, from)| {
                let o = format!("in {}:{} ({from})", path.display(), t.loc);
                t.loc = at;
                o
            });
            out.push(t);
            origins.push(origin);
            i += 1;
            continue;
        }
        let Tk::Str(target) = &toks[i + 1].tk else {
            unreachable!("checked above")
        };
        let here = toks[i].loc;
        let at = site.map(|s| s.0).unwrap_or(here);
        let from = match site {
            None => format!("included from {}:{here}", path.display()),
            Some((_, outer)) => format!("included from {}:{here}, {outer}", path.display()),
        };
        let fail = |message: String| Error {
            loc: at,
            message: match site {
                None => message,
                Some((_, outer)) => format!("in {}:{here} ({outer}): {message}", path.display()),
            },
        };
        if chain.len() > MAX_INCLUDE_DEPTH {
            return Err(fail(format!(
                "include \"{target}\": more than {MAX_INCLUDE_DEPTH} levels of include (nft's limit)"
            )));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let files = resolve(dir, target).map_err(fail)?;
        for f in files {
            if chain.contains(&f) {
                return Err(fail(format!(
                    "include \"{target}\": {} includes itself",
                    f.display()
                )));
            }
            let bytes = std::fs::read(&f).map_err(|e| {
                fail(format!(
                    "include \"{target}\": cannot read {}: {e}",
                    f.display()
                ))
            })?;
            let text = match Loc::utf8_text(&bytes) {
                Ok(t) => t.to_string(),
                Err((loc, m)) => {
                    return Err(fail(format!("in {}:{loc} ({from}): {m}", f.display())))
                }
            };
            let inner = lex(&text).map_err(|e| {
                fail(format!(
                    "in {}:{} ({from}): {}",
                    f.display(),
                    e.loc,
                    e.message
                ))
            })?;
            chain.push(f.clone());
            splice(inner, &f, chain, Some((at, &from)), out, origins)?;
            chain.pop();
            // The included file's last statement ends with it.
            out.push(Token {
                tk: Tk::Nl,
                loc: at,
            });
            origins.push(None);
        }
        i += 2;
    }
    Ok(())
}

/// The files an include names: one file, a directory's files, or a glob's matches (in the
/// file name: `*`, `?`), sorted.
fn resolve(dir: &Path, target: &str) -> Result<Vec<PathBuf>, String> {
    let p = if Path::new(target).is_absolute() {
        PathBuf::from(target)
    } else {
        dir.join(target)
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = p.parent().unwrap_or(Path::new("/")).to_path_buf();
    if parent.to_string_lossy().contains(['*', '?', '[']) {
        return Err(format!(
            "include \"{target}\": wildcards are read in the file name only"
        ));
    }
    let glob = name.contains(['*', '?']);
    if !glob {
        if p.is_dir() || target.ends_with('/') {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| format!("include \"{target}\": cannot read the directory: {e}"))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.is_file())
                .collect();
            files.sort();
            return Ok(files);
        }
        if !p.exists() {
            return Err(format!(
                "include \"{target}\": {} does not exist (give the included files beside the ruleset, or `nft list ruleset` output)",
                p.display()
            ));
        }
        return Ok(vec![p]);
    }
    let Ok(entries) = std::fs::read_dir(&parent) else {
        // nft: a glob whose directory does not exist matches nothing.
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|f| f.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// `*` and `?` matching, as glob(3) has them in one path component (a leading dot must be
/// matched explicitly).
fn wildcard(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::nft::parse_file;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn includes_are_read_relative_globbed_and_bounded() {
        let d = tempfile::tempdir().unwrap();
        let main = write(
            d.path(),
            "main.nft",
            "table inet t {\n  include \"d/*.nft\"\n  chain c {\n    type filter hook input priority 0;\n    include \"rules.inc\"\n  }\n}\ninclude \"none/*.nft\"\n",
        );
        write(d.path(), "d/a.nft", "set s { type ipv4_addr; }\n");
        write(d.path(), "d/b.nft", "define p = 22\n");
        write(d.path(), "d/.hidden.nft", "garbage garbage\n");
        write(d.path(), "rules.inc", "tcp dport $p drop\n");
        let text = std::fs::read_to_string(&main).unwrap();
        let f = parse_file(&text, &main).unwrap();
        let rs = crate::netfilter::from_nft::convert(&f).unwrap();
        assert_eq!(rs.tables[0].sets.len(), 1);
        assert_eq!(rs.tables[0].chains[0].rules.len(), 1);
        // The rule stands at the include line of the top-level file.
        assert_eq!(rs.tables[0].chains[0].rules[0].loc.line, 5);
        // Without a file, include is still refused.
        assert!(crate::syntax::nft::parse(&text).is_err());
        // A missing file names itself and the include.
        let bad = write(d.path(), "bad.nft", "include \"nope.nft\"\n");
        let e = parse_file("include \"nope.nft\"\n", &bad).unwrap_err();
        assert_eq!(e.loc.line, 1);
        assert!(
            e.message.contains("nope.nft") && e.message.contains("does not exist"),
            "{e}"
        );
        // An error inside an included file: its file, line and column, and the chain.
        write(
            d.path(),
            "inner.nft",
            "table ip x {\n  chain c {\n    type filter hook input priority 0;\n  }\n  }}\n",
        );
        write(d.path(), "outer.nft", "\ninclude \"inner.nft\"\n");
        let top = write(
            d.path(),
            "top.nft",
            "flush ruleset\ninclude \"outer.nft\"\n",
        );
        let e = parse_file("flush ruleset\ninclude \"outer.nft\"\n", &top).unwrap_err();
        assert_eq!(e.loc.line, 2, "{e}");
        assert!(e.message.contains("inner.nft:5:"), "{e}");
        assert!(e.message.contains("outer.nft:2:1"), "{e}");
        // A file including itself.
        let selfish = write(d.path(), "self.nft", "include \"self.nft\"\n");
        let e = parse_file("include \"self.nft\"\n", &selfish).unwrap_err();
        assert!(e.message.contains("includes itself"), "{e}");
        assert!(
            wildcard("*.nft", "a.nft") && !wildcard("*.nft", "a.nf") && wildcard("a?c*", "abcdef")
        );
    }
}
