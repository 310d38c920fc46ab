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
                        "element out of the range of set `{}` (ipset: \"Element is out of the range of the set\")",
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
                    "element already in set `{}` (ipset restore refuses it without -exist)",
                    a.set
                ),
            )
        };
        if self.create.ty == SetType::ListSet {
            let Some(Part::Set(m)) = a.parts.first() else {
                return err(a.entry_loc, "expected a set name");
            };
            if !member_exists {
                return err(a.entry_loc, format!("set `{m}` does not exist"));
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
                            format!("set `{other}` is not a member of list:set `{}`", a.set),
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
                    "element not in set `{}` (ipset restore refuses to delete it without -exist)",
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
                    return err(a.loc, format!("set `{}` does not exist", a.set));
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
                    None => return err(*loc, format!("set `{s}` does not exist")),
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
                            format!("set `{n}` is a member of a list:set and cannot be destroyed"),
                        );
                    }
                    if sets.shift_remove(n).is_none() {
                        return err(*loc, format!("set `{n}` does not exist"));
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
                            if !self.sets.contains_key(name) {
                                return err(
                                    r.loc,
                                    format!(
                                        "ipset `{name}` does not exist (the ipsets given define {})",
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
}
