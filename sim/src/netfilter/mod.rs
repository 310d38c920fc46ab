//! Netfilter meaning: the IR shared by every ruleset syntax, the conversions into it, and
//! (next) the interpreter that walks a packet through the hooks as the kernel does.

pub mod from_iptables;
pub mod ir;
