//! The observer: an nft table in the DUT that records, per probe marker, what the kernel
//! did with each probe, after every chain of the ruleset under test has run.
//!
//! - `input` at priority 2147483000 (after every user chain, before conntrack confirm at
//!   INT_MAX): the probe was accepted for local delivery; recorded, then dropped (so the
//!   local stack never answers and conntrack never confirms: every probe is NEW).
//! - `postrouting` at 2147483000: the probe was forwarded (FORWARD and POSTROUTING passed).
//! - `output` at -2147483000 (before any user chain): everything the DUT itself sends is
//!   dropped; TCP RSTs and ICMP destination-unreachable are REJECT replies, recorded by the
//!   marker they carry back (RST: ack = probe seq + 1; ICMP: the quoted IP ID / flow label).
//!
//! - `prerouting` at -2147483000: the sentinel (see [`SENTINEL4`]).
//!
//! Nothing recorded: the probe was dropped. (docs/kernel-harness-notes.md, §2b.)

use super::KernelError;
use std::collections::BTreeSet;

pub const TABLE: &str = "fwsim_observe";
/// The source of the sentinel probe sent after a batch: recorded and dropped in
/// PREROUTING before any chain of the ruleset, so that once it is seen, every probe sent
/// before it has been through the DUT (one veth, one queue, in order).
pub const SENTINEL4: &str = "198.18.255.254";
pub const SENTINEL6: &str = "100::fe";

/// The observer table, for `nft -f` (after `flush ruleset` in the same transaction).
pub fn table() -> String {
    table_with(false)
}

/// The observer; with `pass`, accepted probes are recorded and let through (input to the
/// local stack, forward to the neighbour namespace, which drops them), so that conntrack
/// confirms their connections: the connection mode of the kernel check. What the local
/// stack answers still goes to the output chain, which drops it before conntrack sees it.
pub fn table_with(pass: bool) -> String {
    let end = if pass { "" } else { " drop" };
    format!(
        r#"table inet {TABLE} {{
	set in4 {{ typeof ip id; flags dynamic; size 65536; }}
	set in6 {{ typeof ip6 flowlabel; flags dynamic; size 65536; }}
	set fw4 {{ typeof ip id; flags dynamic; size 65536; }}
	set fw6 {{ typeof ip6 flowlabel; flags dynamic; size 65536; }}
	set rst {{ typeof tcp ackseq; flags dynamic; size 65536; }}
	set unr4 {{ typeof @th,96,16; flags dynamic; size 65536; }}
	set unr6 {{ typeof @th,76,20; flags dynamic; size 65536; }}
	set sent4 {{ typeof ip id; flags dynamic; size 65536; }}
	set sent6 {{ typeof ip6 flowlabel; flags dynamic; size 65536; }}
	chain obs_sentinel {{
		type filter hook prerouting priority -2147483000; policy accept;
		ip saddr {SENTINEL4} update @sent4 {{ ip id }} drop
		ip6 saddr {SENTINEL6} update @sent6 {{ ip6 flowlabel }} drop
	}}
	chain obs_input {{
		type filter hook input priority 2147483000; policy accept;
		meta nfproto ipv4 update @in4 {{ ip id }}{end}
		meta nfproto ipv6 update @in6 {{ ip6 flowlabel }}{end}
	}}
	chain obs_post {{
		type filter hook postrouting priority 2147483000; policy accept;
		meta nfproto ipv4 update @fw4 {{ ip id }}{end}
		meta nfproto ipv6 update @fw6 {{ ip6 flowlabel }}{end}
	}}
	chain obs_output {{
		type filter hook output priority -2147483000; policy drop;
		tcp flags & rst == rst update @rst {{ tcp ackseq }} drop
		icmp type destination-unreachable update @unr4 {{ @th,96,16 }} drop
		icmpv6 type destination-unreachable update @unr6 {{ @th,76,20 }} drop
	}}
}}
"#
    )
}

/// What the kernel did with each marker.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub input: BTreeSet<u32>,
    pub forward: BTreeSet<u32>,
    /// TCP RST acks (probe seq + 1).
    pub rst: BTreeSet<u32>,
    pub unreach: BTreeSet<u32>,
    pub sentinel: BTreeSet<u32>,
}

/// What happened to one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFate {
    AcceptInput,
    AcceptForward,
    Reject,
    Drop,
}

impl KernelFate {
    pub fn as_str(self) -> &'static str {
        match self {
            KernelFate::AcceptInput => "accept (input)",
            KernelFate::AcceptForward => "accept (forward)",
            KernelFate::Reject => "reject",
            KernelFate::Drop => "drop",
        }
    }
}

impl Seen {
    pub fn fate(&self, marker: u16, tcp: bool) -> KernelFate {
        let m = u32::from(marker);
        if self.input.contains(&m) {
            KernelFate::AcceptInput
        } else if self.forward.contains(&m) {
            KernelFate::AcceptForward
        } else if (tcp && self.rst.contains(&((m << 16) + 1))) || self.unreach.contains(&m) {
            KernelFate::Reject
        } else {
            KernelFate::Drop
        }
    }
}

/// Read the sets from `nft -j list table inet fwsim_observe` output.
pub fn parse(json: &str) -> Result<Seen, KernelError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| KernelError::Tool(format!("observer JSON: {e}")))?;
    let mut seen = Seen::default();
    let items = v
        .get("nftables")
        .and_then(|n| n.as_array())
        .ok_or_else(|| KernelError::Tool("observer JSON: no `nftables` array".into()))?;
    for item in items {
        let Some(set) = item.get("set") else { continue };
        let name = set.get("name").and_then(|n| n.as_str()).unwrap_or("");
        let target = match name {
            "in4" | "in6" => &mut seen.input,
            "fw4" | "fw6" => &mut seen.forward,
            "rst" => &mut seen.rst,
            "unr4" | "unr6" => &mut seen.unreach,
            "sent4" | "sent6" => &mut seen.sentinel,
            _ => continue,
        };
        for e in set
            .get("elem")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            // A plain number, or {"elem": {"val": N, ...}} when elements carry counters.
            let n = e.as_u64().or_else(|| {
                e.get("elem")
                    .and_then(|x| x.get("val"))
                    .and_then(|x| x.as_u64())
            });
            if let Some(n) = n {
                target.insert(n as u32);
            }
        }
    }
    Ok(seen)
}
