//! ipsets as the kernel holds them, and `-m set` membership (xt_set, ip_set_test).
//!
//! Contract: [`build`] applies the commands of an `ipset restore` text in order (create,
//! add, del, flush, destroy) and returns the sets, or an error with line and column where
//! `ipset restore` would fail (a duplicate element without `-exist`, an element outside a
//! bitmap's range, a set destroyed while a list:set holds it...). [`Ipsets::test`] cannot
//! fail: it answers membership, or `Err(why)` when fwsim cannot decide (a type it does not
//! evaluate, a packet field the packet does not give), never a guess.
//!
//! Kernel semantics (docs/netfilter-semantics.md M9; net/netfilter/ipset/):
//! - ip_set_test: a set of another family than the packet's, or fewer `--match-set`
//!   directions than the type has dimensions, is "not a member" (then `!` inverts it).
//!   Directions beyond the dimensions are ignored. Dimension i reads `dirs[i]`.
//! - hash:ip (and bitmap:ip) hold addresses: CIDRs and ranges in `add` are expanded;
//!   `netmask N` masks both elements and the packet's address.
//! - Types with a net dimension: the most specific element containing the packet (longest
//!   prefix, first net dimension first) decides; a `nomatch` element makes it not a member
//!   (`--return-nomatch` inverts: only a nomatch element is then a member). Ranges in a net
//!   dimension are stored as the CIDRs that cover them (as ipset does).
//! - Ports (ip_set_getport.c): TCP, UDP, SCTP, UDPLITE give their port with their protocol;
//!   ICMP/ICMPv6 give `type << 8 | code` (fwsim's packets are echo requests); any other
//!   protocol gives port 0 with its number. bitmap:port matches TCP and UDP only.
//! - hash:net,iface: `src` reads the input interface, `dst` the output one; a hook without
//!   that device is "not a member".
//! - list:set: a member if any member set (in order) says so.

use super::ir::Dir;
use crate::syntax::ipset::{Add, Command, Create, DimKind, Part, Save, SetType};
use crate::values::Loc;
use indexmap::IndexMap;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub loc: Loc,
    pub message: String,
}

fn err<T>(loc: Loc, message: impl Into<String>) -> Result<T, Error> {
    Err(Error {
        loc,
        message: message.into(),
    })
}

/// Every ipset of a host (ipsets are per network namespace, not per table), by name.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Ipsets {
    pub sets: IndexMap<String, IpSet>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IpSet {
    pub name: String,
    pub ty: SetType,
    /// `family inet6` (meaningless for bitmap:port and list:set, which have none).
    pub v6: bool,
    pub index: Index,
    /// Why membership in this set is inconclusive (a type or element fwsim does not model).
    pub unsupported: Option<String>,
    /// Elements as added (after del/flush), for reports.
    pub len: usize,
    pub loc: Loc,
}

/// How a set's elements are stored for lookups.
#[derive(Clone, Debug, PartialEq)]
pub enum Index {
    /// hash:ip, bitmap:ip, bitmap:port: sorted disjoint inclusive intervals (binary search).
    Intervals(Vec<(u128, u128)>),
    /// hash:net: per prefix length, longest first, the sorted networks and their `nomatch`
    /// flag (the kernel's lookup order: one binary search per prefix length present).
    Prefixes(Vec<(u8, Vec<(u128, bool)>)>),
    /// The other types: elements, most specific first (a linear scan).
    Elems(Vec<Elem>),
    /// list:set: the member sets, in order.
    Members(Vec<String>),
    /// A type fwsim does not evaluate.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Elem {
    pub dims: Vec<Dim>,
    pub nomatch: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// Inclusive range; `prefix` Some for a net dimension (lo is the network).
    Addr {
        lo: u128,
        hi: u128,
        prefix: Option<u8>,
    },
    Port {
        proto: u8,
        lo: u16,
        hi: u16,
    },
    Iface(String),
}

impl Dim {
    fn prefix(&self) -> u8 {
        match self {
            Dim::Addr {
                prefix: Some(p), ..
            } => *p,
            _ => 0,
        }
    }
}

/// A packet as `-m set` reads it at one hook.
#[derive(Clone, Debug)]
pub struct View<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// The input interface: `Ok(None)` when the hook has none, `Err` when the packet does
    /// not say.
    pub iif: Result<Option<&'a str>, ()>,
    pub oif: Result<Option<&'a str>, ()>,
}

fn num(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn host_mask(bits: u32, prefix: u8) -> u128 {
    let host = bits.saturating_sub(u32::from(prefix));
    if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    }
}

/// The CIDRs covering `lo..=hi` exactly (largest blocks first), as ipset splits ranges
/// added to net types.
fn cidrs(lo: u128, hi: u128, bits: u32) -> Vec<(u128, u8)> {
    let mut out = Vec::new();
    let mut at = lo;
    loop {
        // The largest block starting at `at` that stays within `hi`.
        let mut size_bits = at.trailing_zeros().min(bits);
        while size_bits > 0 {
            let last = at.checked_add(host_mask(bits, (bits - size_bits) as u8));
            if last.is_some_and(|l| l <= hi) {
                break;
            }
            size_bits -= 1;
        }
        let prefix = (bits - size_bits) as u8;
        out.push((at, prefix));
        let last = at | host_mask(bits, prefix);
        if last >= hi {
            break;
        }
        at = last + 1;
    }
    out
}

struct Builder {
    create: Create,
    /// Interval types: lo → hi, disjoint.
    intervals: BTreeMap<u128, u128>,
    elems: IndexMap<Elem, ()>,
    members: Vec<String>,
    unsupported: Option<String>,
    len: usize,
}

fn interval_type(ty: SetType) -> bool {
    matches!(
        ty,
        SetType::HashIp | SetType::BitmapIp | SetType::BitmapPort
    )
}

fn evaluated(ty: SetType) -> bool {
    !matches!(
        ty,
        SetType::HashIpMark | SetType::HashMac | SetType::HashIpMac | SetType::BitmapIpMac
    )
}

impl Builder {
    fn new(create: Create) -> Builder {
        let unsupported = (!evaluated(create.ty)).then(|| {
            format!(
                "ipset `{}` is of type {}, whose membership fwsim does not evaluate",
                create.name,
                create.ty.as_str()
            )
        });
        Builder {
            create,
            intervals: BTreeMap::new(),
            elems: IndexMap::new(),
            members: Vec::new(),
            unsupported,
            len: 0,
        }
    }

    fn bits(&self) -> u32 {
        if self.create.v6 {
            128
        } else {
            32
        }
    }

    /// The interval one `add` entry covers (interval types).
    fn interval(&self, a: &Add) -> Result<(u128, u128), Error> {
        let (lo, hi) = match &a.parts[0] {
            Part::Addr { lo, hi, prefix } => {
                let (mut l, mut h) = crate::syntax::ipset::bounds(*lo, *hi, *prefix);
                if let Some(n) = self.create.netmask {
                    let m = host_mask(self.bits(), n);
                    l &= !m;
                    h |= m;
                }
                (l, h)
            }
            Part::Port { lo, hi, .. } => (u128::from(*lo), u128::from(*hi)),
            _ => return err(a.entry_loc, "expected an address or a port"),
        };
        if let Some((rl, rh)) = self.create.range {
            if lo < rl || hi > rh {
                return err(
                    a.entry_loc,
                    format!(
                        "element out of the range of set `{}`: expected an element within its `range`",
                        a.set
                    ),
                );
            }
        }
        Ok((lo, hi))
    }

    /// The elements one `add` entry stands for (ranges in net dimensions become CIDRs).
    fn elems(&mut self, a: &Add) -> Vec<Elem> {
        let dims = self.create.ty.dims();
        let bits = self.bits();
        let mut out: Vec<Vec<Dim>> = vec![Vec::new()];
        for (part, kind) in a.parts.iter().zip(dims) {
            let options: Vec<Dim> = match (part, kind) {
                (Part::Addr { lo, hi, prefix }, DimKind::Net) => match prefix {
                    Some(p) => {
                        let (l, _) = crate::syntax::ipset::bounds(*lo, *hi, Some(*p));
                        vec![Dim::Addr {
                            lo: l,
                            hi: l | host_mask(bits, *p),
                            prefix: Some(*p),
                        }]
                    }
                    None => cidrs(num(*lo), num(*hi), bits)
                        .into_iter()
                        .map(|(l, p)| Dim::Addr {
                            lo: l,
                            hi: l | host_mask(bits, p),
                            prefix: Some(p),
                        })
                        .collect(),
                },
                (Part::Addr { lo, hi, prefix }, _) => {
                    let (l, h) = crate::syntax::ipset::bounds(*lo, *hi, *prefix);
                    vec![Dim::Addr {
                        lo: l,
                        hi: h,
                        prefix: None,
                    }]
                }
                (Part::Port { proto, lo, hi }, _) => vec![Dim::Port {
                    proto: proto.unwrap_or(6),
                    lo: *lo,
                    hi: *hi,
                }],
                (Part::Iface { name, physdev }, _) => {
                    if *physdev && self.unsupported.is_none() {
                        self.unsupported = Some(format!(
                            "ipset `{}` has a physdev: interface element (bridge ports are not modelled)",
                            a.set
                        ));
                    }
                    vec![Dim::Iface(name.clone())]
                }
                (Part::Other(s) | Part::Set(s), _) => vec![Dim::Iface(s.clone())],
            };
            out = out
                .into_iter()
                .flat_map(|prefix| {
                    options.iter().map(move |d| {
                        let mut v = prefix.clone();
                        v.push(d.clone());
                        v
                    })
                })
                .collect();
        }
        out.into_iter()
            .map(|dims| Elem {
                dims,
                nomatch: a.nomatch,
            })
            .collect()
    }

    /// `member_exists`: for a list:set, does the member set exist?
    fn add(&mut self, a: &Add, member_exists: bool) -> Result<(), Error> {
        let exists = || {
            err(
                a.entry_loc,
                format!(
                    "element already in set `{}`: expected a new element (ipset restore refuses it without -exist)",
                    a.set
                ),
            )
        };
        if self.create.ty == SetType::ListSet {
            let Some(Part::Set(m)) = a.parts.first() else {
                return err(a.entry_loc, "expected a set name");
            };
            if !member_exists {
                return err(
                    a.entry_loc,
                    format!("set `{m}` does not exist: expected a created set"),
                );
            }
            if self.members.contains(m) {
                return if a.exist { Ok(()) } else { exists() };
            }
            let at = match &a.position {
                None => self.members.len(),
                Some((before, other)) => match self.members.iter().position(|x| x == other) {
                    Some(i) if *before => i,
                    Some(i) => i + 1,
                    None => {
                        return err(
                            a.entry_loc,
                            format!("set `{other}` is not a member of list:set `{}`: expected one of its members", a.set),
                        )
                    }
                },
            };
            self.members.insert(at, m.clone());
            self.len += 1;
            return Ok(());
        }
        if interval_type(self.create.ty) {
            let (lo, hi) = self.interval(a)?;
            // Overlaps with what is there: the kernel refuses the element (range adds stop
            // at the first address already present) unless -exist. Touching intervals merge.
            let mut new = (lo, hi);
            while let Some((l, h)) = self
                .intervals
                .range(..=new.1.saturating_add(1))
                .next_back()
                .map(|(l, h)| (*l, *h))
            {
                if h.saturating_add(1) < new.0 {
                    break;
                }
                if h >= lo && l <= hi && !a.exist {
                    return exists();
                }
                self.intervals.remove(&l);
                new = (new.0.min(l), new.1.max(h));
            }
            self.intervals.insert(new.0, new.1);
            self.len += 1;
            return Ok(());
        }
        for e in self.elems(a) {
            let mut probe = e.clone();
            probe.nomatch = !e.nomatch;
            let other = self.elems.shift_remove(&probe).is_some();
            let same = self.elems.contains_key(&e);
            if (other || same) && !a.exist {
                return exists();
            }
            if !other && !same {
                self.len += 1;
            }
            self.elems.insert(e, ());
        }
        Ok(())
    }

    fn del(&mut self, a: &Add) -> Result<(), Error> {
        let missing = || {
            err(
                a.entry_loc,
                format!(
                    "element not in set `{}`: expected an element of the set (ipset restore refuses to delete it without -exist)",
                    a.set
                ),
            )
        };
        if self.create.ty == SetType::ListSet {
            let Some(Part::Set(m)) = a.parts.first() else {
                return err(a.entry_loc, "expected a set name");
            };
            match self.members.iter().position(|x| x == m) {
                Some(i) => {
                    self.members.remove(i);
                    self.len -= 1;
                }
                None if a.exist => {}
                None => return missing(),
            }
            return Ok(());
        }
        if interval_type(self.create.ty) {
            let (lo, hi) = self.interval(a)?;
            let covering = self
                .intervals
                .range(..=lo)
                .next_back()
                .map(|(l, h)| (*l, *h))
                .filter(|(_, h)| *h >= hi);
            match covering {
                Some((l, h)) => {
                    self.intervals.remove(&l);
                    if l < lo {
                        self.intervals.insert(l, lo - 1);
                    }
                    if hi < h {
                        self.intervals.insert(hi + 1, h);
                    }
                    self.len = self.len.saturating_sub(1);
                }
                None if a.exist => {}
                None => return missing(),
            }
            return Ok(());
        }
        for mut e in self.elems(a) {
            let a1 = self.elems.shift_remove(&e).is_some();
            e.nomatch = !e.nomatch;
            let a2 = self.elems.shift_remove(&e).is_some();
            if a1 || a2 {
                self.len = self.len.saturating_sub(1);
            } else if !a.exist {
                return missing();
            }
        }
        Ok(())
    }

    fn flush(&mut self) {
        self.intervals.clear();
        self.elems.clear();
        self.members.clear();
        self.len = 0;
    }

    fn finish(self) -> IpSet {
        let c = self.create;
        let index = if !evaluated(c.ty) {
            Index::None
        } else if c.ty == SetType::ListSet {
            Index::Members(self.members)
        } else if interval_type(c.ty) {
            Index::Intervals(self.intervals.into_iter().collect())
        } else if c.ty == SetType::HashNet {
            let mut by: BTreeMap<u8, Vec<(u128, bool)>> = BTreeMap::new();
            for e in self.elems.keys() {
                if let [Dim::Addr { lo, prefix, .. }] = e.dims.as_slice() {
                    by.entry(prefix.unwrap_or(0))
                        .or_default()
                        .push((*lo, e.nomatch));
                }
            }
            Index::Prefixes(
                by.into_iter()
                    .rev()
                    .map(|(p, mut v)| {
                        v.sort_unstable();
                        (p, v)
                    })
                    .collect(),
            )
        } else {
            let mut v: Vec<Elem> = self.elems.into_keys().collect();
            // Most specific first: prefix lengths of the net dimensions, in order.
            v.sort_by(|a, b| {
                let ka: Vec<u8> = a.dims.iter().map(Dim::prefix).collect();
                let kb: Vec<u8> = b.dims.iter().map(Dim::prefix).collect();
                kb.cmp(&ka)
            });
            Index::Elems(v)
        };
        IpSet {
            name: c.name,
            ty: c.ty,
            v6: c.v6,
            index,
            unsupported: self.unsupported,
            len: self.len,
            loc: c.loc,
        }
    }
}

/// Apply an ipset restore text's commands, in order.
pub fn build(save: &Save) -> Result<Ipsets, Error> {
    let mut sets: IndexMap<String, Builder> = IndexMap::new();
    for cmd in &save.commands {
        match cmd {
            Command::Create(c) => {
                // The parser refused a second create unless -exist with the same type.
                if !sets.contains_key(&c.name) {
                    sets.insert(c.name.clone(), Builder::new(c.clone()));
                }
            }
            Command::Add(a) | Command::Del(a) => {
                let member_exists = match a.parts.first() {
                    Some(Part::Set(m)) => sets.contains_key(m),
                    _ => true,
                };
                let Some(b) = sets.get_mut(&a.set) else {
                    return err(
                        a.loc,
                        format!("set `{}` does not exist: expected a created set", a.set),
                    );
                };
                if matches!(cmd, Command::Add(_)) {
                    b.add(a, member_exists)?;
                } else {
                    b.del(a)?;
                }
            }
            Command::Flush { set, loc } => match set {
                Some(s) => match sets.get_mut(s) {
                    Some(b) => b.flush(),
                    None => {
                        return err(
                            *loc,
                            format!("set `{s}` does not exist: expected a created set"),
                        )
                    }
                },
                None => sets.values_mut().for_each(Builder::flush),
            },
            Command::Destroy { set, loc } => {
                let names: Vec<String> = match set {
                    Some(s) => vec![s.clone()],
                    None => sets.keys().cloned().collect(),
                };
                for n in &names {
                    let held = sets
                        .values()
                        .any(|b| !names.contains(&b.create.name) && b.members.contains(n));
                    if held {
                        return err(
                            *loc,
                            format!("set `{n}` is a member of a list:set and cannot be destroyed: expected it deleted from the list first"),
                        );
                    }
                    if sets.shift_remove(n).is_none() {
                        return err(
                            *loc,
                            format!("set `{n}` does not exist: expected a created set"),
                        );
                    }
                }
            }
        }
    }
    Ok(Ipsets {
        sets: sets.into_iter().map(|(n, b)| (n, b.finish())).collect(),
    })
}

fn port_of(v: &View, src: bool) -> Result<(u8, u16), String> {
    let v6 = v.src.is_ipv6();
    match v.proto {
        6 | 17 | 132 | 136 => match if src { v.sport } else { v.dport } {
            Some(p) => Ok((v.proto, p)),
            None => Err(format!(
                "the packet gives no {} port",
                if src {
                    "source (sport)"
                } else {
                    "destination (dport)"
                }
            )),
        },
        // Echo request, type << 8 | code.
        1 if !v6 => Ok((1, 8 << 8)),
        58 if v6 => Ok((58, 128 << 8)),
        p => Ok((p, 0)),
    }
}

impl Ipsets {
    /// Is the packet's tuple (per `dirs`) a member of set `name`? Err: fwsim cannot tell.
    pub fn test(
        &self,
        name: &str,
        v: &View,
        dirs: &[Dir],
        return_nomatch: bool,
    ) -> Result<bool, String> {
        let Some(set) = self.sets.get(name) else {
            return Err(format!("no ipset named `{name}`"));
        };
        let dims = set.ty.dims();
        let v6 = v.src.is_ipv6();
        if dirs.len() < dims.len() || (set.ty.has_family() && set.v6 != v6) {
            return Ok(false);
        }
        if let Some(why) = &set.unsupported {
            return Err(why.clone());
        }
        let addr = |d: Dir| num(if d == Dir::Src { v.src } else { v.dst });
        match &set.index {
            Index::None => Err(format!("ipset `{name}`: type not evaluated")),
            Index::Members(ms) => {
                let mut unknown = None;
                for m in ms {
                    match self.test(m, v, dirs, return_nomatch) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(why) => {
                            unknown.get_or_insert(why);
                        }
                    }
                }
                unknown.map_or(Ok(false), Err)
            }
            Index::Intervals(iv) => {
                let x = if set.ty == SetType::BitmapPort {
                    if !matches!(v.proto, 6 | 17) {
                        return Ok(false);
                    }
                    u128::from(port_of(v, dirs[0] == Dir::Src)?.1)
                } else {
                    addr(dirs[0])
                };
                let i = iv.partition_point(|(lo, _)| *lo <= x);
                Ok(i > 0 && iv[i - 1].1 >= x)
            }
            Index::Prefixes(groups) => {
                let x = addr(dirs[0]);
                let bits = if v6 { 128 } else { 32 };
                for (p, nets) in groups {
                    let key = x & !host_mask(bits, *p);
                    if let Ok(i) = nets.binary_search_by(|(n, _)| n.cmp(&key)) {
                        return Ok(nets[i].1 == return_nomatch);
                    }
                }
                Ok(false)
            }
            Index::Elems(elems) => {
                // The packet's value per dimension, read lazily (a port may be unknown).
                let mut port: Option<Result<(u8, u16), String>> = None;
                for e in elems {
                    let mut all = true;
                    for (k, d) in e.dims.iter().enumerate() {
                        let dir = dirs[k];
                        let hit = match d {
                            Dim::Addr { lo, hi, .. } => {
                                let x = addr(dir);
                                *lo <= x && x <= *hi
                            }
                            Dim::Port { proto, lo, hi } => {
                                let got = port
                                    .get_or_insert_with(|| port_of(v, dir == Dir::Src))
                                    .clone()?;
                                got.0 == *proto && *lo <= got.1 && got.1 <= *hi
                            }
                            Dim::Iface(n) => {
                                let dev = if dir == Dir::Src { v.iif } else { v.oif };
                                match dev {
                                    Ok(Some(d)) => d == n,
                                    Ok(None) => return Ok(false),
                                    Err(()) => {
                                        return Err(format!(
                                            "ipset `{name}` needs the packet's {} interface",
                                            if dir == Dir::Src {
                                                "input (iif)"
                                            } else {
                                                "output (oif)"
                                            }
                                        ))
                                    }
                                }
                            }
                        };
                        if !hit {
                            all = false;
                            break;
                        }
                    }
                    if all {
                        return Ok(if set.ty.has_nomatch() {
                            e.nomatch == return_nomatch
                        } else {
                            true
                        });
                    }
                }
                Ok(false)
            }
        }
    }

    /// Check that every `-m set` of `rs` names a set here (iptables-restore refuses a rule
    /// naming a set that does not exist); the error is located at the rule.
    pub fn check_refs(&self, rs: &super::ir::Ruleset) -> Result<(), Error> {
        for t in &rs.tables {
            for c in &t.chains {
                for r in &c.rules {
                    for m in &r.matches {
                        if let super::ir::Match::Set { name, .. } = m {
                            let v6 = match t.family {
                                super::ir::Family::Ip => Some(false),
                                super::ir::Family::Ip6 => Some(true),
                                _ => None,
                            };
                            if let (Some(set), Some(v6)) = (self.sets.get(name), v6) {
                                // libxt_set refuses a set of the other family (list:set and
                                // bitmap:port have none).
                                if set.ty.has_family() && set.v6 != v6 {
                                    return err(
                                        r.loc,
                                        format!(
                                            "ipset `{name}` is family {}: expected a set of family {} (iptables-restore refuses it in an IPv{} ruleset)",
                                            if set.v6 { "inet6" } else { "inet" },
                                            if v6 { "inet6" } else { "inet" },
                                            if v6 { 6 } else { 4 }
                                        ),
                                    );
                                }
                            }
                            if !self.sets.contains_key(name) {
                                return err(
                                    r.loc,
                                    format!(
                                        "ipset `{name}` does not exist: expected a set the ipsets given define ({})",
                                        if self.sets.is_empty() {
                                            "none".to_string()
                                        } else {
                                            self.sets
                                                .keys()
                                                .map(|k| format!("`{k}`"))
                                                .collect::<Vec<_>>()
                                                .join(", ")
                                        }
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_covering_cidrs() {
        // 192.168.0.0-192.168.0.5 → /30 + /31 (what ipset save prints).
        let lo = num("192.168.0.0".parse().unwrap());
        let hi = num("192.168.0.5".parse().unwrap());
        assert_eq!(cidrs(lo, hi, 32), vec![(lo, 30), (lo + 4, 31)]);
        assert_eq!(cidrs(0, u128::from(u32::MAX), 32), vec![(0, 0)]);
        let one = num("10.0.0.7".parse().unwrap());
        assert_eq!(cidrs(one, one, 32), vec![(one, 32)]);
        assert_eq!(cidrs(1, 6, 32), vec![(1, 32), (2, 31), (4, 31), (6, 32)]);
    }

    use crate::netfilter::interp::{walk, Fate};
    use crate::values::{CtState, Hook, Packet};

    /// One rule `-A CHAIN <rule> -j ACCEPT` behind a DROP policy; the packet's fate.
    fn fate(sets: &str, rule: &str, packet: &str) -> Fate {
        let chain = if packet.contains("hook=forward") {
            "FORWARD"
        } else if packet.contains("hook=output") {
            "OUTPUT"
        } else {
            "INPUT"
        };
        let text = format!(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n-A {chain} {rule} -j ACCEPT\nCOMMIT\n"
        );
        let mut rs = crate::netfilter::read_ruleset(&text).unwrap();
        let sets = crate::netfilter::read_ipsets(sets).unwrap_or_else(|e| panic!("{e:?}"));
        crate::netfilter::attach_ipsets(&mut rs, sets).unwrap();
        walk(&rs, &pk(packet)).fate
    }

    fn pk(text: &str) -> Packet {
        let mut p = Packet {
            src: "192.0.2.1".parse().unwrap(),
            dst: "10.0.0.1".parse().unwrap(),
            protocol: 6,
            sport: Some(40000),
            dport: Some(80),
            iif: Some("eth0".into()),
            oif: None,
            hook: Hook::Input,
            ctstate: CtState::New,
            mark: 0,
        };
        for kv in text.split_whitespace() {
            let (k, v) = kv.split_once('=').unwrap();
            match k {
                "src" => p.src = v.parse().unwrap(),
                "dst" => p.dst = v.parse().unwrap(),
                "sport" => p.sport = v.parse().ok(),
                "dport" => p.dport = v.parse().ok(),
                "proto" => p.protocol = v.parse().unwrap(),
                "iif" => p.iif = Some(v.into()).filter(|s: &String| s != "-"),
                "oif" => p.oif = Some(v.into()),
                "hook" => {
                    p.hook = match v {
                        "forward" => Hook::Forward,
                        "output" => Hook::Output,
                        _ => Hook::Input,
                    }
                }
                _ => panic!("{k}"),
            }
        }
        if p.protocol != 6 && p.protocol != 17 && p.protocol != 132 {
            p.sport = None;
            p.dport = None;
        }
        p
    }

    fn yes(sets: &str, rule: &str, packet: &str) -> bool {
        match fate(sets, rule, packet) {
            Fate::Accept => true,
            Fate::Drop => false,
            f => panic!("{rule} / {packet}: {f:?}"),
        }
    }

    #[test]
    fn hash_ip_ranges_netmask_and_family() {
        let sets = "create a hash:ip\nadd a 10.0.0.0/30\nadd a 10.0.1.5-10.0.1.7\ncreate m hash:ip netmask 24\nadd m 10.9.9.9\ncreate six hash:ip family inet6\nadd six 2001:db8::1\n";
        let r = "-m set --match-set a src";
        assert!(yes(sets, r, "src=10.0.0.3"));
        assert!(!yes(sets, r, "src=10.0.0.4"));
        assert!(yes(sets, r, "src=10.0.1.5"));
        assert!(yes(sets, r, "src=10.0.1.7"));
        assert!(!yes(sets, r, "src=10.0.1.8"));
        // dst direction reads the destination.
        assert!(yes(sets, "-m set --match-set a dst", "dst=10.0.0.2"));
        assert!(!yes(
            sets,
            "-m set --match-set a dst",
            "src=10.0.0.2 dst=10.0.0.9"
        ));
        // netmask 24: the element is 10.9.9.0/24, and so is the packet's address.
        assert!(yes(sets, "-m set --match-set m src", "src=10.9.9.200"));
        assert!(!yes(sets, "-m set --match-set m src", "src=10.9.10.1"));
        // iptables-restore refuses an inet6 set in an IPv4 ruleset; through a list:set
        // (which has no family) it is just never a member of an IPv4 packet's tuple.
        let r6 =
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -m set --match-set six src -j ACCEPT\nCOMMIT\n";
        let mut rs = crate::netfilter::read_ruleset(r6).unwrap();
        let e =
            crate::netfilter::attach_ipsets(&mut rs, crate::netfilter::read_ipsets(sets).unwrap())
                .unwrap_err();
        assert!(e.message.contains("family inet6"), "{}", e.message);
        let mixed = format!("{sets}create l list:set\nadd l six\n");
        assert!(!yes(&mixed, "-m set --match-set l src", "src=10.0.0.1"));
        assert!(yes(&mixed, "-m set ! --match-set l src", "src=10.0.0.1"));
        let mixed = format!("{mixed}add l a\n");
        assert!(yes(&mixed, "-m set --match-set l src", "src=10.0.0.1"));
    }

    #[test]
    fn hash_net_most_specific_prefix_and_nomatch() {
        let sets = "create n hash:net\nadd n 10.0.0.0/8\nadd n 10.1.0.0/16 nomatch\nadd n 10.1.2.0/24\nadd n 192.168.0.0-192.168.0.5\n";
        let r = "-m set --match-set n src";
        assert!(yes(sets, r, "src=10.9.9.9"));
        assert!(!yes(sets, r, "src=10.1.9.9")); // the /16 nomatch is the most specific
        assert!(yes(sets, r, "src=10.1.2.9")); // the /24 is more specific than the /16
        assert!(!yes(sets, r, "src=11.0.0.1"));
        assert!(yes(sets, r, "src=192.168.0.5"));
        assert!(!yes(sets, r, "src=192.168.0.6"));
        // `!` inverts membership: a nomatch address matches the negated rule.
        assert!(yes(sets, "-m set ! --match-set n src", "src=10.1.9.9"));
        // --return-nomatch: only nomatch elements are members.
        let rn = "-m set --match-set n src --return-nomatch";
        assert!(yes(sets, rn, "src=10.1.9.9"));
        assert!(!yes(sets, rn, "src=10.9.9.9"));
        assert!(!yes(sets, rn, "src=11.0.0.1"));
    }

    #[test]
    fn ports_protocols_and_directions() {
        let sets = "create p hash:ip,port\nadd p 10.0.0.1,80\nadd p 10.0.0.1,udp:53\nadd p 10.0.0.1,icmp:echo-request\nadd p 10.0.0.1,gre:0\nadd p 10.0.0.2,tcp:8000-8002\n";
        let r = "-m set --match-set p dst,dst";
        assert!(yes(sets, r, "dport=80"));
        assert!(!yes(sets, r, "dport=81"));
        assert!(!yes(sets, r, "proto=17 dport=80")); // bare 80 is tcp
        assert!(yes(sets, r, "proto=17 dport=53"));
        assert!(yes(sets, r, "proto=1")); // ICMP echo request: port 8 << 8
        assert!(yes(sets, r, "proto=47")); // GRE: port 0 with its protocol
        assert!(!yes(sets, r, "proto=50")); // ESP: not an element
        assert!(yes(sets, r, "dst=10.0.0.2 dport=8001"));
        // The second direction picks the port: src reads the source port.
        assert!(yes(
            sets,
            "-m set --match-set p dst,src",
            "sport=80 dport=1"
        ));
        assert!(!yes(
            sets,
            "-m set --match-set p dst,src",
            "sport=1 dport=80"
        ));
        // Fewer directions than dimensions: never a member (negated: always).
        assert!(!yes(sets, "-m set --match-set p dst", "dport=80"));
        assert!(yes(sets, "-m set ! --match-set p dst", "dport=80"));
        // Extra directions are ignored.
        assert!(yes(sets, "-m set --match-set p dst,dst,src", "dport=80"));
        // A port the packet does not give: inconclusive, not a guess.
        assert!(matches!(
            fate(sets, r, "dport=none"),
            Fate::Inconclusive(m) if m.contains("destination")
        ));
    }

    #[test]
    fn three_dimensions_bitmaps_ifaces_and_lists() {
        let sets = "create ipi hash:ip,port,ip\nadd ipi 10.0.0.1,tcp:80,192.0.2.1\ncreate ipn hash:ip,port,net\nadd ipn 10.0.0.1,tcp:80,192.0.2.0/24\nadd ipn 10.0.0.1,tcp:80,192.0.2.128/25 nomatch\ncreate bp bitmap:port range 0-1024\nadd bp 80-82\ncreate bi bitmap:ip range 10.0.0.0/24\nadd bi 10.0.0.1\ncreate ni hash:net,iface\nadd ni 192.0.2.0/24,eth0\ncreate l list:set\nadd l bi\nadd l bp\n";
        assert!(yes(sets, "-m set --match-set ipi dst,dst,src", ""));
        assert!(!yes(sets, "-m set --match-set ipi dst,dst,dst", ""));
        assert!(yes(sets, "-m set --match-set ipn dst,dst,src", ""));
        assert!(!yes(
            sets,
            "-m set --match-set ipn dst,dst,src",
            "src=192.0.2.200"
        ));
        assert!(yes(sets, "-m set --match-set bp dst", "dport=81"));
        assert!(yes(sets, "-m set --match-set bp dst", "proto=17 dport=81"));
        assert!(!yes(
            sets,
            "-m set --match-set bp dst",
            "proto=132 dport=81"
        ));
        assert!(!yes(sets, "-m set --match-set bp dst", "dport=83"));
        assert!(yes(sets, "-m set --match-set bi dst", ""));
        assert!(!yes(sets, "-m set --match-set bi dst", "dst=10.0.0.2"));
        // net,iface: src reads the input device; at OUTPUT there is none.
        assert!(yes(sets, "-m set --match-set ni src,src", ""));
        assert!(!yes(sets, "-m set --match-set ni src,src", "iif=eth1"));
        assert!(!yes(sets, "-m set --match-set ni src,dst", "iif=eth0"));
        assert!(!yes(
            sets,
            "-m set --match-set ni src,src",
            "hook=output oif=eth0"
        ));
        assert!(matches!(
            fate(sets, "-m set --match-set ni src,src", "iif=-"),
            Fate::Inconclusive(_)
        ));
        // list:set: a member of any member set.
        assert!(yes(sets, "-m set --match-set l dst", ""));
        assert!(yes(
            sets,
            "-m set --match-set l dst",
            "dst=10.0.0.9 dport=80"
        ));
        assert!(!yes(
            sets,
            "-m set --match-set l dst",
            "dst=10.0.0.9 dport=90"
        ));
    }

    #[test]
    fn commands_apply_in_order_and_restore_errors() {
        let sets = "create a hash:ip\nadd a 10.0.0.1\nadd a 10.0.0.2\ndel a 10.0.0.1\ncreate b hash:ip\nadd b 10.0.0.3\nflush b\ncreate c hash:ip\ndestroy c\ncreate d hash:ip\nadd d 10.0.0.4\nadd d 10.0.0.4 -exist\n";
        assert!(!yes(sets, "-m set --match-set a dst", "dst=10.0.0.1"));
        assert!(yes(sets, "-m set --match-set a dst", "dst=10.0.0.2"));
        assert!(!yes(sets, "-m set --match-set b dst", "dst=10.0.0.3"));
        assert!(yes(sets, "-m set --match-set d dst", "dst=10.0.0.4"));
        let bad = |t: &str| crate::netfilter::read_ipsets(t).unwrap_err();
        let e = bad("create a hash:ip\nadd a 10.0.0.0/30\nadd a 10.0.0.2\n");
        assert_eq!((e.loc.line, e.loc.col), (3, 7));
        assert!(e.message.contains("already in set"), "{}", e.message);
        let e = bad("create a hash:net\nadd a 10.0.0.0/8\nadd a 10.0.0.5/8 nomatch\n");
        assert!(e.message.contains("already in set"), "{}", e.message);
        let e = bad("create a bitmap:port range 1000-2000\nadd a 80\n");
        assert!(e.message.contains("out of the range"), "{}", e.message);
        let e = bad("create a hash:ip\ndel a 10.0.0.1\n");
        assert!(e.message.contains("not in set"), "{}", e.message);
        let e = bad("create a hash:ip\ncreate l list:set\nadd l a\ndestroy a\n");
        assert!(e.message.contains("list:set"), "{}", e.message);
        // A rule naming a set that is not given: refused at that rule.
        let mut rs = crate::netfilter::read_ruleset(
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -j ACCEPT\n-A INPUT -m set --match-set nope src -j ACCEPT\nCOMMIT\n",
        )
        .unwrap();
        let e =
            crate::netfilter::attach_ipsets(&mut rs, crate::netfilter::read_ipsets(sets).unwrap())
                .unwrap_err();
        assert_eq!(e.loc.line, 4);
        assert!(e.message.contains("`nope` does not exist"), "{}", e.message);
    }

    #[test]
    fn unknowns_stay_inconclusive() {
        // No ipsets given at all: today's behaviour.
        let rs = crate::netfilter::read_ruleset(
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -m set --match-set a src -j ACCEPT\nCOMMIT\n",
        )
        .unwrap();
        assert!(
            matches!(walk(&rs, &pk("")).fate, Fate::Inconclusive(m) if m.contains("not known"))
        );
        // A type fwsim does not evaluate, and counter comparisons.
        let sets =
            "create m hash:mac\nadd m 02:00:00:00:00:01\ncreate a hash:ip\nadd a 192.0.2.1\n";
        assert!(
            matches!(fate(sets, "-m set --match-set m src", ""), Fate::Inconclusive(m) if m.contains("hash:mac"))
        );
        assert!(matches!(
            fate(sets, "-m set --match-set a src --packets-gt 5", ""),
            Fate::Inconclusive(_)
        ));
        // Counter updates do not change the verdict.
        assert!(yes(
            sets,
            "-m set --match-set a src ! --update-counters",
            ""
        ));
    }

    #[test]
    fn combined_dump_then_ruleset() {
        let text = "create a hash:ip family inet\nadd a 192.0.2.1\n# Generated by iptables-save\n*filter\n:INPUT DROP [0:0]\n-A INPUT -m set --match-set a src -j ACCEPT\n-A INPUT -p tcp --dport 99999 -j ACCEPT\nCOMMIT\n";
        // Errors in the ruleset part keep the file's line numbers.
        let e = crate::netfilter::read_ruleset(text).unwrap_err();
        assert_eq!(e.loc.line, 7, "{e:?}");
        let text = text.replace(" 99999", " 22");
        let rs = crate::netfilter::read_ruleset(&text).unwrap();
        assert_eq!(walk(&rs, &pk("")).fate, Fate::Accept);
        assert_eq!(walk(&rs, &pk("src=192.0.2.2 dport=80")).fate, Fate::Drop);
        let e = crate::netfilter::read_ruleset("create a hash:ip\nadd a 10.0.0.1\n").unwrap_err();
        assert!(e.message.contains("without a ruleset"), "{}", e.message);
    }
}
