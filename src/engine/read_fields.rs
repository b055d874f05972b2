//! The fields of a workload that decisions read, and how many values they hold.
//!
//! Most of a workload's bytes are containers (images, env, probes), volumes, managed fields
//! and status, which no decision reads. The webhook decodes an object without them
//! (`admission::prune`), and every decision is held to at most [`MAX_READ_VALUES`] values in
//! what is left (HA028): so one review costs a bounded amount of work whatever its size, and
//! `audit` counts the same values the same way ([`count`]).

use serde_json::Value;

use super::WorkloadKind;

/// Most JSON values (objects, arrays and scalars, each counted once) in the fields that
/// decisions read. Real workloads hold tens to hundreds; a template with a long node-affinity
/// list and many tolerations, a few thousand. Beyond it the object is refused (HA028), not
/// judged: judging 20,000 values of the most expensive kinds (labels against constraints)
/// takes about 25 ms (`benches/worst_review.rs`), and an UPDATE judges two objects.
pub const MAX_READ_VALUES: usize = 20_000;

/// Subtrees skipped, by where they sit.
const ROOT: &[&str] = &["status"];
const POD_SPEC: &[&str] = &[
    "containers",
    "initContainers",
    "ephemeralContainers",
    "resourceClaims",
];
/// What is kept of one volume (and only of volumes that mount a claim).
const VOLUME_KEPT: &[&str] = &["name", "persistentVolumeClaim"];

/// Where in a workload a value sits, as far as that decides what of it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    Root(WorkloadKind),
    /// A declared kind's root: its pod template may sit anywhere, so only its status and
    /// managed fields are left out.
    CustomRoot,
    Metadata,
    /// A controller's spec: its `template` leads to the pod spec.
    Spec,
    Template,
    PodSpec,
    /// `metadata.managedFields`: a list of entries.
    ManagedFields,
    /// One entry: who, how, and of the fields only `f:spec.f:replicas`.
    ManagedEntry,
    FieldsV1,
    FieldsSpec,
    /// The pod spec's `volumes` list.
    Volumes,
    /// One of its items.
    Volume,
}

/// What of a map is kept.
enum Keep {
    AllBut(&'static [&'static str]),
    Only(&'static [&'static str]),
}

impl At {
    /// Where a workload of `kind` starts (always somewhere: `None` stands for objects read
    /// whole, autoscalers and budgets).
    pub fn root(kind: WorkloadKind) -> Option<At> {
        Some(match kind {
            WorkloadKind::Custom(_) => At::CustomRoot,
            k => At::Root(k),
        })
    }

    fn keep(self) -> Keep {
        match self {
            At::Root(_) | At::CustomRoot => Keep::AllBut(ROOT),
            At::PodSpec => Keep::AllBut(POD_SPEC),
            At::Metadata | At::Spec | At::Template | At::Volumes => Keep::AllBut(&[]),
            At::Volume => Keep::Only(VOLUME_KEPT),
            At::ManagedFields => Keep::Only(&[]),
            At::ManagedEntry => Keep::Only(&["manager", "operation", "subresource", "fieldsV1"]),
            At::FieldsV1 => Keep::Only(&["f:spec"]),
            At::FieldsSpec => Keep::Only(&["f:replicas"]),
        }
    }

    /// Whether a key of a map here is read.
    pub fn kept(self, key: &str) -> bool {
        match self.keep() {
            Keep::AllBut(skipped) => !skipped.contains(&key),
            Keep::Only(kept) => kept.contains(&key),
        }
    }

    /// Where the value under a key of a map here sits; `None`: read whole.
    pub fn child(self, key: &str) -> Option<At> {
        match (self, key) {
            (At::Root(_) | At::CustomRoot, "metadata") => Some(At::Metadata),
            (At::Metadata, "managedFields") => Some(At::ManagedFields),
            (At::ManagedEntry, "fieldsV1") => Some(At::FieldsV1),
            (At::FieldsV1, "f:spec") => Some(At::FieldsSpec),
            (At::Root(WorkloadKind::Pod), "spec") => Some(At::PodSpec),
            (At::Root(_), "spec") => Some(At::Spec),
            (At::Spec, "template") => Some(At::Template),
            (At::Template, "spec") => Some(At::PodSpec),
            (At::PodSpec, "volumes") => Some(At::Volumes),
            _ => None,
        }
    }

    /// Where the items of a list here sit; `None`: read whole.
    pub fn element(self) -> Option<At> {
        match self {
            At::ManagedFields => Some(At::ManagedEntry),
            At::Volumes => Some(At::Volume),
            _ => None,
        }
    }
}

/// The values of `value` that decisions read, starting at `root` (`None`: all of them),
/// counted up to `limit + 1`. The webhook's decoder counts the same values as it builds them
/// (every value of a kept key or item, including volumes it then drops for not mounting a
/// claim), so both stop at the same objects.
pub fn count(value: &Value, root: Option<At>, limit: usize) -> usize {
    let mut n = 0;
    walk(value, root, limit, &mut n);
    n
}

fn walk(value: &Value, at: Option<At>, limit: usize, n: &mut usize) {
    if *n > limit {
        return;
    }
    *n += 1;
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match at {
                    Some(at) if !at.kept(key) => {}
                    Some(at) => walk(child, at.child(key), limit, n),
                    None => walk(child, None, limit, n),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, at.and_then(At::element), limit, n);
            }
        }
        _ => {}
    }
}

/// Whether `object` holds more values where decisions read than they judge.
pub fn exceeds(object: &Value, root: Option<At>) -> bool {
    count(object, root, MAX_READ_VALUES) > MAX_READ_VALUES
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_what_decisions_read_and_stops_past_the_limit() {
        let d = json!({
            "kind": "Deployment",
            "status": {"replicas": 3, "conditions": [1, 2, 3]},
            "spec": {"template": {"spec": {
                "containers": [{"name": "c", "env": [1, 2, 3]}],
                "volumes": [{"name": "v", "configMap": {"name": "x"}}],
                "tolerations": [{"key": "k"}]
            }}}
        });
        // root, kind, spec, template, pod spec, volumes, the volume and its name,
        // tolerations, the toleration and its key.
        assert_eq!(count(&d, At::root(WorkloadKind::Deployment), 100), 11);
        // Read whole: every value.
        assert_eq!(count(&d, None, 100), 26);
        assert_eq!(count(&d, None, 5), 6);
    }
}
