//! Assembling a node's iptables-save text from what several writers put there: the host
//! firewall loaded at boot, then kube-proxy and the CNI inserting their jumps at the top of
//! the built-in chains (and appending a few rules at the end), each with its own chains.
//!
//! Contract: [`Tables::text`] prints `iptables-save` output that `iptables-restore` accepts
//! and fwsim's own parser reads back: tables in the kernel's order (raw, mangle, nat,
//! filter, security), each with its chains declared (built-in chains with their policy)
//! and then its rules. In a built-in chain the rules are, in order: the inserted blocks (the
//! last writer's first, as `-I` leaves them), the host firewall's rules, the appended ones.

use crate::syntax::iptables::{builtin_chains, Save, TABLES};
use indexmap::IndexMap;

#[derive(Clone, Debug, Default)]
struct Chain {
    /// Built-in chains: ACCEPT or DROP; user chains: None.
    policy: Option<String>,
    /// Blocks inserted at the top, newest first.
    inserted: Vec<Vec<String>>,
    rules: Vec<String>,
    appended: Vec<String>,
}

/// A node's iptables tables under construction. Rule texts are what follows
/// `-A CHAIN ` in iptables-save output.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    tables: IndexMap<String, IndexMap<String, Chain>>,
    /// User chains the host firewall declared: a renderer touching one is a clash.
    host_chains: Vec<(String, String)>,
    clashes: Vec<String>,
}

impl Tables {
    pub fn new() -> Tables {
        Tables::default()
    }

    /// A chain a renderer writes to (a clash when the host firewall has it).
    fn chain(&mut self, table: &str, chain: &str) -> &mut Chain {
        if self
            .host_chains
            .iter()
            .any(|(t, c)| t == table && c == chain)
            && !self.clashes.iter().any(|c| c == chain)
        {
            self.clashes.push(chain.to_string());
        }
        self.chain_raw(table, chain)
    }

    /// Chains that both the host firewall and a renderer wrote to; Err names them.
    pub fn check(&self) -> Result<(), String> {
        if self.clashes.is_empty() {
            return Ok(());
        }
        Err(format!(
            "the host firewall has chains of the same name as rendered ones: {}",
            self.clashes.join(", ")
        ))
    }

    /// The chain, created (a built-in one with policy ACCEPT) when new.
    fn chain_raw(&mut self, table: &str, chain: &str) -> &mut Chain {
        let t = self.tables.entry(table.to_string()).or_default();
        t.entry(chain.to_string()).or_insert_with(|| Chain {
            policy: builtin_chains(table)
                .contains(&chain)
                .then(|| "ACCEPT".to_string()),
            ..Chain::default()
        })
    }

    /// Declare a chain (no rules yet): an empty user chain still appears in the output.
    pub fn declare(&mut self, table: &str, chain: &str) {
        self.chain(table, chain);
    }

    /// `-A chain rule`.
    pub fn push(&mut self, table: &str, chain: &str, rule: impl Into<String>) {
        self.chain(table, chain).rules.push(rule.into());
    }

    /// Rules inserted together at the top of a chain (`-I chain 1`, in their order), above
    /// every earlier insertion.
    pub fn insert(&mut self, table: &str, chain: &str, rules: Vec<String>) {
        self.chain(table, chain).inserted.insert(0, rules);
    }

    /// Rules appended at the end of a chain, after the host firewall's.
    pub fn append(&mut self, table: &str, chain: &str, rule: impl Into<String>) {
        self.chain(table, chain).appended.push(rule.into());
    }

    /// Load a host firewall under what is already there: its policies replace the default
    /// ACCEPT, its rules go below the inserted blocks. Err: a chain both declare.
    pub fn add_host(&mut self, host: &Save) -> Result<(), String> {
        for t in &host.tables {
            for c in &t.chains {
                let exists = self
                    .tables
                    .get(&t.name)
                    .is_some_and(|tab| tab.contains_key(&c.name));
                let builtin = builtin_chains(&t.name).contains(&c.name.as_str());
                if exists && !builtin {
                    return Err(format!(
                        "the host firewall's chain `{}` in table {} has the name of a rendered chain",
                        c.name, t.name
                    ));
                }
                if !builtin {
                    self.host_chains.push((t.name.clone(), c.name.clone()));
                }
                let ch = self.chain_raw(&t.name, &c.name);
                if let Some(p) = &c.policy {
                    if p != "-" {
                        ch.policy = Some(p.clone());
                    }
                }
            }
            for r in &t.rules {
                let text = r.to_string();
                let body = text
                    .strip_prefix(&format!("-A {} ", r.chain))
                    .unwrap_or(&text)
                    .to_string();
                self.chain_raw(&t.name, &r.chain).rules.push(body);
            }
        }
        Ok(())
    }

    /// The iptables-save text.
    pub fn text(&self) -> String {
        let mut out = String::from("# Generated by fwsim render\n");
        for name in TABLES {
            let Some(t) = self.tables.get(name) else {
                continue;
            };
            out.push_str(&format!("*{name}\n"));
            // Built-in chains first (the kernel's order), then user chains in creation order.
            let builtin = builtin_chains(name);
            let mut order: Vec<&String> = builtin
                .iter()
                .filter_map(|b| t.get_key_value(*b).map(|(k, _)| k))
                .collect();
            order.extend(t.keys().filter(|k| !builtin.contains(&k.as_str())));
            for c in &order {
                let p = t[*c].policy.as_deref().unwrap_or("-");
                out.push_str(&format!(":{c} {p} [0:0]\n"));
            }
            for c in &order {
                let ch = &t[*c];
                for r in ch
                    .inserted
                    .iter()
                    .flatten()
                    .chain(&ch.rules)
                    .chain(&ch.appended)
                {
                    out.push_str(&format!("-A {c} {r}\n"));
                }
            }
            out.push_str("COMMIT\n");
        }
        out.push_str("# Completed by fwsim render\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_blocks_host_rules_and_appended_rules_in_order() {
        let host = crate::syntax::iptables::parse(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:ufw-in - [0:0]\n-A INPUT -j ufw-in\n-A ufw-in -p tcp --dport 22 -j ACCEPT\nCOMMIT\n",
        )
        .unwrap();
        let mut t = Tables::new();
        t.add_host(&host).unwrap();
        t.insert("filter", "INPUT", vec!["-j KUBE-FIREWALL".into()]);
        t.insert("filter", "INPUT", vec!["-j cali-INPUT".into()]);
        t.append("filter", "INPUT", "-j LAST");
        t.declare("filter", "KUBE-FIREWALL");
        t.declare("filter", "cali-INPUT");
        t.declare("filter", "LAST");
        let text = t.text();
        let input: Vec<&str> = text.lines().filter(|l| l.starts_with("-A INPUT")).collect();
        assert_eq!(
            input,
            [
                "-A INPUT -j cali-INPUT",
                "-A INPUT -j KUBE-FIREWALL",
                "-A INPUT -j ufw-in",
                "-A INPUT -j LAST"
            ]
        );
        assert!(text.contains(":INPUT DROP [0:0]"), "{text}");
        // Read back by our own parser.
        crate::netfilter::read_ruleset(&text).unwrap();
        assert_eq!(t.check(), Ok(()));
        // A clash of chain names is refused, whichever comes first.
        let mut t2 = Tables::new();
        t2.declare("filter", "ufw-in");
        assert!(t2.add_host(&host).is_err());
        let mut t3 = Tables::new();
        t3.add_host(&host).unwrap();
        t3.push("filter", "ufw-in", "-j DROP");
        assert!(t3.check().unwrap_err().contains("ufw-in"));
    }
}
