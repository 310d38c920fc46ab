//! The transport protocol of a flow or a policy port.

use std::fmt;
use std::str::FromStr;

/// A flow's protocol. NetworkPolicy ports name only TCP, UDP and SCTP; ICMP flows are
/// matched only by rules without `ports`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Icmp,
}

impl Protocol {
    /// True for protocols that have ports.
    pub fn has_ports(self) -> bool {
        !matches!(self, Protocol::Icmp)
    }

    /// The IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Icmp => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Icmp => "ICMP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;
    /// Any case: `tcp`, `TCP`, `Tcp`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            "ICMP" => Ok(Protocol::Icmp),
            _ => Err(format!(
                "unknown protocol `{s}`: expected TCP, UDP, SCTP or ICMP"
            )),
        }
    }
}
