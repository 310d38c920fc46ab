//! Kubernetes labels: an ordered map from key to value.

/// Labels of a namespace or pod, ordered by key (deterministic printing).
pub type Labels = std::collections::BTreeMap<String, String>;
