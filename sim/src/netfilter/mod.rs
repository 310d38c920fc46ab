//! Netfilter meaning: the IR shared by every ruleset syntax, the conversions into it, and
//! the interpreter that walks a packet through the hooks as the kernel does.
//!
//! Contract: [`read_ruleset`] tells the format apart by content and returns the IR or an
//! error with line and column.

pub mod from_iptables;
pub mod from_nft;
pub mod interp;
pub mod ir;
pub mod to_nft;

use crate::values::Loc;

/// What a ruleset text is, judged by its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `iptables-save` or `ip6tables-save` output.
    IptablesSave,
    /// `nft list ruleset` output or a hand-written nft file.
    NftText,
    /// `nft -j list ruleset`.
    NftJson,
}

/// Tell the format apart by the first meaningful line.
pub fn detect(text: &str) -> Option<Format> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    if first.starts_with('{') {
        Some(Format::NftJson)
    } else if first.starts_with('*') || first.starts_with(':') || first.starts_with("-A") {
        Some(Format::IptablesSave)
    } else if first.starts_with("table ")
        || first.starts_with("define ")
        || first.starts_with("flush ")
        || first.starts_with("add ")
        || first.starts_with("create ")
        || first.starts_with("insert ")
        || first.starts_with("redefine ")
        || first.starts_with("include ")
    {
        Some(Format::NftText)
    } else {
        None
    }
}

/// An error reading a ruleset: where, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesetError {
    pub loc: Loc,
    pub message: String,
}

impl From<crate::syntax::nft::Error> for RulesetError {
    fn from(e: crate::syntax::nft::Error) -> Self {
        RulesetError {
            loc: e.loc,
            message: e.message,
        }
    }
}

impl From<crate::syntax::iptables::Error> for RulesetError {
    fn from(e: crate::syntax::iptables::Error) -> Self {
        RulesetError {
            loc: e.loc,
            message: e.message,
        }
    }
}

/// Read a ruleset of any supported format into the IR.
pub fn read_ruleset(text: &str) -> Result<ir::Ruleset, RulesetError> {
    match detect(text) {
        Some(Format::IptablesSave) => {
            let save = crate::syntax::iptables::parse(text)?;
            // ip6tables-save says so in its header; otherwise the addresses tell.
            let v6 = text
                .lines()
                .take_while(|l| l.starts_with('#') || l.trim().is_empty())
                .any(|l| l.contains("ip6tables"));
            let first = if v6 {
                from_iptables::IpVersion::V6
            } else {
                from_iptables::IpVersion::V4
            };
            match from_iptables::convert(&save, first) {
                Ok(r) => Ok(r),
                Err(e) if !v6 && e.message.contains("IPv6 address") => {
                    from_iptables::convert(&save, from_iptables::IpVersion::V6).map_err(Into::into)
                }
                Err(e) => Err(e.into()),
            }
        }
        Some(Format::NftText) => {
            let file = crate::syntax::nft::parse(text)?;
            Ok(from_nft::convert(&file)?)
        }
        Some(Format::NftJson) => {
            let file = crate::syntax::nft_json::parse(text)?;
            Ok(from_nft::convert(&file)?)
        }
        None => Err(RulesetError {
            loc: Loc { line: 1, col: 1 },
            message:
                "not a ruleset: expected iptables-save output (`*filter` ...) or nft (`table ...`)"
                    .into(),
        }),
    }
}
