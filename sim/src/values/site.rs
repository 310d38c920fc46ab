//! Where something was written: a file and a 1-based line and column.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A position in a source file: 1-based line and column (0 when unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl Loc {
    /// Where the first byte that is not UTF-8 stands in `bytes`, and the error's message;
    /// `Ok` with the text when it all is UTF-8.
    pub fn utf8_text(bytes: &[u8]) -> Result<&str, (Loc, String)> {
        std::str::from_utf8(bytes).map_err(|e| {
            let good = &bytes[..e.valid_up_to()];
            // The prefix is valid UTF-8 by construction.
            let good = std::str::from_utf8(good).unwrap_or_default();
            let line = good.matches('\n').count() as u32 + 1;
            let col = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
            (
                Loc { line, col },
                format!(
                    "not UTF-8 text (byte {:#04x}): expected a text file",
                    bytes[e.valid_up_to()]
                ),
            )
        })
    }
}

/// A file and a position in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Site {
    pub file: Arc<PathBuf>,
    pub loc: Loc,
}

impl Site {
    pub fn new(file: &Arc<PathBuf>, loc: Loc) -> Site {
        Site {
            file: file.clone(),
            loc,
        }
    }

    pub fn path(&self) -> &Path {
        &self.file
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.loc.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.loc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_errors_are_located() {
        assert_eq!(Loc::utf8_text(b"ok\n"), Ok("ok\n"));
        let (loc, msg) = Loc::utf8_text(b"ab\ncaf\xe9\n").unwrap_err();
        assert_eq!(loc, Loc { line: 2, col: 4 });
        assert!(msg.contains("0xe9"), "{msg}");
        let (loc, _) = Loc::utf8_text(b"\xff").unwrap_err();
        assert_eq!(loc, Loc { line: 1, col: 1 });
    }
}
