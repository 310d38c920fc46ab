//! The minimizer: a diverging case made as small as it goes while it still diverges.
//!
//! Contract: [`minimize`] only ever returns a case for which `still` holds (the input's
//! own, if nothing smaller does); it removes one piece at a time, greedily, until no
//! single removal keeps the divergence: flows (down to one), policies, services, pods,
//! namespaces, nodes, pod ports and labels, and inside each policy any list element or
//! object key (rules, peers, ports, selector terms, `except`, `endPort`, `policyTypes`...),
//! then the hardened host firewall and the overlay. Removals that make the case invalid
//! simply fail `still`. Deterministic: pieces are tried in order.

use crate::gen::case::Case;
use serde_json::Value;

/// Cases tried before the minimizer stops (a bound for huge inputs; generated cases need
/// far fewer).
const MAX_TRIES: usize = 4000;

/// The smallest case found that still satisfies `still`.
pub fn minimize(case: &Case, still: &dyn Fn(&Case) -> bool) -> Case {
    let mut best = case.clone();
    let tries = std::cell::Cell::new(0usize);
    let attempt = |c: Case, best: &mut Case| -> bool {
        tries.set(tries.get() + 1);
        if tries.get() > MAX_TRIES {
            return false;
        }
        if still(&c) {
            *best = c;
            true
        } else {
            false
        }
    };
    // One flow.
    if best.flows.len() > 1 {
        for i in 0..best.flows.len() {
            let mut c = best.clone();
            c.flows = vec![best.flows[i].clone()];
            if attempt(c, &mut best) {
                break;
            }
        }
    }
    loop {
        let before = best.clone();
        // Whole objects.
        let mut i = 0;
        while i < best.policies.len() {
            let mut c = best.clone();
            c.policies.remove(i);
            if !attempt(c, &mut best) {
                i += 1;
            }
        }
        let mut i = 0;
        while i < best.services.len() {
            let mut c = best.clone();
            let s = c.services.remove(i);
            let name = format!("svc:{}/{}", s.ns, s.name);
            c.flows.retain(|f| f.to != name);
            if c.flows.is_empty() || !attempt(c, &mut best) {
                i += 1;
            }
        }
        let mut i = 0;
        while i < best.pods.len() {
            let mut c = best.clone();
            let p = c.pods.remove(i);
            let name = p.qualified();
            let ip = p.ip.to_string();
            c.flows
                .retain(|f| f.from != name && f.to != name && f.from != ip && f.to != ip);
            if c.flows.is_empty() || !attempt(c, &mut best) {
                i += 1;
            }
        }
        let mut i = 0;
        while i < best.namespaces.len() {
            let ns = best.namespaces[i].0.clone();
            let used = best.pods.iter().any(|p| p.ns == ns)
                || best.services.iter().any(|s| s.ns == ns)
                || best.policies.iter().any(|p| p.ns == ns);
            let mut c = best.clone();
            c.namespaces.remove(i);
            if used || c.namespaces.is_empty() || !attempt(c, &mut best) {
                i += 1;
            }
        }
        let mut i = 0;
        while i < best.nodes.len() {
            let name = best.nodes[i].name.clone();
            let used = best.pods.iter().any(|p| p.node == name)
                || best
                    .flows
                    .iter()
                    .any(|f| f.from == format!("node:{name}") || f.to == format!("node:{name}"));
            let mut c = best.clone();
            c.nodes.remove(i);
            if used || c.nodes.is_empty() || !attempt(c, &mut best) {
                i += 1;
            }
        }
        // Parts of pods and namespaces.
        for p in 0..best.pods.len() {
            let mut j = 0;
            while j < best.pods[p].ports.len() {
                let mut c = best.clone();
                c.pods[p].ports.remove(j);
                if !attempt(c, &mut best) {
                    j += 1;
                }
            }
            let mut j = 0;
            while j < best.pods[p].labels.len() {
                let mut c = best.clone();
                c.pods[p].labels.remove(j);
                if !attempt(c, &mut best) {
                    j += 1;
                }
            }
        }
        for n in 0..best.namespaces.len() {
            let mut j = 0;
            while j < best.namespaces[n].1.len() {
                let mut c = best.clone();
                c.namespaces[n].1.remove(j);
                if !attempt(c, &mut best) {
                    j += 1;
                }
            }
        }
        // Inside policies: any list element or object key.
        for p in 0..best.policies.len() {
            let mut k = 0;
            loop {
                let paths = removable(&best.policies[p].spec);
                if k >= paths.len() {
                    break;
                }
                let mut c = best.clone();
                remove_at(&mut c.policies[p].spec, &paths[k]);
                if !attempt(c, &mut best) {
                    k += 1;
                }
            }
        }
        // The setting.
        if best.hardened {
            let mut c = best.clone();
            c.hardened = false;
            attempt(c, &mut best);
        }
        for overlay in ["none", "ipip"] {
            if best.overlay != overlay && best.overlay != "none" {
                let mut c = best.clone();
                c.overlay = overlay;
                if attempt(c, &mut best) {
                    break;
                }
            }
        }
        if best == before || tries.get() > MAX_TRIES {
            return best;
        }
    }
}

/// A step into a JSON value.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every path to a list element or object key of `v`, outermost first.
fn removable(v: &Value) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    fn walk(v: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        match v {
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    at.push(Step::Index(i));
                    out.push(at.clone());
                    walk(x, at, out);
                    at.pop();
                }
            }
            Value::Object(map) => {
                for (k, x) in map {
                    at.push(Step::Key(k.clone()));
                    out.push(at.clone());
                    walk(x, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn remove_at(v: &mut Value, path: &[Step]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for s in parents {
        cur = match (s, cur) {
            (Step::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(x) => x,
                None => return,
            },
            (Step::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(x) => x,
                None => return,
            },
            _ => return,
        };
    }
    match (last, cur) {
        (Step::Key(k), Value::Object(m)) => {
            m.shift_remove(k);
        }
        (Step::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A predicate on the case's shape: the minimizer keeps it true and shrinks the rest.
    #[test]
    fn minimizing_keeps_the_property_and_removes_the_rest() {
        for seed in 0..30u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let case = Case::generate(&mut rng);
            // "Some policy has an ingress rule with a port": shrinks to one policy whose
            // spec keeps just that.
            let has = |c: &Case| {
                c.policies
                    .iter()
                    .any(|p| p.spec.to_string().contains("\"port\""))
            };
            if !has(&case) {
                continue;
            }
            let small = minimize(&case, &has);
            assert!(has(&small));
            assert_eq!(small.policies.len(), 1, "{:?}", small.policies);
            assert_eq!(small.flows.len(), 1);
            assert!(small.pods.is_empty() || small.pods.len() <= case.pods.len());
            // One-minimal: removing any further piece of the policy loses the property.
            for path in removable(&small.policies[0].spec) {
                let mut c = small.clone();
                remove_at(&mut c.policies[0].spec, &path);
                assert!(
                    !has(&c),
                    "{} still has it without {path:?}",
                    small.policies[0].spec
                );
            }
        }
    }
}
