//! The Linux kernel as judge: rulesets loaded into a real network namespace, real packets
//! sent through it, and the kernel's verdicts compared with the simulator's.
//!
//! Contract: [`check::run`] needs root (CAP_NET_ADMIN, CAP_NET_RAW) and the tools
//! `ip`, `nsenter`, `nft`, `iptables-*-restore`; without them it returns
//! [`KernelError::Unavailable`] saying what is missing (the CLI exits 2, tests skip with the
//! reason). It creates its own namespaces and deletes them when done, also on error or
//! panic ([`lab::Lab`] on drop); nothing outside them is touched.

pub mod check;
pub mod cluster;
pub mod host;
pub mod lab;
pub mod observer;
pub mod probe;

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// Root or a tool is missing: the check cannot run here.
    Unavailable(String),
    /// A tool failed (its message).
    Tool(String),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Unavailable(m) => write!(f, "kernel check unavailable: {m}"),
            KernelError::Tool(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for KernelError {}

/// How a ruleset is loaded into the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// `iptables-legacy-restore` (x_tables).
    Legacy,
    /// `iptables-nft-restore` (nf_tables through the iptables front end).
    IptablesNft,
    /// `nft -f` (native nftables).
    Nft,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Legacy, Backend::IptablesNft, Backend::Nft];
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Legacy => "iptables-legacy",
            Backend::IptablesNft => "iptables-nft",
            Backend::Nft => "nft",
        }
    }
    /// The tools this backend needs, with the Debian package that has them.
    fn tools(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Backend::Legacy => &[
                ("iptables-legacy-restore", "iptables"),
                ("ip6tables-legacy-restore", "iptables"),
            ],
            Backend::IptablesNft => &[
                ("iptables-nft-restore", "iptables"),
                ("ip6tables-nft-restore", "iptables"),
            ],
            Backend::Nft => &[],
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "legacy" | "iptables-legacy" => Ok(Backend::Legacy),
            "iptables-nft" => Ok(Backend::IptablesNft),
            "nft" => Ok(Backend::Nft),
            _ => Err(format!(
                "unknown backend `{s}`: expected iptables-legacy, iptables-nft or nft"
            )),
        }
    }
}

pub(crate) fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(Into::into))
        .any(|d| d.join(tool).is_file())
}

/// Can the check run here for these backends? Err says what is missing.
pub fn available(backends: &[Backend]) -> Result<(), KernelError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(KernelError::Unavailable(
            "needs root (CAP_NET_ADMIN to create network namespaces, CAP_NET_RAW to send raw packets)"
                .into(),
        ));
    }
    let mut missing = Vec::new();
    let base: &[(&str, &str)] = &[
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("nft", "nftables"),
    ];
    for (tool, pkg) in base
        .iter()
        .chain(backends.iter().flat_map(|b| b.tools().iter()))
    {
        if !on_path(tool) && !missing.iter().any(|m: &String| m.starts_with(tool)) {
            missing.push(format!("{tool} (Debian package {pkg})"));
        }
    }
    if !missing.is_empty() {
        return Err(KernelError::Unavailable(format!(
            "missing tools: {}",
            missing.join(", ")
        )));
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Err(KernelError::Unavailable(
            "no network namespaces (/proc/self/ns/net)".into(),
        ));
    }
    Ok(())
}
