//! Syntax: what users write, parsed but not yet checked against anything else.
//!
//! Contract: every function here reads text (or a YAML node) and returns a parsed form or
//! an error with the line and column it concerns. Nothing here evaluates policy.

pub mod compact;
pub mod endpoint;
pub mod ipset;
pub mod iptables;
pub mod k8s;
pub mod matrix;
pub mod nft;
mod nft_include;
pub mod nft_json;
pub mod scenario;
pub mod yaml;
