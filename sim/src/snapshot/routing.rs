//! The kernel's routing decision on a snapshot's tables: policy rules in priority order,
//! each looking up its table by longest prefix (lowest metric on ties), as `fib_lookup`
//! does (FIB rules: net/core/fib_rules.c; route types: include/uapi/linux/rtnetlink.h).
//!
//! Contract: [`Routing::decide`] cannot fail. It gives the route the kernel takes for a
//! packet, or says why the snapshot cannot decide it (a rule selecting on something the
//! packet does not say before netfilter runs, such as the mark PREROUTING may set, or a
//! selector fwsim does not read), never a guess.

use super::iproute::{route_dst, table_name, RouteEntry, RuleEntry};
use crate::values::Cidr;
use std::net::IpAddr;

/// One route, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub table: String,
    pub dst: Cidr,
    /// `unicast`, `local`, `broadcast`, `blackhole`, `unreachable`, `prohibit`, `throw`...
    pub kind: String,
    /// The output device (a multipath route whose hops share one device has it too).
    pub dev: Option<String>,
    pub metric: u64,
}

/// What routing does with a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Delivered to the host (a `local` or `broadcast` route): the input path.
    Local {
        table: String,
    },
    /// Out of `dev`: the forward path (or, for the host's own packets, the output path).
    Out {
        dev: String,
        table: String,
    },
    /// A route to nowhere (`blackhole`, `unreachable`, `prohibit`): the kernel drops it.
    Nowhere {
        kind: String,
        table: String,
    },
    /// No rule's table has a route: the kernel drops it (network unreachable).
    NoRoute,
    Undecided(String),
}

/// A policy rule, checked.
#[derive(Clone, Debug)]
struct Rule {
    priority: u32,
    invert: bool,
    src: Option<Cidr>,
    dst: Option<Cidr>,
    iif: Option<String>,
    oif: Option<String>,
    /// What the rule does: look up a table, or an action of its own.
    action: Action,
    /// A selector fwsim does not read, or one the packet cannot answer before netfilter.
    unknown: Option<String>,
}

#[derive(Clone, Debug)]
enum Action {
    Table(String),
    Nowhere(String),
    Nop,
    Undecided(String),
}

#[derive(Clone, Debug, Default)]
pub struct Routing {
    pub routes: Vec<Route>,
    /// The policy rules of each family, by priority; when not collected, the kernel's
    /// defaults (local, main, and for IPv4 default).
    rules_v4: Vec<Rule>,
    rules_v6: Vec<Rule>,
}

fn default_rules(v6: bool) -> Vec<Rule> {
    let mut tables = vec![(0, "local"), (32766, "main")];
    if !v6 {
        tables.push((32767, "default"));
    }
    tables
        .into_iter()
        .map(|(priority, t)| Rule {
            priority,
            invert: false,
            src: None,
            dst: None,
            iif: None,
            oif: None,
            action: Action::Table(t.into()),
            unknown: None,
        })
        .collect()
}

fn rule_of(r: &RuleEntry) -> Rule {
    let mut rule = Rule {
        priority: r.priority,
        invert: false,
        src: None,
        dst: None,
        iif: None,
        oif: None,
        action: Action::Nop,
        unknown: None,
    };
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string).unwrap_or(v.to_string());
    let prefix = |addr: &serde_json::Value, len: Option<&serde_json::Value>| -> Option<Cidr> {
        let a: IpAddr = addr.as_str()?.parse().ok()?;
        let max = if a.is_ipv4() { 32 } else { 128 };
        let l = len.and_then(|l| l.as_u64()).unwrap_or(max) as u8;
        Cidr::new(a, l).ok().map(|c| c.trunc())
    };
    let mut table = None;
    for (k, v) in &r.rest {
        match k.as_str() {
            "not" => rule.invert = true,
            "src" if v.as_str() == Some("all") => {}
            "src" => match prefix(v, r.rest.get("srclen")) {
                Some(c) => rule.src = Some(c),
                None => rule.unknown = Some(format!("source selector `{}`", s(v))),
            },
            "dst" if v.as_str() == Some("all") => {}
            "dst" => match prefix(v, r.rest.get("dstlen")) {
                Some(c) => rule.dst = Some(c),
                None => rule.unknown = Some(format!("destination selector `{}`", s(v))),
            },
            "srclen" | "dstlen" | "protocol" | "priority" => {}
            "iif" => rule.iif = Some(s(v)),
            "oif" => rule.oif = Some(s(v)),
            "table" => table = Some(table_name(&Some(v.clone()))),
            "action" => match v.as_str() {
                Some(a @ ("blackhole" | "unreachable" | "prohibit")) => {
                    rule.action = Action::Nowhere(a.into())
                }
                Some("nop") => rule.action = Action::Nop,
                other => {
                    rule.action = Action::Undecided(format!(
                        "rule {}: action `{}` is not modelled",
                        r.priority,
                        other.unwrap_or("?")
                    ))
                }
            },
            "fwmark" | "fwmask" => {
                rule.unknown = Some(format!(
                    "an fwmark selector ({}): the route depends on the mark netfilter sets before routing",
                    s(v)
                ))
            }
            other => rule.unknown = Some(format!("selector `{other}` ({}) is not modelled", s(v))),
        }
    }
    if let Some(t) = table {
        if matches!(rule.action, Action::Nop) {
            rule.action = Action::Table(t);
        }
    }
    rule
}

impl Routing {
    /// The routes and rules of a snapshot (`rules`: the IPv4 and IPv6 rule listings, None
    /// when not collected).
    pub fn new(
        routes: &[(bool, RouteEntry)],
        rules: Option<&(Vec<RuleEntry>, Option<Vec<RuleEntry>>)>,
    ) -> Routing {
        let mut out = Vec::new();
        for (v6, r) in routes {
            let Some(dst) = route_dst(r, *v6) else {
                continue;
            };
            let dev = r.dev.clone().or_else(|| {
                let hops = r.nexthops.as_ref()?;
                let first = hops.first()?.dev.clone()?;
                hops.iter()
                    .all(|h| h.dev.as_deref() == Some(&first))
                    .then_some(first)
            });
            out.push(Route {
                table: table_name(&r.table),
                dst,
                kind: r.kind.clone().unwrap_or_else(|| "unicast".into()),
                dev,
                metric: r.metric.unwrap_or(0),
            });
        }
        let (rules_v4, rules_v6) = match rules {
            Some((v4, v6)) => {
                let mut a: Vec<Rule> = v4.iter().map(rule_of).collect();
                let mut b: Vec<Rule> = match v6 {
                    Some(v6) => v6.iter().map(rule_of).collect(),
                    None => default_rules(true),
                };
                a.sort_by_key(|r| r.priority);
                b.sort_by_key(|r| r.priority);
                (a, b)
            }
            None => (default_rules(false), default_rules(true)),
        };
        Routing {
            routes: out,
            rules_v4,
            rules_v6,
        }
    }

    /// The policy rules differ from the kernel's defaults (local, main, default).
    pub fn has_policy_rules(&self) -> bool {
        let plain = |rules: &[Rule], v6: bool| {
            let d = default_rules(v6);
            rules.len() == d.len()
                && rules.iter().zip(&d).all(|(a, b)| {
                    a.priority == b.priority
                        && a.unknown.is_none()
                        && a.src.is_none()
                        && a.dst.is_none()
                        && a.iif.is_none()
                        && a.oif.is_none()
                        && !a.invert
                        && matches!((&a.action, &b.action), (Action::Table(x), Action::Table(y)) if x == y)
                })
        };
        !(plain(&self.rules_v4, false) && plain(&self.rules_v6, true))
    }

    /// The longest-prefix route for `dst` in `table` (lowest metric on ties).
    pub fn lookup(&self, table: &str, dst: IpAddr) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.table == table && r.dst.contains(&dst))
            .max_by(|a, b| {
                a.dst
                    .prefix_len()
                    .cmp(&b.dst.prefix_len())
                    .then(b.metric.cmp(&a.metric))
            })
    }

    /// The route the kernel takes for a packet from `src` to `dst` received on `iif`
    /// (None: the host's own packet, which routing sees as from `lo`).
    pub fn decide(&self, src: IpAddr, dst: IpAddr, iif: Option<&str>) -> Decision {
        let rules = if dst.is_ipv4() {
            &self.rules_v4
        } else {
            &self.rules_v6
        };
        for rule in rules {
            let hit = rule.src.is_none_or(|c| c.contains(&src))
                && rule.dst.is_none_or(|c| c.contains(&dst))
                && rule
                    .iif
                    .as_deref()
                    .is_none_or(|i| i == iif.unwrap_or("lo"))
                // `oif` selects the flow's bound device (a socket bound to a device, a
                // VRF), which a forwarded packet does not have.
                && (rule.oif.is_none() || iif.is_none());
            if rule.oif.is_some() && hit {
                return Decision::Undecided(format!(
                    "ip rule {}: an oif selector depends on the sending socket's device",
                    rule.priority
                ));
            }
            if let (Some(why), true) = (&rule.unknown, hit) {
                return Decision::Undecided(format!("ip rule {}: {why}", rule.priority));
            }
            if hit == rule.invert {
                continue;
            }
            match &rule.action {
                Action::Nop => continue,
                Action::Nowhere(kind) => {
                    return Decision::Nowhere {
                        kind: kind.clone(),
                        table: format!("ip rule {}", rule.priority),
                    }
                }
                Action::Undecided(why) => return Decision::Undecided(why.clone()),
                Action::Table(t) => {
                    let Some(r) = self.lookup(t, dst) else {
                        continue;
                    };
                    match r.kind.as_str() {
                        "local" | "broadcast" => return Decision::Local { table: t.clone() },
                        "unicast" => match &r.dev {
                            Some(dev) => {
                                return Decision::Out {
                                    dev: dev.clone(),
                                    table: t.clone(),
                                }
                            }
                            None => {
                                return Decision::Undecided(format!(
                                    "the route to {} in table {t} has next hops on several devices",
                                    r.dst
                                ))
                            }
                        },
                        "blackhole" | "unreachable" | "prohibit" => {
                            return Decision::Nowhere {
                                kind: r.kind.clone(),
                                table: t.clone(),
                            }
                        }
                        "throw" => continue,
                        other => {
                            return Decision::Undecided(format!(
                                "a `{other}` route to {} in table {t} is not modelled",
                                r.dst
                            ))
                        }
                    }
                }
            }
        }
        Decision::NoRoute
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::iproute::{read_routes, read_rules};

    const ROUTES: &str = r#"[{"dst":"default","gateway":"192.168.0.254","dev":"eth0"},
{"dst":"10.244.1.5","dev":"cali1234","scope":"link"},
{"type":"blackhole","dst":"10.244.1.0/26"},
{"dst":"10.0.0.0/8","dev":"eth1","metric":100},{"dst":"10.0.0.0/8","dev":"eth2","metric":50},
{"type":"local","dst":"192.168.0.1","dev":"eth0","table":"local"},
{"dst":"10.9.0.0/16","dev":"wg0","table":"200"}]"#;

    #[test]
    fn longest_prefix_then_metric_then_types() {
        let r = Routing::new(&read_routes(ROUTES).unwrap(), None);
        let src: IpAddr = "203.0.113.1".parse().unwrap();
        let d = |a: &str| r.decide(src, a.parse().unwrap(), Some("eth0"));
        assert_eq!(
            d("10.244.1.5"),
            Decision::Out {
                dev: "cali1234".into(),
                table: "main".into()
            }
        );
        assert!(matches!(d("10.244.1.6"), Decision::Nowhere { kind, .. } if kind == "blackhole"));
        assert!(matches!(d("10.1.2.3"), Decision::Out { dev, .. } if dev == "eth2"));
        assert!(matches!(d("192.168.0.1"), Decision::Local { .. }));
        assert!(matches!(d("8.8.8.8"), Decision::Out { dev, .. } if dev == "eth0"));
        // Table 200 is reached only through a rule.
        assert!(matches!(d("10.9.1.1"), Decision::Out { dev, .. } if dev == "eth2"));
        assert!(!r.has_policy_rules());
    }

    #[test]
    fn policy_rules_in_priority_order() {
        let rules = read_rules(
            r#"[{"priority":0,"src":"all","table":"local"},{"priority":100,"src":"203.0.113.0","srclen":24,"table":"200"},{"priority":150,"not":null,"src":"all","fwmark":"0x10","table":"200"},{"priority":32766,"src":"all","table":"main"}]"#,
        )
        .unwrap();
        let r = Routing::new(&read_routes(ROUTES).unwrap(), Some(&rules));
        assert!(r.has_policy_rules());
        let dst: IpAddr = "10.9.1.1".parse().unwrap();
        assert!(
            matches!(r.decide("203.0.113.1".parse().unwrap(), dst, Some("eth0")), Decision::Out { dev, .. } if dev == "wg0")
        );
        // Another source reaches the fwmark rule: undecided, never guessed.
        assert!(matches!(
            r.decide("198.51.100.1".parse().unwrap(), dst, Some("eth0")),
            Decision::Undecided(why) if why.contains("fwmark")
        ));
    }
}
