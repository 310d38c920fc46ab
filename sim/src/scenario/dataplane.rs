//! The dataplanes a scenario can name.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataplane {
    Reference,
    CalicoIptables,
    CalicoNftables,
    Flannel,
    Kernel,
    Netfilter,
    /// The rules and routes the nodes really hold (node snapshots, `nodes:`).
    Captured,
}

impl Dataplane {
    pub const ALL: [Dataplane; 7] = [
        Dataplane::Reference,
        Dataplane::CalicoIptables,
        Dataplane::CalicoNftables,
        Dataplane::Flannel,
        Dataplane::Kernel,
        Dataplane::Netfilter,
        Dataplane::Captured,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dataplane::Reference => "reference",
            Dataplane::CalicoIptables => "calico-iptables",
            Dataplane::CalicoNftables => "calico-nftables",
            Dataplane::Flannel => "flannel",
            Dataplane::Kernel => "kernel",
            Dataplane::Netfilter => "netfilter",
            Dataplane::Captured => "captured",
        }
    }

    /// Why this version of fwsim cannot evaluate the dataplane yet, if it cannot. Every
    /// dataplane evaluates now (the kernel: single hosts and Calico clusters); where one
    /// cannot run here (the kernel without root, a VXLAN cluster), its expectations are
    /// skipped with the reason its engine gives.
    pub fn unavailable(self) -> Option<&'static str> {
        let _ = self;
        None
    }
}

impl fmt::Display for Dataplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dataplane {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Dataplane::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Dataplane::ALL.iter().map(|d| d.as_str()).collect();
                format!(
                    "unknown dataplane `{s}`: expected one of {}",
                    names.join(", ")
                )
            })
    }
}
