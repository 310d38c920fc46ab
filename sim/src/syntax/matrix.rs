//! Reachability tables as the Kubernetes netpol e2e tests print them.
//!
//! ```text
//! -    x/a x/b
//! x/a  .   X
//! x/b  ?   .
//! ```
//! The first line is `-` and the destinations; each further line a source and one cell per
//! destination: `.` allowed, `X` denied, `?` not checked.

/// One cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    Allow,
    Deny,
    Unchecked,
}

/// A word of the table and where it stands: 0-based line in the table text, 0-based column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub line: usize,
    pub col: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<Word>,
    /// A source and its cells, one per column.
    pub rows: Vec<(Word, Vec<(Cell, Word)>)>,
}

/// A table error: 0-based line and column in the table text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

fn words(line: &str, index: usize) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line
        .char_indices()
        .chain(std::iter::once((line.len(), ' ')))
    {
        match (c == ' ' || c == '\t', start) {
            (true, Some(s)) => {
                out.push(Word {
                    text: line[s..i].to_string(),
                    line: index,
                    col: s,
                });
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    out
}

pub fn parse_table(text: &str) -> Result<Table, TableError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| words(l, i))
        .filter(|w| !w.is_empty());
    let Some(mut header) = lines.next() else {
        return Err(TableError {
            line: 0,
            col: 0,
            message: "the table is empty: expected a header line `- DEST...`".into(),
        });
    };
    if header[0].text != "-" {
        return Err(TableError {
            line: header[0].line,
            col: header[0].col,
            message: format!(
                "the header line must start with `-`, found `{}`",
                header[0].text
            ),
        });
    }
    let columns = header.split_off(1);
    if columns.is_empty() {
        return Err(TableError {
            line: header[0].line,
            col: header[0].col,
            message: "the header names no destination".into(),
        });
    }
    let mut rows = Vec::new();
    for mut line in lines {
        let cells = line.split_off(1);
        let source = line.remove(0);
        if cells.len() != columns.len() {
            let at = cells.last().unwrap_or(&source);
            return Err(TableError {
                line: source.line,
                col: at.col,
                message: format!(
                    "row `{}` has {} cells, the header has {} destinations",
                    source.text,
                    cells.len(),
                    columns.len()
                ),
            });
        }
        let mut out = Vec::new();
        for w in cells {
            let cell = match w.text.as_str() {
                "." => Cell::Allow,
                "X" | "x" => Cell::Deny,
                "?" => Cell::Unchecked,
                other => {
                    return Err(TableError {
                        line: w.line,
                        col: w.col,
                        message: format!(
                        "cell `{other}`: expected `.` (allowed), `X` (denied) or `?` (not checked)"
                    ),
                    })
                }
            };
            out.push((cell, w));
        }
        rows.push((source, out));
    }
    Ok(Table { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        let t = parse_table("-\tx/a x/b\nx/a  .   X\n\nx/b  ?   .\n").unwrap();
        assert_eq!(t.columns.len(), 2);
        assert_eq!(t.rows[1].0.text, "x/b");
        assert_eq!(t.rows[1].0.line, 3);
        assert_eq!(t.rows[0].1[1].0, Cell::Deny);
        let e = parse_table("- x/a x/b\nx/a . Y\n").unwrap_err();
        assert_eq!((e.line, e.col), (1, 6));
        assert!(parse_table("- x/a\nx/a . .\n").is_err());
        assert!(parse_table("x/a\n").is_err());
    }
}
