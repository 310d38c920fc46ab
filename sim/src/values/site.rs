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
