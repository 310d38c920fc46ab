//! iproute2's JSON listings (`ip -j addr show`, `ip -j route show table all`,
//! `ip -j -d link show`, `ip -j rule show`) read into plain values.
//!
//! Contract: every reader takes the whole file's text and returns the entries or an error
//! with the line and column serde_json reports and what was expected (which command's
//! output). Fields fwsim does not use are ignored, so listings of newer iproute2 versions
//! read; a field it uses with the wrong type, or a listing of the wrong kind (an entry
//! without the field that kind always has), is an error. A file may hold several JSON
//! arrays one after the other (`ip -j route show table all; ip -6 -j route show table
//! all` into one file): their entries are concatenated.

use crate::values::{Cidr, Loc};
use serde::Deserialize;
use std::net::IpAddr;

/// An error in one listing: where and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub loc: Loc,
    pub message: String,
}

/// Every JSON array in `text`, concatenated, each element read as `T`.
fn arrays<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> Result<Vec<T>, Error> {
    Ok(array_list(text, what)?.into_iter().flatten().collect())
}

/// Every JSON array in `text`, in order (the IPv4 listing first, then the IPv6 one).
fn array_list<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> Result<Vec<Vec<T>>, Error> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Vec<T>>();
    let mut any = false;
    loop {
        match stream.next() {
            None => break,
            Some(Ok(v)) => {
                any = true;
                out.push(v);
            }
            Some(Err(e)) => {
                return Err(Error {
                    loc: Loc {
                        line: e.line() as u32,
                        col: e.column() as u32,
                    },
                    message: format!("{e}: expected `{what}` output (a JSON array)"),
                })
            }
        }
    }
    if !any {
        return Err(Error {
            loc: Loc { line: 1, col: 1 },
            message: format!("empty file: expected `{what}` output (a JSON array)"),
        });
    }
    Ok(out)
}

/// One interface of `ip -j addr show`.
#[derive(Clone, Debug, Deserialize)]
pub struct AddrIface {
    pub ifname: String,
    #[serde(default)]
    pub addr_info: Vec<AddrInfo>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AddrInfo {
    pub family: String,
    pub local: IpAddr,
    pub prefixlen: u8,
}

pub fn read_addrs(text: &str) -> Result<Vec<AddrIface>, Error> {
    arrays(text, "ip -j addr show")
}

/// One route of `ip -j route show table all` (or `ip -6 -j ...`).
#[derive(Clone, Debug, Deserialize)]
pub struct RouteEntry {
    /// `unicast` when absent; `local`, `broadcast`, `blackhole`, `unreachable`,
    /// `prohibit`, `throw`, `multicast`, `anycast`, `nat`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `default`, an address, or a prefix.
    pub dst: String,
    #[serde(default)]
    pub dev: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    /// `main` when absent; `local`, `default`, or a number.
    #[serde(default)]
    pub table: Option<serde_json::Value>,
    #[serde(default)]
    pub metric: Option<u64>,
    #[serde(default)]
    pub prefsrc: Option<IpAddr>,
    /// Multipath routes list their next hops.
    #[serde(default)]
    pub nexthops: Option<Vec<NextHop>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NextHop {
    #[serde(default)]
    pub dev: Option<String>,
}

/// Routes with their family (true: IPv6): the second array of the file is `ip -6`'s; an
/// entry with an IPv6 destination, gateway or source is IPv6 wherever it stands.
pub fn read_routes(text: &str) -> Result<Vec<(bool, RouteEntry)>, Error> {
    let lists: Vec<Vec<RouteEntry>> = array_list(text, "ip -j route show table all")?;
    let mut out = Vec::new();
    for (i, list) in lists.into_iter().enumerate() {
        for r in list {
            let v6 = r.dst.contains(':')
                || r.gateway.as_deref().is_some_and(|g| g.contains(':'))
                || r.prefsrc.is_some_and(|a| a.is_ipv6())
                || (i >= 1 && !r.dst.contains('.'));
            out.push((v6, r));
        }
    }
    Ok(out)
}

/// One interface of `ip -j -d link show`.
#[derive(Clone, Debug, Deserialize)]
pub struct LinkEntry {
    pub ifname: String,
    #[serde(default)]
    pub flags: Vec<String>,
    /// The bridge (or bond, VRF) this interface is enslaved to.
    #[serde(default)]
    pub master: Option<String>,
    #[serde(default)]
    pub ifalias: Option<String>,
    #[serde(default)]
    pub linkinfo: Option<LinkInfo>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct LinkInfo {
    #[serde(default)]
    pub info_kind: Option<String>,
    #[serde(default)]
    pub info_data: Option<serde_json::Value>,
}

pub fn read_links(text: &str) -> Result<Vec<LinkEntry>, Error> {
    arrays(text, "ip -j -d link show")
}

/// One rule of `ip -j rule show` (or `ip -6 -j rule show`).
#[derive(Clone, Debug, Deserialize)]
pub struct RuleEntry {
    pub priority: u32,
    /// Every key of the rule, for the selectors fwsim reads and those it does not.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// The IPv4 rules (the file's first array) and the IPv6 rules (its second, when given).
pub fn read_rules(text: &str) -> Result<(Vec<RuleEntry>, Option<Vec<RuleEntry>>), Error> {
    let mut lists = array_list(text, "ip -j rule show")?.into_iter();
    let v4 = lists.next().unwrap_or_default();
    let v6 = lists.next();
    Ok((v4, v6))
}

/// A route's destination as a prefix (`default` is the family's /0; a bare address a host
/// route). The family comes from the other fields when `dst` is `default`.
pub fn route_dst(r: &RouteEntry, v6_hint: bool) -> Option<Cidr> {
    match r.dst.as_str() {
        "default" => Some(if v6_hint {
            "::/0".parse().expect("prefix")
        } else {
            "0.0.0.0/0".parse().expect("prefix")
        }),
        d if d.contains('/') => d.parse::<Cidr>().ok().map(|c| c.trunc()),
        d => d.parse::<IpAddr>().ok().map(Cidr::from),
    }
}

/// The name of a route's table: `main` when absent, numbers as iproute2 names them
/// (254 main, 255 local, 253 default).
pub fn table_name(v: &Option<serde_json::Value>) -> String {
    match v {
        None => "main".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(254) => "main".into(),
            Some(255) => "local".into(),
            Some(253) => "default".into(),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_of_iproute2_read() {
        let a = read_addrs(r#"[{"ifindex":3,"ifname":"v0","flags":["UP"],"addr_info":[{"family":"inet","local":"10.1.0.1","prefixlen":24,"scope":"global"}]}]"#).unwrap();
        assert_eq!(a[0].addr_info[0].local.to_string(), "10.1.0.1");
        let r = read_routes("[{\"dst\":\"10.1.0.0/24\",\"dev\":\"v0\"}]\n[{\"type\":\"local\",\"dst\":\"::1\",\"dev\":\"lo\",\"table\":\"local\"}]").unwrap();
        assert_eq!(r.len(), 2);
        assert!(!r[0].0 && r[1].0);
        assert_eq!(table_name(&r[1].1.table), "local");
        assert_eq!(
            route_dst(&r[0].1, false).unwrap().to_string(),
            "10.1.0.0/24"
        );
    }

    #[test]
    fn wrong_and_truncated_listings_are_located() {
        let e = read_addrs(
            "[{\"ifname\":\"lo\",\"addr_info\":[{\"family\":\"inet\",\"local\":\"127.0.0.1\"",
        )
        .unwrap_err();
        assert_eq!(e.loc.line, 1, "{e:?}");
        assert!(e.message.contains("ip -j addr show"), "{e:?}");
        // A route listing given as the address listing: no `ifname`.
        let e = read_addrs("[\n{\"dst\":\"default\",\"dev\":\"eth0\"}]").unwrap_err();
        assert_eq!(e.loc.line, 2, "{e:?}");
        assert!(e.message.contains("ifname"), "{e:?}");
        assert!(read_routes("").is_err());
    }
}
