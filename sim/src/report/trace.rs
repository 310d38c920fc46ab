//! A packet's walk as JSON (its text form is `Walk`'s `Display`).

use crate::netfilter::interp::{Fate, Walk};

/// The walk as JSON: `{"verdict": ..., "reason", "mark", "path", "conntrack" (in a
/// sequence), "trace": [...]}`.
pub fn trace_json(walk: &Walk) -> serde_json::Value {
    serde_json::json!({
        "verdict": walk.fate.as_str(),
        "reason": match &walk.fate {
            Fate::Inconclusive(w) | Fate::Reject(w) => Some(w.clone()),
            _ => None,
        },
        "mark": walk.mark,
        "path": match walk.path {
            crate::values::Hook::Input => "input",
            crate::values::Hook::Forward => "forward",
            crate::values::Hook::Output => "output",
        },
        "conntrack": walk.conntrack,
        "trace": walk.trace.iter().map(|s| serde_json::json!({
            "hook": s.hook.as_str(),
            "table": s.table,
            "chain": s.chain,
            "rule": s.rule,
            "text": s.text,
            "effect": s.effect,
        })).collect::<Vec<_>>(),
    })
}
