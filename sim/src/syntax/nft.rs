//! nft text: `nft list ruleset` output and hand-written nft files: the syntax tree and its
//! printer.
//!
//! Contract: [`parse`] reads the whole text into a [`File`] or returns an [`Error`] with line
//! and column and what was expected there; it never panics, hangs or overflows its stack,
//! whatever the input (nesting is bounded by [`MAX_DEPTH`]). Statements and expressions
//! fwsim does not know are kept as their words ([`Stmt::Other`], [`TableItem::Other`]) so one
//! unknown thing does not sink the file; meaning is given later (`netfilter::from_nft`).
//! `include` is refused by [`parse`] (a text without a file has nothing to include from);
//! [`parse_file`] reads the included files (`nft_include.rs`). [`File`]'s `Display` prints
//! text `nft -c -f` accepts; parse → print → parse gives the same tree (locations aside).
//!
//! The tree keeps what was written: named priorities stay names, `$variables` stay
//! variables, selectors (`ip saddr`, `meta mark`, `fib saddr . iif oif`) stay word lists.

use crate::values::Loc;
use std::fmt;

/// Deepest nesting of braces, parentheses and expressions accepted.
pub const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub loc: Loc,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)
    }
}

pub const FAMILIES: [&str; 6] = ["ip", "ip6", "inet", "arp", "bridge", "netdev"];

// ---------------------------------------------------------------------------------------
// The tree.

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct File {
    pub items: Vec<Item>,
}

/// A top-level command or block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `table FAMILY NAME { ... }`, or `[add|create] table FAMILY NAME` without a body.
    Table(Table),
    Define(Define),
    /// `flush ruleset`, `flush table ip x`, `flush chain ip x c`, `flush set ip x s`.
    Flush {
        words: Vec<String>,
        loc: Loc,
    },
    /// `add|create chain FAMILY TABLE NAME [{ ... }]`.
    AddChain {
        verb: String,
        family: Option<String>,
        table: String,
        chain: ChainDef,
    },
    /// `add|insert rule FAMILY TABLE CHAIN [position N|index N|handle N] STATEMENTS`.
    AddRule {
        verb: String,
        family: Option<String>,
        table: String,
        chain: String,
        /// `position N` and similar, as written.
        place: Vec<String>,
        rule: Rule,
    },
    /// `add|create set|map FAMILY TABLE NAME { ... }`.
    AddSet {
        verb: String,
        family: Option<String>,
        table: String,
        set: SetDef,
    },
    /// `add element FAMILY TABLE SET { elements }`.
    AddElement {
        family: Option<String>,
        table: String,
        set: String,
        elements: Vec<Elem>,
        loc: Loc,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Define {
    pub name: String,
    pub value: Expr,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// `add`/`create` when written as a command; None for `table ...`.
    pub verb: Option<String>,
    /// As written; None when omitted (the family is then `ip`).
    pub family: Option<String>,
    pub name: String,
    /// None: declared without a block.
    pub body: Option<Vec<TableItem>>,
    pub loc: Loc,
}

impl Table {
    pub fn family(&self) -> &str {
        self.family.as_deref().unwrap_or("ip")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableItem {
    Chain(ChainDef),
    Set(SetDef),
    Define(Define),
    /// `flags dormant`, `comment "..."`: words as written.
    Attr {
        words: Vec<String>,
        loc: Loc,
    },
    /// Objects fwsim gives no meaning to (`counter NAME {}`, `quota`, `ct helper`,
    /// `flowtable`, ...): the head words and the body's lines of words.
    Other {
        head: Vec<String>,
        body: Option<Vec<Vec<String>>>,
        loc: Loc,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainDef {
    pub name: String,
    /// None: declared without a block (`add chain ip x c`).
    pub body: Option<Vec<ChainItem>>,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainItem {
    /// `type T hook H [device D] priority P`.
    Hook {
        kind: String,
        hook: String,
        device: Option<String>,
        priority: Priority,
        loc: Loc,
    },
    /// `policy accept|drop` (or a `$variable`).
    Policy {
        policy: String,
        loc: Loc,
    },
    /// `comment "..."`, `flags ...`, `devices = {...}`: words as written.
    Attr {
        words: Vec<String>,
        loc: Loc,
    },
    Rule(Rule),
}

/// A base chain's priority as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Priority {
    Num(i64),
    /// `filter`, `srcnat + 10`, `dstnat - 5`.
    Named {
        name: String,
        offset: i64,
    },
    Var(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetDef {
    /// `map` rather than `set`.
    pub map: bool,
    pub name: String,
    pub settings: Vec<SetSetting>,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetSetting {
    /// `type K [. K] [: V [. V]]`.
    Type {
        key: Vec<String>,
        data: Option<Vec<String>>,
        loc: Loc,
    },
    /// `typeof EXPR [: EXPR]`.
    Typeof {
        key: Expr,
        data: Option<Expr>,
        loc: Loc,
    },
    Flags {
        flags: Vec<String>,
        loc: Loc,
    },
    Elements {
        elements: Vec<Elem>,
        loc: Loc,
    },
    /// `counter`, `size N`, `timeout 1h`, `auto-merge`, `policy memory`, `comment "x"`.
    Other {
        words: Vec<String>,
        loc: Loc,
    },
}

/// One element of a set or map: key, optional data, and what follows (`timeout 1h`,
/// `counter packets 1 bytes 2`, `comment "x"`) as words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elem {
    pub key: Expr,
    pub data: Option<Expr>,
    pub extra: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub stmts: Vec<Stmt>,
    pub loc: Loc,
}

/// Relational operators; `Implicit` is a value without operator (`ip saddr 10.0.0.1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelOp {
    Implicit,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl RelOp {
    fn as_str(self) -> &'static str {
        match self {
            RelOp::Implicit => "",
            RelOp::Eq => "==",
            RelOp::Ne => "!=",
            RelOp::Lt => "<",
            RelOp::Gt => ">",
            RelOp::Le => "<=",
            RelOp::Ge => ">=",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    /// `LEFT [OP] RIGHT`.
    Match {
        left: Expr,
        op: RelOp,
        right: Expr,
        loc: Loc,
    },
    /// `accept`, `drop`, `continue`, `return`, `jump C`, `goto C`.
    Verdict {
        verdict: String,
        chain: Option<String>,
        loc: Loc,
    },
    /// `KEY vmap MAP`.
    Vmap {
        key: Expr,
        map: Expr,
        loc: Loc,
    },
    /// `SELECTOR set VALUE` (`meta mark set 1`, `ct mark set meta mark`).
    Set {
        left: Expr,
        value: Expr,
        loc: Loc,
    },
    /// `counter [packets N bytes M]`.
    Counter {
        counts: Option<(u64, u64)>,
        loc: Loc,
    },
    Comment {
        text: String,
        loc: Loc,
    },
    /// `snat|dnat [ip|ip6] [to EXPR] [FLAGS]`, `masquerade`, `redirect`.
    Nat {
        kind: String,
        family: Option<String>,
        to: Option<Expr>,
        flags: Vec<String>,
        loc: Loc,
    },
    /// `reject [with ...]`: the words after `with`.
    Reject {
        with: Vec<String>,
        loc: Loc,
    },
    Notrack {
        loc: Loc,
    },
    /// `counter name EXPR`, `quota name EXPR`, `synproxy name EXPR`.
    ObjRef {
        kind: String,
        expr: Expr,
        loc: Loc,
    },
    /// Anything else (`log ...`, `limit ...`, `queue`, `flow offload @ft`, ...), as words.
    Other {
        words: Vec<String>,
        loc: Loc,
    },
}

impl Stmt {
    pub fn loc(&self) -> Loc {
        match self {
            Stmt::Match { loc, .. }
            | Stmt::Verdict { loc, .. }
            | Stmt::Vmap { loc, .. }
            | Stmt::Set { loc, .. }
            | Stmt::Counter { loc, .. }
            | Stmt::Comment { loc, .. }
            | Stmt::Nat { loc, .. }
            | Stmt::Reject { loc, .. }
            | Stmt::Notrack { loc }
            | Stmt::ObjRef { loc, .. }
            | Stmt::Other { loc, .. } => *loc,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// A selector as its words: `ip saddr`, `meta mark`, `ct original saddr`,
    /// `fib saddr . iif oif`, `numgen inc mod 2`.
    Sel(Vec<String>),
    /// A literal word: number, address, prefix, range `80-90`, name (`established`).
    Value(String),
    /// A double-quoted string (without the quotes).
    Str(String),
    /// `$NAME`.
    Var(String),
    /// `@NAME`.
    SetRef(String),
    /// `{ elements }`.
    Set(Vec<Elem>),
    /// `a,b,c` (flag lists: `established,related`).
    List(Vec<Expr>),
    /// `a . b`.
    Concat(Vec<Expr>),
    /// `a & b`, `a | b`, `a ^ b`, `a << b`, `a >> b`, `and`/`or`/`xor`, and `v / mask`.
    Binop {
        op: String,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `a - b` with spaces.
    Range(Box<Expr>, Box<Expr>),
    /// `( expr )`.
    Paren(Box<Expr>),
    /// `KEY map MAP`.
    Map { key: Box<Expr>, map: Box<Expr> },
    /// A verdict as map data: `accept`, `jump c`.
    Verdict(String, Option<String>),
}

// ---------------------------------------------------------------------------------------
// Tokens.

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Tk {
    Word(String),
    Str(String),
    Var(String),
    SetRef(String),
    Sym(&'static str),
    Nl,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) tk: Tk,
    pub(super) loc: Loc,
}

impl Tk {
    fn describe(&self) -> String {
        match self {
            Tk::Word(w) => format!("`{w}`"),
            Tk::Str(s) => format!("\"{s}\""),
            Tk::Var(v) => format!("`${v}`"),
            Tk::SetRef(v) => format!("`@{v}`"),
            Tk::Sym(s) => format!("`{s}`"),
            Tk::Nl => "end of line".into(),
        }
    }
    /// The token as it is printed back.
    fn text(&self) -> String {
        match self {
            Tk::Word(w) => w.clone(),
            Tk::Str(s) => format!("\"{s}\""),
            Tk::Var(v) => format!("${v}"),
            Tk::SetRef(v) => format!("@{v}"),
            Tk::Sym(s) => (*s).to_string(),
            Tk::Nl => "\n".into(),
        }
    }
}

const SYMS2: [&str; 6] = ["==", "!=", "<=", ">=", "<<", ">>"];
const SYMS1: [&str; 12] = ["{", "}", "(", ")", ",", ";", "=", "<", ">", "&", "|", "^"];

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !"{}(),;\"#=<>!&|^@$".contains(c)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-./".contains(c)
}

pub(super) fn lex(text: &str) -> Result<Vec<Token>, Error> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    while i < chars.len() {
        let c = chars[i];
        let loc = Loc { line, col };
        let adv = |i: &mut usize, col: &mut u32, n: usize| {
            *i += n;
            *col += n as u32;
        };
        if c == '\n' {
            out.push(Token { tk: Tk::Nl, loc });
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            adv(&mut i, &mut col, 1);
            continue;
        }
        if c.is_control() {
            // nft text has no control characters outside white space; refusing them keeps
            // every name printable as it was read.
            return Err(Error {
                loc,
                message: format!("unexpected control character {:?}: expected nft text", c),
            });
        }
        if c == '\\' {
            // Line continuation: backslash, optional spaces, newline.
            let mut j = i + 1;
            while j < chars.len() && (chars[j] == ' ' || chars[j] == '\t' || chars[j] == '\r') {
                j += 1;
            }
            if j < chars.len() && chars[j] == '\n' {
                i = j + 1;
                line += 1;
                col = 1;
                continue;
            }
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '"' {
            let mut j = i + 1;
            let mut s = String::new();
            while j < chars.len() && chars[j] != '"' && chars[j] != '\n' {
                s.push(chars[j]);
                j += 1;
            }
            if j >= chars.len() || chars[j] != '"' {
                return Err(Error {
                    loc,
                    message: "unterminated string: expected a closing `\"` on the same line".into(),
                });
            }
            out.push(Token {
                tk: Tk::Str(s),
                loc,
            });
            let n = j + 1 - i;
            adv(&mut i, &mut col, n);
            continue;
        }
        if c == '@' || c == '$' {
            let mut j = i + 1;
            let mut s = String::new();
            while j < chars.len() && is_name_char(chars[j]) {
                s.push(chars[j]);
                j += 1;
            }
            if s.is_empty() {
                return Err(Error {
                    loc,
                    message: format!("expected a name after `{c}`"),
                });
            }
            let tk = if c == '@' { Tk::SetRef(s) } else { Tk::Var(s) };
            out.push(Token { tk, loc });
            let n = j - i;
            adv(&mut i, &mut col, n);
            continue;
        }
        if i + 1 < chars.len() {
            let two: String = chars[i..i + 2].iter().collect();
            if let Some(s) = SYMS2.iter().find(|s| **s == two) {
                out.push(Token {
                    tk: Tk::Sym(s),
                    loc,
                });
                adv(&mut i, &mut col, 2);
                continue;
            }
        }
        if let Some(s) = SYMS1.iter().find(|s| s.starts_with(c)) {
            out.push(Token {
                tk: Tk::Sym(s),
                loc,
            });
            adv(&mut i, &mut col, 1);
            continue;
        }
        if c == '!' {
            out.push(Token {
                tk: Tk::Sym("!"),
                loc,
            });
            adv(&mut i, &mut col, 1);
            continue;
        }
        let mut j = i;
        let mut s = String::new();
        while j < chars.len() && is_word_char(chars[j]) {
            if chars[j] == '\\' && j + 1 < chars.len() && chars[j + 1] == '\n' {
                break;
            }
            s.push(chars[j]);
            j += 1;
        }
        if s.is_empty() {
            // Cannot happen (every char is one of the cases above), but never loop.
            s.push(c);
            j = i + 1;
        }
        out.push(Token {
            tk: Tk::Word(s),
            loc,
        });
        let n = j - i;
        adv(&mut i, &mut col, n);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Parser.

const PROTO_HDRS: [&str; 24] = [
    "ip", "ip6", "tcp", "udp", "udplite", "sctp", "dccp", "th", "icmp", "icmpv6", "igmp", "ether",
    "vlan", "arp", "ah", "esp", "comp", "gre", "frag", "hbh", "dst", "mh", "rt0", "srh",
];
const META_KEYS: [&str; 19] = [
    "mark",
    "iif",
    "iifname",
    "iiftype",
    "oif",
    "oifname",
    "oiftype",
    "skuid",
    "skgid",
    "rtclassid",
    "cpu",
    "iifgroup",
    "oifgroup",
    "cgroup",
    "pkttype",
    "nftrace",
    "ibrname",
    "obrname",
    "iifkind",
];
/// Statement keywords: a word starting a new statement (ends an unknown one).
const STMT_WORDS: [&str; 20] = [
    "accept",
    "drop",
    "continue",
    "return",
    "jump",
    "goto",
    "counter",
    "comment",
    "log",
    "reject",
    "notrack",
    "dnat",
    "snat",
    "masquerade",
    "redirect",
    "limit",
    "meta",
    "ct",
    "fib",
    "queue",
];
const BINOP_WORDS: [&str; 5] = ["and", "or", "xor", "lshift", "rshift"];

struct P {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
    end: Loc,
}

type R<T> = Result<T, Error>;

impl P {
    fn peek(&self) -> Option<&Tk> {
        self.toks.get(self.i).map(|t| &t.tk)
    }
    fn peek_at(&self, n: usize) -> Option<&Tk> {
        self.toks.get(self.i + n).map(|t| &t.tk)
    }
    fn word(&self) -> Option<&str> {
        match self.peek() {
            Some(Tk::Word(w)) => Some(w),
            _ => None,
        }
    }
    fn word_at(&self, n: usize) -> Option<&str> {
        match self.peek_at(n) {
            Some(Tk::Word(w)) => Some(w),
            _ => None,
        }
    }
    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tk::Sym(x)) if *x == s)
    }
    fn is_word(&self, w: &str) -> bool {
        self.word() == Some(w)
    }
    fn loc(&self) -> Loc {
        self.toks.get(self.i).map(|t| t.loc).unwrap_or(self.end)
    }
    fn bump(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        if t.is_some() {
            self.i += 1;
        }
        t
    }
    fn found(&self) -> String {
        match self.peek() {
            Some(t) => t.describe(),
            None => "end of file".into(),
        }
    }
    fn err<T>(&self, expected: &str) -> R<T> {
        Err(Error {
            loc: self.loc(),
            message: format!("expected {expected}, found {}", self.found()),
        })
    }
    fn expect_sym(&mut self, s: &str) -> R<()> {
        if self.is_sym(s) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("`{s}`"))
        }
    }
    fn expect_word(&mut self, what: &str) -> R<String> {
        match self.peek() {
            Some(Tk::Word(w)) => {
                let w = w.clone();
                self.i += 1;
                Ok(w)
            }
            _ => self.err(what),
        }
    }
    /// A name: a word or a quoted string.
    fn expect_name(&mut self, what: &str) -> R<String> {
        match self.peek() {
            Some(Tk::Word(w)) | Some(Tk::Str(w)) => {
                let w = w.clone();
                self.i += 1;
                Ok(w)
            }
            _ => self.err(what),
        }
    }
    fn skip_nl(&mut self) {
        while matches!(self.peek(), Some(Tk::Nl)) {
            self.i += 1;
        }
    }
    fn skip_seps(&mut self) {
        while matches!(self.peek(), Some(Tk::Nl) | Some(Tk::Sym(";"))) {
            self.i += 1;
        }
    }
    fn at_end_of_stmt(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(Tk::Nl) | Some(Tk::Sym(";")) | Some(Tk::Sym("}"))
        )
    }
    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error {
                loc: self.loc(),
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        Ok(())
    }
    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// The rest of a line (to `;`, newline or a closing `}` at depth 0) as words, braces
    /// balanced inside.
    fn words_to_end(&mut self) -> R<Vec<String>> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => break,
                Some(Tk::Nl) | Some(Tk::Sym(";")) if depth == 0 => break,
                Some(Tk::Sym("}")) if depth == 0 => break,
                // Inside braces a newline and a `;` separate alike: neither is a word.
                Some(Tk::Nl) | Some(Tk::Sym(";")) => {
                    self.i += 1;
                    continue;
                }
                Some(Tk::Sym("{")) => depth += 1,
                Some(Tk::Sym("}")) => depth -= 1,
                _ => {}
            }
            if depth > MAX_DEPTH {
                return self.err("fewer nested braces");
            }
            let t = self.bump().map(|t| t.tk.text()).unwrap_or_default();
            out.push(t);
        }
        Ok(out)
    }

    // --- top level -------------------------------------------------------------------

    fn file(&mut self) -> R<File> {
        let mut items = Vec::new();
        loop {
            self.skip_seps();
            let Some(tk) = self.peek().cloned() else {
                break;
            };
            let loc = self.loc();
            let Tk::Word(w) = tk else {
                return self.err("a command (`table`, `define`, `flush`, `add`)");
            };
            match w.as_str() {
                "table" => {
                    self.i += 1;
                    items.push(Item::Table(self.table(None, loc)?));
                }
                "define" | "redefine" => {
                    self.i += 1;
                    items.push(Item::Define(self.define(loc)?));
                }
                "flush" => {
                    self.i += 1;
                    let words = self.words_to_end()?;
                    match words.first().map(String::as_str) {
                        Some("ruleset" | "table" | "chain" | "set" | "map") => {}
                        _ => {
                            return Err(Error {
                                loc,
                                message: "expected `flush ruleset`, `flush table`, `flush chain` or `flush set`".into(),
                            })
                        }
                    }
                    items.push(Item::Flush { words, loc });
                }
                "include" => {
                    return Err(Error {
                        loc,
                        message: "`include` is not supported: fwsim reads one self-contained ruleset (inline the included file, or give `nft list ruleset` output)".into(),
                    })
                }
                "add" | "create" | "insert" => {
                    self.i += 1;
                    items.push(self.command(&w, loc)?);
                }
                _ => {
                    return self.err("a command (`table`, `define`, `flush`, `add`, `insert`)")
                }
            }
            if !self.at_end_of_stmt() {
                return self.err("end of line or `;`");
            }
        }
        Ok(File { items })
    }

    fn define(&mut self, loc: Loc) -> R<Define> {
        let name = self.expect_word("a variable name")?;
        self.expect_sym("=")?;
        let value = self.rhs(true)?;
        Ok(Define { name, value, loc })
    }

    fn family_opt(&mut self) -> Option<String> {
        // `ip x` is family ip and table x; a lone word is the table (family ip).
        match (self.word(), self.peek_at(1)) {
            (Some(f), Some(Tk::Word(_))) if FAMILIES.contains(&f) => {
                let f = f.to_string();
                self.i += 1;
                Some(f)
            }
            _ => None,
        }
    }

    fn table(&mut self, verb: Option<String>, loc: Loc) -> R<Table> {
        let family = self.family_opt();
        let name = self.expect_name("a table name")?;
        let body = if self.is_sym("{") {
            self.i += 1;
            Some(self.table_body()?)
        } else {
            None
        };
        Ok(Table {
            verb,
            family,
            name,
            body,
            loc,
        })
    }

    fn table_body(&mut self) -> R<Vec<TableItem>> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            self.skip_seps();
            let loc = self.loc();
            match self.peek().cloned() {
                Some(Tk::Sym("}")) => {
                    self.i += 1;
                    break;
                }
                None => return self.err("`}` closing the table"),
                Some(Tk::Word(w)) => match w.as_str() {
                    "chain" => {
                        self.i += 1;
                        items.push(TableItem::Chain(self.chain_def(loc)?));
                    }
                    "set" | "map" => {
                        self.i += 1;
                        items.push(TableItem::Set(self.set_def(w == "map", loc)?));
                    }
                    "define" => {
                        self.i += 1;
                        items.push(TableItem::Define(self.define(loc)?));
                    }
                    "include" => {
                        return Err(Error {
                            loc,
                            message: "`include` is not supported: fwsim reads one self-contained ruleset (inline the included file, or give `nft list ruleset` output)".into(),
                        })
                    }
                    "flags" | "comment" => {
                        let words = self.words_to_end()?;
                        items.push(TableItem::Attr { words, loc });
                    }
                    _ => items.push(self.other_object(loc)?),
                },
                Some(_) => return self.err("`chain`, `set`, `map` or `}`"),
            }
            if !self.at_end_of_stmt() {
                return self.err("end of line or `;`");
            }
        }
        self.leave();
        Ok(items)
    }

    /// `KIND [KIND2] NAME { lines }` for objects fwsim does not model.
    fn other_object(&mut self, loc: Loc) -> R<TableItem> {
        let mut head = Vec::new();
        while let Some(tk) = self.peek() {
            match tk {
                Tk::Word(_) | Tk::Str(_) => {
                    head.push(tk.text());
                    self.i += 1;
                }
                _ => break,
            }
            if head.len() > 8 {
                break;
            }
        }
        if !self.is_sym("{") {
            if head.is_empty() {
                return self.err("a table item (`chain`, `set`, `map`, ...)");
            }
            return self.err("`{` after an object name");
        }
        self.i += 1;
        self.enter()?;
        let mut body = Vec::new();
        loop {
            self.skip_seps();
            if self.is_sym("}") {
                self.i += 1;
                break;
            }
            if self.peek().is_none() {
                return self.err("`}`");
            }
            let line = self.words_to_end()?;
            if line.is_empty() {
                return self.err("a line of the object");
            }
            body.push(line);
        }
        self.leave();
        Ok(TableItem::Other {
            head,
            body: Some(body),
            loc,
        })
    }

    fn chain_def(&mut self, loc: Loc) -> R<ChainDef> {
        let name = self.expect_name("a chain name")?;
        let body = if self.is_sym("{") {
            self.i += 1;
            Some(self.chain_body()?)
        } else {
            None
        };
        Ok(ChainDef { name, body, loc })
    }

    fn chain_body(&mut self) -> R<Vec<ChainItem>> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            self.skip_seps();
            let loc = self.loc();
            match self.peek() {
                Some(Tk::Sym("}")) => {
                    self.i += 1;
                    break;
                }
                None => return self.err("`}` closing the chain"),
                _ => {}
            }
            match self.word() {
                Some("type") => {
                    self.i += 1;
                    let kind = self.expect_word("a chain type (`filter`, `nat`, `route`)")?;
                    if !self.is_word("hook") {
                        return self.err("`hook`");
                    }
                    self.i += 1;
                    let hook = self.expect_word("a hook name (`input`, `forward`, ...)")?;
                    let mut device = None;
                    if self.is_word("device") {
                        self.i += 1;
                        device = Some(self.expect_name("a device name")?);
                    }
                    if !self.is_word("priority") {
                        return self.err("`priority`");
                    }
                    self.i += 1;
                    let priority = self.priority()?;
                    items.push(ChainItem::Hook {
                        kind,
                        hook,
                        device,
                        priority,
                        loc,
                    });
                }
                Some("policy") => {
                    self.i += 1;
                    let policy = match self.peek() {
                        Some(Tk::Word(w)) => w.clone(),
                        Some(Tk::Var(v)) => format!("${v}"),
                        _ => return self.err("`accept` or `drop`"),
                    };
                    self.i += 1;
                    items.push(ChainItem::Policy { policy, loc });
                }
                Some("devices") | Some("flags") => {
                    let words = self.words_to_end()?;
                    items.push(ChainItem::Attr { words, loc });
                }
                Some("comment")
                    if matches!(self.peek_at(1), Some(Tk::Str(_)))
                        && matches!(
                            self.peek_at(2),
                            None | Some(Tk::Nl) | Some(Tk::Sym(";")) | Some(Tk::Sym("}"))
                        ) =>
                {
                    let words = self.words_to_end()?;
                    items.push(ChainItem::Attr { words, loc });
                }
                _ => items.push(ChainItem::Rule(self.rule()?)),
            }
            if !self.at_end_of_stmt() {
                return self.err("end of line or `;`");
            }
        }
        self.leave();
        Ok(items)
    }

    fn priority(&mut self) -> R<Priority> {
        let loc = self.loc();
        let sign = |s: &str| -> Option<i64> { s.parse::<i64>().ok() };
        let p = match self.peek().cloned() {
            Some(Tk::Var(v)) => {
                self.i += 1;
                Priority::Var(v)
            }
            Some(Tk::Word(w)) => {
                self.i += 1;
                if let Some(n) = sign(&w) {
                    Priority::Num(n)
                } else {
                    // `name`, `name + N`, `name - N`, `name+N`, `name -N`.
                    let (name, mut offset) = match w.find(['+', '-']) {
                        Some(k) if k > 0 && sign(&w[k..].replace('+', "")).is_some() => (
                            w[..k].to_string(),
                            sign(&w[k..].replace('+', "")).unwrap_or(0),
                        ),
                        _ => (w.clone(), 0),
                    };
                    // A name starts with a letter (`0-90` is neither a number nor a name).
                    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
                        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(Error {
                            loc,
                            message: format!("expected a priority (a number or a name such as `filter`, `srcnat + 10`), found `{w}`"),
                        });
                    }
                    if let Some(op) = self.word().map(str::to_string) {
                        if op == "+" || op == "-" {
                            self.i += 1;
                            let n = self.expect_word("a number")?;
                            let Some(n) = sign(&n) else {
                                return Err(Error {
                                    loc: self.toks[self.i - 1].loc,
                                    message: format!("expected a number after `{op}`, found `{n}`"),
                                });
                            };
                            offset = if op == "+" { n } else { -n };
                        } else if let Some(n) = op.strip_prefix('-').and_then(sign) {
                            self.i += 1;
                            offset = -n;
                        } else if let Some(n) = op.strip_prefix('+').and_then(sign) {
                            self.i += 1;
                            offset = n;
                        }
                    }
                    Priority::Named { name, offset }
                }
            }
            _ => return self.err("a priority (a number or a name such as `filter`)"),
        };
        Ok(p)
    }

    fn set_def(&mut self, map: bool, loc: Loc) -> R<SetDef> {
        let name = self.expect_name(if map { "a map name" } else { "a set name" })?;
        let mut settings = Vec::new();
        if !self.is_sym("{") {
            return self.err("`{`");
        }
        self.i += 1;
        self.enter()?;
        loop {
            self.skip_seps();
            let loc = self.loc();
            match self.peek() {
                Some(Tk::Sym("}")) => {
                    self.i += 1;
                    break;
                }
                None => return self.err("`}` closing the set"),
                _ => {}
            }
            match self.word() {
                Some("type") => {
                    self.i += 1;
                    let mut key = vec![self.expect_word("a data type (`ipv4_addr`, ...)")?];
                    let mut data: Option<Vec<String>> = None;
                    loop {
                        if self.is_word(".") {
                            self.i += 1;
                            let w = self.expect_word("a data type")?;
                            match &mut data {
                                None => key.push(w),
                                Some(d) => d.push(w),
                            }
                        } else if self.is_word(":") && data.is_none() {
                            self.i += 1;
                            data = Some(vec![self.expect_word("a data type or `verdict`")?]);
                        } else {
                            break;
                        }
                    }
                    settings.push(SetSetting::Type { key, data, loc });
                }
                Some("typeof") => {
                    self.i += 1;
                    let key = self.expr()?;
                    let data = if self.is_word(":") {
                        self.i += 1;
                        Some(self.expr()?)
                    } else {
                        None
                    };
                    settings.push(SetSetting::Typeof { key, data, loc });
                }
                Some("flags") => {
                    self.i += 1;
                    let mut flags = vec![self.expect_word("a set flag")?];
                    while self.is_sym(",") {
                        self.i += 1;
                        flags.push(self.expect_word("a set flag")?);
                    }
                    settings.push(SetSetting::Flags { flags, loc });
                }
                Some("elements") => {
                    self.i += 1;
                    self.expect_sym("=")?;
                    let elements = self.set_literal()?;
                    settings.push(SetSetting::Elements { elements, loc });
                }
                Some(_) => {
                    let words = self.words_to_end()?;
                    settings.push(SetSetting::Other { words, loc });
                }
                None => return self.err("a set setting (`type`, `flags`, `elements`)"),
            }
            if !self.at_end_of_stmt() {
                return self.err("end of line or `;`");
            }
        }
        self.leave();
        Ok(SetDef {
            map,
            name,
            settings,
            loc,
        })
    }

    fn command(&mut self, verb: &str, loc: Loc) -> R<Item> {
        let what = self.expect_word("`table`, `chain`, `rule`, `set`, `map` or `element`")?;
        match (verb, what.as_str()) {
            ("add" | "create", "table") => Ok(Item::Table(self.table(Some(verb.into()), loc)?)),
            ("add" | "create", "chain") => {
                let (family, table) = self.family_table()?;
                let chain = self.chain_def(self.loc())?;
                Ok(Item::AddChain {
                    verb: verb.into(),
                    family,
                    table,
                    chain,
                })
            }
            ("add" | "insert", "rule") => {
                let (family, table) = self.family_table()?;
                let chain = self.expect_name("a chain name")?;
                let mut place = Vec::new();
                while let Some(w @ ("position" | "index" | "handle")) = self.word() {
                    place.push(w.to_string());
                    self.i += 1;
                    place.push(self.expect_word("a number")?);
                }
                let rule = self.rule()?;
                Ok(Item::AddRule {
                    verb: verb.into(),
                    family,
                    table,
                    chain,
                    place,
                    rule,
                })
            }
            ("add" | "create", "set" | "map") => {
                let (family, table) = self.family_table()?;
                let l = self.loc();
                let set = self.set_def(what == "map", l)?;
                Ok(Item::AddSet {
                    verb: verb.into(),
                    family,
                    table,
                    set,
                })
            }
            ("add" | "create", "element") => {
                let (family, table) = self.family_table()?;
                let set = self.expect_name("a set name")?;
                let elements = self.set_literal()?;
                Ok(Item::AddElement {
                    family,
                    table,
                    set,
                    elements,
                    loc,
                })
            }
            _ => Err(Error {
                loc,
                message: format!("`{verb} {what}` is not supported: expected `add table`, `add chain`, `add rule`, `insert rule`, `add set`, `add map` or `add element`"),
            }),
        }
    }

    fn family_table(&mut self) -> R<(Option<String>, String)> {
        let family = match (self.word(), self.peek_at(1), self.peek_at(2)) {
            // `add chain ip x c`: three names; `add chain x c`: two.
            (Some(f), Some(Tk::Word(_) | Tk::Str(_)), Some(Tk::Word(_) | Tk::Str(_)))
                if FAMILIES.contains(&f) =>
            {
                let f = f.to_string();
                self.i += 1;
                Some(f)
            }
            _ => None,
        };
        let table = self.expect_name("a table name")?;
        Ok((family, table))
    }

    // --- rules -----------------------------------------------------------------------

    fn rule(&mut self) -> R<Rule> {
        let loc = self.loc();
        let mut stmts = Vec::new();
        while !self.at_end_of_stmt() {
            let before = self.i;
            stmts.push(self.stmt()?);
            if self.i == before {
                return self.err("a statement");
            }
        }
        if stmts.is_empty() {
            return self.err("a rule");
        }
        Ok(Rule { stmts, loc })
    }

    fn is_selector_start(&self) -> bool {
        match self.word() {
            Some(w) if PROTO_HDRS.contains(&w) => matches!(self.peek_at(1), Some(Tk::Word(_))),
            Some(w) if META_KEYS.contains(&w) => true,
            Some(
                "meta" | "ct" | "fib" | "numgen" | "symhash" | "jhash" | "rt" | "socket" | "osf",
            ) => {
                matches!(self.peek_at(1), Some(Tk::Word(_)))
            }
            _ => false,
        }
    }

    fn stmt(&mut self) -> R<Stmt> {
        let loc = self.loc();
        let Some(w) = self.word().map(str::to_string) else {
            return self.other(loc);
        };
        match w.as_str() {
            "accept" | "drop" | "continue" | "return" => {
                self.i += 1;
                Ok(Stmt::Verdict {
                    verdict: w,
                    chain: None,
                    loc,
                })
            }
            "jump" | "goto" => {
                self.i += 1;
                let chain = self.expect_name("a chain name")?;
                Ok(Stmt::Verdict {
                    verdict: w,
                    chain: Some(chain),
                    loc,
                })
            }
            "counter" | "quota" | "synproxy" | "limit" if self.word_at(1) == Some("name") => {
                self.i += 2;
                let expr = self.expr()?;
                Ok(Stmt::ObjRef { kind: w, expr, loc })
            }
            "counter" => {
                self.i += 1;
                let mut counts = None;
                if self.is_word("packets") {
                    if let (Some(p), Some("bytes"), Some(b)) =
                        (self.word_at(1), self.word_at(2), self.word_at(3))
                    {
                        if let (Ok(p), Ok(b)) = (p.parse(), b.parse()) {
                            counts = Some((p, b));
                            self.i += 4;
                        }
                    }
                    if counts.is_none() {
                        return self.err("`packets N bytes M`");
                    }
                }
                Ok(Stmt::Counter { counts, loc })
            }
            "comment" => {
                self.i += 1;
                match self.peek() {
                    Some(Tk::Str(s)) => {
                        let text = s.clone();
                        self.i += 1;
                        Ok(Stmt::Comment { text, loc })
                    }
                    _ => self.err("a quoted comment"),
                }
            }
            "notrack" => {
                self.i += 1;
                Ok(Stmt::Notrack { loc })
            }
            "reject" => {
                self.i += 1;
                let mut with = Vec::new();
                if self.is_word("with") {
                    self.i += 1;
                    let proto = self.expect_word("`tcp reset`, `icmp`, `icmpv6` or `icmpx`")?;
                    let tcp = proto == "tcp";
                    with.push(proto);
                    if tcp {
                        if !self.is_word("reset") {
                            return self.err("`reset`");
                        }
                        self.i += 1;
                        with.push("reset".into());
                    } else {
                        if self.is_word("type") {
                            self.i += 1;
                            with.push("type".into());
                        }
                        with.push(self.expect_word("a reject type (`port-unreachable`, ...)")?);
                    }
                }
                Ok(Stmt::Reject { with, loc })
            }
            "dnat" | "snat" | "masquerade" | "redirect" => {
                self.i += 1;
                let mut family = None;
                if let (Some(f @ ("ip" | "ip6")), Some("to")) = (self.word(), self.word_at(1)) {
                    family = Some(f.to_string());
                    self.i += 1;
                }
                let mut to = None;
                if self.is_word("to") {
                    self.i += 1;
                    to = Some(self.expr()?);
                }
                let mut flags = Vec::new();
                while let Some(
                    f @ ("random" | "fully-random" | "persistent" | "netmap" | "prefix"),
                ) = self.word()
                {
                    flags.push(f.to_string());
                    self.i += 1;
                    if self.is_sym(",") {
                        self.i += 1;
                        flags.push(",".into());
                    }
                }
                Ok(Stmt::Nat {
                    kind: w,
                    family,
                    to,
                    flags,
                    loc,
                })
            }
            _ if self.is_selector_start() => self.selector_stmt(loc),
            _ => self.other(loc),
        }
    }

    fn selector_stmt(&mut self, loc: Loc) -> R<Stmt> {
        let start = self.i;
        let left = self.lhs()?;
        if self.is_word("set") {
            self.i += 1;
            let value = self.expr()?;
            return Ok(Stmt::Set { left, value, loc });
        }
        if self.is_word("vmap") {
            self.i += 1;
            let map = self.map_ref()?;
            return Ok(Stmt::Vmap {
                key: left,
                map,
                loc,
            });
        }
        let op = match self.peek() {
            Some(Tk::Sym("==")) => RelOp::Eq,
            Some(Tk::Sym("!=")) => RelOp::Ne,
            Some(Tk::Sym("<")) => RelOp::Lt,
            Some(Tk::Sym(">")) => RelOp::Gt,
            Some(Tk::Sym("<=")) => RelOp::Le,
            Some(Tk::Sym(">=")) => RelOp::Ge,
            Some(Tk::Word(w)) => match w.as_str() {
                "eq" => RelOp::Eq,
                "ne" => RelOp::Ne,
                "lt" => RelOp::Lt,
                "gt" => RelOp::Gt,
                "le" => RelOp::Le,
                "ge" => RelOp::Ge,
                _ => RelOp::Implicit,
            },
            _ => RelOp::Implicit,
        };
        if op != RelOp::Implicit {
            self.i += 1;
        }
        if op == RelOp::Implicit && (self.at_end_of_stmt() || self.is_sym("}")) {
            // A selector without value: not a match fwsim knows (e.g. `jhash ... mod 2`
            // alone). Keep its words.
            self.i = start;
            return self.other(loc);
        }
        let right = self.rhs(true)?;
        Ok(Stmt::Match {
            left,
            op,
            right,
            loc,
        })
    }

    fn starts_stmt(&self) -> bool {
        matches!(self.word(), Some(w) if STMT_WORDS.contains(&w)) || self.is_selector_start()
    }

    /// An unknown statement: its first token, then tokens up to the next statement keyword
    /// (braces balanced).
    fn other(&mut self, loc: Loc) -> R<Stmt> {
        let mut words = Vec::new();
        let mut depth = 0usize;
        loop {
            if depth == 0 && !words.is_empty() && (self.at_end_of_stmt() || self.starts_stmt()) {
                break;
            }
            match self.peek() {
                None => break,
                Some(Tk::Nl) if depth == 0 => break,
                Some(Tk::Nl) => {
                    self.i += 1;
                    continue;
                }
                Some(Tk::Sym(";")) if depth == 0 => break,
                Some(Tk::Sym("}")) if depth == 0 => break,
                Some(Tk::Sym("{")) | Some(Tk::Sym("(")) => depth += 1,
                Some(Tk::Sym("}")) | Some(Tk::Sym(")")) => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_DEPTH {
                return self.err("fewer nested braces");
            }
            // Words following `flags`, `prefix`, `level` are arguments even when they look
            // like keywords (`log flags ip options`).
            let t = self.bump().map(|t| t.tk.text()).unwrap_or_default();
            let arg = matches!(t.as_str(), "flags" | "prefix" | "level" | "name" | "to");
            words.push(t);
            if arg && !self.at_end_of_stmt() {
                if let Some(t) = self.bump() {
                    words.push(t.tk.text());
                }
            }
        }
        Ok(Stmt::Other { words, loc })
    }

    /// A selector, possibly masked/shifted and concatenated: the left side of a match.
    fn lhs(&mut self) -> R<Expr> {
        self.enter()?;
        let mut parts = vec![self.binop_chain(true)?];
        while self.is_word(".") {
            self.i += 1;
            parts.push(self.binop_chain(true)?);
        }
        self.leave();
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Expr::Value(String::new()))
        } else {
            Expr::Concat(parts)
        })
    }

    /// A full expression: selectors or values, binops, concatenations, `map`.
    fn expr(&mut self) -> R<Expr> {
        self.enter()?;
        let mut parts = vec![self.binop_chain(false)?];
        while self.is_word(".") {
            self.i += 1;
            parts.push(self.binop_chain(false)?);
        }
        let mut e = if parts.len() == 1 {
            parts.pop().unwrap_or(Expr::Value(String::new()))
        } else {
            Expr::Concat(parts)
        };
        if self.is_word("map") {
            self.i += 1;
            let map = self.map_ref()?;
            e = Expr::Map {
                key: Box::new(e),
                map: Box::new(map),
            };
        }
        self.leave();
        Ok(e)
    }

    fn binop_chain(&mut self, selector_only: bool) -> R<Expr> {
        let mut e = if self.is_selector_start() {
            self.selector()?
        } else if selector_only {
            return self.err("a selector (`ip saddr`, `meta mark`, ...)");
        } else {
            self.value_primary()?
        };
        loop {
            let op = match self.peek() {
                Some(Tk::Sym(s @ ("&" | "|" | "^" | "<<" | ">>"))) => s.to_string(),
                Some(Tk::Word(w)) if BINOP_WORDS.contains(&w.as_str()) => w.clone(),
                _ => break,
            };
            self.i += 1;
            let right = if self.is_selector_start() {
                self.selector()?
            } else {
                self.value_primary()?
            };
            e = Expr::Binop {
                op,
                left: Box::new(e),
                right: Box::new(right),
            };
        }
        Ok(e)
    }

    fn selector(&mut self) -> R<Expr> {
        let first = self.expect_word("a selector")?;
        let mut words = vec![first.clone()];
        let take = |p: &mut P, words: &mut Vec<String>, what: &str| -> R<()> {
            let w = p.expect_word(what)?;
            words.push(w);
            Ok(())
        };
        match first.as_str() {
            w if PROTO_HDRS.contains(&w) => {
                take(self, &mut words, "a header field")?;
                if words[1] == "option" {
                    take(self, &mut words, "an option name")?;
                    if let Some(
                        f @ ("kind" | "length" | "size" | "count" | "left" | "right" | "tsval"
                        | "tsecr" | "value" | "type"),
                    ) = self.word()
                    {
                        words.push(f.to_string());
                        self.i += 1;
                    }
                }
            }
            w if META_KEYS.contains(&w) => {}
            "meta" => take(self, &mut words, "a meta key")?,
            "ct" => {
                if let Some(d @ ("original" | "reply")) = self.word() {
                    words.push(d.to_string());
                    self.i += 1;
                }
                if let (Some(f @ ("ip" | "ip6")), Some(Tk::Word(_))) =
                    (self.word(), self.peek_at(1))
                {
                    words.push(f.to_string());
                    self.i += 1;
                }
                take(self, &mut words, "a ct key")?;
            }
            "fib" => {
                take(self, &mut words, "a fib key (`saddr`, `daddr`, ...)")?;
                while self.is_word(".") {
                    self.i += 1;
                    words.push(".".into());
                    take(self, &mut words, "a fib key")?;
                }
                take(self, &mut words, "a fib result (`type`, `oif`, `oifname`)")?;
            }
            "numgen" => {
                take(self, &mut words, "`inc` or `random`")?;
                self.mod_args(&mut words)?;
            }
            "symhash" => self.mod_args(&mut words)?,
            "jhash" => {
                // `jhash EXPR mod N [seed N] [offset N]`: the expression's words.
                let e = self.lhs()?;
                words.extend(expr_words(&e));
                self.mod_args(&mut words)?;
            }
            "rt" | "socket" | "osf" => {
                if let (Some(f @ ("ip" | "ip6")), Some(Tk::Word(_))) =
                    (self.word(), self.peek_at(1))
                {
                    words.push(f.to_string());
                    self.i += 1;
                }
                take(self, &mut words, "a key")?;
            }
            _ => {}
        }
        Ok(Expr::Sel(words))
    }

    fn mod_args(&mut self, words: &mut Vec<String>) -> R<()> {
        if !self.is_word("mod") {
            return self.err("`mod`");
        }
        self.i += 1;
        words.push("mod".into());
        words.push(self.expect_word("a number")?);
        while let Some(k @ ("seed" | "offset")) = self.word() {
            words.push(k.to_string());
            self.i += 1;
            words.push(self.expect_word("a number")?);
        }
        Ok(())
    }

    fn map_ref(&mut self) -> R<Expr> {
        match self.peek() {
            Some(Tk::SetRef(s)) => {
                let s = s.clone();
                self.i += 1;
                Ok(Expr::SetRef(s))
            }
            Some(Tk::Var(v)) => {
                let v = v.clone();
                self.i += 1;
                Ok(Expr::Var(v))
            }
            Some(Tk::Sym("{")) => Ok(Expr::Set(self.set_literal()?)),
            _ => self.err("`@MAP` or `{ key : value, ... }`"),
        }
    }

    /// A right-hand side value: items joined by `.`, `,` (when `lists`), `-` ranges,
    /// `|` flag unions and `/` masks.
    fn rhs(&mut self, lists: bool) -> R<Expr> {
        self.enter()?;
        let first = self.rhs_item()?;
        let mut e = if lists && self.is_sym(",") {
            let mut items = vec![first];
            while self.is_sym(",") {
                self.i += 1;
                items.push(self.rhs_item()?);
            }
            Expr::List(items)
        } else {
            first
        };
        if self.is_word("/") {
            self.i += 1;
            let right = self.rhs(lists)?;
            e = Expr::Binop {
                op: "/".into(),
                left: Box::new(e),
                right: Box::new(right),
            };
        }
        self.leave();
        Ok(e)
    }

    fn rhs_item(&mut self) -> R<Expr> {
        let mut parts = vec![self.rhs_basic()?];
        while self.is_word(".") {
            self.i += 1;
            parts.push(self.rhs_basic()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Expr::Value(String::new()))
        } else {
            Expr::Concat(parts)
        })
    }

    fn rhs_basic(&mut self) -> R<Expr> {
        let mut e = self.value_primary()?;
        loop {
            if self.is_word("-") {
                self.i += 1;
                let r = self.value_primary()?;
                e = Expr::Range(Box::new(e), Box::new(r));
            } else if let Some(Tk::Sym(s @ ("|" | "&" | "^"))) = self.peek() {
                let op = s.to_string();
                self.i += 1;
                let r = self.value_primary()?;
                e = Expr::Binop {
                    op,
                    left: Box::new(e),
                    right: Box::new(r),
                };
            } else {
                break;
            }
        }
        Ok(e)
    }

    fn value_primary(&mut self) -> R<Expr> {
        match self.peek().cloned() {
            Some(Tk::Word(w)) if !matches!(w.as_str(), "." | ":" | "-" | "/") => {
                self.i += 1;
                Ok(Expr::Value(w))
            }
            Some(Tk::Str(s)) => {
                self.i += 1;
                Ok(Expr::Str(s))
            }
            Some(Tk::Var(v)) => {
                self.i += 1;
                Ok(Expr::Var(v))
            }
            Some(Tk::SetRef(v)) => {
                self.i += 1;
                Ok(Expr::SetRef(v))
            }
            Some(Tk::Sym("{")) => Ok(Expr::Set(self.set_literal()?)),
            Some(Tk::Sym("(")) => {
                self.i += 1;
                self.enter()?;
                let inner = self.expr_in_parens()?;
                self.leave();
                self.expect_sym(")")?;
                Ok(Expr::Paren(Box::new(inner)))
            }
            _ => self.err("a value"),
        }
    }

    fn expr_in_parens(&mut self) -> R<Expr> {
        if self.is_selector_start() {
            self.expr()
        } else {
            self.rhs(true)
        }
    }

    /// `{ elem, elem }`, newlines allowed inside.
    fn set_literal(&mut self) -> R<Vec<Elem>> {
        self.expect_sym("{")?;
        self.enter()?;
        let mut out = Vec::new();
        loop {
            self.skip_nl();
            if self.is_sym("}") {
                self.i += 1;
                break;
            }
            if self.peek().is_none() {
                return self.err("`}` closing the set");
            }
            out.push(self.elem()?);
            self.skip_nl();
            if self.is_sym(",") {
                self.i += 1;
                continue;
            }
            if self.is_sym("}") {
                self.i += 1;
                break;
            }
            return self.err("`,` or `}`");
        }
        self.leave();
        Ok(out)
    }

    fn elem(&mut self) -> R<Elem> {
        let key = self.rhs(false)?;
        let mut data = None;
        if self.is_word(":") {
            self.i += 1;
            data = Some(match self.word() {
                Some(v @ ("accept" | "drop" | "continue" | "return")) => {
                    let v = v.to_string();
                    self.i += 1;
                    Expr::Verdict(v, None)
                }
                Some(v @ ("jump" | "goto")) => {
                    let v = v.to_string();
                    self.i += 1;
                    let c = self.expect_name("a chain name")?;
                    Expr::Verdict(v, Some(c))
                }
                _ => self.rhs(false)?,
            });
        }
        let mut extra = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tk::Sym(",")) | Some(Tk::Sym("}")) | Some(Tk::Nl) => break,
                Some(Tk::Sym("{")) => return self.err("`,` or `}`"),
                Some(t) => {
                    extra.push(t.text());
                    self.i += 1;
                }
            }
        }
        Ok(Elem { key, data, extra })
    }
}

/// Parse nft text.
pub fn parse(text: &str) -> Result<File, Error> {
    parse_tokens(lex(text)?, &[])
}

/// Parse the nft file at `path` whose text is `text`, reading the files its `include`
/// statements name (relative to the including file, globs in the file name, a directory's
/// files in name order; a glob matching nothing includes nothing, as nft has it; depth
/// bounded). Tokens of an included file stand at the top-level `include` line; an error
/// inside one names its file, line and column and the include chain.
pub fn parse_file(text: &str, path: &std::path::Path) -> Result<File, Error> {
    let (toks, origins) = super::nft_include::expand(text, path)?;
    parse_tokens(toks, &origins)
}

/// `origins[i]`: where token `i` was written when an include brought it (the message
/// prefix naming the file, line and column, and the chain).
fn parse_tokens(toks: Vec<Token>, origins: &[Option<String>]) -> Result<File, Error> {
    let mut p = P::new(toks);
    p.file().map_err(|mut e| {
        let at = p.i.min(p.toks.len().saturating_sub(1));
        if let Some(Some(o)) = origins.get(at) {
            e.message = format!("{o}: {}", e.message);
        }
        e
    })
}

impl P {
    fn new(toks: Vec<Token>) -> P {
        let end = toks
            .last()
            .map(|t| t.loc)
            .unwrap_or(Loc { line: 1, col: 1 });
        P {
            toks,
            i: 0,
            depth: 0,
            end,
        }
    }
}

/// The words of an expression as printed.
pub fn expr_words(e: &Expr) -> Vec<String> {
    e.to_string().split(' ').map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------------
// Printer.

fn quote_name(n: &str) -> String {
    if !n.is_empty() && n.chars().all(|c| is_word_char(c) && c != '\\') {
        n.to_string()
    } else {
        format!("\"{n}\"")
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Sel(w) => f.write_str(&w.join(" ")),
            Expr::Value(v) => f.write_str(v),
            Expr::Str(s) => write!(f, "\"{s}\""),
            Expr::Var(v) => write!(f, "${v}"),
            Expr::SetRef(v) => write!(f, "@{v}"),
            Expr::Set(elems) => {
                f.write_str("{ ")?;
                for (i, e) in elems.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(" }")
            }
            Expr::List(items) => {
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            Expr::Concat(items) => {
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" . ")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            Expr::Binop { op, left, right } => write!(f, "{left} {op} {right}"),
            Expr::Range(a, b) => write!(f, "{a} - {b}"),
            Expr::Paren(e) => write!(f, "({e})"),
            Expr::Map { key, map } => write!(f, "{key} map {map}"),
            Expr::Verdict(v, c) => match c {
                Some(c) => write!(f, "{v} {}", quote_name(c)),
                None => f.write_str(v),
            },
        }
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key)?;
        if let Some(d) = &self.data {
            write!(f, " : {d}")?;
        }
        for w in &self.extra {
            write!(f, " {w}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::Match {
                left, op, right, ..
            } => {
                if *op == RelOp::Implicit {
                    write!(f, "{left} {right}")
                } else {
                    write!(f, "{left} {} {right}", op.as_str())
                }
            }
            Stmt::Verdict { verdict, chain, .. } => match chain {
                Some(c) => write!(f, "{verdict} {}", quote_name(c)),
                None => f.write_str(verdict),
            },
            Stmt::Vmap { key, map, .. } => write!(f, "{key} vmap {map}"),
            Stmt::Set { left, value, .. } => write!(f, "{left} set {value}"),
            Stmt::Counter { counts, .. } => match counts {
                Some((p, b)) => write!(f, "counter packets {p} bytes {b}"),
                None => f.write_str("counter"),
            },
            Stmt::Comment { text, .. } => write!(f, "comment \"{text}\""),
            Stmt::Nat {
                kind,
                family,
                to,
                flags,
                ..
            } => {
                f.write_str(kind)?;
                if let Some(fam) = family {
                    write!(f, " {fam}")?;
                }
                if let Some(to) = to {
                    write!(f, " to {to}")?;
                }
                // Flags as written: `a,b` stays joined, `a b` keeps its space.
                let mut after_comma = false;
                for fl in flags {
                    if fl == "," {
                        f.write_str(",")?;
                        after_comma = true;
                        continue;
                    }
                    if !after_comma {
                        f.write_str(" ")?;
                    }
                    f.write_str(fl)?;
                    after_comma = false;
                }
                Ok(())
            }
            Stmt::Reject { with, .. } => {
                f.write_str("reject")?;
                if !with.is_empty() {
                    write!(f, " with {}", with.join(" "))?;
                }
                Ok(())
            }
            Stmt::Notrack { .. } => f.write_str("notrack"),
            Stmt::ObjRef { kind, expr, .. } => write!(f, "{kind} name {expr}"),
            Stmt::Other { words, .. } => f.write_str(&words.join(" ")),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.stmts.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Priority::Num(n) => write!(f, "{n}"),
            Priority::Named { name, offset } => match offset {
                0 => f.write_str(name),
                n if *n > 0 => write!(f, "{name} + {n}"),
                n => write!(f, "{name} - {}", n.unsigned_abs()),
            },
            Priority::Var(v) => write!(f, "${v}"),
        }
    }
}

fn write_chain_body(f: &mut fmt::Formatter<'_>, items: &[ChainItem], ind: &str) -> fmt::Result {
    // `type ...; policy ...;` on one line, as nft lists them.
    let mut i = 0;
    while i < items.len() {
        match &items[i] {
            ChainItem::Hook {
                kind,
                hook,
                device,
                priority,
                ..
            } => {
                write!(f, "{ind}type {kind} hook {hook}")?;
                if let Some(d) = device {
                    write!(f, " device {}", quote_name(d))?;
                }
                write!(f, " priority {priority};")?;
                if let Some(ChainItem::Policy { policy, .. }) = items.get(i + 1) {
                    write!(f, " policy {policy};")?;
                    i += 1;
                }
                writeln!(f)?;
            }
            ChainItem::Policy { policy, .. } => writeln!(f, "{ind}policy {policy};")?,
            ChainItem::Attr { words, .. } => writeln!(f, "{ind}{}", words.join(" "))?,
            ChainItem::Rule(r) => writeln!(f, "{ind}{r}")?,
        }
        i += 1;
    }
    Ok(())
}

fn write_set_body(f: &mut fmt::Formatter<'_>, s: &SetDef, ind: &str) -> fmt::Result {
    for st in &s.settings {
        match st {
            SetSetting::Type { key, data, .. } => {
                write!(f, "{ind}type {}", key.join(" . "))?;
                if let Some(d) = data {
                    write!(f, " : {}", d.join(" . "))?;
                }
                writeln!(f)?;
            }
            SetSetting::Typeof { key, data, .. } => {
                write!(f, "{ind}typeof {key}")?;
                if let Some(d) = data {
                    write!(f, " : {d}")?;
                }
                writeln!(f)?;
            }
            SetSetting::Flags { flags, .. } => writeln!(f, "{ind}flags {}", flags.join(","))?,
            SetSetting::Elements { elements, .. } => {
                writeln!(f, "{ind}elements = {}", Expr::Set(elements.clone()))?
            }
            SetSetting::Other { words, .. } => writeln!(f, "{ind}{}", words.join(" "))?,
        }
    }
    Ok(())
}

fn opt_family(f: &Option<String>) -> String {
    f.as_ref().map(|f| format!("{f} ")).unwrap_or_default()
}

impl fmt::Display for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A line ending in a word that ends in `\\` would read as a line continuation:
        // end it with `;` (a statement separator everywhere such a line can be).
        let raw = RawFile(self).to_string();
        for line in raw.split_inclusive('\n') {
            match line.strip_suffix('\n') {
                Some(l) if l.ends_with('\\') => writeln!(f, "{l};")?,
                _ => f.write_str(line)?,
            }
        }
        Ok(())
    }
}

struct RawFile<'a>(&'a File);

impl fmt::Display for RawFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.0.items {
            match item {
                Item::Define(d) => writeln!(f, "define {} = {}", d.name, d.value)?,
                Item::Flush { words, .. } => writeln!(f, "flush {}", words.join(" "))?,
                Item::Table(t) => {
                    if let Some(v) = &t.verb {
                        write!(f, "{v} ")?;
                    }
                    write!(f, "table {}{}", opt_family(&t.family), quote_name(&t.name))?;
                    let Some(body) = &t.body else {
                        writeln!(f)?;
                        continue;
                    };
                    writeln!(f, " {{")?;
                    for (i, ti) in body.iter().enumerate() {
                        let block = matches!(
                            ti,
                            TableItem::Chain(_) | TableItem::Set(_) | TableItem::Other { .. }
                        );
                        if i > 0 && block {
                            writeln!(f)?;
                        }
                        match ti {
                            TableItem::Chain(c) => {
                                write!(f, "\tchain {}", quote_name(&c.name))?;
                                match &c.body {
                                    Some(b) => {
                                        writeln!(f, " {{")?;
                                        write_chain_body(f, b, "\t\t")?;
                                        writeln!(f, "\t}}")?;
                                    }
                                    None => writeln!(f)?,
                                }
                            }
                            TableItem::Set(s) => {
                                writeln!(
                                    f,
                                    "\t{} {} {{",
                                    if s.map { "map" } else { "set" },
                                    quote_name(&s.name)
                                )?;
                                write_set_body(f, s, "\t\t")?;
                                writeln!(f, "\t}}")?;
                            }
                            TableItem::Define(d) => {
                                writeln!(f, "\tdefine {} = {}", d.name, d.value)?
                            }
                            TableItem::Attr { words, .. } => writeln!(f, "\t{}", words.join(" "))?,
                            TableItem::Other { head, body, .. } => {
                                write!(f, "\t{}", head.join(" "))?;
                                if let Some(body) = body {
                                    writeln!(f, " {{")?;
                                    for l in body {
                                        writeln!(f, "\t\t{}", l.join(" "))?;
                                    }
                                    write!(f, "\t}}")?;
                                }
                                writeln!(f)?;
                            }
                        }
                    }
                    writeln!(f, "}}")?;
                }
                Item::AddChain {
                    verb,
                    family,
                    table,
                    chain,
                } => {
                    write!(
                        f,
                        "{verb} chain {}{} {}",
                        opt_family(family),
                        quote_name(table),
                        quote_name(&chain.name)
                    )?;
                    match &chain.body {
                        Some(b) => {
                            writeln!(f, " {{")?;
                            write_chain_body(f, b, "\t")?;
                            writeln!(f, "}}")?;
                        }
                        None => writeln!(f)?,
                    }
                }
                Item::AddRule {
                    verb,
                    family,
                    table,
                    chain,
                    place,
                    rule,
                } => {
                    write!(
                        f,
                        "{verb} rule {}{} {} ",
                        opt_family(family),
                        quote_name(table),
                        quote_name(chain)
                    )?;
                    for p in place {
                        write!(f, "{p} ")?;
                    }
                    writeln!(f, "{rule}")?;
                }
                Item::AddSet {
                    verb,
                    family,
                    table,
                    set,
                } => {
                    writeln!(
                        f,
                        "{verb} {} {}{} {} {{",
                        if set.map { "map" } else { "set" },
                        opt_family(family),
                        quote_name(table),
                        quote_name(&set.name)
                    )?;
                    write_set_body(f, set, "\t")?;
                    writeln!(f, "}}")?;
                }
                Item::AddElement {
                    family,
                    table,
                    set,
                    elements,
                    ..
                } => writeln!(
                    f,
                    "add element {}{} {} {}",
                    opt_family(family),
                    quote_name(table),
                    quote_name(set),
                    Expr::Set(elements.clone())
                )?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(text: &str) -> Rule {
        let f = parse(&format!(
            "table inet t {{\n\tchain c {{\n\t\t{text}\n\t}}\n}}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let Item::Table(t) = &f.items[0] else {
            panic!()
        };
        let Some(TableItem::Chain(c)) = t.body.as_ref().unwrap().first() else {
            panic!()
        };
        let Some(ChainItem::Rule(r)) = c.body.as_ref().unwrap().first() else {
            panic!()
        };
        r.clone()
    }

    fn err_of(text: &str) -> Error {
        parse(text).expect_err("should fail")
    }

    #[test]
    fn tables_chains_priorities() {
        let f = parse("table inet fw {\n chain input { type filter hook input priority filter + 10; policy drop; }\n chain x { }\n}\ntable nat { chain post { type nat hook postrouting priority srcnat - 5; } }\ntable bridge b { chain f { type filter hook forward priority -200; } }\ntable netdev n { chain i { type filter hook ingress device \"eth0\" priority 0; } }\n").unwrap();
        assert_eq!(f.items.len(), 4);
        let Item::Table(t) = &f.items[1] else {
            panic!()
        };
        assert_eq!((t.family(), t.name.as_str()), ("ip", "nat"));
        let Item::Table(t) = &f.items[0] else {
            panic!()
        };
        let Some(TableItem::Chain(c)) = t.body.as_ref().unwrap().first() else {
            panic!()
        };
        let body = c.body.as_ref().unwrap();
        assert!(
            matches!(&body[0], ChainItem::Hook { priority: Priority::Named { name, offset: 10 }, .. } if name == "filter")
        );
        assert!(matches!(&body[1], ChainItem::Policy { policy, .. } if policy == "drop"));
        let printed = f.to_string();
        assert!(
            printed.contains("priority filter + 10; policy drop;"),
            "{printed}"
        );
        assert!(printed.contains("priority srcnat - 5;"), "{printed}");
        assert!(printed.contains("device eth0 priority 0;"), "{printed}");
        assert_eq!(parse(&printed).unwrap().to_string(), printed);
    }

    #[test]
    fn statements() {
        let r = rule_of("ip saddr . tcp dport { 10.0.0.1 . 22, 10.0.0.0/8 . 80-90 } ct state established,related counter packets 3 bytes 4 accept comment \"x y\"");
        assert_eq!(r.stmts.len(), 5);
        assert!(
            matches!(&r.stmts[0], Stmt::Match { left: Expr::Concat(v), right: Expr::Set(e), .. } if v.len() == 2 && e.len() == 2)
        );
        assert!(matches!(&r.stmts[1], Stmt::Match { right: Expr::List(v), .. } if v.len() == 2));
        assert!(matches!(
            r.stmts[2],
            Stmt::Counter {
                counts: Some((3, 4)),
                ..
            }
        ));
        assert!(matches!(&r.stmts[4], Stmt::Comment { text, .. } if text == "x y"));
        let r = rule_of("meta l4proto tcp tcp dport != 22 iifname \"eth*\" meta mark set meta mark | 0x10 jump other");
        assert_eq!(r.stmts.len(), 5, "{r}");
        assert!(matches!(&r.stmts[0], Stmt::Match { right: Expr::Value(v), .. } if v == "tcp"));
        assert!(matches!(r.stmts[1], Stmt::Match { op: RelOp::Ne, .. }));
        assert!(
            matches!(&r.stmts[3], Stmt::Set { value: Expr::Binop { op, .. }, .. } if op == "|")
        );
        let r = rule_of("tcp flags & (fin | syn | rst | ack) == syn ct state vmap { established : accept, new : jump x }");
        assert!(
            matches!(&r.stmts[0], Stmt::Match { left: Expr::Binop { .. }, op: RelOp::Eq, right: Expr::Value(v), .. } if v == "syn")
        );
        assert!(
            matches!(&r.stmts[1], Stmt::Vmap { map: Expr::Set(e), .. } if e.len() == 2 && e[1].data == Some(Expr::Verdict("jump".into(), Some("x".into()))))
        );
        let r = rule_of("ip daddr @s dnat ip to 10.0.0.1:8080; ");
        assert!(matches!(&r.stmts[0], Stmt::Match { right: Expr::SetRef(s), .. } if s == "s"));
        assert!(
            matches!(&r.stmts[1], Stmt::Nat { family: Some(f), to: Some(Expr::Value(v)), .. } if f == "ip" && v == "10.0.0.1:8080")
        );
        let r = rule_of("reject with icmpx type port-unreachable");
        assert!(matches!(&r.stmts[0], Stmt::Reject { with, .. } if with.len() == 3));
        // Unknown statements keep their words and do not swallow the verdict.
        let r = rule_of("limit rate 25/second burst 50 packets frobnicate 3 return");
        assert_eq!(r.stmts.len(), 2, "{r:?}");
        assert!(matches!(&r.stmts[0], Stmt::Other { words, .. } if words.len() == 8));
        assert_eq!(
            r.to_string(),
            "limit rate 25/second burst 50 packets frobnicate 3 return"
        );
    }

    #[test]
    fn sets_maps_defines_commands() {
        let text = "define ports = { 22, 80 }\nflush ruleset\nadd table ip t\nadd chain ip t c { type filter hook input priority 0; policy accept; }\nadd set ip t s { type ipv4_addr . inet_service; flags interval,timeout; size 10; }\nadd map ip t m { type ifname : verdict; elements = { \"eth0\" : accept, \\\n \"lo\" : drop } }\nadd element ip t s { 10.0.0.0/8 . 22 timeout 1h }\nadd rule ip t c tcp dport $ports accept\ninsert rule t c drop\ntable ip t {\n\tset y {\n\t\ttypeof ip saddr\n\t\tauto-merge\n\t}\n}\n";
        let f = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.items.len(), 10);
        assert!(matches!(&f.items[4], Item::AddSet { set, .. } if set.settings.len() == 3));
        assert!(matches!(&f.items[5], Item::AddSet { set, .. } if set.map));
        assert!(
            matches!(&f.items[6], Item::AddElement { elements, .. } if elements[0].extra == ["timeout", "1h"])
        );
        assert!(
            matches!(&f.items[7], Item::AddRule { rule, .. } if matches!(&rule.stmts[0], Stmt::Match { right: Expr::Var(v), .. } if v == "ports"))
        );
        assert!(
            matches!(&f.items[8], Item::AddRule { verb, family: None, .. } if verb == "insert")
        );
        let printed = f.to_string();
        assert_eq!(parse(&printed).unwrap().to_string(), printed);
    }

    #[test]
    fn errors_are_located() {
        let e = err_of("table ip t {\n\tchain c {\n\t\tip saddr 1.2.3.4 accept\n\t}\n");
        assert_eq!(e.loc, Loc { line: 4, col: 3 }, "{e}");
        assert!(e.message.contains("expected `}` closing the table"), "{e}");
        let e = err_of("flush ruleset\n  include \"/etc/x.nft\"\n");
        assert_eq!(e.loc, Loc { line: 2, col: 3 });
        assert!(e.message.contains("`include` is not supported"), "{e}");
        let e =
            err_of("table ip t {\n\tchain c {\n\t\ttype filter hook input priority ;\n\t}\n}\n");
        assert_eq!(e.loc, Loc { line: 3, col: 35 }, "{e}");
        assert!(e.message.contains("expected a priority"), "{e}");
        let e = err_of("table ip t { chain c { comment \"open\n } }");
        assert!(e.message.contains("unterminated string"), "{e}");
        let e = err_of("delete table ip t\n");
        assert!(e.message.starts_with("expected a command"), "{e}");
        let e = err_of("table ip t { set s { type ipv4_addr; elements = { 1.2.3.4, } }");
        assert!(e.message.contains("expected"), "{e}");
    }

    #[test]
    fn never_panics_or_overflows() {
        let deep = format!(
            "table ip t {{ chain c {{ ip saddr {} }} }}",
            "{ ".repeat(10_000)
        );
        assert!(err_of(&deep).message.contains("nesting deeper"));
        let deep = format!(
            "table ip t {{ chain c {{ tcp flags {} }} }}",
            "( ".repeat(10_000)
        );
        assert!(parse(&deep).is_err());
        let deep = format!("table ip t {{ chain c {{ foo {} }} }}", "{ ".repeat(10_000));
        assert!(parse(&deep).is_err());
        // Every prefix of a real ruleset: an error or a tree, never a panic.
        let text = "define x = 1\ntable inet t {\n set s { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 1.1.1.1-1.1.1.9 } }\n chain c { type filter hook input priority filter + 1; policy drop;\n  ip saddr @s tcp dport { 22, 80 } ct state vmap { new : jump d } counter packets 1 bytes 2 accept comment \"a\"\n }\n chain d { meta mark & 0xff == 0x1 drop; iifname \"e*\" \\\n return }\n}\n";
        for i in 0..text.len() {
            if text.is_char_boundary(i) {
                let _ = parse(&text[..i]);
            }
        }
        assert!(parse(text).is_ok());
        for junk in [
            "\u{0}\u{1}",
            "}",
            "{",
            "table",
            "table ip",
            "@",
            "$",
            "table ip t { chain c { ) } }",
            "add",
            "add rule",
            "\\",
        ] {
            let _ = parse(junk);
        }
    }

    /// Found by the nft_text fuzz target: a chain declared without a block inside a table,
    /// and a word ending in a backslash at the end of a line (read as a continuation).
    #[test]
    fn prints_back_what_it_read() {
        for text in [
            "table ip t {\n\tchain c\n}\n",
            "table ip t {\n\tchain c {\n\t\tfoo\\ }\n}\n",
        ] {
            let f = parse(text).unwrap();
            let printed = f.to_string();
            let again = parse(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
            assert_eq!(
                strip_locs(&format!("{again:?}")),
                strip_locs(&format!("{f:?}")),
                "{printed}"
            );
        }
    }

    fn strip_locs(debug: &str) -> String {
        let mut out = String::new();
        let mut rest = debug;
        while let Some(i) = rest.find("loc: Loc {") {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let j = tail.find('}').map(|j| j + 1).unwrap_or(tail.len());
            rest = &tail[j..];
        }
        out.push_str(rest);
        out
    }

    /// Every corpus file parses, and prints back to text that parses to the same tree and
    /// the same IR. A file with `include` is refused at the include; the rest of it (the
    /// include line commented out by this test) is checked like the others.
    #[test]
    fn shared_rulesets_round_trip() {
        let Some(paths) = crate::testing::corpus(&["nft"]) else {
            return;
        };
        let mut seen = 0;
        for p in paths {
            let mut text = std::fs::read_to_string(&p).unwrap();
            if let Err(e) = parse(&text) {
                assert!(
                    e.message.contains("`include` is not supported"),
                    "{}:{e}",
                    p.display()
                );
                let line = text
                    .lines()
                    .nth(e.loc.line as usize - 1)
                    .unwrap()
                    .to_string();
                assert!(
                    line.trim_start().starts_with("include"),
                    "{}:{e}",
                    p.display()
                );
                text = text.replacen(&line, &format!("# {line}"), 1);
            }
            let file = parse(&text).unwrap_or_else(|e| panic!("{}:{e}", p.display()));
            let printed = file.to_string();
            let again = parse(&printed)
                .unwrap_or_else(|e| panic!("{} reprinted:{e}\n{printed}", p.display()));
            assert_eq!(again.to_string(), printed, "{}", p.display());
            assert_eq!(
                strip_locs(&format!("{again:?}")),
                strip_locs(&format!("{file:?}")),
                "{}",
                p.display()
            );
            let ir = crate::netfilter::from_nft::convert(&file)
                .unwrap_or_else(|e| panic!("{}:{e}", p.display()));
            let ir2 = crate::netfilter::from_nft::convert(&again).unwrap();
            assert_eq!(
                strip_locs(&format!("{ir2:?}")),
                strip_locs(&format!("{ir:?}")),
                "{}",
                p.display()
            );
            let rules: usize = ir
                .tables
                .iter()
                .flat_map(|t| &t.chains)
                .map(|c| c.rules.len())
                .sum();
            assert!(rules > 0, "{}", p.display());
            seen += 1;
        }
        assert!(seen >= 10, "expected the corpus's nft files, saw {seen}");
    }

    /// What we print, `nft -c -f` (check only, nothing is loaded) accepts whenever it
    /// accepts the original. Skipped without nft or without root.
    #[test]
    fn printed_corpus_passes_nft_check() {
        let Some(paths) = crate::testing::corpus(&["nft"]) else {
            return;
        };
        let ok = |path: &std::path::Path| {
            std::process::Command::new("nft")
                .arg("-c")
                .arg("-f")
                .arg(path)
                .output()
        };
        let probe =
            std::env::temp_dir().join(format!("fwsim-nft-probe-{}.nft", std::process::id()));
        std::fs::write(
            &probe,
            "table ip fwsim_probe { chain c { type filter hook input priority 0; } }\n",
        )
        .unwrap();
        match ok(&probe) {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!(
                    "skipped: `nft -c` refuses a trivial ruleset here (not root?): {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                return;
            }
            Err(e) => {
                eprintln!("skipped: nft is not available: {e}");
                return;
            }
        }
        let mut checked = 0;
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap();
            let Ok(file) = parse(&text) else { continue };
            if !ok(&p).unwrap().status.success() {
                continue; // the original is refused by this nft version too
            }
            let out = std::env::temp_dir().join(format!(
                "fwsim-nft-{}-{}",
                std::process::id(),
                p.file_name().unwrap().to_string_lossy()
            ));
            std::fs::write(&out, file.to_string()).unwrap();
            let o = ok(&out).unwrap();
            let _ = std::fs::remove_file(&out);
            assert!(
                o.status.success(),
                "{}: nft -c refuses our print: {}",
                p.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            checked += 1;
        }
        let _ = std::fs::remove_file(&probe);
        assert!(
            checked >= 3,
            "only {checked} corpus files checked with nft -c"
        );
    }
}
