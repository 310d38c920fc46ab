//! A single packet through a host, with the fields single-host scenarios give it.

use std::fmt;
use std::net::IpAddr;

/// Where a packet enters the host's netfilter path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// PREROUTING then INPUT.
    Input,
    /// PREROUTING, FORWARD, POSTROUTING.
    Forward,
    /// OUTPUT then POSTROUTING.
    Output,
}

/// The packet's conntrack state as the host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtState {
    New,
    Established,
    Related,
    Invalid,
    Untracked,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP, 58 ICMPv6, ...).
    pub protocol: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub hook: Hook,
    pub ctstate: CtState,
    pub mark: u32,
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "src={} dst={} protocol={}",
            self.src, self.dst, self.protocol
        )?;
        if let Some(p) = self.sport {
            write!(f, " sport={p}")?;
        }
        if let Some(p) = self.dport {
            write!(f, " dport={p}")?;
        }
        if let Some(i) = &self.iif {
            write!(f, " iif={i}")?;
        }
        if let Some(o) = &self.oif {
            write!(f, " oif={o}")?;
        }
        let hook = match self.hook {
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
        };
        let ct = match self.ctstate {
            CtState::New => "new",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::Invalid => "invalid",
            CtState::Untracked => "untracked",
        };
        write!(f, " hook={hook} ctstate={ct}")?;
        if self.mark != 0 {
            write!(f, " mark={:#x}", self.mark)?;
        }
        Ok(())
    }
}
