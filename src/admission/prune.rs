//! Decodes a workload without the parts no decision reads.
//!
//! Most of a workload's bytes are containers (images, env, probes), volumes, managed fields
//! and status; building a `Value` for them is most of the cost of a request. The engine only
//! reads metadata (of the managed fields, only who owns `spec.replicas`, to tell a defaulted
//! replica count from a written one), the scheduling fields of the pod spec and the claims it
//! mounts (of `volumes`, only the `persistentVolumeClaim` ones, reduced to their name and
//! claim: HA020 reads them), and patches are computed against
//! the paths it reads, so leaving those subtrees out changes no decision and no patch on
//! CREATE (`tests/server_router.rs` checks this on fully populated objects). UPDATEs are read
//! in full, because whether the pod template changed decides whether to mutate at all. The
//! object is never written back: the API server applies the patch to the object it holds,
//! every field intact.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::engine::WorkloadKind;

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

#[derive(Clone, Copy)]
enum At {
    Root(WorkloadKind),
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
    fn keep(self) -> Keep {
        match self {
            At::Root(_) => Keep::AllBut(ROOT),
            At::PodSpec => Keep::AllBut(POD_SPEC),
            At::Metadata | At::Spec | At::Template | At::Volumes => Keep::AllBut(&[]),
            At::Volume => Keep::Only(VOLUME_KEPT),
            At::ManagedFields => Keep::Only(&[]),
            At::ManagedEntry => Keep::Only(&["manager", "operation", "subresource", "fieldsV1"]),
            At::FieldsV1 => Keep::Only(&["f:spec"]),
            At::FieldsSpec => Keep::Only(&["f:replicas"]),
        }
    }

    fn kept(self, key: &str) -> bool {
        match self.keep() {
            Keep::AllBut(skipped) => !skipped.contains(&key),
            Keep::Only(kept) => kept.contains(&key),
        }
    }

    fn child(self, key: &str) -> Option<At> {
        match (self, key) {
            (At::Root(_), "metadata") => Some(At::Metadata),
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
}

/// Parses `json` as a `kind` workload, leaving out what no decision reads.
pub fn parse(json: &str, kind: WorkloadKind) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = seed(kind).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The same, as a seed for decoding inside a larger document.
pub(super) fn seed(kind: WorkloadKind) -> Seed {
    Seed(At::Root(kind))
}

pub(super) struct Seed(At);

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if !self.0.kept(&key) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = match self.0.child(&key) {
                Some(at) => map.next_value_seed(Seed(at))?,
                None => map.next_value::<Value>()?,
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    // Anything but a map where a map is expected is kept as is, for the engine to report;
    // the managed fields' entries are reduced one by one.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if let At::ManagedFields = self.0 {
            let mut out = Vec::new();
            while let Some(entry) = seq.next_element_seed(Seed(At::ManagedEntry))? {
                out.push(entry);
            }
            return Ok(Value::Array(out));
        }
        if let At::Volumes = self.0 {
            // Only the volumes that mount a claim.
            let mut kept = Vec::new();
            while let Some(v) = seq.next_element_seed(Seed(At::Volume))? {
                if v.get("persistentVolumeClaim").is_some() {
                    kept.push(v);
                }
            }
            return Ok(Value::Array(kept));
        }
        serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}
