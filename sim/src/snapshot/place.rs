//! A packet placed on a node: the hook and devices the kernel's routing gives it, for
//! `fwsim trace --node` (and `--addr`/`--route` on a bare ruleset).
//!
//! Contract: [`place`] fills in what the user left out (the hook, the input device, the
//! output device) from the node's routes, as the kernel's routing decision does, and says
//! in a note what it derived; what the user gave is kept. When routing drops the packet
//! before netfilter's FORWARD or INPUT, or cannot be decided, it says so instead.

use super::{PathChoice, Snapshot};
use crate::values::{Cidr, Hook, Packet};

/// Which packet fields the user gave.
#[derive(Clone, Copy, Debug, Default)]
pub struct Given {
    pub hook: bool,
    pub iif: bool,
    pub oif: bool,
}

impl Given {
    /// From `key=value` arguments.
    pub fn of_args(args: &[String]) -> Given {
        let has = |k: &str| args.iter().any(|a| a.split('=').next() == Some(k));
        Given {
            hook: has("hook"),
            iif: has("iif"),
            oif: has("oif"),
        }
    }
}

/// The outcome of placing a packet.
#[derive(Clone, Debug)]
pub enum Placed {
    /// Walk it (the notes say what was derived).
    Walk(Packet, Vec<String>),
    /// Routing drops it (why), after PREROUTING.
    Dropped(Packet, Vec<String>, String),
    /// The path cannot be decided (why).
    Undecided(Packet, Vec<String>, String),
}

/// Place `p` on `s`.
pub fn place(s: &Snapshot, mut p: Packet, given: Given) -> Placed {
    let mut notes = Vec::new();
    let own = s.host.addresses.contains(&p.src) && !given.iif;
    if given.hook {
        if !given.oif && matches!(p.hook, Hook::Forward | Hook::Output) {
            let iif = if p.hook == Hook::Output {
                None
            } else {
                p.iif.as_deref()
            };
            if let PathChoice::Out(dev) = s.route(p.src, p.dst, iif) {
                notes.push(format!("oif={dev}: the route to {}", p.dst));
                p.oif = Some(dev);
            }
        }
        return Placed::Walk(p, notes);
    }
    if own {
        // The host's own packet: the output path.
        p.hook = Hook::Output;
        match s.route(p.src, p.dst, None) {
            PathChoice::Out(dev) => {
                notes.push(format!(
                    "hook=output oif={dev}: {} is this node's address, and the route to {} is out of {dev}",
                    p.src, p.dst
                ));
                if !given.oif {
                    p.oif = Some(dev);
                }
            }
            PathChoice::Input => {
                notes.push(format!(
                    "hook=output oif=lo: both {} and {} are this node's",
                    p.src, p.dst
                ));
                if !given.oif {
                    p.oif = Some("lo".into());
                }
            }
            PathChoice::Dropped(why) | PathChoice::Unroutable(why) => {
                return Placed::Dropped(p, notes, why)
            }
            PathChoice::Undecided(why) => return Placed::Undecided(p, notes, why),
        }
        return Placed::Walk(p, notes);
    }
    if !given.iif {
        // Received: on the device the route back to the source leaves by.
        match s.host.route(p.src).filter(|d| !d.is_empty()) {
            Some(dev) => {
                notes.push(format!(
                    "iif={dev}: the route back to {} is out of {dev}",
                    p.src
                ));
                p.iif = Some(dev.to_string());
            }
            None => {
                return Placed::Undecided(
                    p.clone(),
                    notes,
                    format!(
                        "no route back to {}: give the device it arrives on (iif=...)",
                        p.src
                    ),
                )
            }
        }
    }
    match s.route(p.src, p.dst, p.iif.as_deref()) {
        PathChoice::Input => {
            p.hook = Hook::Input;
            notes.push(format!("hook=input: {} is this node's address", p.dst));
        }
        PathChoice::Out(dev) => {
            p.hook = Hook::Forward;
            notes.push(format!(
                "hook=forward oif={dev}: the route to {} is out of {dev}",
                p.dst
            ));
            if !given.oif {
                p.oif = Some(dev);
            }
        }
        PathChoice::Unroutable(why) => {
            // Routing runs after PREROUTING: a DNAT there may still make it routable
            // (the walk drops it at the routing step otherwise).
            p.hook = Hook::Forward;
            p.oif = None;
            notes.push(format!(
                "routing cannot deliver it as addressed ({why}): dropped after PREROUTING unless a DNAT there changes its destination"
            ));
        }
        PathChoice::Dropped(why) => return Placed::Dropped(p, notes, why),
        PathChoice::Undecided(why) => return Placed::Undecided(p, notes, why),
    }
    Placed::Walk(p, notes)
}

/// A bare host model from `--addr CIDR[@DEV]` and `--route CIDR@DEV` flags: the addresses
/// (each with its connected route when a device is given, as the kernel adds it), the
/// routes, the kernel's default policy rules, every sysctl left at the kernel's default.
pub fn from_flags(addrs: &[String], routes: &[String]) -> Result<Snapshot, String> {
    use super::iproute::RouteEntry;
    let mut entries: Vec<(bool, RouteEntry)> = Vec::new();
    let mut snap_addrs = Vec::new();
    let route =
        |dst: String, dev: Option<String>, kind: Option<&str>, table: Option<&str>| RouteEntry {
            kind: kind.map(str::to_string),
            dst,
            dev,
            gateway: None,
            table: table.map(|t| serde_json::Value::String(t.into())),
            metric: None,
            prefsrc: None,
            nexthops: None,
        };
    for a in addrs {
        let (cidr, dev) = match a.split_once('@') {
            Some((c, d)) => (c, Some(d.to_string())),
            None => (a.as_str(), None),
        };
        let (addr, prefix) = match cidr.split_once('/') {
            Some((ip, len)) => (ip, len.parse::<u8>().ok()),
            None => (cidr, None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| {
            format!("--addr {a}: expected an address with an optional prefix and device, such as 192.168.0.1/24@eth0")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        let net = Cidr::new(addr, prefix)
            .map_err(|_| format!("--addr {a}: prefix /{prefix} is too long"))?;
        snap_addrs.push(super::Addr {
            dev: dev.clone().unwrap_or_else(|| "lo".into()),
            addr,
            prefix,
        });
        entries.push((
            addr.is_ipv6(),
            route(addr.to_string(), dev.clone(), Some("local"), Some("local")),
        ));
        if let Some(d) = dev {
            if prefix < max {
                entries.push((
                    addr.is_ipv6(),
                    route(net.trunc().to_string(), Some(d), None, None),
                ));
            }
        }
    }
    for r in routes {
        let Some((cidr, dev)) = r.split_once('@') else {
            return Err(format!(
                "--route {r}: expected CIDR@DEVICE, such as 0.0.0.0/0@eth0"
            ));
        };
        let net: Cidr = match cidr {
            "default" => "0.0.0.0/0".parse().expect("prefix"),
            c => c
                .parse::<Cidr>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(Cidr::from))
                .map_err(|_| format!("--route {r}: `{cidr}` is not a CIDR"))?,
        };
        entries.push((
            net.addr().is_ipv6(),
            route(net.trunc().to_string(), Some(dev.to_string()), None, None),
        ));
    }
    let routing = super::routing::Routing::new(&entries, None);
    let host = super::host_of(&snap_addrs, &routing);
    Ok(Snapshot {
        dir: "<command line>".into(),
        info: super::NodeInfo::default(),
        ruleset: Default::default(),
        table_files: Vec::new(),
        host,
        routing,
        links: Vec::new(),
        addrs: snap_addrs,
        sysctl: Default::default(),
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(args: &str) -> (Packet, Given) {
        let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
        (
            crate::scenario::packet_from_args(&args).unwrap(),
            Given::of_args(&args),
        )
    }

    #[test]
    fn the_path_follows_the_routes() {
        let s = from_flags(
            &["192.168.0.1/24@eth0".into(), "10.244.1.1/32@tunl0".into()],
            &["10.244.1.7@cali1".into(), "default@eth0".into()],
        )
        .unwrap();
        let (p, g) = packet("src=198.51.100.4 dst=192.168.0.1 protocol=tcp dport=22");
        let Placed::Walk(p, notes) = place(&s, p, g) else {
            panic!()
        };
        assert_eq!(
            (p.hook, p.iif.as_deref()),
            (Hook::Input, Some("eth0")),
            "{notes:?}"
        );
        let (p, g) = packet("src=198.51.100.4 dst=10.244.1.7 protocol=tcp dport=80 iif=eth0");
        let Placed::Walk(p, _) = place(&s, p, g) else {
            panic!()
        };
        assert_eq!((p.hook, p.oif.as_deref()), (Hook::Forward, Some("cali1")));
        let (p, g) = packet("src=192.168.0.1 dst=8.8.8.8 protocol=udp dport=53");
        let Placed::Walk(p, _) = place(&s, p, g) else {
            panic!()
        };
        assert_eq!((p.hook, p.oif.as_deref()), (Hook::Output, Some("eth0")));
        // What the user gave stays.
        let (p, g) = packet("src=198.51.100.4 dst=10.244.1.7 protocol=tcp dport=80 hook=input");
        let Placed::Walk(p, _) = place(&s, p, g) else {
            panic!()
        };
        assert_eq!(p.hook, Hook::Input);
        // No route back to the source, and no iif given: undecided, not guessed.
        let s = from_flags(&["192.168.0.1/24@eth0".into()], &[]).unwrap();
        let (p, g) = packet("src=198.51.100.4 dst=192.168.0.1 protocol=tcp dport=22");
        assert!(matches!(place(&s, p, g), Placed::Undecided(..)));
        // No route: the walk drops it after PREROUTING (no DNAT here).
        let (p, g) = packet("src=192.168.0.9 dst=198.51.100.4 protocol=tcp dport=22");
        let Placed::Walk(p, notes) = place(&s, p, g) else {
            panic!()
        };
        assert!(notes.iter().any(|n| n.contains("no route")), "{notes:?}");
        let w = crate::netfilter::interp::walk_on(&Default::default(), &p, Some(&s.host));
        // Forwarding is on (no sysctl says otherwise): the kernel answers net-unreachable.
        assert_eq!(w.fate.as_str(), "reject", "{w}");
        assert!(w.to_string().contains("net-unreachable"), "{w}");
        assert!(from_flags(&["banana".into()], &[]).is_err());
        assert!(from_flags(&[], &["10.0.0.0/8".into()]).is_err());
    }
}
