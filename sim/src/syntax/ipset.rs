//! `ipset save` output and `ipset restore` input: the syntax tree and its printer.
//!
//! Contract: [`parse`] reads the whole text into [`Save`] or returns an error with line and
//! column and what was expected there; it never panics, whatever the input. Commands:
//! `create`/`-N`, `add`/`-A`, `del`/`-D`, `flush`/`-F`, `destroy`/`-X` (`-exist` or `-!`
//! anywhere on the line), comments (`#`) and blank lines. Entries are parsed against the
//! type of the set they are added to (so the set must be created first, as `ipset restore`
//! requires): addresses of the set's family, CIDRs, ranges `a-b`, `[proto:]port[-port]`
//! (a bare port is tcp, as ipset(8) says and ipset 7.17 does), `icmp:TYPE`, interfaces,
//! set names of `list:set`. Types the kernel has but fwsim does not evaluate (`hash:mac`,
//! `hash:ip,mac`, `hash:ip,mark`, `bitmap:ip,mac`) are read; their entries are kept as
//! written. [`Save`]'s `Display` prints what `ipset restore` accepts (counters, comments,
//! timeouts kept); parse → print → parse gives the same tree.

use crate::values::Loc;
use std::fmt;
use std::net::IpAddr;

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

fn err<T>(loc: Loc, message: impl Into<String>) -> Result<T, Error> {
    Err(Error {
        loc,
        message: message.into(),
    })
}

/// An ipset type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetType {
    HashIp,
    HashNet,
    HashIpPort,
    HashNetPort,
    HashIpPortIp,
    HashIpPortNet,
    HashNetPortNet,
    HashNetNet,
    HashNetIface,
    HashIpMark,
    HashMac,
    HashIpMac,
    BitmapIp,
    BitmapIpMac,
    BitmapPort,
    ListSet,
}

/// What one dimension of a set type holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DimKind {
    /// An address (CIDRs and ranges in `add` lines are expanded to addresses).
    Ip,
    /// A network: CIDR (a plain address is a /32 or /128), `nomatch` allowed.
    Net,
    /// `[proto:]port`.
    Port,
    Iface,
    Mark,
    Mac,
    /// A set name (list:set).
    Set,
}

impl SetType {
    pub const ALL: [SetType; 16] = [
        SetType::HashIp,
        SetType::HashNet,
        SetType::HashIpPort,
        SetType::HashNetPort,
        SetType::HashIpPortIp,
        SetType::HashIpPortNet,
        SetType::HashNetPortNet,
        SetType::HashNetNet,
        SetType::HashNetIface,
        SetType::HashIpMark,
        SetType::HashMac,
        SetType::HashIpMac,
        SetType::BitmapIp,
        SetType::BitmapIpMac,
        SetType::BitmapPort,
        SetType::ListSet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SetType::HashIp => "hash:ip",
            SetType::HashNet => "hash:net",
            SetType::HashIpPort => "hash:ip,port",
            SetType::HashNetPort => "hash:net,port",
            SetType::HashIpPortIp => "hash:ip,port,ip",
            SetType::HashIpPortNet => "hash:ip,port,net",
            SetType::HashNetPortNet => "hash:net,port,net",
            SetType::HashNetNet => "hash:net,net",
            SetType::HashNetIface => "hash:net,iface",
            SetType::HashIpMark => "hash:ip,mark",
            SetType::HashMac => "hash:mac",
            SetType::HashIpMac => "hash:ip,mac",
            SetType::BitmapIp => "bitmap:ip",
            SetType::BitmapIpMac => "bitmap:ip,mac",
            SetType::BitmapPort => "bitmap:port",
            SetType::ListSet => "list:set",
        }
    }

    /// The dimensions of an element, in order.
    pub fn dims(self) -> &'static [DimKind] {
        use DimKind::*;
        match self {
            SetType::HashIp | SetType::BitmapIp => &[Ip],
            SetType::HashNet => &[Net],
            SetType::HashIpPort => &[Ip, Port],
            SetType::HashNetPort => &[Net, Port],
            SetType::HashIpPortIp => &[Ip, Port, Ip],
            SetType::HashIpPortNet => &[Ip, Port, Net],
            SetType::HashNetPortNet => &[Net, Port, Net],
            SetType::HashNetNet => &[Net, Net],
            SetType::HashNetIface => &[Net, Iface],
            SetType::HashIpMark => &[Ip, Mark],
            SetType::HashMac => &[Mac],
            SetType::HashIpMac | SetType::BitmapIpMac => &[Ip, Mac],
            SetType::BitmapPort => &[Port],
            SetType::ListSet => &[Set],
        }
    }

    /// Does the type store elements of an address family (`family inet|inet6`)?
    pub fn has_family(self) -> bool {
        !matches!(
            self,
            SetType::BitmapPort | SetType::ListSet | SetType::HashMac
        )
    }

    /// Can elements be `nomatch` (types with a net dimension)?
    pub fn has_nomatch(self) -> bool {
        self.dims().contains(&DimKind::Net)
    }

    fn is_bitmap(self) -> bool {
        matches!(
            self,
            SetType::BitmapIp | SetType::BitmapIpMac | SetType::BitmapPort
        )
    }
}

impl std::str::FromStr for SetType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        // ipset accepts the short aliases of the old types too (iphash, nethash, ...).
        let s = match s {
            "iphash" => "hash:ip",
            "nethash" => "hash:net",
            "ipporthash" => "hash:ip,port",
            "ipportiphash" => "hash:ip,port,ip",
            "ipportnethash" => "hash:ip,port,net",
            "ipmap" => "bitmap:ip",
            "macipmap" => "bitmap:ip,mac",
            "portmap" => "bitmap:port",
            "setlist" => "list:set",
            s => s,
        };
        SetType::ALL.into_iter().find(|t| t.as_str() == s).ok_or(())
    }
}

/// One option word of a `create` or `add` line with its value (`counters` has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionKv {
    pub name: String,
    pub value: Option<String>,
    pub loc: Loc,
}

/// `create NAME TYPE [options]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    pub name: String,
    pub ty: SetType,
    /// True for `family inet6`.
    pub v6: bool,
    /// bitmap:ip `range` (addresses, inclusive) or bitmap:port `range` (ports).
    pub range: Option<(u128, u128)>,
    /// hash:ip / bitmap:ip `netmask` (a prefix length).
    pub netmask: Option<u8>,
    /// Every option as written, in order (`family` included), for printing.
    pub options: Vec<OptionKv>,
    pub exist: bool,
    pub loc: Loc,
}

/// One part of an entry (one per dimension of the set type).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// An address (`prefix` None, `lo == hi`), a CIDR (`prefix` Some, `lo` as written), or
    /// a range `lo-hi` (`prefix` None).
    Addr {
        lo: IpAddr,
        hi: IpAddr,
        prefix: Option<u8>,
    },
    /// `proto:port[-port]`; `proto` None for a bare bitmap:port port. ICMP ports are
    /// `type << 8 | code`, written by name when one is known.
    Port { proto: Option<u8>, lo: u16, hi: u16 },
    /// An interface; `physdev:` names a bridge port.
    Iface { name: String, physdev: bool },
    /// Kept as written (marks, MACs): fwsim does not evaluate these types.
    Other(String),
    /// A member set of a list:set.
    Set(String),
}

/// `add NAME ENTRY [options]` (or `del`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Add {
    pub set: String,
    pub parts: Vec<Part>,
    pub nomatch: bool,
    /// list:set `before NAME` / `after NAME`.
    pub position: Option<(bool, String)>,
    /// Other options (timeout, comment, packets, bytes, skbmark...) as written.
    pub options: Vec<OptionKv>,
    pub exist: bool,
    pub loc: Loc,
    /// Where the entry starts.
    pub entry_loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Create(Create),
    Add(Add),
    Del(Add),
    /// `flush [NAME]`.
    Flush {
        set: Option<String>,
        loc: Loc,
    },
    /// `destroy [NAME]`.
    Destroy {
        set: Option<String>,
        loc: Loc,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Save {
    pub commands: Vec<Command>,
}

#[derive(Clone, Debug)]
struct Word {
    text: String,
    quoted: bool,
    loc: Loc,
}

/// Split a line as ipset restore does: whitespace separates, double quotes group (comments).
fn words(line: &str, line_no: u32) -> Result<Vec<Word>, Error> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let loc = Loc {
            line: line_no,
            col: line[..start].chars().count() as u32 + 1,
        };
        let mut text = String::new();
        let mut quoted = false;
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '"' {
                quoted = true;
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '"' {
                        closed = true;
                        break;
                    }
                    text.push(c);
                }
                if !closed {
                    return err(loc, "unterminated quote: expected a closing \"");
                }
            } else {
                text.push(c);
            }
        }
        out.push(Word { text, quoted, loc });
    }
    Ok(out)
}

/// Does this text look like ipset commands (its first meaningful line is `create NAME
/// TYPE` with a known type, or `-N`)? Used to tell an ipset dump from a ruleset.
pub fn looks_like_ipset(text: &str) -> bool {
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    else {
        return false;
    };
    let w: Vec<&str> = first.split_whitespace().collect();
    matches!(w.as_slice(), ["create" | "-N", _, ty, ..] if ty.parse::<SetType>().is_ok())
}

/// Parse ipset restore text.
pub fn parse(text: &str) -> Result<Save, Error> {
    let mut p = Parser {
        save: Save::default(),
        types: std::collections::HashMap::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut ws = words(line, line_no)?;
        let mut exist = false;
        ws.retain(|w| {
            let e = !w.quoted && (w.text == "-exist" || w.text == "-!");
            exist |= e;
            !e
        });
        if ws.is_empty() {
            continue;
        }
        p.line(ws, exist)?;
    }
    Ok(p.save)
}

struct Parser {
    save: Save,
    /// Created sets: their type, family and (bitmap) range, as of the current line.
    types: std::collections::HashMap<String, (SetType, bool)>,
}

fn uint<T: std::str::FromStr>(w: &Word, what: &str) -> Result<T, Error> {
    let t = w.text.as_str();
    let parsed = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
            .ok()
            .and_then(|v| v.to_string().parse().ok())
    } else {
        t.parse().ok()
    };
    parsed.ok_or_else(|| Error {
        loc: w.loc,
        message: format!("`{t}`: expected {what}"),
    })
}

fn col_after(loc: Loc, chars: usize) -> Loc {
    Loc {
        line: loc.line,
        col: loc.col + chars as u32,
    }
}

fn set_name(w: &Word) -> Result<String, Error> {
    if w.text.is_empty() || w.text.len() > 31 {
        return err(
            w.loc,
            format!(
                "set name `{}`: expected 1 to 31 characters (IPSET_MAXNAMELEN)",
                w.text
            ),
        );
    }
    Ok(w.text.clone())
}

impl Parser {
    fn line(&mut self, ws: Vec<Word>, exist: bool) -> Result<(), Error> {
        let cmd = &ws[0];
        match cmd.text.as_str() {
            "create" | "-N" | "n" => self.create(&ws, exist),
            "add" | "-A" | "a" => {
                let a = self.add(&ws, exist)?;
                self.save.commands.push(Command::Add(a));
                Ok(())
            }
            "del" | "-D" | "d" => {
                let a = self.add(&ws, exist)?;
                self.save.commands.push(Command::Del(a));
                Ok(())
            }
            "flush" | "-F" | "destroy" | "-X" => {
                let flush = matches!(cmd.text.as_str(), "flush" | "-F");
                let set = match ws.get(1) {
                    Some(w) => {
                        if !self.types.contains_key(&w.text) {
                            return err(
                                w.loc,
                                format!("set `{}` does not exist: expected a created set", w.text),
                            );
                        }
                        Some(w.text.clone())
                    }
                    None => None,
                };
                if let Some(w) = ws.get(2) {
                    return err(w.loc, format!("`{}`: expected the end of the line", w.text));
                }
                if !flush {
                    match &set {
                        Some(s) => {
                            self.types.remove(s);
                        }
                        None => self.types.clear(),
                    }
                }
                let loc = cmd.loc;
                self.save.commands.push(if flush {
                    Command::Flush { set, loc }
                } else {
                    Command::Destroy { set, loc }
                });
                Ok(())
            }
            "swap" | "-W" | "rename" | "-E" | "test" | "-T" | "list" | "-L" | "save" | "-S"
            | "restore" | "-R" => err(
                cmd.loc,
                format!(
                    "`{}` is not read by fwsim: expected create, add, del, flush or destroy (ipset save output)",
                    cmd.text
                ),
            ),
            "Name:" => err(
                cmd.loc,
                "this is `ipset list` output: expected `ipset save` output (create/add lines)",
            ),
            other => err(
                cmd.loc,
                format!("`{other}`: expected an ipset command (create, add, del, flush, destroy)"),
            ),
        }
    }

    fn create(&mut self, ws: &[Word], exist: bool) -> Result<(), Error> {
        let cmd = &ws[0];
        let Some(name_w) = ws.get(1) else {
            return err(
                col_after(cmd.loc, cmd.text.len() + 1),
                "expected a set name",
            );
        };
        let name = set_name(name_w)?;
        let Some(ty_w) = ws.get(2) else {
            return err(
                col_after(name_w.loc, name_w.text.len() + 1),
                "expected a set type (hash:ip, hash:net, hash:ip,port, bitmap:port, list:set...)",
            );
        };
        let ty: SetType = ty_w.text.parse().map_err(|()| Error {
            loc: ty_w.loc,
            message: format!(
                "set type `{}`: expected one of {}",
                ty_w.text,
                SetType::ALL.map(SetType::as_str).join(", ")
            ),
        })?;
        let mut c = Create {
            name: name.clone(),
            ty,
            v6: false,
            range: None,
            netmask: None,
            options: Vec::new(),
            exist,
            loc: cmd.loc,
        };
        let mut i = 3;
        while i < ws.len() {
            let w = &ws[i];
            let flag = |c: &mut Create| {
                c.options.push(OptionKv {
                    name: w.text.clone(),
                    value: None,
                    loc: w.loc,
                })
            };
            match w.text.as_str() {
                "counters" | "comment" | "skbinfo" | "forceadd" => {
                    flag(&mut c);
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let Some(v) = ws.get(i + 1) else {
                return err(
                    w.loc,
                    format!(
                        "`{}`: expected a create option (family, hashsize, maxelem, timeout, counters, comment, skbinfo, bucketsize, initval, range, netmask, size, markmask, forceadd) with its value",
                        w.text
                    ),
                );
            };
            match w.text.as_str() {
                "family" => {
                    c.v6 = match v.text.as_str() {
                        "inet" | "ipv4" => false,
                        "inet6" | "ipv6" => true,
                        _ => return err(v.loc, format!("family `{}`: expected inet or inet6", v.text)),
                    };
                    if !ty.has_family() || (ty.is_bitmap() && c.v6) {
                        return err(
                            w.loc,
                            format!("{} takes no `family inet6`: expected family inet", ty.as_str()),
                        );
                    }
                }
                "hashsize" | "maxelem" | "timeout" | "bucketsize" | "size" | "probes"
                | "resize" => {
                    uint::<u32>(v, "a number")?;
                }
                "initval" | "markmask" => {
                    uint::<u32>(v, "a 32-bit number (0x... or decimal)")?;
                }
                "netmask" => {
                    let max = if c.v6 { 128 } else { 32 };
                    let n: u8 = uint(v, "a prefix length")?;
                    if n == 0 || n > max {
                        return err(v.loc, format!("netmask {n}: expected 1 to {max}"));
                    }
                    if !matches!(ty, SetType::HashIp | SetType::BitmapIp) {
                        return err(
                            w.loc,
                            format!("{} takes no `netmask`: expected hash:ip or bitmap:ip", ty.as_str()),
                        );
                    }
                    c.netmask = Some(n);
                }
                "range" => {
                    c.range = Some(match ty {
                        SetType::BitmapIp | SetType::BitmapIpMac => {
                            match addr_part(v, &v.text, false)? {
                                Part::Addr { lo, hi, prefix } => bounds(lo, hi, prefix),
                                _ => unreachable_part(v.loc)?,
                            }
                        }
                        SetType::BitmapPort => {
                            let (lo, hi) = port_range(v, &v.text)?;
                            (lo.into(), hi.into())
                        }
                        _ => {
                            return err(
                                w.loc,
                                format!("{} takes no `range`: expected a bitmap type", ty.as_str()),
                            )
                        }
                    });
                }
                _ => {
                    return err(
                        w.loc,
                        format!(
                            "`{}`: expected a create option (family, hashsize, maxelem, timeout, counters, comment, skbinfo, bucketsize, initval, range, netmask, size, markmask, forceadd)",
                            w.text
                        ),
                    )
                }
            }
            c.options.push(OptionKv {
                name: w.text.clone(),
                value: Some(v.text.clone()),
                loc: w.loc,
            });
            i += 2;
        }
        if ty.is_bitmap() && c.range.is_none() {
            return err(cmd.loc, format!("{} needs `range FROM-TO`", ty.as_str()));
        }
        if let Some((old, old_v6)) = self.types.get(&name) {
            if !exist || *old != ty || *old_v6 != c.v6 {
                return err(
                    name_w.loc,
                    format!("set `{name}` already exists: expected -exist and the same type and family for a second create"),
                );
            }
        }
        self.types.insert(name, (ty, c.v6));
        self.save.commands.push(Command::Create(c));
        Ok(())
    }

    fn add(&mut self, ws: &[Word], exist: bool) -> Result<Add, Error> {
        let cmd = &ws[0];
        let Some(name_w) = ws.get(1) else {
            return err(
                col_after(cmd.loc, cmd.text.len() + 1),
                "expected a set name",
            );
        };
        let Some(&(ty, v6)) = self.types.get(&name_w.text) else {
            return err(
                name_w.loc,
                format!(
                    "set `{}` does not exist: expected a set created on an earlier line",
                    name_w.text
                ),
            );
        };
        let Some(entry) = ws.get(2) else {
            return err(
                col_after(name_w.loc, name_w.text.len() + 1),
                format!("expected an entry of {}", ty.as_str()),
            );
        };
        let parts = self.entry(entry, ty, v6)?;
        let mut a = Add {
            set: name_w.text.clone(),
            parts,
            nomatch: false,
            position: None,
            options: Vec::new(),
            exist,
            loc: cmd.loc,
            entry_loc: entry.loc,
        };
        let mut i = 3;
        while i < ws.len() {
            let w = &ws[i];
            match w.text.as_str() {
                "nomatch" if ty.has_nomatch() => {
                    a.nomatch = true;
                    i += 1;
                    continue;
                }
                "nomatch" => {
                    return err(
                        w.loc,
                        format!(
                            "{} has no `nomatch` entries: expected a type with a net dimension (hash:net...)",
                            ty.as_str()
                        ),
                    )
                }
                _ => {}
            }
            let Some(v) = ws.get(i + 1) else {
                return err(
                    w.loc,
                    format!(
                        "`{}`: expected an entry option (timeout, nomatch, comment, packets, bytes, skbmark, skbprio, skbqueue, before, after) with its value",
                        w.text
                    ),
                );
            };
            match w.text.as_str() {
                "timeout" | "packets" | "bytes" | "skbqueue" => {
                    uint::<u64>(v, "a number")?;
                }
                "skbmark" | "skbprio" | "comment" => {}
                "before" | "after" if ty == SetType::ListSet => {
                    if !self.types.contains_key(&v.text) {
                        return err(v.loc, format!("set `{}` does not exist: expected a member set", v.text));
                    }
                    a.position = Some((w.text == "before", v.text.clone()));
                    i += 2;
                    continue;
                }
                _ => {
                    return err(
                        w.loc,
                        format!(
                            "`{}`: expected an entry option (timeout, nomatch, comment, packets, bytes, skbmark, skbprio, skbqueue{})",
                            w.text,
                            if ty == SetType::ListSet { ", before, after" } else { "" }
                        ),
                    )
                }
            }
            a.options.push(OptionKv {
                name: w.text.clone(),
                value: Some(v.text.clone()),
                loc: w.loc,
            });
            i += 2;
        }
        Ok(a)
    }

    fn entry(&self, w: &Word, ty: SetType, v6: bool) -> Result<Vec<Part>, Error> {
        let dims = ty.dims();
        if ty == SetType::ListSet {
            return match self.types.get(&w.text) {
                None => err(
                    w.loc,
                    format!(
                        "set `{}` does not exist: a list:set holds existing sets",
                        w.text
                    ),
                ),
                Some((SetType::ListSet, _)) => err(
                    w.loc,
                    "a list:set cannot hold another list:set: expected a set of another type",
                ),
                Some(_) => Ok(vec![Part::Set(w.text.clone())]),
            };
        }
        // MACs contain ':' but no ','; split on ',' for every type.
        let pieces: Vec<&str> = w.text.split(',').collect();
        if pieces.len() != dims.len() {
            return err(
                w.loc,
                format!(
                    "entry `{}`: expected {} part{} separated by commas for {}",
                    w.text,
                    dims.len(),
                    if dims.len() == 1 { "" } else { "s" },
                    ty.as_str()
                ),
            );
        }
        let mut out = Vec::new();
        let mut offset = 0usize;
        for (piece, dim) in pieces.iter().zip(dims) {
            let loc = col_after(w.loc, offset);
            offset += piece.chars().count() + 1;
            let at = Word {
                text: piece.to_string(),
                quoted: false,
                loc,
            };
            let part = match dim {
                DimKind::Ip | DimKind::Net => {
                    let part = addr_part(&at, piece, v6)?;
                    if let Part::Addr { lo, hi, prefix } = &part {
                        let net = *dim == DimKind::Net;
                        if net && *prefix == Some(0) && ty != SetType::HashNetIface {
                            return err(
                                loc,
                                format!("`{piece}`: the CIDR /0 is invalid in {}: expected a prefix length of 1 or more", ty.as_str()),
                            );
                        }
                        let null = prefix.is_none() && lo == hi && lo.is_unspecified();
                        if !net && !ty.is_bitmap() && null {
                            return err(
                                loc,
                                format!("`{piece}`: a null address cannot be stored in a hash set: expected another address"),
                            );
                        }
                    }
                    part
                }
                DimKind::Port => {
                    let default = if ty == SetType::BitmapPort {
                        None
                    } else {
                        Some(6)
                    };
                    port_part(&at, piece, v6, default)?
                }
                DimKind::Iface => {
                    let (name, physdev) = match piece.strip_prefix("physdev:") {
                        Some(n) => (n, true),
                        None => (*piece, false),
                    };
                    if name.is_empty() || name.len() > 15 {
                        return err(
                            loc,
                            format!("interface `{name}`: expected 1 to 15 characters"),
                        );
                    }
                    Part::Iface {
                        name: name.to_string(),
                        physdev,
                    }
                }
                DimKind::Mark | DimKind::Mac => Part::Other(piece.to_string()),
                DimKind::Set => Part::Set(piece.to_string()),
            };
            out.push(part);
        }
        Ok(out)
    }
}

fn unreachable_part<T>(loc: Loc) -> Result<T, Error> {
    err(loc, "expected an address range")
}

/// The inclusive numeric bounds of an address part.
pub fn bounds(lo: IpAddr, hi: IpAddr, prefix: Option<u8>) -> (u128, u128) {
    let n = |a: IpAddr| match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    match prefix {
        None => (n(lo), n(hi)),
        Some(p) => {
            let bits = if lo.is_ipv4() { 32 } else { 128 };
            let host = bits - u32::from(p);
            let mask: u128 = if host >= 128 {
                u128::MAX
            } else {
                (1u128 << host) - 1
            };
            let a = n(lo) & !mask;
            (a, a | mask)
        }
    }
}

fn parse_ip(text: &str, v6: bool, loc: Loc) -> Result<IpAddr, Error> {
    match text.parse::<IpAddr>() {
        Ok(a) if a.is_ipv6() == v6 => Ok(a),
        Ok(_) => err(
            loc,
            format!(
                "`{text}`: expected an IPv{} address (the set is family {})",
                if v6 { 6 } else { 4 },
                if v6 { "inet6" } else { "inet" }
            ),
        ),
        Err(_) => err(
            loc,
            format!(
                "`{text}`: expected an IPv{} address",
                if v6 { 6 } else { 4 }
            ),
        ),
    }
}

/// `a`, `a/p` or `a-b`.
fn addr_part(w: &Word, text: &str, v6: bool) -> Result<Part, Error> {
    let loc = w.loc;
    if let Some((a, p)) = text.split_once('/') {
        let lo = parse_ip(a, v6, loc)?;
        let max = if v6 { 128 } else { 32 };
        let at = col_after(loc, a.chars().count() + 1);
        let prefix: u8 = p.parse().map_err(|_| Error {
            loc: at,
            message: format!("`{p}`: expected a prefix length 0 to {max}"),
        })?;
        if prefix > max {
            return err(at, format!("`{p}`: expected a prefix length 0 to {max}"));
        }
        return Ok(Part::Addr {
            lo,
            hi: lo,
            prefix: Some(prefix),
        });
    }
    // IPv6 addresses contain no '-', so the split is unambiguous.
    if let Some((a, b)) = text.split_once('-') {
        let lo = parse_ip(a, v6, loc)?;
        let hi = parse_ip(b, v6, col_after(loc, a.chars().count() + 1))?;
        if bounds(lo, lo, None).0 > bounds(hi, hi, None).0 {
            return err(loc, format!("range `{text}`: expected FROM <= TO"));
        }
        return Ok(Part::Addr {
            lo,
            hi,
            prefix: None,
        });
    }
    let a = parse_ip(text, v6, loc)?;
    Ok(Part::Addr {
        lo: a,
        hi: a,
        prefix: None,
    })
}

/// Ports ipset knows by service name (getservbyname); numbers are what `ipset save` prints.
fn service(name: &str) -> Option<u16> {
    Some(match name {
        "ftp-data" => 20,
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "domain" => 53,
        "bootps" => 67,
        "bootpc" => 68,
        "tftp" => 69,
        "http" | "www" => 80,
        "pop3" => 110,
        "ntp" => 123,
        "imap" | "imap2" => 143,
        "snmp" => 161,
        "ldap" => 389,
        "https" => 443,
        "submission" => 587,
        "ldaps" => 636,
        "imaps" => 993,
        "pop3s" => 995,
        "mysql" => 3306,
        "postgresql" => 5432,
        _ => return None,
    })
}

fn port_number(w: &Word, text: &str) -> Result<u16, Error> {
    text.parse::<u16>()
        .ok()
        .or_else(|| service(text))
        .ok_or_else(|| Error {
            loc: w.loc,
            message: format!("`{text}`: expected a port number 0 to 65535 (or a service name)"),
        })
}

fn port_range(w: &Word, text: &str) -> Result<(u16, u16), Error> {
    match text.split_once('-') {
        Some((a, b)) => {
            let lo = port_number(w, a)?;
            let hi = port_number(w, b)?;
            if lo > hi {
                return err(w.loc, format!("port range `{text}`: expected FROM <= TO"));
            }
            Ok((lo, hi))
        }
        None => {
            let p = port_number(w, text)?;
            Ok((p, p))
        }
    }
}

/// ICMP type names ipset knows (lib/icmp.c), as (name, type, code).
pub const ICMP_NAMES: &[(&str, u8, u8)] = &[
    ("echo-reply", 0, 0),
    ("pong", 0, 0),
    ("network-unreachable", 3, 0),
    ("host-unreachable", 3, 1),
    ("protocol-unreachable", 3, 2),
    ("port-unreachable", 3, 3),
    ("fragmentation-needed", 3, 4),
    ("source-route-failed", 3, 5),
    ("network-unknown", 3, 6),
    ("host-unknown", 3, 7),
    ("network-prohibited", 3, 9),
    ("host-prohibited", 3, 10),
    ("TOS-network-unreachable", 3, 11),
    ("TOS-host-unreachable", 3, 12),
    ("communication-prohibited", 3, 13),
    ("host-precedence-violation", 3, 14),
    ("precedence-cutoff", 3, 15),
    ("source-quench", 4, 0),
    ("network-redirect", 5, 0),
    ("host-redirect", 5, 1),
    ("TOS-network-redirect", 5, 2),
    ("TOS-host-redirect", 5, 3),
    ("echo-request", 8, 0),
    ("ping", 8, 0),
    ("router-advertisement", 9, 0),
    ("router-solicitation", 10, 0),
    ("ttl-zero-during-transit", 11, 0),
    ("ttl-zero-during-reassembly", 11, 1),
    ("ip-header-bad", 12, 0),
    ("required-option-missing", 12, 1),
    ("timestamp-request", 13, 0),
    ("timestamp-reply", 14, 0),
    ("address-mask-request", 17, 0),
    ("address-mask-reply", 18, 0),
];

/// ICMPv6 type names ipset knows (lib/icmpv6.c).
pub const ICMPV6_NAMES: &[(&str, u8, u8)] = &[
    ("no-route", 1, 0),
    ("communication-prohibited", 1, 1),
    ("address-unreachable", 1, 3),
    ("port-unreachable", 1, 4),
    ("packet-too-big", 2, 0),
    ("ttl-zero-during-transit", 3, 0),
    ("ttl-zero-during-reassembly", 3, 1),
    ("bad-header", 4, 0),
    ("unknown-header-type", 4, 1),
    ("unknown-option", 4, 2),
    ("echo-request", 128, 0),
    ("ping", 128, 0),
    ("echo-reply", 129, 0),
    ("pong", 129, 0),
    ("router-solicitation", 133, 0),
    ("router-advertisement", 134, 0),
    ("neighbour-solicitation", 135, 0),
    ("neighbor-solicitation", 135, 0),
    ("neighbour-advertisement", 136, 0),
    ("neighbor-advertisement", 136, 0),
    ("redirect", 137, 0),
];

/// `[proto:]port[-port]`, `icmp:TYPE`, `icmpv6:TYPE`, `PROTO:0`.
fn port_part(w: &Word, text: &str, v6: bool, default: Option<u8>) -> Result<Part, Error> {
    let (proto, rest, rest_loc) = match text.split_once(':') {
        Some((p, r)) => {
            let n = crate::netfilter::from_iptables::protocol_number(p)
                .filter(|n| *n != 0)
                .ok_or_else(|| Error {
                    loc: w.loc,
                    message: format!("protocol `{p}`: expected tcp, udp, sctp, udplite, icmp, icmpv6 or another protocol name"),
                })?;
            (Some(n), r, col_after(w.loc, p.chars().count() + 1))
        }
        None => (default, text, w.loc),
    };
    let at = Word {
        text: rest.to_string(),
        quoted: false,
        loc: rest_loc,
    };
    match proto {
        Some(1) | Some(58) => {
            let icmp6 = proto == Some(58);
            if icmp6 != v6 {
                return err(
                    w.loc,
                    format!(
                        "protocol {}: the set is family {}",
                        if icmp6 { "icmpv6" } else { "icmp" },
                        if v6 {
                            "inet6: expected icmpv6"
                        } else {
                            "inet: expected icmp"
                        }
                    ),
                );
            }
            let names = if icmp6 { ICMPV6_NAMES } else { ICMP_NAMES };
            let (ty, code) = if let Some((t, c)) = rest.split_once('/') {
                match (t.parse::<u8>(), c.parse::<u8>()) {
                    (Ok(t), Ok(c)) => (t, c),
                    _ => {
                        return err(
                            rest_loc,
                            format!("`{rest}`: expected TYPE/CODE numbers 0 to 255"),
                        )
                    }
                }
            } else if let Some(&(_, t, c)) =
                names.iter().find(|(n, ..)| n.eq_ignore_ascii_case(rest))
            {
                (t, c)
            } else {
                return err(
                    rest_loc,
                    format!(
                        "ICMP type `{rest}`: expected TYPE/CODE or a name such as echo-request"
                    ),
                );
            };
            let port = u16::from(ty) << 8 | u16::from(code);
            Ok(Part::Port {
                proto,
                lo: port,
                hi: port,
            })
        }
        Some(6 | 17 | 132 | 136) | None => {
            let (lo, hi) = port_range(&at, rest)?;
            Ok(Part::Port { proto, lo, hi })
        }
        Some(p) => {
            if rest != "0" {
                return err(
                    rest_loc,
                    format!("`{rest}`: protocol {p} has no ports: expected the pseudo port 0"),
                );
            }
            Ok(Part::Port {
                proto: Some(p),
                lo: 0,
                hi: 0,
            })
        }
    }
}

fn proto_name(p: u8, v6: bool) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 if v6 => "ipv6-icmp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        n => n.to_string(),
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Addr { lo, hi, prefix } => match prefix {
                Some(p) => write!(f, "{lo}/{p}"),
                None if lo == hi => write!(f, "{lo}"),
                None => write!(f, "{lo}-{hi}"),
            },
            Part::Port { proto, lo, hi } => {
                if let Some(p @ (1 | 58)) = proto {
                    let names = if *p == 58 { ICMPV6_NAMES } else { ICMP_NAMES };
                    let (t, c) = ((lo >> 8) as u8, (lo & 0xff) as u8);
                    // Print the name ipset save prints (the first one of that type/code).
                    return match names.iter().find(|(_, nt, nc)| *nt == t && *nc == c) {
                        Some((n, ..)) => write!(f, "{}:{n}", proto_name(*p, *p == 58)),
                        None => write!(f, "{}:{t}/{c}", proto_name(*p, *p == 58)),
                    };
                }
                if let Some(p) = proto {
                    write!(f, "{}:", proto_name(*p, false))?;
                }
                if lo == hi {
                    write!(f, "{lo}")
                } else {
                    write!(f, "{lo}-{hi}")
                }
            }
            Part::Iface { name, physdev } => {
                if *physdev {
                    f.write_str("physdev:")?;
                }
                f.write_str(name)
            }
            Part::Other(s) | Part::Set(s) => f.write_str(s),
        }
    }
}

/// A word as `ipset restore` reads it back: quoted when it is empty, holds whitespace or
/// would be taken for `-exist`/`-!` (the tokenizer leaves no `"` inside a word).
struct Q<'a>(&'a str);

impl fmt::Display for Q<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.is_empty() || s.contains(char::is_whitespace) || s == "-exist" || s == "-!" {
            write!(f, "\"{s}\"")
        } else {
            f.write_str(s)
        }
    }
}

fn write_opts(f: &mut fmt::Formatter<'_>, opts: &[OptionKv]) -> fmt::Result {
    for o in opts {
        write!(f, " {}", o.name)?;
        if let Some(v) = &o.value {
            if o.name == "comment" {
                write!(f, " \"{v}\"")?;
            } else {
                write!(f, " {}", Q(v))?;
            }
        }
    }
    Ok(())
}

impl fmt::Display for Add {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", Q(&self.set))?;
        let entry: Vec<String> = self.parts.iter().map(Part::to_string).collect();
        write!(f, "{}", Q(&entry.join(",")))?;
        if let Some((before, other)) = &self.position {
            write!(
                f,
                " {} {}",
                if *before { "before" } else { "after" },
                Q(other)
            )?;
        }
        write_opts(f, &self.options)?;
        if self.nomatch {
            f.write_str(" nomatch")?;
        }
        if self.exist {
            f.write_str(" -exist")?;
        }
        Ok(())
    }
}

impl fmt::Display for Save {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.commands {
            match c {
                Command::Create(c) => {
                    write!(f, "create {} {}", Q(&c.name), c.ty.as_str())?;
                    write_opts(f, &c.options)?;
                    if c.exist {
                        f.write_str(" -exist")?;
                    }
                    writeln!(f)?;
                }
                Command::Add(a) => writeln!(f, "add {a}")?,
                Command::Del(a) => writeln!(f, "del {a}")?,
                Command::Flush { set, .. } => match set {
                    Some(s) => writeln!(f, "flush {}", Q(s))?,
                    None => writeln!(f, "flush")?,
                },
                Command::Destroy { set, .. } => match set {
                    Some(s) => writeln!(f, "destroy {}", Q(s))?,
                    None => writeln!(f, "destroy")?,
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(text: &str) -> (u32, u32, String) {
        let e = parse(text).unwrap_err();
        (e.loc.line, e.loc.col, e.message)
    }

    fn adds(text: &str) -> Vec<Add> {
        parse(text)
            .unwrap()
            .commands
            .into_iter()
            .filter_map(|c| match c {
                Command::Add(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_type_and_entry_form() {
        let text = "\
# ipset save
create a hash:ip family inet hashsize 1024 maxelem 65536 counters comment bucketsize 12 initval 0x8b858dd7
add a 10.0.0.1 packets 3 bytes 180 comment \"hi there\"
add a 10.0.1.0/30
add a 10.0.2.1-10.0.2.9 timeout 0
create n hash:net family inet6 timeout 300
add n 2001:db8::/32 timeout 99
add n 2001:db8:1::/48 nomatch
create p hash:ip,port
add p 10.0.0.1,80
add p 10.0.0.1,udp:53
add p 10.0.0.1,icmp:echo-request
add p 10.0.0.1,icmp:3/3
add p 10.0.0.1,gre:0
add p 10.0.0.2,tcp:8000-8002
add p 10.0.0.3,https
create np hash:net,port
add np 10.0.0.0/8,sctp:9
create ipi hash:ip,port,ip
add ipi 10.0.0.1,udp:53,10.0.0.2
create ipn hash:ip,port,net
add ipn 10.0.0.1,tcp:1,10.1.0.0/16 nomatch
create npn hash:net,port,net
add npn 10.0.0.0/24,tcp:1,10.1.0.0/16
create nn hash:net,net
add nn 10.0.0.0/24,10.1.0.0/16
create ni hash:net,iface family inet
add ni 0.0.0.0/0,eth0
add ni 10.0.0.0/8,physdev:eth1
create m hash:mac
add m 02:00:00:00:00:01
create bp bitmap:port range 0-1024
add bp 22
add bp 80-82
create bi bitmap:ip range 10.0.0.0/24 netmask 30
add bi 10.0.0.5
create l list:set size 8
add l a
add l n before a
-N old iphash
-A old 192.0.2.1 -exist
del a 10.0.0.1
flush p
destroy old
";
        let save = parse(text).unwrap();
        // Printed, it parses back to the same tree (locations aside: compare prints).
        let printed = save.to_string();
        assert_eq!(parse(&printed).unwrap().to_string(), printed);
        let a = adds(text);
        assert_eq!(a[0].options[2].value.as_deref(), Some("hi there"));
        assert_eq!(a[1].parts[0].to_string(), "10.0.1.0/30");
        assert_eq!(a[2].parts[0].to_string(), "10.0.2.1-10.0.2.9");
        assert!(a[4].nomatch);
        // Ports: bare = tcp; icmp as type << 8 | code, printed by name.
        assert_eq!(
            a[5].parts[1],
            Part::Port {
                proto: Some(6),
                lo: 80,
                hi: 80
            }
        );
        assert_eq!(a[7].parts[1].to_string(), "icmp:echo-request");
        assert_eq!(
            a[7].parts[1],
            Part::Port {
                proto: Some(1),
                lo: 0x800,
                hi: 0x800
            }
        );
        assert_eq!(a[8].parts[1].to_string(), "icmp:port-unreachable");
        assert_eq!(a[9].parts[1].to_string(), "gre:0");
        assert_eq!(a[10].parts[1].to_string(), "tcp:8000-8002");
        assert_eq!(a[11].parts[1].to_string(), "tcp:443");
        assert_eq!(a[12].parts[1].to_string(), "sctp:9");
        assert_eq!(
            a[18].parts[1],
            Part::Iface {
                name: "eth1".into(),
                physdev: true
            }
        );
        assert_eq!(
            a[20].parts[0],
            Part::Port {
                proto: None,
                lo: 22,
                hi: 22
            }
        );
        assert_eq!(a[23].parts[0], Part::Set("a".into()));
        assert_eq!(a[24].position, Some((true, "a".into())));
        assert!(a[25].exist);
        let bi = save
            .commands
            .iter()
            .find_map(|c| match c {
                Command::Create(c) if c.name == "bi" => Some(c),
                _ => None,
            })
            .unwrap();
        assert_eq!(bi.ty, SetType::BitmapIp);
        assert_eq!(bi.range, Some((0x0a00_0000, 0x0a00_00ff)));
        assert_eq!(bi.netmask, Some(30));
        // IPv6 ICMP prints as ipset save does.
        let v6 = "create s hash:ip,port family inet6\nadd s 2001:db8::1,icmpv6:echo-request\n";
        assert_eq!(adds(v6)[0].parts[1].to_string(), "ipv6-icmp:echo-request");
        assert_eq!(
            parse(&parse(v6).unwrap().to_string()).unwrap().to_string(),
            parse(v6).unwrap().to_string()
        );
    }

    #[test]
    fn errors_are_located() {
        assert_eq!(
            e("create a hash:ip\nadd b 10.0.0.1\n"),
            (
                2,
                5,
                "set `b` does not exist: expected a set created on an earlier line".into()
            )
        );
        let (l, c, m) = e("create a hash:ip\nadd a 10.0.0.300\n");
        assert_eq!((l, c), (2, 7));
        assert!(m.contains("expected an IPv4 address"), "{m}");
        let (l, c, m) = e("create a hash:ip,port\nadd a 10.0.0.1,udp:99999\n");
        assert_eq!((l, c), (2, 20));
        assert!(m.contains("port number"), "{m}");
        let (l, c, m) = e("create a hash:ip,port\nadd a 10.0.0.1,gre:5\n");
        assert_eq!((l, c), (2, 20));
        assert!(m.contains("pseudo port 0"), "{m}");
        let (l, c, m) = e("create a hash:net\nadd a 10.0.0.0/8,80\n");
        assert_eq!((l, c), (2, 7));
        assert!(m.contains("expected 1 part"), "{m}");
        let (l, c, m) = e("create a hash:net\nadd a 10.0.0.0/33\n");
        assert_eq!((l, c), (2, 16));
        assert!(m.contains("prefix length"), "{m}");
        let (_, _, m) = e("create a hash:net\nadd a 0.0.0.0/0\n");
        assert!(m.contains("/0 is invalid"), "{m}");
        let (_, _, m) = e("create a hash:ip\nadd a 0.0.0.0\n");
        assert!(m.contains("null address"), "{m}");
        let (l, c, m) = e("create a hash:ip family inet6\nadd a 10.0.0.1\n");
        assert_eq!((l, c), (2, 7));
        assert!(m.contains("family inet6"), "{m}");
        let (l, c, m) = e("create a hash:foo\n");
        assert_eq!((l, c), (1, 10));
        assert!(m.contains("expected one of hash:ip"), "{m}");
        let (_, _, m) = e("create a hash:ip\nadd a 10.0.0.1 nomatch\n");
        assert!(m.contains("no `nomatch`"), "{m}");
        let (_, _, m) = e("create a bitmap:port\n");
        assert!(m.contains("range"), "{m}");
        let (_, _, m) = e("create a hash:ip\ncreate a hash:ip\n");
        assert!(m.contains("already exists"), "{m}");
        assert!(parse("create a hash:ip\ncreate a hash:ip -exist\n").is_ok());
        let (_, _, m) = e("create a list:set\nadd a a\n");
        assert!(m.contains("list:set"), "{m}");
        let (l, c, m) = e("create a hash:ip comment\nadd a 10.0.0.1 comment \"open\n");
        assert_eq!((l, c), (2, 24));
        assert!(m.contains("unterminated"), "{m}");
        let (_, _, m) = e("Name: a\nType: hash:ip\n");
        assert!(m.contains("ipset list"), "{m}");
        let (_, _, m) = e("create a hash:ip bogus 1\n");
        assert!(m.contains("create option"), "{m}");
        let (_, _, m) = e("create a hash:ip,port\nadd a 10.0.0.1,icmpv6:echo-request\n");
        assert!(m.contains("family inet"), "{m}");
    }

    #[test]
    fn never_panics_on_mangled_input() {
        let base = "create a hash:ip,port family inet\nadd a 10.0.0.1,tcp:80 comment \"x\"\ncreate l list:set\nadd l a\n";
        for cut in 0..base.len() {
            let _ = parse(&base[..cut]);
            let mut s = base.to_string();
            s.insert(cut, '-');
            let _ = parse(&s);
            let mut s = base.to_string();
            s.insert(cut, ',');
            let _ = parse(&s);
        }
    }

    #[test]
    fn detection() {
        assert!(looks_like_ipset("# x\ncreate a hash:ip family inet\n"));
        assert!(!looks_like_ipset("create table inet t\n"));
        assert!(!looks_like_ipset("*filter\n"));
    }
}
