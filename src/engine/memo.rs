//! Eligibility is a function of the snapshot and of a pod's node-selection fields, and most
//! workloads share a handful of those. The snapshot therefore remembers the answers, so that a
//! decision's cost does not grow with the number of node shapes (zones × pools × types).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Answers kept per snapshot; past this, answers are computed and not kept.
const CAPACITY: usize = 1024;

/// The raw pod-spec fields eligibility depends on.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedulingFields<'a> {
    pub node_selector: Option<&'a Value>,
    pub required_node_affinity: Option<&'a Value>,
    pub tolerations: Option<&'a Value>,
}

#[derive(Debug)]
struct Key {
    node_selector: Option<Value>,
    required_node_affinity: Option<Value>,
    tolerations: Option<Value>,
    keys: Vec<String>,
}

impl Key {
    fn matches(&self, fields: &SchedulingFields<'_>, keys: &[&str]) -> bool {
        self.node_selector.as_ref() == fields.node_selector
            && self.required_node_affinity.as_ref() == fields.required_node_affinity
            && self.tolerations.as_ref() == fields.tolerations
            && self
                .keys
                .iter()
                .map(String::as_str)
                .eq(keys.iter().copied())
    }
}

/// Answers by hash; a bucket holds the (rare) colliding keys.
type Buckets<V> = HashMap<u64, Vec<(Key, Arc<V>)>>;

/// The remembered answers `V` of one snapshot (a new snapshot starts empty).
pub struct Memo<V> {
    entries: Mutex<Buckets<V>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<V> std::fmt::Debug for Memo<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .entries
            .lock()
            .map(|e| e.values().map(Vec::len).sum::<usize>())
            .unwrap_or(0);
        write!(f, "Memo({n} answers)")
    }
}

/// A copy of a snapshot starts with no answers.
impl<V> Clone for Memo<V> {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl<V> Memo<V> {
    /// The remembered answer, or `compute`'s, remembered while there is room.
    pub fn get_or_compute(
        &self,
        fields: &SchedulingFields<'_>,
        keys: &[&str],
        compute: impl FnOnce() -> V,
    ) -> Arc<V> {
        let hash = hash_fields(fields, keys);
        if let Ok(entries) = self.entries.lock()
            && let Some(found) = entries
                .get(&hash)
                .and_then(|b| b.iter().find(|(k, _)| k.matches(fields, keys)))
        {
            return found.1.clone();
        }
        let answer = Arc::new(compute());
        if let Ok(mut entries) = self.entries.lock()
            && entries.values().map(Vec::len).sum::<usize>() < CAPACITY
        {
            let key = Key {
                node_selector: fields.node_selector.cloned(),
                required_node_affinity: fields.required_node_affinity.cloned(),
                tolerations: fields.tolerations.cloned(),
                keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            };
            let bucket = entries.entry(hash).or_default();
            if !bucket.iter().any(|(k, _)| k.matches(fields, keys)) {
                bucket.push((key, answer.clone()));
            }
        }
        answer
    }
}

fn hash_fields(fields: &SchedulingFields<'_>, keys: &[&str]) -> u64 {
    let mut h = Fnv::default();
    for v in [
        fields.node_selector,
        fields.required_node_affinity,
        fields.tolerations,
    ] {
        match v {
            None => h.write_u8(0),
            Some(v) => hash_value(v, &mut h),
        }
    }
    keys.hash(&mut h);
    h.finish()
}

/// Hashes JSON consistently with `Value`'s equality: object entries in any order.
fn hash_value(v: &Value, h: &mut Fnv) {
    match v {
        Value::Null => h.write_u8(1),
        Value::Bool(b) => {
            h.write_u8(2);
            b.hash(h);
        }
        Value::Number(n) => {
            h.write_u8(3);
            n.to_string().hash(h);
        }
        Value::String(s) => {
            h.write_u8(4);
            s.hash(h);
        }
        Value::Array(items) => {
            h.write_u8(5);
            h.write_usize(items.len());
            for i in items {
                hash_value(i, h);
            }
        }
        Value::Object(map) => {
            h.write_u8(6);
            let mut sum = 0u64;
            for (k, v) in map {
                let mut e = Fnv::default();
                k.hash(&mut e);
                hash_value(v, &mut e);
                sum = sum.wrapping_add(e.finish());
            }
            h.write_u64(sum);
        }
    }
}

/// FNV-1a: short keys, no need for DoS resistance (a collision costs one comparison).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eligibility(nodes: usize) -> Option<usize> {
        Some(nodes)
    }

    #[test]
    fn equal_fields_in_any_key_order_share_an_answer_and_different_ones_do_not() {
        let memo = Memo::<Option<usize>>::default();
        let a = json!({"kubernetes.io/os": "linux", "pool": "x"});
        let b = json!({"pool": "x", "kubernetes.io/os": "linux"});
        let c = json!({"pool": "y", "kubernetes.io/os": "linux"});
        let fields = |v| SchedulingFields {
            node_selector: Some(v),
            ..SchedulingFields::default()
        };
        assert_eq!(
            memo.get_or_compute(&fields(&a), &["k"], || eligibility(1))
                .as_ref()
                .clone(),
            Some(1)
        );
        assert_eq!(
            memo.get_or_compute(&fields(&b), &["k"], || eligibility(2))
                .as_ref()
                .clone(),
            Some(1)
        );
        assert_eq!(
            memo.get_or_compute(&fields(&c), &["k"], || eligibility(3))
                .as_ref()
                .clone(),
            Some(3)
        );
        assert_eq!(
            memo.get_or_compute(&fields(&a), &["k", "other"], || eligibility(4))
                .as_ref()
                .clone(),
            Some(4)
        );
    }
}
