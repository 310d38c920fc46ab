//! The `kernel` dataplane of single-host scenarios: the scenario's ruleset loaded into a
//! lab whose DUT has the packets' interfaces and addresses, and each packet sent as a real
//! packet.
//!
//! Contract: [`judge`] returns, per packet, the kernel's fate or why the kernel cannot be
//! asked (an output packet, a state other than NEW, a mark, a protocol the prober does not
//! build); it never guesses. The ruleset is loaded with the tool its text calls for:
//! `nft -f` for nft text, `iptables-nft-restore` when an iptables-save header says
//! `nf_tables`, `iptables-legacy-restore` otherwise (ip6tables-* for IPv6). One lab per
//! distinct (input, output) interface pair, deleted afterwards.

use super::lab::{LabSpec, DUT_IN, DUT_OUT};
use super::observer::KernelFate;
use super::probe::Probe;
use super::{available, Backend, KernelError};
use crate::netfilter::{detect, Format};
use crate::values::{CtState, Hook, Packet};

/// Which loader a ruleset text needs, and whether it is IPv6 (iptables only).
fn backend_of(text: &str, v6: bool) -> Result<(Backend, bool), String> {
    match detect(text) {
        Some(Format::NftText) => Ok((Backend::Nft, v6)),
        Some(Format::IptablesSave) => {
            let nft = crate::netfilter::from_iptables::Backend::of_text(text)
                == crate::netfilter::from_iptables::Backend::Nft;
            let v6 = text
                .lines()
                .take_while(|l| l.starts_with('#') || l.trim().is_empty())
                .any(|l| l.contains("ip6tables"))
                || v6;
            Ok((
                if nft {
                    Backend::IptablesNft
                } else {
                    Backend::Legacy
                },
                v6,
            ))
        }
        _ => Err("the kernel dataplane loads iptables-save and nft text rulesets only".into()),
    }
}

/// Why this packet cannot be sent through the lab, if it cannot.
fn unsendable(p: &Packet) -> Option<String> {
    if p.hook == Hook::Output {
        return Some(
            "the kernel dataplane sends packets from outside the host: output packets are not sent"
                .into(),
        );
    }
    if p.ctstate != CtState::New {
        return Some(format!(
            "the kernel dataplane sends the first packet of a connection only (ctstate new), not {:?}",
            p.ctstate
        ));
    }
    if p.mark != 0 {
        return Some("a packet mark cannot be carried into the host from outside".into());
    }
    let icmp = if p.src.is_ipv4() { 1 } else { 58 };
    if ![6, 17, icmp].contains(&p.protocol) {
        return Some(format!(
            "the kernel dataplane sends TCP, UDP and ICMP echo probes, not protocol {}",
            p.protocol
        ));
    }
    if p.iif.as_deref() == Some("lo") || p.oif.as_deref() == Some("lo") {
        return Some("loopback traffic cannot be sent into the host from outside".into());
    }
    if p.src.is_ipv4() != p.dst.is_ipv4() {
        return Some("source and destination of different IP versions".into());
    }
    None
}

/// Ask the kernel about every packet, with `text` loaded.
pub fn judge(
    text: &str,
    ipsets: Option<&str>,
    host: Option<&crate::netfilter::interp::Host>,
    packets: &[Packet],
) -> Vec<Result<KernelFate, String>> {
    let mut out: Vec<Result<KernelFate, String>> = packets
        .iter()
        .map(|p| match unsendable(p) {
            Some(why) => Err(why),
            None => Ok(KernelFate::Drop),
        })
        .collect();
    let backends = [Backend::Legacy, Backend::IptablesNft, Backend::Nft];
    if let Err(e) = available(&backends) {
        for o in out.iter_mut() {
            *o = Err(e.to_string());
        }
        return out;
    }
    // Groups of packets by interface pair.
    let mut groups: Vec<((String, String), Vec<usize>)> = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        if out[i].is_err() {
            continue;
        }
        let key = (
            p.iif.clone().unwrap_or_else(|| DUT_IN.into()),
            p.oif.clone().unwrap_or_else(|| DUT_OUT.into()),
        );
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    for ((iif, oif), idx) in groups {
        let result = judge_group(text, ipsets, host, packets, &idx, &iif, &oif);
        for (k, &i) in idx.iter().enumerate() {
            out[i] = match &result {
                Ok(f) => Ok(f[k]),
                Err(e) => Err(e.to_string()),
            };
        }
    }
    out
}

fn judge_group(
    text: &str,
    ipsets: Option<&str>,
    host: Option<&crate::netfilter::interp::Host>,
    packets: &[Packet],
    idx: &[usize],
    iif: &str,
    oif: &str,
) -> Result<Vec<KernelFate>, KernelError> {
    if iif == oif {
        return Err(KernelError::Tool(format!(
            "input and output interface are both `{iif}`: the lab has two interfaces"
        )));
    }
    let mut spec = LabSpec {
        iif: iif.into(),
        oif: oif.into(),
        ..Default::default()
    };
    // The scenario's host addresses: with a prefix on the input interface (so that the
    // network's broadcast address exists), else on `lo`.
    if let Some(h) = host {
        for a in &h.addresses {
            match h.networks.iter().find(|n| n.contains(a)) {
                Some(n) => spec
                    .local_nets
                    .push(crate::values::Cidr::new(*a, n.prefix_len()).expect("prefix")),
                None => spec.local.push(*a),
            }
        }
    }
    for &i in idx {
        let p = &packets[i];
        // The packet's hook is the routing decision: an input packet's destination is
        // made local even when `host:` does not list it (a DHCP reply before the lease).
        let list = if p.hook == Hook::Input {
            &mut spec.local
        } else {
            &mut spec.forward
        };
        let on_iif = spec.local_nets.iter().any(|n| n.addr() == p.dst);
        if !list.contains(&p.dst) && !on_iif {
            list.push(p.dst);
        }
    }
    let v6 = packets[idx[0]].src.is_ipv6();
    let (backend, v6) = backend_of(text, v6).map_err(KernelError::Tool)?;
    let (lab, sender) = super::check::loaded_lab(&spec, backend, v6, text, ipsets)?;
    let probes: Vec<Probe> = idx
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let p = &packets[i];
            Probe {
                src: p.src,
                dst: p.dst,
                protocol: p.protocol,
                sport: p.sport.unwrap_or(40000),
                dport: p.dport.unwrap_or(80),
                marker: k as u16 + 1,
            }
        })
        .collect();
    let seen = super::check::send_and_observe(&lab, &sender, &probes)?;
    Ok(idx
        .iter()
        .enumerate()
        .map(|(k, &i)| seen.fate(k as u16 + 1, packets[i].protocol == 6))
        .collect())
}
