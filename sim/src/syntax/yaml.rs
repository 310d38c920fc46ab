//! YAML documents as located trees, and a serde `Deserializer` over them.
//!
//! Contract: [`parse_documents`] turns a YAML stream into one [`Node`] per document, every
//! node carrying the line and column where it starts. Aliases are expanded (bounded), duplicate
//! mapping keys are rejected. [`from_node`] deserializes any `serde::Deserialize` type from a
//! node; every error it returns carries the location of the innermost node it concerns
//! (the misspelled key, the value of the wrong type, the mapping that lacks a field).
//!
//! Scalars keep their source text and style. A plain scalar is resolved by the type asked
//! for (a string field reads `no`, `80` or `true` as text, as Kubernetes users expect);
//! only `deserialize_any` applies the YAML 1.2 core schema.
//!
//! Why not serde-saphyr's own deserializer: our documents are dispatched on their `kind`
//! (Scenario, Pod, NetworkPolicy, ...) and serde's tagged enums lose source locations;
//! reading the tree once and deserializing typed parts from it keeps every location.

use granit_parser::{Event, Parser, ScalarStyle};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashMap;
use std::fmt;

pub use crate::values::Loc;

/// How a scalar was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Scalar { text: String, style: Style },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// One YAML node and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub loc: Loc,
    pub kind: NodeKind,
}

impl Node {
    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node under `key` when this node is a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The text of a scalar node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A plain `~`, `null` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, style: Style::Plain } if is_null_text(text))
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// A short name of the node's type for error messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a sequence",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// An error with the location it concerns.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub loc: Option<Loc>,
    pub message: String,
}

impl Error {
    pub fn new(loc: Loc, message: impl Into<String>) -> Self {
        Error {
            loc: Some(loc),
            message: message.into(),
        }
    }

    /// Attach `loc` unless the error already has a (more precise) location.
    fn at(mut self, loc: Loc) -> Self {
        if self.loc.is_none() {
            self.loc = Some(loc);
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.loc {
            Some(loc) => write!(f, "{}: {}", loc, self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            loc: None,
            message: msg.to_string(),
        }
    }
}

/// Expanding aliases may not build more nodes than this (a "billion laughs" guard).
const MAX_NODES: usize = 2_000_000;
/// Nesting deeper than this is refused (no stack overflow on hostile input).
const MAX_DEPTH: usize = 256;

/// Parse a YAML stream into its documents. Empty documents are dropped.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, Error> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<(Loc, Frame)> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut built = 0usize;
    let mut root: Option<Node> = None;
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                let m = e.marker();
                return Err(Error::new(
                    Loc {
                        line: m.line() as u32,
                        col: m.col() as u32 + 1,
                    },
                    format!("YAML syntax error: {}", e.info()),
                ));
            }
        };
        let loc = Loc {
            line: span.start.line() as u32,
            col: span.start.col() as u32 + 1,
        };
        let mut finished: Option<(Node, usize)> = None;
        match event {
            Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart(..) => {
                anchors.clear();
                root = None;
            }
            Event::DocumentEnd => {
                if let Some(node) = root.take() {
                    if !node.is_null() {
                        docs.push(node);
                    }
                }
            }
            Event::Alias(id) => {
                let node = anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| Error::new(loc, "alias to an unknown anchor"))?;
                built += count_nodes(&node);
                if built > MAX_NODES {
                    return Err(Error::new(
                        loc,
                        "document too large after expanding aliases",
                    ));
                }
                finished = Some((node, 0));
            }
            Event::Scalar(text, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                // `!!str 80` is a string, whatever its style.
                let style = match tag {
                    Some(t) if style == Style::Plain && t.to_string().ends_with(":str") => {
                        Style::Quoted
                    }
                    _ => style,
                };
                built += 1;
                finished = Some((
                    Node {
                        loc,
                        kind: NodeKind::Scalar {
                            text: text.into_owned(),
                            style,
                        },
                    },
                    anchor,
                ));
            }
            Event::SequenceStart(_, anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::new(loc, "nesting too deep"));
                }
                stack.push((loc, Frame::Seq(anchor, Vec::new())));
            }
            Event::MappingStart(_, anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::new(loc, "nesting too deep"));
                }
                stack.push((loc, Frame::Map(anchor, Vec::new(), None)));
            }
            Event::SequenceEnd => {
                if let Some((loc, Frame::Seq(anchor, items))) = stack.pop() {
                    built += 1;
                    finished = Some((
                        Node {
                            loc,
                            kind: NodeKind::Seq(items),
                        },
                        anchor,
                    ));
                }
            }
            Event::MappingEnd => {
                if let Some((loc, Frame::Map(anchor, entries, _))) = stack.pop() {
                    built += 1;
                    finished = Some((
                        Node {
                            loc,
                            kind: NodeKind::Map(entries),
                        },
                        anchor,
                    ));
                }
            }
            _ => {}
        }
        if built > MAX_NODES {
            return Err(Error::new(loc, "document too large"));
        }
        if let Some((node, anchor)) = finished {
            if anchor != 0 {
                anchors.insert(anchor, node.clone());
            }
            match stack.last_mut() {
                None => root = Some(node),
                Some((_, Frame::Seq(_, items))) => items.push(node),
                Some((_, Frame::Map(_, entries, pending))) => match pending.take() {
                    None => {
                        if let Some(name) = node.as_str() {
                            if entries.iter().any(|(k, _)| k.as_str() == Some(name)) {
                                return Err(Error::new(
                                    node.loc,
                                    format!("duplicate key `{name}` in this mapping"),
                                ));
                            }
                        }
                        *pending = Some(node);
                    }
                    Some(key) => entries.push((key, node)),
                },
            }
        }
    }
    if let Some(node) = root.take() {
        if !node.is_null() {
            docs.push(node);
        }
    }
    Ok(docs)
}

enum Frame {
    Seq(usize, Vec<Node>),
    Map(usize, Vec<(Node, Node)>, Option<Node>),
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar { .. } => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

/// Deserialize `T` from a node; errors carry the location of the node they concern.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &Node) -> Result<T, Error> {
    T::deserialize(De(node)).map_err(|e| e.at(node.loc))
}

/// A value together with the location of the node it was read from.
/// Only [`from_node`] fills in the location.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub loc: Loc,
    pub value: T,
}

impl<T: PartialEq> PartialEq for Located<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Located<T> {}
impl<T: std::hash::Hash> std::hash::Hash for Located<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

const LOCATED: &str = "$fwsim::Located";
const LOCATED_FIELDS: &[&str] = &["$line", "$col", "$value"];

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Located<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: de::Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Located<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Located<T>, A::Error> {
                let mut line = 0u32;
                let mut col = 0u32;
                let mut value = None;
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "$line" => line = map.next_value()?,
                        "$col" => col = map.next_value()?,
                        _ => value = Some(map.next_value()?),
                    }
                }
                let value = value.ok_or_else(|| de::Error::custom("missing value"))?;
                Ok(Located {
                    loc: Loc { line, col },
                    value,
                })
            }
        }
        d.deserialize_struct(LOCATED, LOCATED_FIELDS, V(std::marker::PhantomData))
    }
}

struct De<'a>(&'a Node);

fn parse_int(text: &str) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -value } else { value })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ if text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && text.bytes().any(|b| b.is_ascii_digit()) =>
        {
            text.parse().ok()
        }
        _ => None,
    }
}

impl<'a> De<'a> {
    fn unexpected(&self) -> de::Unexpected<'a> {
        match &self.0.kind {
            NodeKind::Scalar { text, .. } => de::Unexpected::Str(text),
            NodeKind::Seq(_) => de::Unexpected::Seq,
            NodeKind::Map(_) => de::Unexpected::Map,
        }
    }

    fn plain(&self) -> Option<&'a str> {
        match &self.0.kind {
            NodeKind::Scalar {
                text,
                style: Style::Plain,
            } => Some(text),
            _ => None,
        }
    }

    fn int<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.plain().and_then(parse_int) {
            Some(n) if n >= 0 && n <= u64::MAX as i128 => v.visit_u64(n as u64),
            Some(n) if n >= i64::MIN as i128 => v.visit_i64(n as i64),
            _ => Err(de::Error::invalid_type(self.unexpected(), &v)),
        }
    }
}

impl<'de, 'a> de::Deserializer<'de> for De<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let loc = self.0.loc;
        let r = match &self.0.kind {
            NodeKind::Scalar { text, style } => {
                if *style != Style::Plain {
                    v.visit_str(text)
                } else if is_null_text(text) {
                    v.visit_unit()
                } else if matches!(text.as_str(), "true" | "True" | "TRUE") {
                    v.visit_bool(true)
                } else if matches!(text.as_str(), "false" | "False" | "FALSE") {
                    v.visit_bool(false)
                } else if let Some(n) = parse_int(text) {
                    if n >= 0 && n <= u64::MAX as i128 {
                        v.visit_u64(n as u64)
                    } else if n >= i64::MIN as i128 {
                        v.visit_i64(n as i64)
                    } else {
                        v.visit_str(text)
                    }
                } else if let Some(f) = parse_float(text) {
                    v.visit_f64(f)
                } else {
                    v.visit_str(text)
                }
            }
            NodeKind::Seq(items) => v.visit_seq(Seq(items.iter())),
            NodeKind::Map(entries) => v.visit_map(Map {
                iter: entries.iter(),
                value: None,
            }),
        };
        r.map_err(|e: Error| e.at(loc))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let loc = self.0.loc;
        match self.plain() {
            Some("true" | "True" | "TRUE") => v.visit_bool(true),
            Some("false" | "False" | "FALSE") => v.visit_bool(false),
            _ => Err(de::Error::invalid_type(self.unexpected(), &v)),
        }
        .map_err(|e: Error| e.at(loc))
    }

    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let loc = self.0.loc;
        self.int(v).map_err(|e: Error| e.at(loc))
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_i8(v)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_i8(v)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_i8(v)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_i8(v)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_i8(v)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_i8(v)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_i8(v)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_f64(v)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let loc = self.0.loc;
        match self.plain().and_then(parse_float) {
            Some(f) => v.visit_f64(f),
            None => Err(de::Error::invalid_type(self.unexpected(), &v)),
        }
        .map_err(|e: Error| e.at(loc))
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let loc = self.0.loc;
        match &self.0.kind {
            NodeKind::Scalar { text, .. } => v.visit_str(text),
            _ => Err(de::Error::invalid_type(self.unexpected(), &v)),
        }
        .map_err(|e: Error| e.at(loc))
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.0.is_null() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let loc = self.0.loc;
        if self.0.is_null() {
            v.visit_unit()
        } else {
            Err(de::Error::invalid_type(self.unexpected(), &v)).map_err(|e: Error| e.at(loc))
        }
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(v)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let loc = self.0.loc;
        match &self.0.kind {
            NodeKind::Seq(items) => v.visit_seq(Seq(items.iter())),
            _ => Err(de::Error::invalid_type(self.unexpected(), &v)),
        }
        .map_err(|e: Error| e.at(loc))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let loc = self.0.loc;
        match &self.0.kind {
            NodeKind::Map(entries) => v.visit_map(Map {
                iter: entries.iter(),
                value: None,
            }),
            // A null mapping is an empty one, as Go's JSON decoding of Kubernetes objects has it.
            _ if self.0.is_null() => v.visit_map(Map {
                iter: [].iter(),
                value: None,
            }),
            _ => Err(de::Error::invalid_type(self.unexpected(), &v)),
        }
        .map_err(|e: Error| e.at(loc))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        if name == LOCATED {
            return v.visit_map(LocatedAccess {
                node: self.0,
                step: 0,
            });
        }
        let _ = fields;
        self.deserialize_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        let loc = self.0.loc;
        match &self.0.kind {
            NodeKind::Scalar { text, .. } => {
                v.visit_enum(de::value::StrDeserializer::<Error>::new(text))
            }
            NodeKind::Map(entries) if entries.len() == 1 => v.visit_enum(Enum(&entries[0])),
            _ => Err(de::Error::invalid_type(self.unexpected(), &v)),
        }
        .map_err(|e: Error| e.at(loc))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }
}

struct Seq<'a>(std::slice::Iter<'a, Node>);

impl<'de, 'a> SeqAccess<'de> for Seq<'a> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.0.next() {
            None => Ok(None),
            Some(node) => seed
                .deserialize(De(node))
                .map(Some)
                .map_err(|e| e.at(node.loc)),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map<'a> {
    iter: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
}

impl<'de, 'a> MapAccess<'de> for Map<'a> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            None => Ok(None),
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(De(k)).map(Some).map_err(|e| e.at(k.loc))
            }
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let node = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("value without a key"))?;
        seed.deserialize(De(node)).map_err(|e| e.at(node.loc))
    }
}

struct LocatedAccess<'a> {
    node: &'a Node,
    step: u8,
}

impl<'de, 'a> MapAccess<'de> for LocatedAccess<'a> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.step >= 3 {
            return Ok(None);
        }
        let key = LOCATED_FIELDS[self.step as usize];
        seed.deserialize(key.into_deserializer()).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let step = self.step;
        self.step += 1;
        match step {
            0 => seed.deserialize(self.node.loc.line.into_deserializer()),
            1 => seed.deserialize(self.node.loc.col.into_deserializer()),
            _ => seed
                .deserialize(De(self.node))
                .map_err(|e| e.at(self.node.loc)),
        }
    }
}

struct Enum<'a>(&'a (Node, Node));

impl<'de, 'a> de::EnumAccess<'de> for Enum<'a> {
    type Error = Error;
    type Variant = De<'a>;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, De<'a>), Error> {
        let (k, v) = self.0;
        let tag = seed.deserialize(De(k)).map_err(|e| e.at(k.loc))?;
        Ok((tag, De(v)))
    }
}

impl<'de, 'a> de::VariantAccess<'de> for De<'a> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self)
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct T {
        name: Located<String>,
        port: Option<u16>,
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
    }

    fn one(text: &str) -> Node {
        parse_documents(text).unwrap().remove(0)
    }

    #[test]
    fn locations_of_values_and_unknown_keys() {
        let t: T = from_node(&one("name: web\nport: 80\nlabels: {a: no, b: 80}\n")).unwrap();
        assert_eq!(t.name.loc, Loc { line: 1, col: 7 });
        assert_eq!(t.port, Some(80));
        assert_eq!(t.labels["a"], "no");
        assert_eq!(t.labels["b"], "80");
        let e = from_node::<T>(&one("name: web\nprot: 80\n")).unwrap_err();
        assert_eq!(e.loc, Some(Loc { line: 2, col: 1 }));
        assert!(e.message.contains("unknown field `prot`"), "{}", e.message);
        let e = from_node::<T>(&one("name: web\nport: 70000\n")).unwrap_err();
        assert_eq!(e.loc, Some(Loc { line: 2, col: 7 }));
        let e = from_node::<T>(&one("name: web\nport: \"80\"\n")).unwrap_err();
        assert!(e.message.contains("invalid type"), "{}", e.message);
        let e = from_node::<T>(&one("port: 80\n")).unwrap_err();
        assert!(e.message.contains("missing field `name`"));
        assert_eq!(e.loc, Some(Loc { line: 1, col: 1 }));
    }

    #[test]
    fn documents_duplicates_syntax_and_aliases() {
        let docs = parse_documents("a: 1\n---\n---\nb: 2\n...\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].loc.line, 4);
        let e = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.loc, Some(Loc { line: 2, col: 1 }));
        let e = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.message.starts_with("YAML syntax error"), "{}", e.message);
        let d = one("x: &a {k: v}\ny: *a\n");
        assert_eq!(d.get("y").unwrap().get("k").unwrap().as_str(), Some("v"));
        let deep = "[".repeat(10_000);
        assert!(parse_documents(&deep).is_err());
    }
}
