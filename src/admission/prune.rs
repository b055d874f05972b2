//! Decodes a workload without the parts no decision reads, and no more of the rest than
//! decisions judge.
//!
//! Most of a workload's bytes are containers (images, env, probes), volumes, managed fields
//! and status; building a `Value` for them is most of the cost of a request. The engine only
//! reads metadata (of the managed fields, only who owns `spec.replicas`, to tell a defaulted
//! replica count from a written one), the scheduling fields of the pod spec and the claims it
//! mounts (of `volumes`, only the `persistentVolumeClaim` ones, reduced to their name and
//! claim: HA020 reads them), and patches are computed against the paths it reads, so leaving
//! those subtrees out changes no decision and no patch (`tests/server_router.rs` checks this
//! on fully populated objects); which fields these are is the engine's
//! ([`crate::engine::read_fields`]). The object is never written back: the API server applies
//! the patch to the object it holds, every field intact.
//!
//! Of what is read, at most [`MAX_READ_VALUES`] values are built: past them the decoder only
//! scans (no allocation) and the object is judged too large (HA028), so that a review's work
//! is bounded whatever its body holds.
//!
//! On UPDATE, whether the pod template changed decides whether to mutate at all, and an
//! image change is a change: the template's raw text is kept (borrowed from the body, not
//! copied) for the comparison, so containers need not be decoded to compare them.

use std::cell::Cell;
use std::fmt;

use serde::Deserialize as _;
use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::engine::WorkloadKind;
use crate::engine::read_fields::{At, MAX_READ_VALUES};

/// A decoded object.
#[derive(Debug)]
pub struct Decoded<'de> {
    /// What decisions read of it; incomplete when `too_large`.
    pub value: Value,
    /// It holds more than [`MAX_READ_VALUES`] values where decisions read.
    pub too_large: bool,
    /// The raw text of its pod template, when asked for and present.
    pub template: Option<&'de str>,
}

/// Parses `json` as a workload of `kind` (`None`: read whole), leaving out what no decision
/// reads.
pub fn parse(json: &str, kind: Option<WorkloadKind>) -> serde_json::Result<Decoded<'_>> {
    parse_keeping(json, kind, false)
}

/// The same; `template` keeps the raw text of the pod template (UPDATE).
pub(super) fn parse_keeping(
    json: &str,
    kind: Option<WorkloadKind>,
    template: bool,
) -> serde_json::Result<Decoded<'_>> {
    let mut de = serde_json::Deserializer::from_str(json);
    let decoded = Seed::new(kind, template).deserialize(&mut de)?;
    de.end()?;
    Ok(decoded)
}

/// The same, as a `Value` for audit: what decisions read when that is within the budget,
/// else the whole object (which the engine then counts and refuses with HA028, as the
/// webhook does).
pub fn parse_value(json: &str, kind: Option<WorkloadKind>) -> serde_json::Result<Value> {
    let decoded = parse(json, kind)?;
    if decoded.too_large {
        serde_json::from_str(json)
    } else {
        Ok(decoded.value)
    }
}

/// The decoding of one object as a seed, for decoding inside a larger document. `template`
/// keeps the raw text of the pod template (UPDATE).
pub(super) struct Seed {
    root: Option<At>,
    template: bool,
}

impl Seed {
    pub(super) fn new(kind: Option<WorkloadKind>, template: bool) -> Self {
        Seed {
            root: kind.and_then(At::root),
            template,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Decoded<'de>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Decoded<'de>, D::Error> {
        let budget = Budget {
            left: Cell::new(MAX_READ_VALUES),
            too_large: Cell::new(false),
            template: Cell::new(None),
            keep_template: self.template,
        };
        let value = Node {
            at: self.root,
            budget: &budget,
        }
        .deserialize(de)?;
        let too_large = budget.too_large.get();
        Ok(Decoded {
            value: if too_large { Value::Null } else { value },
            too_large,
            template: budget.template.get(),
        })
    }
}

/// The values left to build, and what was found on the way.
struct Budget<'de> {
    left: Cell<usize>,
    too_large: Cell<bool>,
    template: Cell<Option<&'de str>>,
    keep_template: bool,
}

impl Budget<'_> {
    /// Takes one value from the budget; `false` once it is spent.
    fn take(&self) -> bool {
        match self.left.get() {
            0 => {
                self.too_large.set(true);
                false
            }
            n => {
                self.left.set(n - 1);
                true
            }
        }
    }

    fn spent(&self) -> bool {
        self.too_large.get()
    }
}

/// A key, borrowed from the body when it has no escapes.
#[derive(serde::Deserialize)]
struct Key<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

/// One value: `at` says what of it is read (`None`: all of it). Past the budget it is only
/// scanned, but the way to the pod template is still followed, for its raw text.
struct Node<'b, 'de> {
    at: Option<At>,
    budget: &'b Budget<'de>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, 'de> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        if self.budget.spent() && self.at.is_none() {
            IgnoredAny::deserialize(de)?;
            return Ok(Value::Null);
        }
        de.deserialize_any(self)
    }
}

impl<'de> Node<'_, 'de> {
    fn scalar(&self, value: Value) -> Value {
        if self.budget.take() {
            value
        } else {
            Value::Null
        }
    }

    fn child(&self, at: Option<At>) -> Self {
        Node {
            at,
            budget: self.budget,
        }
    }
}

impl<'de> Visitor<'de> for Node<'_, 'de> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let counted = self.budget.take();
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let at = match self.at {
                Some(at) if !at.kept(&key) => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                Some(at) => at.child(&key),
                None => None,
            };
            let value = if at == Some(At::Template) && self.budget.keep_template {
                // Kept raw for the comparison, then decoded from that text.
                let raw = map.next_value::<&'de RawValue>()?;
                self.budget.template.set(Some(raw.get()));
                let mut de = serde_json::Deserializer::from_str(raw.get());
                self.child(at)
                    .deserialize(&mut de)
                    .map_err(A::Error::custom)?
            } else {
                map.next_value_seed(self.child(at))?
            };
            if !self.budget.spent() {
                out.insert(key.into_owned(), value);
            }
        }
        Ok(if counted {
            Value::Object(out)
        } else {
            Value::Null
        })
    }

    // Anything but a map where a map is expected is kept as is, for the engine to report.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let counted = self.budget.take();
        let element = self.at.and_then(At::element);
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child(element))? {
            // Of the volumes, only those that mount a claim.
            if element == Some(At::Volume) && item.get("persistentVolumeClaim").is_none() {
                continue;
            }
            if !self.budget.spent() {
                out.push(item);
            }
        }
        Ok(if counted {
            Value::Array(out)
        } else {
            Value::Null
        })
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(self.scalar(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(self.scalar(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(self.scalar(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(self.scalar(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(if self.budget.take() {
            Value::String(v.to_owned())
        } else {
            Value::Null
        })
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(self.scalar(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(self.scalar(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(self.scalar(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::read_fields::count;

    fn deployment_with_labels(n: usize) -> String {
        let labels: Map<String, Value> = (0..n)
            .map(|i| (format!("l{i}"), Value::from("v")))
            .collect();
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": labels},
            "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        })
        .to_string()
    }

    #[test]
    fn the_decoder_counts_what_audit_counts_and_stops_at_the_same_object() {
        let kind = Some(WorkloadKind::Deployment);
        // How many values the object holds besides its labels, then one label short of the
        // limit, at it, and past it.
        let fixed = count(
            &serde_json::from_str(&deployment_with_labels(0)).unwrap(),
            At::root(WorkloadKind::Deployment),
            usize::MAX,
        );
        for n in [
            MAX_READ_VALUES - fixed - 1,
            MAX_READ_VALUES - fixed,
            MAX_READ_VALUES - fixed + 1,
        ] {
            let text = deployment_with_labels(n);
            let whole: Value = serde_json::from_str(&text).unwrap();
            let decoded = parse(&text, kind).unwrap();
            assert_eq!(
                decoded.too_large,
                crate::engine::read_fields::exceeds(&whole, At::root(WorkloadKind::Deployment)),
                "{n} labels"
            );
            assert_eq!(decoded.too_large, n + fixed > MAX_READ_VALUES, "{n} labels");
        }
    }

    #[test]
    fn past_the_budget_the_template_is_still_found() {
        let text = deployment_with_labels(MAX_READ_VALUES);
        let mut de = serde_json::Deserializer::from_str(&text);
        let decoded = Seed::new(Some(WorkloadKind::Deployment), true)
            .deserialize(&mut de)
            .unwrap();
        assert!(decoded.too_large);
        assert_eq!(decoded.value, Value::Null);
        assert!(decoded.template.unwrap().contains("nginx"));
    }
}
