//! nft JSON (`nft -j list ruleset`, libnftables-json(5)): read onto the nft syntax tree
//! ([`crate::syntax::nft::File`]) and printed back from it.
//!
//! Contract: [`parse`] reads `{"nftables": [ ... ]}` as libnftables writes it (objects
//! `metainfo`, `table`, `chain`, `rule`, `set`, `map`, `element`, named objects, and the
//! commands `add`, `create`, `insert`, `flush`) into the same tree nft text gives, so one
//! conversion (`netfilter::from_nft`) gives both their meaning. Tables are grouped into
//! `table` blocks (sets first, then chains with their rules), as `nft list ruleset` prints
//! them. JSON syntax errors carry the line and column serde_json reports; structural errors
//! (an object without `name`, a rule for an undeclared chain) carry the location of the
//! top-level object and its JSON path (`nftables[3].rule`), and say what was expected.
//! Inside a rule nothing is an error: an expression or statement fwsim does not know
//! becomes [`Stmt::Other`] holding its JSON (word `json:{...}`), which the conversion makes
//! Unsupported for that rule only. Never panics; nesting is bounded by
//! [`crate::syntax::nft::MAX_DEPTH`].
//!
//! [`print`] writes a tree as nft JSON (list form: objects without commands, which
//! `nft -j -f` adds; `flush` and `insert` as commands). Variables are replaced by their
//! `define`s. What has no JSON form fwsim knows (an unknown statement kept as words, a
//! selector such as `jhash`) is refused with its location: [`print`] never writes something
//! that means something else. JSON read by [`parse`] prints back to JSON that parses to the
//! same tree (locations aside).

use super::nft::{
    ChainDef, ChainItem, Elem, Error, Expr, File, Item, Priority, RelOp, Rule, SetDef, SetSetting,
    Stmt, Table, TableItem, MAX_DEPTH,
};
use crate::values::Loc;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Prefix of the word that holds a statement fwsim could not read, as JSON.
pub const UNKNOWN: &str = "json:";

fn err(loc: Loc, message: impl Into<String>) -> Error {
    Error {
        loc,
        message: message.into(),
    }
}

#[derive(serde::Deserialize)]
struct Top<'a> {
    #[serde(borrow)]
    nftables: Vec<&'a RawValue>,
}

/// Line and column (1-based, in characters) of byte offset `off` of `text`.
fn loc_at(text: &str, off: usize) -> Loc {
    let before = &text[..off.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Loc {
        line: line as u32,
        col: col as u32,
    }
}

/// Read nft JSON into the nft syntax tree.
pub fn parse(text: &str) -> Result<File, Error> {
    let syntax = |e: serde_json::Error| {
        err(
            Loc {
                line: e.line().max(1) as u32,
                col: e.column().max(1) as u32,
            },
            format!("JSON: {e}"),
        )
    };
    // Syntax first (serde_json's line and column), then the shape.
    let whole: Value = serde_json::from_str(text).map_err(syntax)?;
    if !whole.get("nftables").is_some_and(Value::is_array) {
        return Err(err(
            Loc { line: 1, col: 1 },
            "expected an object `{\"nftables\": [ ... ]}` (nft -j list ruleset)",
        ));
    }
    let top: Top = serde_json::from_str(text).map_err(syntax)?;
    let mut r = Reader {
        items: Vec::new(),
        chains: Vec::new(),
    };
    for (i, raw) in top.nftables.iter().enumerate() {
        let off = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        let loc = loc_at(text, off);
        let v: Value = serde_json::from_str(raw.get()).map_err(syntax)?;
        r.object(&v, &format!("nftables[{i}]"), loc)?;
    }
    Ok(File { items: r.items })
}

struct Reader {
    items: Vec<Item>,
    /// Chains declared so far: (family, table, chain).
    chains: Vec<(String, String, String)>,
}

fn str_field<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

/// A scalar as a word: numbers and strings.
fn scalar_word(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn is_plain_word(s: &str) -> bool {
    s == "*"
        || (!s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:/+".contains(c)))
}

impl Reader {
    fn object(&mut self, v: &Value, path: &str, loc: Loc) -> Result<(), Error> {
        let Some(o) = v.as_object().filter(|o| o.len() == 1) else {
            return Err(err(
                loc,
                format!("{path}: expected an object with one key (`table`, `chain`, `rule`, `set`, ...)"),
            ));
        };
        let (k, body) = o.iter().next().expect("one key");
        match k.as_str() {
            "metainfo" => Ok(()),
            "add" | "create" => {
                let p = format!("{path}.{k}");
                self.object(body, &p, loc)
            }
            "insert" => {
                let p = format!("{path}.insert");
                let rule = body.get("rule").filter(|_| body.as_object().is_some_and(|b| b.len() == 1));
                let Some(rule) = rule.and_then(Value::as_object) else {
                    return Err(err(loc, format!("{p}: expected `{{\"rule\": {{...}}}}`")));
                };
                let (family, table, chain, r) = self.rule(rule, &format!("{p}.rule"), loc)?;
                self.items.push(Item::AddRule {
                    verb: "insert".into(),
                    family: Some(family),
                    table,
                    chain,
                    place: Vec::new(),
                    rule: r,
                });
                Ok(())
            }
            "flush" => {
                let p = format!("{path}.flush");
                let Some((what, b)) = body.as_object().filter(|b| b.len() == 1).and_then(|b| b.iter().next()) else {
                    return Err(err(loc, format!("{p}: expected `{{\"ruleset\": null}}` or `{{\"table\"|\"chain\"|\"set\"|\"map\": {{...}}}}`")));
                };
                let mut words = vec![what.clone()];
                match what.as_str() {
                    "ruleset" => {
                        if let Some(f) = b.get("family").and_then(Value::as_str) {
                            words.push(f.into());
                        }
                    }
                    "table" | "chain" | "set" | "map" => {
                        let bo = b.as_object().ok_or_else(|| err(loc, format!("{p}.{what}: expected an object")))?;
                        let fam = str_field(bo, "family").unwrap_or("ip");
                        words.push(fam.into());
                        if what == "table" {
                            words.push(self.need(bo, "name", &format!("{p}.{what}"), loc)?);
                        } else {
                            words.push(self.need(bo, "table", &format!("{p}.{what}"), loc)?);
                            words.push(self.need(bo, "name", &format!("{p}.{what}"), loc)?);
                        }
                    }
                    _ => return Err(err(loc, format!("{p}: `flush {what}` is not supported: expected ruleset, table, chain, set or map"))),
                }
                self.items.push(Item::Flush { words, loc });
                Ok(())
            }
            "delete" | "destroy" | "replace" | "reset" | "rename" | "list" => Err(err(
                loc,
                format!("{path}: command `{k}` is not supported: expected objects (as `nft -j list ruleset` prints) or add, create, insert, flush"),
            )),
            "table" => {
                let p = format!("{path}.table");
                let b = self.obj(body, &p, loc)?;
                let family = str_field(b, "family").unwrap_or("ip").to_string();
                let name = self.need(b, "name", &p, loc)?;
                let t = self.table_body(&family, &name, loc);
                if let Some(c) = b.get("comment").and_then(Value::as_str) {
                    t.push(TableItem::Attr {
                        words: vec!["comment".into(), format!("\"{c}\"")],
                        loc,
                    });
                }
                Ok(())
            }
            "chain" => {
                let p = format!("{path}.chain");
                let b = self.obj(body, &p, loc)?;
                let family = str_field(b, "family").unwrap_or("ip").to_string();
                let table = self.need(b, "table", &p, loc)?;
                let name = self.need(b, "name", &p, loc)?;
                let mut items = Vec::new();
                if let Some(kind) = b.get("type") {
                    let kind = kind.as_str().ok_or_else(|| err(loc, format!("{p}.type: expected a string (filter, nat, route)")))?;
                    let hook = self.need(b, "hook", &p, loc)?;
                    let priority = match b.get("prio") {
                        Some(Value::Number(n)) => Priority::Num(n.as_i64().ok_or_else(|| err(loc, format!("{p}.prio: expected an integer")))?),
                        Some(Value::String(s)) => match s.parse::<i64>() {
                            Ok(n) => Priority::Num(n),
                            Err(_) => named_priority(s).ok_or_else(|| err(loc, format!("{p}.prio: expected a number or a priority name, found `{s}`")))?,
                        },
                        _ => return Err(err(loc, format!("{p}: a base chain needs `prio` (a number)"))),
                    };
                    let device = match b.get("dev") {
                        Some(Value::String(d)) => Some(d.clone()),
                        _ => None,
                    };
                    items.push(ChainItem::Hook {
                        kind: kind.into(),
                        hook,
                        device,
                        priority,
                        loc,
                    });
                    if let Some(pol) = b.get("policy") {
                        let pol = pol.as_str().ok_or_else(|| err(loc, format!("{p}.policy: expected `accept` or `drop`")))?;
                        items.push(ChainItem::Policy { policy: pol.into(), loc });
                    }
                }
                if let Some(c) = b.get("comment").and_then(Value::as_str) {
                    items.push(ChainItem::Attr {
                        words: vec!["comment".into(), format!("\"{c}\"")],
                        loc,
                    });
                }
                if !self.chains.iter().any(|(f, t, c)| *f == family && *t == table && *c == name) {
                    self.chains.push((family.clone(), table.clone(), name.clone()));
                }
                let body = self.table_body(&family, &table, loc);
                match body.iter_mut().find_map(|ti| match ti {
                    TableItem::Chain(c) if c.name == name => Some(c),
                    _ => None,
                }) {
                    Some(c) => {
                        // Declaration after rules: the hook goes first.
                        let b = c.body.get_or_insert_with(Vec::new);
                        for (i, it) in items.into_iter().enumerate() {
                            b.insert(i, it);
                        }
                    }
                    None => body.push(TableItem::Chain(ChainDef {
                        name,
                        body: Some(items),
                        loc,
                    })),
                }
                Ok(())
            }
            "rule" => {
                let p = format!("{path}.rule");
                let b = self.obj(body, &p, loc)?;
                let (family, table, chain, rule) = self.rule(b, &p, loc)?;
                let body = self.table_body(&family, &table, loc);
                let c = body.iter_mut().find_map(|ti| match ti {
                    TableItem::Chain(c) if c.name == chain => Some(c),
                    _ => None,
                });
                match c {
                    Some(c) => c.body.get_or_insert_with(Vec::new).push(ChainItem::Rule(rule)),
                    None => body.push(TableItem::Chain(ChainDef {
                        name: chain,
                        body: Some(vec![ChainItem::Rule(rule)]),
                        loc,
                    })),
                }
                Ok(())
            }
            "set" | "map" => {
                let p = format!("{path}.{k}");
                let b = self.obj(body, &p, loc)?;
                let family = str_field(b, "family").unwrap_or("ip").to_string();
                let table = self.need(b, "table", &p, loc)?;
                let set = self.set_def(b, k == "map", &p, loc)?;
                let body = self.table_body(&family, &table, loc);
                // Sets before chains, as nft lists them (rules refer to them).
                let at = body
                    .iter()
                    .position(|ti| matches!(ti, TableItem::Chain(_)))
                    .unwrap_or(body.len());
                body.insert(at, TableItem::Set(set));
                Ok(())
            }
            "element" => {
                let p = format!("{path}.element");
                let b = self.obj(body, &p, loc)?;
                let family = str_field(b, "family").unwrap_or("ip").to_string();
                let table = self.need(b, "table", &p, loc)?;
                let name = self.need(b, "name", &p, loc)?;
                let elements = self.elems(b.get("elem"), None, &format!("{p}.elem"), loc)?;
                self.items.push(Item::AddElement {
                    family: Some(family),
                    table,
                    set: name,
                    elements,
                    loc,
                });
                Ok(())
            }
            kind => {
                // Named objects (counter, quota, limit, ct helper, flowtable, ...): kept,
                // no meaning.
                let p = format!("{path}.{kind}");
                let b = self.obj(body, &p, loc)?;
                let family = str_field(b, "family").unwrap_or("ip").to_string();
                let table = self.need(b, "table", &p, loc)?;
                let name = self.need(b, "name", &p, loc)?;
                let lines: Vec<Vec<String>> = b
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "family" | "table" | "name" | "handle"))
                    .map(|(k, v)| vec![k.clone(), v.to_string()])
                    .collect();
                let body = self.table_body(&family, &table, loc);
                // Objects go first, in the order met (the printer writes them first): the
                // tree is then the same whatever the order of the input's objects.
                let at = body
                    .iter()
                    .position(|i| !matches!(i, TableItem::Other { .. }))
                    .unwrap_or(body.len());
                body.insert(
                    at,
                    TableItem::Other {
                        head: vec![kind.to_string(), name],
                        body: Some(lines),
                        loc,
                    },
                );
                Ok(())
            }
        }
    }

    fn obj<'a>(&self, v: &'a Value, path: &str, loc: Loc) -> Result<&'a Map<String, Value>, Error> {
        v.as_object()
            .ok_or_else(|| err(loc, format!("{path}: expected an object")))
    }

    fn need(&self, o: &Map<String, Value>, k: &str, path: &str, loc: Loc) -> Result<String, Error> {
        match o.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(err(loc, format!("{path}.{k}: expected a string"))),
            None => Err(err(loc, format!("{path}: expected `{k}`"))),
        }
    }

    /// The body of the `table` block for (family, name): the last item when it is that
    /// table, else a new block.
    fn table_body(&mut self, family: &str, name: &str, loc: Loc) -> &mut Vec<TableItem> {
        let same = matches!(self.items.last(), Some(Item::Table(t)) if t.family.as_deref() == Some(family) && t.name == name && t.body.is_some());
        if !same {
            self.items.push(Item::Table(Table {
                verb: None,
                family: Some(family.to_string()),
                name: name.to_string(),
                body: Some(Vec::new()),
                loc,
            }));
        }
        match self.items.last_mut() {
            Some(Item::Table(Table { body: Some(b), .. })) => b,
            _ => unreachable!("pushed above"),
        }
    }

    fn rule(
        &mut self,
        b: &Map<String, Value>,
        p: &str,
        loc: Loc,
    ) -> Result<(String, String, String, Rule), Error> {
        let family = str_field(b, "family").unwrap_or("ip").to_string();
        let table = self.need(b, "table", p, loc)?;
        let chain = self.need(b, "chain", p, loc)?;
        if !self
            .chains
            .iter()
            .any(|(f, t, c)| *f == family && *t == table && *c == chain)
        {
            return Err(err(
                loc,
                format!("{p}: no chain `{chain}` in table {family} {table}: expected its `chain` object before its rules"),
            ));
        }
        let Some(exprs) = b.get("expr").and_then(Value::as_array) else {
            return Err(err(
                loc,
                format!("{p}: expected `expr`, an array of statements"),
            ));
        };
        let mut stmts: Vec<Stmt> = exprs.iter().map(|s| stmt(s, &family, loc)).collect();
        if let Some(c) = b.get("comment").and_then(Value::as_str) {
            stmts.push(Stmt::Comment {
                text: c.to_string(),
                loc,
            });
        }
        if stmts.is_empty() {
            return Err(err(
                loc,
                format!("{p}.expr: expected at least one statement"),
            ));
        }
        Ok((family, table, chain, Rule { stmts, loc }))
    }

    fn set_def(
        &self,
        b: &Map<String, Value>,
        map: bool,
        p: &str,
        loc: Loc,
    ) -> Result<SetDef, Error> {
        let name = self.need(b, "name", p, loc)?;
        let types = |v: Option<&Value>, what: &str| -> Result<Option<Vec<String>>, Error> {
            match v {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
                Some(Value::Array(a)) if !a.is_empty() => a
                    .iter()
                    .map(|t| {
                        t.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| err(loc, format!("{p}.{what}: expected type names")))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(err(
                    loc,
                    format!("{p}.{what}: expected a type name or an array of them"),
                )),
            }
        };
        let mut settings = Vec::new();
        let key = types(b.get("type"), "type")?
            .ok_or_else(|| err(loc, format!("{p}: expected `type`")))?;
        let data = if map {
            Some(
                types(b.get("map"), "map")?
                    .ok_or_else(|| err(loc, format!("{p}: a map needs `map` (its data type)")))?,
            )
        } else {
            None
        };
        settings.push(SetSetting::Type { key, data, loc });
        match b.get("flags") {
            Some(Value::String(f)) => settings.push(SetSetting::Flags {
                flags: vec![f.clone()],
                loc,
            }),
            Some(Value::Array(a)) if !a.is_empty() => settings.push(SetSetting::Flags {
                flags: a
                    .iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect(),
                loc,
            }),
            _ => {}
        }
        for (k, v) in b {
            let words = match (k.as_str(), v) {
                ("timeout" | "gc-interval", Value::Number(n)) => vec![k.clone(), format!("{n}s")],
                ("size", Value::Number(n)) => vec![k.clone(), n.to_string()],
                ("policy", Value::String(s)) => vec![k.clone(), s.clone()],
                ("comment", Value::String(s)) => vec![k.clone(), format!("\"{s}\"")],
                ("auto-merge", Value::Bool(true)) => vec![k.clone()],
                ("stmt", Value::Array(a)) if a.iter().any(|s| s.get("counter").is_some()) => {
                    vec!["counter".into()]
                }
                _ => continue,
            };
            settings.push(SetSetting::Other { words, loc });
        }
        if let Some(e) = b.get("elem") {
            let elements = self.elems(Some(e), Some(map), &format!("{p}.elem"), loc)?;
            settings.push(SetSetting::Elements { elements, loc });
        }
        Ok(SetDef {
            map,
            name,
            settings,
            loc,
        })
    }

    /// Elements of a set or map object; `map`: None when not known (element commands).
    fn elems(
        &self,
        v: Option<&Value>,
        map: Option<bool>,
        p: &str,
        loc: Loc,
    ) -> Result<Vec<Elem>, Error> {
        let list: Vec<&Value> = match v {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(x) => vec![x],
            None => return Err(err(loc, format!("{p}: expected elements"))),
        };
        list.iter()
            .enumerate()
            .map(|(i, e)| {
                elem(e, map.unwrap_or(matches!(e, Value::Array(a) if a.len() == 2)), 0)
                    .ok_or_else(|| err(loc, format!("{p}[{i}]: expected a set element (value, prefix, range, concat, or [key, data] in a map), found {}", short(e))))
            })
            .collect()
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

fn named_priority(s: &str) -> Option<Priority> {
    // `filter`, `dstnat - 5`, `srcnat+10`.
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let k = t.find(['+', '-']).filter(|&k| k > 0);
    let (name, offset) = match k {
        Some(k) => (&t[..k], t[k..].replace('+', "").parse::<i64>().ok()?),
        None => (t.as_str(), 0),
    };
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then(|| {
        Priority::Named {
            name: name.to_string(),
            offset,
        }
    })
}

/// One element: `[key, data]` in maps, `{"elem": {"val": ..., ...}}` with extras, or a key.
fn elem(e: &Value, map: bool, depth: usize) -> Option<Elem> {
    if let (true, Value::Array(a)) = (map, e) {
        if a.len() == 2 {
            let mut k = elem(&a[0], false, depth + 1)?;
            k.data = Some(data_expr(&a[1], depth + 1)?);
            return Some(k);
        }
    }
    if let Some(Value::Object(o)) = e.get("elem") {
        let key = expr(o.get("val")?, depth + 1)?;
        let mut extra = Vec::new();
        for (k, v) in o {
            match (k.as_str(), v) {
                ("val", _) => {}
                ("timeout" | "expires", Value::Number(n)) => {
                    extra.push(k.clone());
                    extra.push(format!("{n}s"));
                }
                ("comment", Value::String(s)) => {
                    extra.push("comment".into());
                    extra.push(format!("\"{s}\""));
                }
                ("counter", Value::Object(c)) => {
                    extra.push("counter".into());
                    extra.push("packets".into());
                    extra.push(c.get("packets").map_or("0".into(), Value::to_string));
                    extra.push("bytes".into());
                    extra.push(c.get("bytes").map_or("0".into(), Value::to_string));
                }
                _ => return None,
            }
        }
        return Some(Elem {
            key,
            data: None,
            extra,
        });
    }
    Some(Elem {
        key: expr(e, depth + 1)?,
        data: None,
        extra: Vec::new(),
    })
}

/// Map data: a verdict or a value.
fn data_expr(v: &Value, depth: usize) -> Option<Expr> {
    if let Some(o) = v.as_object().filter(|o| o.len() == 1) {
        let (k, b) = o.iter().next()?;
        match (k.as_str(), b) {
            ("accept" | "drop" | "continue" | "return", Value::Null) => {
                return Some(Expr::Verdict(k.clone(), None))
            }
            ("jump" | "goto", Value::Object(t)) => {
                return Some(Expr::Verdict(
                    k.clone(),
                    Some(str_field(t, "target")?.into()),
                ))
            }
            _ => {}
        }
    }
    // Object names (`quota`, `synproxy` maps) are quoted, as nft lists them; addresses,
    // numbers and marks are not.
    if let Value::String(s) = v {
        if s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Some(Expr::Str(s.clone()));
        }
    }
    expr(v, depth)
}

/// An expression; None when fwsim does not know it.
fn expr(v: &Value, depth: usize) -> Option<Expr> {
    if depth > MAX_DEPTH {
        return None;
    }
    let d = depth + 1;
    match v {
        // `fib ... oif missing` / `exthdr ... exists`: JSON writes the booleans.
        Value::Bool(b) => Some(Expr::Value(if *b { "exists" } else { "missing" }.into())),
        Value::Number(n) => Some(Expr::Value(
            n.as_u64()
                .map(|x| x.to_string())
                .or_else(|| n.as_i64().map(|x| x.to_string()))?,
        )),
        Value::String(s) => Some(if let Some(set) = s.strip_prefix('@') {
            Expr::SetRef(set.to_string())
        } else if is_plain_word(s) {
            Expr::Value(s.clone())
        } else {
            Expr::Str(s.clone())
        }),
        Value::Array(a) if !a.is_empty() => Some(Expr::List(
            a.iter().map(|x| expr(x, d)).collect::<Option<_>>()?,
        )),
        Value::Object(o) if o.len() == 1 => {
            let (k, b) = o.iter().next()?;
            let words = |w: &[&str]| Some(Expr::Sel(w.iter().map(|s| s.to_string()).collect()));
            match k.as_str() {
                "payload" => {
                    let b = b.as_object()?;
                    words(&[str_field(b, "protocol")?, str_field(b, "field")?])
                }
                "meta" => words(&["meta", str_field(b.as_object()?, "key")?]),
                "ct" => {
                    let b = b.as_object()?;
                    let mut w = vec!["ct".to_string()];
                    if let Some(dir) = str_field(b, "dir") {
                        w.push(dir.into());
                    }
                    if let Some(f) = str_field(b, "family") {
                        w.push(f.into());
                    }
                    w.push(str_field(b, "key")?.into());
                    Some(Expr::Sel(w))
                }
                "tcp option" => {
                    let b = b.as_object()?;
                    let mut w = vec![
                        "tcp".to_string(),
                        "option".into(),
                        str_field(b, "name")?.into(),
                    ];
                    if let Some(f) = str_field(b, "field") {
                        w.push(f.into());
                    }
                    Some(Expr::Sel(w))
                }
                "fib" => {
                    let b = b.as_object()?;
                    let flags: Vec<String> = match b.get("flags")? {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) => a
                            .iter()
                            .map(|f| f.as_str().map(str::to_string))
                            .collect::<Option<_>>()?,
                        _ => return None,
                    };
                    let mut w = vec!["fib".to_string()];
                    for (i, f) in flags.into_iter().enumerate() {
                        if i > 0 {
                            w.push(".".into());
                        }
                        w.push(f);
                    }
                    w.push(str_field(b, "result")?.into());
                    Some(Expr::Sel(w))
                }
                "numgen" => {
                    let b = b.as_object()?;
                    let mut w = vec![
                        "numgen".to_string(),
                        str_field(b, "mode")?.into(),
                        "mod".into(),
                        b.get("mod")?.as_u64()?.to_string(),
                    ];
                    if let Some(o) = b.get("offset").and_then(Value::as_u64).filter(|o| *o != 0) {
                        w.push("offset".into());
                        w.push(o.to_string());
                    }
                    Some(Expr::Sel(w))
                }
                "rt" => {
                    let b = b.as_object()?;
                    let mut w = vec!["rt".to_string()];
                    if let Some(f) = str_field(b, "family") {
                        w.push(f.into());
                    }
                    w.push(str_field(b, "key")?.into());
                    Some(Expr::Sel(w))
                }
                "socket" => words(&["socket", str_field(b.as_object()?, "key")?]),
                "prefix" => {
                    let b = b.as_object()?;
                    let addr = str_field(b, "addr").filter(|a| is_addr(a))?;
                    let len = u8::try_from(b.get("len")?.as_u64()?).ok()?;
                    Some(Expr::Value(format!("{addr}/{len}")))
                }
                "range" => match b.as_array()?.as_slice() {
                    [x, y] => Some(Expr::Range(Box::new(expr(x, d)?), Box::new(expr(y, d)?))),
                    _ => None,
                },
                "concat" => {
                    let a = b.as_array().filter(|a| a.len() >= 2)?;
                    Some(Expr::Concat(
                        a.iter().map(|x| expr(x, d)).collect::<Option<_>>()?,
                    ))
                }
                "set" => {
                    let items: Vec<&Value> = match b {
                        Value::Array(a) => a.iter().collect(),
                        x => vec![x],
                    };
                    if items.is_empty() {
                        return None;
                    }
                    Some(Expr::Set(
                        items
                            .iter()
                            .map(|x| elem(x, matches!(x, Value::Array(a) if a.len() == 2), d))
                            .collect::<Option<_>>()?,
                    ))
                }
                "map" => {
                    let b = b.as_object()?;
                    Some(Expr::Map {
                        key: Box::new(expr(b.get("key")?, d)?),
                        map: Box::new(expr(b.get("data")?, d)?),
                    })
                }
                op @ ("&" | "|" | "^" | "<<" | ">>") => {
                    let a = b.as_array().filter(|a| a.len() >= 2)?;
                    let mut e = expr(&a[0], d)?;
                    for x in &a[1..] {
                        let r = expr(x, d)?;
                        // A flag list as a mask: `fin | syn`, as nft text writes it.
                        let r = match r {
                            Expr::List(v) => Expr::Paren(Box::new(bar_chain(v))),
                            r => r,
                        };
                        e = Expr::Binop {
                            op: op.into(),
                            left: Box::new(e),
                            right: Box::new(r),
                        };
                    }
                    Some(e)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn bar_chain(v: Vec<Expr>) -> Expr {
    let mut it = v.into_iter();
    let first = it.next().unwrap_or(Expr::Value("0".into()));
    it.fold(first, |l, r| Expr::Binop {
        op: "|".into(),
        left: Box::new(l),
        right: Box::new(r),
    })
}

fn unknown(v: &Value, loc: Loc) -> Stmt {
    Stmt::Other {
        words: vec![format!("{UNKNOWN}{v}")],
        loc,
    }
}

/// The default reject of a family (`reject` alone), as nft lists it in JSON.
fn default_reject(family: &str) -> (&'static str, &'static str) {
    match family {
        "ip" => ("icmp", "port-unreachable"),
        "ip6" => ("icmpv6", "port-unreachable"),
        _ => ("icmpx", "port-unreachable"),
    }
}

/// One statement of a rule; what fwsim does not know is kept as its JSON.
fn stmt(v: &Value, family: &str, loc: Loc) -> Stmt {
    stmt_opt(v, family, loc).unwrap_or_else(|| unknown(v, loc))
}

fn stmt_opt(v: &Value, family: &str, loc: Loc) -> Option<Stmt> {
    let o = v.as_object().filter(|o| o.len() == 1)?;
    let (k, b) = o.iter().next()?;
    Some(match (k.as_str(), b) {
        ("match", Value::Object(m)) => {
            let op = match str_field(m, "op")? {
                "==" => RelOp::Eq,
                "!=" => RelOp::Ne,
                "<" => RelOp::Lt,
                ">" => RelOp::Gt,
                "<=" => RelOp::Le,
                ">=" => RelOp::Ge,
                "in" => RelOp::Implicit,
                _ => return None,
            };
            let left = expr(m.get("left")?, 0)?;
            if !matches!(left, Expr::Sel(_) | Expr::Concat(_) | Expr::Binop { .. }) {
                return None;
            }
            Stmt::Match {
                left,
                op,
                right: expr(m.get("right")?, 0)?,
                loc,
            }
        }
        ("accept" | "drop" | "continue" | "return", Value::Null) => Stmt::Verdict {
            verdict: k.clone(),
            chain: None,
            loc,
        },
        ("jump" | "goto", Value::Object(t)) => Stmt::Verdict {
            verdict: k.clone(),
            chain: Some(str_field(t, "target")?.into()),
            loc,
        },
        ("counter", Value::Null) => Stmt::Counter { counts: None, loc },
        ("counter", Value::Object(c)) if c.contains_key("packets") => Stmt::Counter {
            counts: Some((c.get("packets")?.as_u64()?, c.get("bytes")?.as_u64()?)),
            loc,
        },
        ("counter" | "quota" | "limit" | "synproxy", _)
            if matches!(b, Value::String(_)) || b.get("map").is_some() =>
        {
            Stmt::ObjRef {
                kind: k.clone(),
                expr: expr(b, 0)?,
                loc,
            }
        }
        ("vmap", Value::Object(m)) => Stmt::Vmap {
            key: expr(m.get("key")?, 0)?,
            map: expr(m.get("data")?, 0)?,
            loc,
        },
        ("mangle", Value::Object(m)) => Stmt::Set {
            left: expr(m.get("key")?, 0)?,
            value: expr(m.get("value")?, 0)?,
            loc,
        },
        ("ct helper", _) => Stmt::Set {
            left: Expr::Sel(vec!["ct".into(), "helper".into()]),
            value: expr(b, 0)?,
            loc,
        },
        ("notrack", Value::Null) => Stmt::Notrack { loc },
        ("reject", Value::Null) => Stmt::Reject {
            with: Vec::new(),
            loc,
        },
        ("reject", Value::Object(r)) => {
            let ty = str_field(r, "type");
            // A type without `expr` is port-unreachable (libnftables' default).
            let e = r.get("expr").and_then(scalar_word).or_else(|| {
                matches!(ty, Some("icmp" | "icmpv6" | "icmpx")).then(|| "port-unreachable".into())
            });
            let with = match (ty, e) {
                (None, None) => Vec::new(),
                (Some("tcp reset"), None) => vec!["tcp".into(), "reset".into()],
                (Some(t), Some(e)) if (t, e.as_str()) == default_reject(family) => Vec::new(),
                (Some(t @ ("icmp" | "icmpv6" | "icmpx")), Some(e)) => vec![t.into(), e],
                (Some(t @ ("icmp" | "icmpv6" | "icmpx")), None) => {
                    vec![t.into(), "port-unreachable".into()]
                }
                _ => return None,
            };
            Stmt::Reject { with, loc }
        }
        ("snat" | "dnat" | "masquerade" | "redirect", Value::Null) => Stmt::Nat {
            kind: k.clone(),
            family: None,
            to: None,
            flags: Vec::new(),
            loc,
        },
        ("snat" | "dnat" | "masquerade" | "redirect", Value::Object(n)) => {
            let part = |v: &Value| -> Option<String> {
                match v {
                    Value::Object(r) if r.contains_key("range") => {
                        match r.get("range")?.as_array()?.as_slice() {
                            [a, b] => Some(format!("{}-{}", scalar_word(a)?, scalar_word(b)?)),
                            _ => None,
                        }
                    }
                    Value::Object(r) if r.contains_key("prefix") => match expr(v, 0)? {
                        Expr::Value(s) => Some(s),
                        _ => None,
                    },
                    v => scalar_word(v),
                }
            };
            let addr = n.get("addr");
            let port = n.get("port").map(part);
            let to = match (addr, port) {
                (None, None) => None,
                (Some(a), None) if a.get("map").is_some() => Some(expr(a, 0)?),
                (Some(a), None) => Some(Expr::Value(part(a)?)),
                (None, Some(p)) => Some(Expr::Value(format!(":{}", p?))),
                (Some(a), Some(p)) => {
                    let a = part(a)?;
                    let p = p?;
                    Some(Expr::Value(if a.contains(':') {
                        format!("[{a}]:{p}")
                    } else {
                        format!("{a}:{p}")
                    }))
                }
            };
            let fam = match (str_field(n, "family"), &to) {
                (Some(f @ ("ip" | "ip6")), Some(_)) => Some(f.to_string()),
                _ => None,
            };
            let mut flags = Vec::new();
            let fl: Vec<&str> = match n.get("flags") {
                None => Vec::new(),
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(a)) => a.iter().map(Value::as_str).collect::<Option<_>>()?,
                Some(_) => return None,
            };
            for (i, f) in fl.into_iter().enumerate() {
                if !matches!(
                    f,
                    "random" | "fully-random" | "persistent" | "netmap" | "prefix"
                ) {
                    return None;
                }
                if i > 0 {
                    flags.push(",".into());
                }
                flags.push(f.to_string());
            }
            Stmt::Nat {
                kind: k.clone(),
                family: fam,
                to,
                flags,
                loc,
            }
        }
        ("log", Value::Null) => Stmt::Other {
            words: vec!["log".into()],
            loc,
        },
        ("log", Value::Object(l)) => {
            let mut w = vec!["log".to_string()];
            for (k, v) in l {
                match (k.as_str(), v) {
                    ("prefix", Value::String(s)) => {
                        w.push("prefix".into());
                        w.push(format!("\"{s}\""));
                    }
                    ("level" | "group" | "snaplen" | "queue-threshold", v) => {
                        w.push(k.clone());
                        w.push(scalar_word(v)?);
                    }
                    ("flags", Value::String(s)) => {
                        w.push("flags".into());
                        w.push(s.clone());
                    }
                    ("flags", Value::Array(a)) => {
                        for f in a {
                            w.push("flags".into());
                            w.push(f.as_str()?.to_string());
                        }
                    }
                    _ => return None,
                }
            }
            Stmt::Other { words: w, loc }
        }
        ("limit", Value::Object(l)) if l.contains_key("rate") => {
            let mut w = vec!["limit".to_string(), "rate".into()];
            if l.get("inv").and_then(Value::as_bool) == Some(true) {
                w.push("over".into());
            }
            let rate = l.get("rate")?.as_u64()?;
            let per = str_field(l, "per").unwrap_or("second");
            match str_field(l, "rate_unit") {
                None | Some("packets") => w.push(format!("{rate}/{per}")),
                Some(u) => {
                    w.push(rate.to_string());
                    w.push(format!("{u}/{per}"));
                }
            }
            if let Some(burst) = l.get("burst").and_then(Value::as_u64).filter(|b| *b != 0) {
                w.push("burst".into());
                w.push(burst.to_string());
                w.push(str_field(l, "burst_unit").unwrap_or("packets").to_string());
            }
            Stmt::Other { words: w, loc }
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Printer.

struct Printer {
    defines: BTreeMap<String, Expr>,
    out: Vec<Value>,
}

type P<T> = Result<T, String>;

/// A number when written in canonical decimal, else the string (nft reads `"0xff"` for
/// integer types too): what [`parse`] reads back to the same word.
fn num_or_str(s: &str) -> Value {
    match s.parse::<u64>() {
        Ok(n) if n.to_string() == s => json!(n),
        _ => json!(s),
    }
}

fn is_addr(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

fn is_num_or_addr(s: &str) -> bool {
    crate::netfilter::from_nft::parse_num(s).is_some() || is_addr(s)
}

/// Seconds of an nft duration (`1h`, `59m59s988ms`, `3600s`, `3600`).
fn seconds(s: &str) -> Option<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let (mut total, mut n, mut any) = (0u64, String::new(), false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            n.push(c);
            continue;
        }
        let v: u64 = n.parse().ok()?;
        n.clear();
        let mult = match c {
            'd' => 86400,
            'h' => 3600,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0
            }
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(v.checked_mul(mult)?)?;
        any = true;
    }
    (any && n.is_empty()).then_some(total)
}

fn unquote(s: &str) -> String {
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
        .to_string()
}

/// Priority names as numbers, as `netfilter::from_nft` reads them.
fn priority_value(p: &Priority, family: &str, defines: &BTreeMap<String, Expr>) -> P<i64> {
    let named = |name: &str| -> Option<i64> {
        Some(if family == "bridge" {
            match name {
                "dstnat" => -300,
                "filter" => -200,
                "out" => 100,
                "srcnat" => 300,
                _ => return None,
            }
        } else {
            match name {
                "raw" => -300,
                "mangle" => -150,
                "dstnat" => -100,
                "filter" => 0,
                "security" => 50,
                "srcnat" => 100,
                _ => return None,
            }
        })
    };
    match p {
        Priority::Num(n) => Ok(*n),
        Priority::Named { name, offset } => named(name)
            .map(|n| n + offset)
            .ok_or_else(|| format!("unknown priority name `{name}`")),
        Priority::Var(v) => match defines.get(v) {
            Some(Expr::Value(w)) => w
                .parse::<i64>()
                .ok()
                .or_else(|| named(w))
                .ok_or_else(|| format!("`${v}` is not a priority")),
            _ => Err(format!("`${v}` is not defined as a priority")),
        },
    }
}

impl Printer {
    fn resolve<'a>(&'a self, e: &'a Expr, depth: usize) -> P<&'a Expr> {
        match e {
            Expr::Var(v) if depth < 32 => match self.defines.get(v) {
                Some(x) => self.resolve(x, depth + 1),
                None => Err(format!("undefined variable `${v}`")),
            },
            Expr::Var(v) => Err(format!("variable `${v}` nested too deep")),
            e => Ok(e),
        }
    }

    fn sel(&self, w: &[String]) -> P<Value> {
        let s: Vec<&str> = w.iter().map(String::as_str).collect();
        const PROTOS: [&str; 24] = [
            "ip", "ip6", "tcp", "udp", "udplite", "sctp", "dccp", "th", "icmp", "icmpv6", "igmp",
            "ether", "vlan", "arp", "ah", "esp", "comp", "gre", "frag", "hbh", "dst", "mh", "rt0",
            "srh",
        ];
        Ok(match s.as_slice() {
            ["tcp", "option", name] => json!({"tcp option": {"name": name}}),
            ["tcp", "option", name, field] => json!({"tcp option": {"name": name, "field": field}}),
            ["meta", key] => json!({"meta": {"key": key}}),
            [key] => json!({"meta": {"key": key}}),
            ["ct", rest @ ..] if !rest.is_empty() && rest.len() <= 3 => {
                let mut o = Map::new();
                let (key, mods) = rest.split_last().ok_or("empty ct")?;
                for m in mods {
                    match *m {
                        "original" | "reply" => o.insert("dir".into(), json!(m)),
                        "ip" | "ip6" => o.insert("family".into(), json!(m)),
                        _ => return Err(format!("`{}` has no JSON form fwsim knows", w.join(" "))),
                    };
                }
                o.insert("key".into(), json!(key));
                json!({ "ct": o })
            }
            ["fib", rest @ ..] if rest.len() >= 2 => {
                let (result, flags) = rest.split_last().ok_or("empty fib")?;
                let flags: Vec<&str> = flags.iter().copied().filter(|f| *f != ".").collect();
                json!({"fib": {"result": result, "flags": flags}})
            }
            ["numgen", mode, "mod", m] => {
                json!({"numgen": {"mode": mode, "mod": num_or_str(m), "offset": 0}})
            }
            ["numgen", mode, "mod", m, "offset", o] => {
                json!({"numgen": {"mode": mode, "mod": num_or_str(m), "offset": num_or_str(o)}})
            }
            ["rt", key] => json!({"rt": {"key": key}}),
            ["rt", fam @ ("ip" | "ip6"), key] => json!({"rt": {"key": key, "family": fam}}),
            ["socket", key] => json!({"socket": {"key": key}}),
            [p, field] if PROTOS.contains(p) => {
                json!({"payload": {"protocol": p, "field": field}})
            }
            _ => return Err(format!("`{}` has no JSON form fwsim knows", w.join(" "))),
        })
    }

    fn ex(&self, e: &Expr, depth: usize) -> P<Value> {
        if depth > MAX_DEPTH * 2 {
            return Err("expression nested too deep".into());
        }
        let d = depth + 1;
        Ok(match self.resolve(e, 0)? {
            Expr::Sel(w) => self.sel(w)?,
            Expr::Value(s) => {
                if let Some((a, len)) = s.split_once('/') {
                    if let (true, Ok(len)) = (is_addr(a), len.parse::<u8>()) {
                        return Ok(json!({"prefix": {"addr": a, "len": len}}));
                    }
                }
                if s == "*" || is_num_or_addr(s) {
                    return Ok(num_or_str(s));
                }
                if let Some((a, b)) = s.split_once('-') {
                    if is_num_or_addr(a) && is_num_or_addr(b) {
                        return Ok(json!({"range": [num_or_str(a), num_or_str(b)]}));
                    }
                }
                json!(s)
            }
            Expr::Str(s) => json!(s),
            Expr::Var(_) => unreachable!("resolved"),
            Expr::SetRef(n) => json!(format!("@{n}")),
            Expr::Set(elems) => {
                let v: Vec<Value> = elems.iter().map(|x| self.elem(x, d)).collect::<P<_>>()?;
                json!({ "set": v })
            }
            Expr::List(v) => Value::Array(v.iter().map(|x| self.ex(x, d)).collect::<P<_>>()?),
            Expr::Concat(v) => {
                let v: Vec<Value> = v.iter().map(|x| self.ex(x, d)).collect::<P<_>>()?;
                json!({ "concat": v })
            }
            Expr::Binop { op, left, right } => {
                let op = match op.as_str() {
                    "&" | "and" => "&",
                    "|" | "or" => "|",
                    "^" | "xor" => "^",
                    "<<" | "lshift" => "<<",
                    ">>" | "rshift" => ">>",
                    o => return Err(format!("operator `{o}` has no JSON form here")),
                };
                json!({ op: [self.ex(left, d)?, self.ex(right, d)?] })
            }
            Expr::Range(a, b) => json!({"range": [self.ex(a, d)?, self.ex(b, d)?]}),
            Expr::Paren(x) => {
                // `(fin | syn)`: a flag list.
                let mut flat = Vec::new();
                if bar_values(x, &mut flat) && flat.len() > 1 {
                    Value::Array(flat.iter().map(|w| self.ex(w, d)).collect::<P<_>>()?)
                } else {
                    self.ex(x, d)?
                }
            }
            Expr::Map { key, map } => {
                json!({"map": {"key": self.ex(key, d)?, "data": self.ex(map, d)?}})
            }
            Expr::Verdict(v, c) => verdict(v, c.as_deref()),
        })
    }

    fn elem(&self, e: &Elem, depth: usize) -> P<Value> {
        let key = self.ex(&e.key, depth + 1)?;
        let key = if e.extra.is_empty() {
            key
        } else {
            let mut o = Map::new();
            o.insert("val".into(), key);
            let w: Vec<&str> = e.extra.iter().map(String::as_str).collect();
            let mut i = 0;
            while i < w.len() {
                match &w[i..] {
                    [k @ ("timeout" | "expires"), v, ..] => {
                        let s =
                            seconds(v).ok_or_else(|| format!("`{k} {v}`: expected a duration"))?;
                        o.insert((*k).into(), json!(s));
                        i += 2;
                    }
                    ["comment", c, ..] => {
                        o.insert("comment".into(), json!(unquote(c)));
                        i += 2;
                    }
                    ["counter", "packets", p, "bytes", b, ..] => {
                        o.insert(
                            "counter".into(),
                            json!({"packets": num_or_str(p), "bytes": num_or_str(b)}),
                        );
                        i += 5;
                    }
                    _ => {
                        return Err(format!(
                            "element option `{}` has no JSON form fwsim knows",
                            e.extra.join(" ")
                        ))
                    }
                }
            }
            json!({ "elem": o })
        };
        Ok(match &e.data {
            None => key,
            Some(d) => json!([key, self.ex(d, depth + 1)?]),
        })
    }

    fn stmt(&self, s: &Stmt, family: &str) -> P<Option<Value>> {
        Ok(Some(match s {
            Stmt::Match {
                left, op, right, ..
            } => {
                let mut l = self.ex(left, 0)?;
                let mut op = *op;
                let r = match self.resolve(right, 0)? {
                    Expr::Binop {
                        op: o,
                        left: v,
                        right: mask,
                    } if o == "/" => {
                        // `tcp flags syn / syn,ack`: flags & mask == value.
                        l = json!({"&": [l, self.ex(mask, 0)?]});
                        if op == RelOp::Implicit {
                            op = RelOp::Eq;
                        }
                        self.ex(v, 0)?
                    }
                    r => self.ex(r, 0)?,
                };
                // `fib ... oif missing|exists`: JSON writes booleans.
                let r = match (&l, r.as_str()) {
                    (Value::Object(o), Some("missing")) if o.contains_key("fib") => json!(false),
                    (Value::Object(o), Some("exists")) if o.contains_key("fib") => json!(true),
                    _ => r,
                };
                let op = match op {
                    RelOp::Implicit => "in",
                    RelOp::Eq => "==",
                    RelOp::Ne => "!=",
                    RelOp::Lt => "<",
                    RelOp::Gt => ">",
                    RelOp::Le => "<=",
                    RelOp::Ge => ">=",
                };
                json!({"match": {"op": op, "left": l, "right": r}})
            }
            Stmt::Verdict {
                verdict: v, chain, ..
            } => verdict(v, chain.as_deref()),
            Stmt::Vmap { key, map, .. } => {
                json!({"vmap": {"key": self.ex(key, 0)?, "data": self.ex(map, 0)?}})
            }
            Stmt::Set { left, value, .. } => match left {
                Expr::Sel(w) if w.len() == 2 && w[0] == "ct" && w[1] == "helper" => {
                    json!({"ct helper": self.ex(value, 0)?})
                }
                _ => json!({"mangle": {"key": self.ex(left, 0)?, "value": self.ex(value, 0)?}}),
            },
            Stmt::Counter { counts, .. } => match counts {
                None => json!({ "counter": null }),
                Some((p, b)) => json!({"counter": {"packets": p, "bytes": b}}),
            },
            Stmt::Comment { .. } => return Ok(None),
            Stmt::Nat {
                kind,
                family: fam,
                to,
                flags,
                ..
            } => {
                let mut o = Map::new();
                if let Some(f) = fam {
                    o.insert("family".into(), json!(f));
                }
                if let Some(to) = to {
                    match self.resolve(to, 0)? {
                        Expr::Value(s) => {
                            let (addr, port) =
                                split_nat(s).ok_or_else(|| format!("`{s}` is not a NAT target"))?;
                            if let Some(a) = addr {
                                o.insert("addr".into(), self.ex(&Expr::Value(a), 0)?);
                            }
                            if let Some(p) = port {
                                o.insert("port".into(), self.ex(&Expr::Value(p), 0)?);
                            }
                        }
                        e => {
                            o.insert("addr".into(), self.ex(e, 0)?);
                        }
                    }
                }
                let fl: Vec<&String> = flags.iter().filter(|f| *f != ",").collect();
                match fl.as_slice() {
                    [] => {}
                    [one] => {
                        o.insert("flags".into(), json!(one));
                    }
                    many => {
                        o.insert("flags".into(), json!(many));
                    }
                }
                if o.is_empty() {
                    json!({ kind.as_str(): null })
                } else {
                    json!({ kind.as_str(): o })
                }
            }
            Stmt::Reject { with, .. } => {
                let w: Vec<&str> = with.iter().map(String::as_str).collect();
                match w.as_slice() {
                    [] => json!({ "reject": null }),
                    ["tcp", "reset"] => json!({"reject": {"type": "tcp reset"}}),
                    [p, "type", t] | [p, t] => json!({"reject": {"type": p, "expr": t}}),
                    _ => {
                        return Err(format!(
                            "`reject with {}` has no JSON form fwsim knows",
                            with.join(" ")
                        ))
                    }
                }
            }
            Stmt::Notrack { .. } => json!({ "notrack": null }),
            Stmt::ObjRef { kind, expr, .. } => json!({ kind.as_str(): self.ex(expr, 0)? }),
            Stmt::Other { words, .. } => other_stmt(words, family)?,
        }))
    }

    fn rule_obj(&self, family: &str, table: &str, chain: &str, r: &Rule) -> P<Value> {
        let mut exprs = Vec::new();
        let mut comment = None;
        for s in &r.stmts {
            if let Stmt::Comment { text, .. } = s {
                if comment.is_some() {
                    return Err("a rule with two comments".into());
                }
                comment = Some(text.clone());
            }
            if let Some(v) = self.stmt(s, family)? {
                exprs.push(v);
            }
        }
        let mut o = Map::new();
        o.insert("family".into(), json!(family));
        o.insert("table".into(), json!(table));
        o.insert("chain".into(), json!(chain));
        o.insert("expr".into(), Value::Array(exprs));
        if let Some(c) = comment {
            o.insert("comment".into(), json!(c));
        }
        Ok(json!({ "rule": o }))
    }

    fn chain(
        &mut self,
        family: &str,
        table: &str,
        c: &ChainDef,
        verb: Option<&str>,
    ) -> Result<Vec<Value>, Error> {
        let mut o = Map::new();
        o.insert("family".into(), json!(family));
        o.insert("table".into(), json!(table));
        o.insert("name".into(), json!(c.name));
        let mut rules = Vec::new();
        for item in c.body.iter().flatten() {
            match item {
                ChainItem::Hook {
                    kind,
                    hook,
                    device,
                    priority,
                    loc,
                } => {
                    o.insert("type".into(), json!(kind));
                    o.insert("hook".into(), json!(hook));
                    let p = priority_value(priority, family, &self.defines)
                        .map_err(|m| err(*loc, m))?;
                    o.insert("prio".into(), json!(p));
                    if let Some(d) = device {
                        o.insert("dev".into(), json!(d));
                    }
                }
                ChainItem::Policy { policy, loc } => {
                    let p = match policy.strip_prefix('$') {
                        Some(v) => match self.defines.get(v) {
                            Some(Expr::Value(w)) => w.clone(),
                            _ => {
                                return Err(err(*loc, format!("`${v}` is not defined as a policy")))
                            }
                        },
                        None => policy.clone(),
                    };
                    o.insert("policy".into(), json!(p));
                }
                ChainItem::Attr { words, loc } => match words.as_slice() {
                    [k, c] if k == "comment" => {
                        o.insert("comment".into(), json!(unquote(c)));
                    }
                    _ => {
                        return Err(err(
                            *loc,
                            format!(
                                "chain attribute `{}` has no JSON form fwsim knows",
                                words.join(" ")
                            ),
                        ))
                    }
                },
                ChainItem::Rule(r) => rules.push(
                    self.rule_obj(family, table, &c.name, r)
                        .map_err(|m| err(r.loc, format!("cannot write this rule as JSON: {m}")))?,
                ),
            }
        }
        let chain = json!({ "chain": o });
        let mut out = vec![match verb {
            Some("create") => json!({ "create": chain }),
            _ => chain,
        }];
        out.extend(rules);
        Ok(out)
    }

    fn set(&self, family: &str, table: &str, s: &SetDef) -> Result<Value, Error> {
        let mut o = Map::new();
        o.insert("family".into(), json!(family));
        o.insert("name".into(), json!(s.name));
        o.insert("table".into(), json!(table));
        for st in &s.settings {
            match st {
                SetSetting::Type { key, data, .. } => {
                    o.insert(
                        "type".into(),
                        if key.len() == 1 {
                            json!(key[0])
                        } else {
                            json!(key)
                        },
                    );
                    if let Some(d) = data {
                        o.insert(
                            "map".into(),
                            if d.len() == 1 { json!(d[0]) } else { json!(d) },
                        );
                    }
                }
                SetSetting::Typeof { loc, .. } => {
                    return Err(err(
                        *loc,
                        format!(
                            "set {}: `typeof` is not written as JSON by fwsim (use `type`)",
                            s.name
                        ),
                    ))
                }
                SetSetting::Flags { flags, .. } => {
                    // nft 1.0.6's JSON has no `dynamic` flag (its own listing leaves it out;
                    // sets updated from rules get it from the kernel when loaded).
                    let flags: Vec<&String> = flags.iter().filter(|f| *f != "dynamic").collect();
                    if !flags.is_empty() {
                        o.insert("flags".into(), json!(flags));
                    }
                }
                SetSetting::Elements { elements, loc } => {
                    let v: Vec<Value> = elements
                        .iter()
                        .map(|x| self.elem(x, 0))
                        .collect::<P<_>>()
                        .map_err(|m| err(*loc, format!("set {}: {m}", s.name)))?;
                    match o.get_mut("elem") {
                        Some(Value::Array(a)) => a.extend(v),
                        _ => {
                            o.insert("elem".into(), Value::Array(v));
                        }
                    }
                }
                SetSetting::Other { words, loc } => {
                    let w: Vec<&str> = words.iter().map(String::as_str).collect();
                    match w.as_slice() {
                        [k @ ("timeout" | "gc-interval"), v] => {
                            let n = seconds(v).ok_or_else(|| {
                                err(*loc, format!("`{k} {v}`: expected a duration"))
                            })?;
                            o.insert((*k).into(), json!(n));
                        }
                        ["size", n] => {
                            o.insert("size".into(), num_or_str(n));
                        }
                        ["policy", p] => {
                            o.insert("policy".into(), json!(p));
                        }
                        ["comment", c] => {
                            o.insert("comment".into(), json!(unquote(c)));
                        }
                        ["counter"] => {
                            o.insert("stmt".into(), json!([{ "counter": null }]));
                        }
                        ["auto-merge"] => {
                            o.insert("auto-merge".into(), json!(true));
                        }
                        _ => {
                            return Err(err(
                                *loc,
                                format!(
                                    "set setting `{}` has no JSON form fwsim knows",
                                    words.join(" ")
                                ),
                            ))
                        }
                    }
                }
            }
        }
        Ok(json!({ if s.map { "map" } else { "set" }: o }))
    }

    fn item(&mut self, item: &Item) -> Result<(), Error> {
        match item {
            Item::Define(d) => {
                self.defines.insert(d.name.clone(), d.value.clone());
            }
            Item::Flush { words, loc } => {
                let w: Vec<&str> = words.iter().map(String::as_str).collect();
                let v = match w.as_slice() {
                    ["ruleset"] => json!({"flush": {"ruleset": null}}),
                    ["table", f, n] => json!({"flush": {"table": {"family": f, "name": n}}}),
                    ["table", n] => json!({"flush": {"table": {"family": "ip", "name": n}}}),
                    [k @ ("chain" | "set" | "map"), f, t, n] => {
                        json!({"flush": {*k: {"family": f, "table": t, "name": n}}})
                    }
                    [k @ ("chain" | "set" | "map"), t, n] => {
                        json!({"flush": {*k: {"family": "ip", "table": t, "name": n}}})
                    }
                    _ => {
                        return Err(err(
                            *loc,
                            format!("`flush {}` has no JSON form fwsim knows", words.join(" ")),
                        ))
                    }
                };
                self.out.push(v);
            }
            Item::Table(t) => {
                let family = t.family().to_string();
                let mut o = Map::new();
                o.insert("family".into(), json!(family));
                o.insert("name".into(), json!(t.name));
                let mut sets = Vec::new();
                let mut chains = Vec::new();
                let mut rules = Vec::new();
                let mut others = Vec::new();
                for ti in t.body.iter().flatten() {
                    match ti {
                        TableItem::Define(d) => {
                            self.defines.insert(d.name.clone(), d.value.clone());
                        }
                        TableItem::Attr { words, loc } => match words.as_slice() {
                            [k, c] if k == "comment" => {
                                o.insert("comment".into(), json!(unquote(c)));
                            }
                            _ => {
                                return Err(err(
                                    *loc,
                                    format!(
                                        "table attribute `{}` has no JSON form fwsim knows",
                                        words.join(" ")
                                    ),
                                ))
                            }
                        },
                        TableItem::Set(s) => sets.push(self.set(&family, &t.name, s)?),
                        TableItem::Chain(c) => {
                            let mut v = self.chain(&family, &t.name, c, None)?.into_iter();
                            chains.extend(v.next());
                            rules.extend(v);
                        }
                        TableItem::Other { head, body, loc } => {
                            let bad = || {
                                err(
                                    *loc,
                                    format!("`{}` has no JSON form fwsim knows", head.join(" ")),
                                )
                            };
                            let [kind, name] = head.as_slice() else {
                                return Err(bad());
                            };
                            let mut ob = Map::new();
                            ob.insert("family".into(), json!(family));
                            ob.insert("name".into(), json!(name));
                            ob.insert("table".into(), json!(t.name));
                            for line in body.iter().flatten() {
                                let [k, v] = line.as_slice() else {
                                    return Err(bad());
                                };
                                let v: Value = serde_json::from_str(v).map_err(|_| bad())?;
                                ob.insert(k.clone(), v);
                            }
                            others.push(json!({ kind.as_str(): ob }));
                        }
                    }
                }
                let table = json!({ "table": o });
                self.out.push(match t.verb.as_deref() {
                    Some("create") => json!({ "create": table }),
                    _ => table,
                });
                // Chains before sets (verdict map elements jump to them), sets before
                // rules (rules look them up).
                self.out.extend(others);
                self.out.extend(chains);
                self.out.extend(sets);
                self.out.extend(rules);
            }
            Item::AddChain {
                verb,
                family,
                table,
                chain,
            } => {
                let f = family.as_deref().unwrap_or("ip").to_string();
                let v = self.chain(&f, table, chain, Some(verb))?;
                self.out.extend(v);
            }
            Item::AddRule {
                verb,
                family,
                table,
                chain,
                place,
                rule,
            } => {
                if !place.is_empty() {
                    return Err(err(rule.loc, "rule positions (`position`, `handle`, `index`) have no JSON form fwsim writes"));
                }
                let f = family.as_deref().unwrap_or("ip");
                let v = self
                    .rule_obj(f, table, chain, rule)
                    .map_err(|m| err(rule.loc, format!("cannot write this rule as JSON: {m}")))?;
                self.out.push(if verb == "insert" {
                    json!({ "insert": v })
                } else {
                    v
                });
            }
            Item::AddSet {
                verb,
                family,
                table,
                set,
            } => {
                let f = family.as_deref().unwrap_or("ip");
                let v = self.set(f, table, set)?;
                self.out.push(if verb == "create" {
                    json!({ "create": v })
                } else {
                    v
                });
            }
            Item::AddElement {
                family,
                table,
                set,
                elements,
                loc,
            } => {
                let v: Vec<Value> = elements
                    .iter()
                    .map(|x| self.elem(x, 0))
                    .collect::<P<_>>()
                    .map_err(|m| err(*loc, m))?;
                self.out.push(json!({"element": {"family": family.as_deref().unwrap_or("ip"), "table": table, "name": set, "elem": v}}));
            }
        }
        Ok(())
    }
}

/// `a | b | c` of values, flattened.
fn bar_values(e: &Expr, out: &mut Vec<Expr>) -> bool {
    match e {
        Expr::Value(_) | Expr::Str(_) => {
            out.push(e.clone());
            true
        }
        Expr::Binop { op, left, right } if op == "|" => {
            bar_values(left, out) && bar_values(right, out)
        }
        _ => false,
    }
}

fn verdict(v: &str, chain: Option<&str>) -> Value {
    match chain {
        Some(c) => json!({ v: {"target": c} }),
        None => json!({ v: null }),
    }
}

/// `ADDR`, `ADDR:PORT`, `[ADDR6]:PORT`, `:PORT`: (address, port) words.
fn split_nat(s: &str) -> Option<(Option<String>, Option<String>)> {
    if let Some(p) = s.strip_prefix(':') {
        return Some((None, Some(p.into())));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (a, p) = rest.split_once(']')?;
        return Some((Some(a.into()), p.strip_prefix(':').map(str::to_string)));
    }
    if s.contains("::") || s.matches(':').count() > 1 || !s.contains(':') {
        return Some((Some(s.into()), None));
    }
    let (a, p) = s.rsplit_once(':')?;
    Some((Some(a.into()), Some(p.into())))
}

/// Statements kept as words: `log ...`, `limit rate ...`, and JSON fwsim could not read.
fn other_stmt(words: &[String], _family: &str) -> P<Value> {
    if let [one] = words {
        if let Some(j) = one.strip_prefix(UNKNOWN) {
            return serde_json::from_str(j).map_err(|e| e.to_string());
        }
    }
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let bad = || format!("`{}` has no JSON form fwsim knows", words.join(" "));
    match w.first() {
        Some(&"log") => {
            let mut o = Map::new();
            let mut flags = Vec::new();
            let mut i = 1;
            while i < w.len() {
                match &w[i..] {
                    ["prefix", p, ..] => o.insert("prefix".into(), json!(unquote(p))),
                    [k @ ("level" | "group" | "snaplen" | "queue-threshold"), v, ..] => {
                        o.insert((*k).into(), num_or_str(v))
                    }
                    ["flags", f, ..] => {
                        flags.push(*f);
                        None
                    }
                    _ => return Err(bad()),
                };
                i += 2;
            }
            match flags.as_slice() {
                [] => {}
                [one] => {
                    o.insert("flags".into(), json!(one));
                }
                many => {
                    o.insert("flags".into(), json!(many));
                }
            }
            Ok(if o.is_empty() {
                json!({ "log": null })
            } else {
                json!({ "log": o })
            })
        }
        Some(&"limit") => {
            let mut o = Map::new();
            let mut rest = w.get(1..).unwrap_or(&[]);
            if rest.first() != Some(&"rate") {
                return Err(bad());
            }
            rest = &rest[1..];
            if rest.first() == Some(&"over") {
                o.insert("inv".into(), json!(true));
                rest = &rest[1..];
            }
            let (rate, unit_per, rest) = match rest {
                [r, ..] if r.contains('/') => {
                    let (n, per) = r.split_once('/').ok_or_else(bad)?;
                    (n, ("packets", per), &rest[1..])
                }
                [n, u, ..] => {
                    let (unit, per) = u.split_once('/').ok_or_else(bad)?;
                    (*n, (unit, per), &rest[2..])
                }
                _ => return Err(bad()),
            };
            o.insert(
                "rate".into(),
                json!(rate.parse::<u64>().map_err(|_| bad())?),
            );
            o.insert("per".into(), json!(unit_per.1));
            if unit_per.0 != "packets" {
                o.insert("rate_unit".into(), json!(unit_per.0));
            }
            match rest {
                [] => {}
                ["burst", b, unit] => {
                    o.insert("burst".into(), json!(b.parse::<u64>().map_err(|_| bad())?));
                    if *unit != "packets" {
                        o.insert("burst_unit".into(), json!(unit));
                    }
                }
                _ => return Err(bad()),
            }
            Ok(json!({ "limit": o }))
        }
        _ => Err(bad()),
    }
}

/// Write a tree as nft JSON (see the module contract): one top-level object per line.
pub fn print(file: &File) -> Result<String, Error> {
    let mut p = Printer {
        defines: BTreeMap::new(),
        out: vec![json!({"metainfo": {"json_schema_version": 1}})],
    };
    for item in &file.items {
        p.item(item)?;
    }
    let lines: Vec<String> = p.out.iter().map(Value::to_string).collect();
    Ok(format!("{{\"nftables\": [\n{}\n]}}\n", lines.join(",\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::from_nft::convert;
    use crate::netfilter::ir::{self, Action, Match};
    use crate::testing::{corpus, normalized, Netns};

    /// Many statement and expression forms, all accepted by nft 1.0.6 (the kernel test
    /// loads it and compares its JSON and text listings).
    pub(crate) const MANY: &str = r#"table inet t {
	set s { type ipv4_addr . inet_service; flags interval; elements = { 10.0.0.0/8 . 22, 1.1.1.1-1.1.1.9 . 80-90 } }
	set s6 { type ipv6_addr; flags interval; elements = { 2001:db8::/32, ::1 } }
	map vm { type ifname : verdict; flags interval; elements = { "eth0" : accept, "wl*" : jump d, * : drop } }
	map nm { type ipv4_addr : ipv4_addr; elements = { 1.2.3.4 : 5.6.7.8 } }
	set dyn { type ipv4_addr; flags dynamic,timeout; timeout 1h; size 100; elements = { 9.9.9.9 timeout 1h comment "c" } }
	set cnt { type ipv4_addr; counter; elements = { 9.9.9.8 } }
	chain c { type filter hook input priority filter + 10; policy drop;
		iifname "eth*" ip saddr . tcp dport @s tcp dport { 22, 80-90 } ct state established,related counter accept comment "x y"
		ip saddr . tcp dport { 10.0.0.1 . 22 } accept
		tcp flags & (fin | syn | rst | ack) == syn drop
		tcp flags syn,ack / syn,ack,rst accept
		tcp flags syn drop
		tcp flags == syn drop
		ct state vmap { established : accept, new : jump d }
		iifname vmap @vm
		meta mark & 0xff == 0x1 meta mark set meta mark | 0x10 ct mark set meta mark
		meta mark set ct mark and 0xff
		ct status dnat accept
		ct state != invalid accept
		ip6 saddr != ::1 drop
		tcp dport < 1024 drop
		udp sport >= 1000 drop
		meta l4proto { tcp, udp } accept
		meta nfproto ipv4 accept
		icmp type echo-request accept
		icmpv6 type { nd-neighbor-solicit, echo-request } accept
		ip protocol icmp icmp code 3 drop
		limit rate 25/second burst 50 packets accept
		limit rate over 10/minute drop
		log prefix "hi " level info flags all
		reject with tcp reset
		reject with icmpx type admin-prohibited
		reject
		fib daddr type local accept
		oifname != "lo" continue
		th dport 53 return
		goto d
	}
	chain d { ip daddr 10.0.0.0/8 ip dscp 0x2e accept; @th,0,16 5 drop; }
	chain n { type nat hook prerouting priority dstnat;
		tcp dport 80 dnat ip to 10.0.0.1:8080
		tcp dport 81 dnat ip to 10.0.0.1-10.0.0.5:80-90
		meta l4proto tcp ip6 daddr ::1 dnat ip6 to [::2]:80
		ip daddr 1.1.1.1 dnat ip to ip daddr map @nm
		tcp dport 82 redirect to :8080
	}
	chain p { type nat hook postrouting priority srcnat;
		ip saddr 10.0.0.0/8 snat ip to 1.2.3.4 fully-random
		masquerade random
		meta l4proto tcp ip saddr 10.0.0.0/24 masquerade to :1024-2048
	}
}
"#;

    fn ir_of(json: &str) -> ir::Ruleset {
        let f = parse(json).unwrap_or_else(|e| panic!("{e}"));
        convert(&f).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn reads_listed_forms() {
        let j = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
 {"table": {"family": "inet", "name": "t", "handle": 1}},
 {"set": {"family": "inet", "name": "s", "table": "t", "type": ["ipv4_addr", "inet_service"], "flags": ["interval"], "elem": [{"concat": [{"prefix": {"addr": "10.0.0.0", "len": 8}}, 22]}, {"elem": {"val": {"concat": ["1.1.1.1", {"range": [80, 90]}]}, "comment": "c"}}]}},
 {"chain": {"family": "inet", "table": "t", "name": "c", "handle": 1, "type": "filter", "hook": "input", "prio": 10, "policy": "drop"}},
 {"chain": {"family": "inet", "table": "t", "name": "d", "handle": 2}},
 {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 3, "comment": "x", "expr": [
   {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth*"}},
   {"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]}, "right": "@s"}},
   {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
   {"counter": {"packets": 3, "bytes": 4}}, {"accept": null}]}},
 {"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [
   {"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["fin", "syn", "rst", "ack"]]}, "right": "syn"}},
   {"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["established", {"accept": null}], ["new", {"jump": {"target": "d"}}]]}}}]}},
 {"rule": {"family": "inet", "table": "t", "chain": "d", "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}},
   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"|": [{"meta": {"key": "mark"}}, 16]}}},
   {"frobnicate": {"x": 1}}]}},
 {"rule": {"family": "inet", "table": "t", "chain": "d", "expr": [{"reject": {"type": "icmpx", "expr": "port-unreachable"}}]}}
]}"#;
        let rs = ir_of(j);
        let t = &rs.tables[0];
        assert_eq!(t.sets[0].elements.len(), 2);
        let c = &t.chains[0];
        assert_eq!(c.base.as_ref().unwrap().priority, 10);
        assert_eq!(c.base.as_ref().unwrap().policy, ir::Policy::Drop);
        let r = &c.rules[0];
        assert!(r.matches.contains(&Match::Iface {
            dir: ir::Dir::Src,
            name: "eth+".into(),
            neg: false
        }));
        assert!(r.matches.contains(&Match::CtState {
            states: ir::ct::ESTABLISHED | ir::ct::RELATED,
            neg: false
        }));
        assert!(r.text.ends_with("accept comment \"x\""), "{}", r.text);
        assert!(
            c.rules[1].matches.contains(&Match::TcpFlags {
                mask: 0x17,
                comp: 0x02,
                neg: false
            }),
            "{:?}",
            c.rules[1].matches
        );
        assert!(matches!(c.rules[1].action, Action::Vmap { .. }));
        // The unknown statement makes its rule unsupported; the rest is read.
        let d = &t.chains[1];
        let Action::Seq(v) = &d.rules[0].action else {
            panic!("{:?}", d.rules[0].action)
        };
        assert!(matches!(&v[1], Action::Unsupported { what } if what.contains("frobnicate")));
        assert_eq!(
            d.rules[1].action,
            Action::Reject {
                with: "icmpx port-unreachable".into()
            }
        );
        assert_eq!(rs.unsupported().len(), 1);
    }

    #[test]
    fn errors_are_located() {
        let e = parse("{\"nftables\": [\n  {\"table\": {\"family\": \"ip\", \"name\": \"t\"}},\n  {\"chain\": {\"family\": \"ip\", \"table\": \"t\", \"name\": 3}}\n]}").unwrap_err();
        assert_eq!(e.loc, Loc { line: 3, col: 3 }, "{e}");
        assert!(
            e.message
                .contains("nftables[1].chain.name: expected a string"),
            "{e}"
        );
        let e = parse("{\"nftables\": [\n {\"table\": {\"family\": \"ip\"\n  \"name\": \"t\"}}]}")
            .unwrap_err();
        assert_eq!(e.loc.line, 3, "{e}");
        assert!(e.message.starts_with("JSON: expected"), "{e}");
        let e = parse("{\"nftables\": [{\"table\": {\"family\": \"ip\", \"name\": \"t\"}}, {\"rule\": {\"family\": \"ip\", \"table\": \"t\", \"chain\": \"nope\", \"expr\": [{\"accept\": null}]}}]}").unwrap_err();
        assert!(
            e.message.contains("nftables[1].rule: no chain `nope`"),
            "{e}"
        );
        assert_eq!(e.loc, Loc { line: 1, col: 57 }, "{e}");
        let e = parse("[1, 2]").unwrap_err();
        assert!(
            e.message.contains("expected an object `{\"nftables\""),
            "{e}"
        );
        let e = parse("{\"nftables\": [{\"delete\": {\"table\": {}}}]}").unwrap_err();
        assert!(
            e.message.contains("command `delete` is not supported"),
            "{e}"
        );
        let e = parse("{\"nftables\": [{\"table\": {\"family\": \"ip\", \"name\": \"t\"}}, {\"set\": {\"family\": \"ip\", \"table\": \"t\", \"name\": \"s\", \"type\": \"ipv4_addr\", \"elem\": [{\"what\": 1}]}}]}").unwrap_err();
        assert!(
            e.message
                .contains("nftables[1].set.elem[0]: expected a set element"),
            "{e}"
        );
        // Deep nesting is bounded, never a stack overflow: serde_json refuses beyond 128
        // levels, fwsim's reader makes a rule unsupported beyond MAX_DEPTH.
        let deep = |n: usize| {
            format!(
            "{{\"nftables\": [{{\"table\": {{\"family\": \"ip\", \"name\": \"t\"}}}}, {{\"chain\": {{\"family\": \"ip\", \"table\": \"t\", \"name\": \"c\"}}}}, {{\"rule\": {{\"family\": \"ip\", \"table\": \"t\", \"chain\": \"c\", \"expr\": [{{\"match\": {{\"op\": \"==\", \"left\": {{\"meta\": {{\"key\": \"mark\"}}}}, \"right\": {}1{}}}}}]}}}}]}}",
            "{\"set\": [".repeat(n),
            "]}".repeat(n)
        )
        };
        let rs = convert(&parse(&deep(40)).unwrap()).unwrap();
        assert_eq!(rs.unsupported().len(), 1);
        let rs = convert(&parse(&deep(20)).unwrap()).unwrap();
        assert_eq!(rs.unsupported().len(), 0);
        let e = parse(&deep(100)).unwrap_err();
        assert!(e.message.contains("recursion limit"), "{e}");
        assert_eq!(e.loc.line, 1);
    }

    fn strip_locs(f: &File) -> String {
        crate::testing::normalized(f)
    }

    /// nft text → tree → JSON → tree gives the same IR; the JSON prints back identically;
    /// and the kernel loads the JSON we print (root and nft only).
    fn text_json_round_trip(
        text: &str,
        what: &str,
        ns: Option<&Netns>,
        strict: bool,
    ) -> Result<(), String> {
        let tree = crate::syntax::nft::parse(text).map_err(|e| e.to_string())?;
        let ir_text = convert(&tree).map_err(|e| e.to_string())?;
        let json = print(&tree).map_err(|e| format!("{e}"))?;
        let back = parse(&json).unwrap_or_else(|e| panic!("{what}: {e}\n{json}"));
        let ir_json = convert(&back).unwrap_or_else(|e| panic!("{what}: {e}\n{json}"));
        tests::assert_same(
            &normalized(&ir_json),
            &normalized(&ir_text),
            &format!("{what}: text → JSON"),
        );
        let again = print(&back).unwrap_or_else(|e| panic!("{what}: {e}"));
        let back2 = parse(&again).unwrap();
        assert_eq!(
            strip_locs(&back2),
            strip_locs(&back),
            "{what}: JSON → tree → JSON → tree"
        );
        if let Some(ns) = ns {
            ns.nft(&["flush", "ruleset"], None).unwrap();
            match ns.nft(&["-j"], Some(&json)) {
                Ok(_) => {}
                // nft 1.0.6 merges overlapping interval elements when reading text, not JSON
                // (its own JSON listing holds them merged): a limit of its JSON reader.
                Err(e) if e.contains("conflicting intervals") => {
                    eprintln!(
                        "{what}: nft 1.0.6 does not merge overlapping intervals in JSON: {}",
                        e.trim()
                    )
                }
                Err(e) if strict => panic!("{what}: nft -j -f refuses our JSON: {e}\n{json}"),
                Err(e) => eprintln!("{what}: nft -j -f refuses our JSON: {}", e.trim()),
            }
        }
        Ok(())
    }

    #[test]
    fn text_to_json_and_back() {
        let ns = Netns::new("json-print");
        // Raw payload expressions have no JSON form fwsim writes (refused, tested below).
        let many = MANY.replace(" @th,0,16 5 drop;", "");
        assert_ne!(many, MANY);
        text_json_round_trip(&many, "MANY", ns.as_ref(), true).unwrap();
        let mut done = 1;
        for seed in 0..30 {
            let text = crate::gen::ruleset::generate(seed).to_nft();
            text_json_round_trip(&text, &format!("seed {seed}"), ns.as_ref(), true).unwrap();
            done += 1;
        }
        assert_eq!(done, 31);
        // The shared corpus, where it is present: most of it is written as JSON (the rest
        // says why not).
        let Some(paths) = corpus(&["nft"]) else {
            return;
        };
        let (mut written, mut read) = (0, 0);
        for p in paths {
            read += 1;
            let text = std::fs::read_to_string(&p).unwrap();
            let loads = ns.as_ref().is_some_and(|n| {
                n.nft(&["flush", "ruleset"], None).is_ok() && n.nft(&[], Some(&text)).is_ok()
            });
            match text_json_round_trip(
                &text,
                &p.display().to_string(),
                if loads { ns.as_ref() } else { None },
                false,
            ) {
                Ok(()) => written += 1,
                Err(e) => eprintln!("{}: not written as JSON: {e}", p.display()),
            }
        }
        assert!(
            written * 2 >= read,
            "{written} of {read} corpus files written as JSON"
        );
    }

    #[test]
    fn json_refusals_are_located() {
        let t = crate::syntax::nft::parse("table ip t {\n chain c {\n  frob 3 accept\n }\n}\n")
            .unwrap();
        let e = print(&t).unwrap_err();
        assert_eq!(e.loc.line, 3, "{e}");
        assert!(e.message.contains("`frob 3` has no JSON form"), "{e}");
    }

    #[test]
    fn corpus_json_reads() {
        let Some(paths) = corpus(&["json"]) else {
            return;
        };
        let mut seen = 0;
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap();
            let rs = crate::netfilter::read_ruleset(&text)
                .unwrap_or_else(|e| panic!("{}:{}: {}", p.display(), e.loc, e.message));
            let rules: usize = rs
                .tables
                .iter()
                .flat_map(|t| &t.chains)
                .map(|c| c.rules.len())
                .sum();
            assert!(rules > 0, "{}", p.display());
            seen += 1;
        }
        assert!(seen >= 1, "expected the corpus's .nft.json files");
    }

    /// The kernel's JSON and text listings of one ruleset.
    fn listings(ns: &Netns, text: &str) -> Result<(String, String), String> {
        ns.nft(&["flush", "ruleset"], None)?;
        ns.nft(&[], Some(text))?;
        Ok((
            ns.nft(&["-j", "list", "ruleset"], None)?,
            ns.nft(&["list", "ruleset"], None)?,
        ))
    }

    /// Sets whose lookups are inconclusive whatever their key: `typeof` keys are listed as
    /// expressions in text and as types in JSON.
    fn without_unsupported_set_types(mut rs: ir::Ruleset) -> ir::Ruleset {
        for t in &mut rs.tables {
            for s in &mut t.sets {
                if s.unsupported.is_some() {
                    s.key_types.clear();
                    s.data_type = None;
                    s.unsupported = Some(String::new());
                }
            }
        }
        rs
    }

    /// Equal normalized IRs, or a panic showing where they first differ.
    pub(crate) fn assert_same(a: &str, b: &str, what: &str) {
        if a == b {
            return;
        }
        let i = a
            .char_indices()
            .zip(b.chars())
            .find(|((_, x), y)| x != y)
            .map_or(a.len().min(b.len()), |((i, _), _)| i);
        let from = a[..i].char_indices().rev().nth(300).map_or(0, |(j, _)| j);
        let tail = |s: &str| {
            s.get(from..)
                .unwrap_or("")
                .chars()
                .take(700)
                .collect::<String>()
        };
        panic!(
            "{what}: differ\n--- left\n{}\n--- right\n{}",
            tail(a),
            tail(b)
        );
    }

    fn same_ir(json: &str, listed: &str, what: &str) {
        let a = without_unsupported_set_types(ir_of(json));
        let b = convert(
            &crate::syntax::nft::parse(listed).unwrap_or_else(|e| panic!("{what}: {e}\n{listed}")),
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        let b = without_unsupported_set_types(b);
        assert_same(
            &normalized(&a),
            &normalized(&b),
            &format!("{what} (JSON listing vs text listing)"),
        );
    }

    /// For every corpus `.nft` file nft accepts (and the forms above, and generated
    /// rulesets), the kernel's JSON listing converts to the same IR as its text listing.
    /// Skipped without root or nft.
    #[test]
    fn kernel_json_matches_kernel_text() {
        let Some(ns) = Netns::new("json") else {
            return;
        };
        let mut compared = 0;
        let mut corpus_compared = 0;
        let (j, l) = listings(&ns, MANY).expect("MANY loads");
        same_ir(&j, &l, "MANY");
        compared += 1;
        let shared = corpus(&["nft"]);
        for p in shared.clone().unwrap_or_default() {
            let text = std::fs::read_to_string(&p).unwrap();
            match listings(&ns, &text) {
                Ok((j, l)) => {
                    same_ir(&j, &l, &p.display().to_string());
                    compared += 1;
                    corpus_compared += 1;
                }
                Err(e) => eprintln!(
                    "{}: nft refuses it, not compared: {}",
                    p.display(),
                    e.lines().next().unwrap_or("")
                ),
            }
        }
        for seed in 0..20 {
            let text = crate::gen::ruleset::generate(seed).to_nft();
            let (j, l) = listings(&ns, &text).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            same_ir(&j, &l, &format!("generated seed {seed}"));
            compared += 1;
        }
        assert_eq!(compared - corpus_compared, 21);
        // Of the shared corpus (where present), the files nft loads: at least four.
        if let Some(paths) = shared {
            assert!(corpus_compared >= 4.min(paths.len()), "{corpus_compared}");
        }
    }
}
