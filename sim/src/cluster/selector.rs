//! Label selectors (metav1.LabelSelector), checked.

use crate::values::Labels;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    In(String, Vec<String>),
    /// Matches when the key is absent too.
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// `matchLabels` and `matchExpressions`, ANDed. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub match_labels: Vec<(String, String)>,
    pub expressions: Vec<Requirement>,
}

impl Selector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|r| match r {
                Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
                Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
                Requirement::Exists(k) => labels.contains_key(k),
                Requirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.expressions.is_empty()
    }
}

/// Printed as kubectl prints selectors: `app=web,tier in (a,b),!legacy`; `{}` for empty.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("{}");
        }
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.expressions {
            parts.push(match r {
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            });
        }
        write!(f, "{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operators() {
        let l = labels(&[("app", "web"), ("tier", "a")]);
        let s = |e: Requirement| Selector {
            match_labels: vec![],
            expressions: vec![e],
        };
        assert!(s(Requirement::In("tier".into(), vec!["a".into(), "b".into()])).matches(&l));
        assert!(!s(Requirement::In("zone".into(), vec!["a".into()])).matches(&l));
        assert!(s(Requirement::NotIn("zone".into(), vec!["a".into()])).matches(&l));
        assert!(!s(Requirement::NotIn("tier".into(), vec!["a".into()])).matches(&l));
        assert!(s(Requirement::Exists("app".into())).matches(&l));
        assert!(!s(Requirement::DoesNotExist("app".into())).matches(&l));
        assert!(Selector::default().matches(&l));
        let both = Selector {
            match_labels: vec![("app".into(), "web".into())],
            expressions: vec![Requirement::Exists("zone".into())],
        };
        assert!(!both.matches(&l));
        assert_eq!(both.to_string(), "{app=web,zone}");
    }
}
