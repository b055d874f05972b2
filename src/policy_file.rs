//! The policy file as tools see it: its JSON schema (`spreadguard policy schema`, embedded
//! in the Helm chart's `values.schema.json`) and a one-line summary for logs.
//!
//! The schema is built from the policy type itself: its fields and their JSON types come from
//! serialising the default policy, and the rule IDs from [`RuleId::ALL`], so a new field or
//! rule reaches the schema (a test fails until the field's constraints are written down
//! here). The constraints repeat what [`Policy::from_yaml`] refuses; tests feed the same
//! documents to both. Where the binary would accept a value that can never match anything (a
//! namespace name or label key with invalid syntax), the schema is stricter.

use serde_json::{Map, Value, json};

use crate::engine::RuleId;
use crate::engine::policy::Policy;

/// Per-field constraints and descriptions, in the policy's field order.
fn field(name: &str) -> Option<Value> {
    const LABEL_KEY: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
    const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
    Some(match name {
        "mode" => json!({"enum": ["enforce", "warn", "audit", "off"],
            "description": "Cluster-wide default mode; a namespace label spreadguard.io/mode overrides it."}),
        "scope" => json!({"enum": ["clusterWide", "optIn"],
            "description": "clusterWide, or optIn: only namespaces labelled spreadguard.io/enabled=true."}),
        "minReplicas" => json!({"minimum": 0,
            "description": "HA001: the least number of replicas a workload may have."}),
        "minSurvivingReplicas" => json!({"minimum": 0,
            "description": "HA021: the least number of replicas the predicted placement must keep after the worst single zone loss."}),
        "zoneLabels" => json!({"minItems": 1, "items": {"type": "string", "pattern": LABEL_KEY},
            "description": "Node labels that name a zone, first match wins."}),
        "maxSkew" => {
            json!({"minimum": 1, "description": "maxSkew of injected spread constraints."})
        }
        "whenUnsatisfiable" => json!({"enum": ["ScheduleAnyway", "DoNotSchedule"],
            "description": "whenUnsatisfiable of injected zone spread constraints."}),
        "matchPodTemplateHash" => json!({
            "description": "matchLabelKeys: [pod-template-hash] on spreads injected into Deployments."}),
        "antiAffinityWeight" => json!({"minimum": 1, "maximum": 100,
            "description": "Weight of the injected soft zone anti-affinity."}),
        "spreadAcrossNodes" => json!({"description": "Inject a hostname spread too."}),
        "rewriteLegacyZoneKey" => json!({
            "description": "Replace failure-domain.beta.kubernetes.io/zone in topology keys."}),
        "exemptNamespaces" => json!({"items": {"type": "string", "pattern": DNS_LABEL},
            "uniqueItems": true, "description": "Namespaces never judged."}),
        "allowWorkloadOverride" => json!({
            "description": "Honour the workload annotation spreadguard.io/mode."}),
        "assumedZones" => {
            json!({"minimum": 1, "description": "Zones assumed without a node list."})
        }
        "failOpen" => json!({
            "description": "Allow (true) or deny (false) a request when the engine itself fails."}),
        "exceptions" => {
            let mut waivable: Vec<&str> = vec!["all"];
            waivable.extend(RuleId::ALL.iter().map(|r| r.as_str()));
            let text = json!({"type": "string", "pattern": r"\S"});
            json!({"items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name", "match", "rules", "reason"],
                "properties": {
                    "name": text,
                    "match": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["namespace"],
                        "properties": {
                            "namespace": text,
                            "kind": {"type": "string"},
                            "name": {"type": "string"},
                            "selector": {"type": "object"},
                        },
                        "oneOf": [{"required": ["name"]}, {"required": ["selector"]}],
                    },
                    "rules": {"type": "array", "minItems": 1,
                              "items": {"type": "string", "enum": waivable}},
                    "reason": text,
                    "expires": {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$"},
                    "mutate": {"type": "boolean"},
                },
            },
            "description": "Named, reasoned waivers: a workload matched by namespace and name or selector has the listed rules (or all) waived, until the end of its expires day (UTC). Names must be unique (checked by the binary)."})
        }
        "injectMinDomains" => json!({"enum": ["auto", "always", "never"],
            "description": "minDomains on injected DoNotSchedule zone spreads: auto (only when a node template the pod fits can add nodes to an eligible zone that has none now), always, or never."}),
        "workloadKinds" => {
            let path = json!({"type": "string", "minLength": 1});
            let name = json!({"type": "string", "minLength": 1});
            json!({"maxItems": 255, "items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["version", "kind", "resource", "replicas", "template"],
                "properties": {
                    "group": {"type": "string"},
                    "version": name,
                    "kind": name,
                    "resource": name,
                    "replicas": path,
                    "selector": path,
                    "template": path,
                    "revisionLabel": {"type": "string", "pattern": LABEL_KEY},
                },
            },
            "description": "Workload kinds judged and mutated like a Deployment: where each keeps its replicas, selector and pod template (JSON pointers or dotted paths). Built-in kinds are refused by the binary."})
        }
        "statefulZoneSpread" => json!({"enum": ["ScheduleAnyway", "DoNotSchedule"],
            "description": "whenUnsatisfiable of the zone spread injected into StatefulSets whose volumes are zonal and bound at first consumer."}),
        "zonalProvisioners" => json!({
            "additionalProperties": {"oneOf": [
                {"type": "null"},
                {"type": "object", "additionalProperties": false, "properties": {
                    "regionalParameters": {"type": "object", "additionalProperties": {
                        "type": "array", "minItems": 1, "items": {"type": "string"}}},
                }},
            ]},
            "description": "Provisioners that make zonal volumes, laid over the built-in table (the default shown); an entry replaces the built-in one of the same provisioner, null removes it."}),
        "nodeTemplates" => {
            let taint = json!({"type": "object", "additionalProperties": false,
            "required": ["key", "effect"],
            "properties": {
                "key": {"type": "string", "minLength": 1},
                "value": {"type": "string"},
                "effect": {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
            }});
            json!({"items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "zone": {"type": "string", "minLength": 1},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "taints": {"type": "array", "items": taint},
                },
            },
            "description": "Node pools that can add nodes but have no Node now (scale from zero): their zones count as eligible for pods that fit them. Names must be unique (checked by the binary)."})
        }
        "defaultedReplicas" => json!({"enum": ["warn", "deny"],
            "description": "HA001 for a replica count of 1 nobody wrote (an HPA may set it later): warn or deny."}),
        "rules" => {
            let ids: Vec<&str> = RuleId::ALL.iter().map(|r| r.as_str()).collect();
            json!({"propertyNames": {"enum": ids},
                "additionalProperties": {"type": "string", "enum": ["deny", "warn", "info", "off"]},
                "description": "Per-rule severity override, e.g. {HA004: warn}."})
        }
        _ => return None,
    })
}

/// The JSON schema of the policy file (draft-07, as Helm validates values with).
pub fn schema() -> Value {
    let defaults = serde_json::to_value(Policy::default()).expect("the policy serialises");
    let Value::Object(defaults) = defaults else {
        unreachable!("the policy is an object")
    };
    let mut properties = Map::new();
    for (name, default) in &defaults {
        let mut property = Map::new();
        let ty = match default {
            Value::Bool(_) => "boolean",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Null => "null",
        };
        property.insert("type".into(), ty.into());
        if ty == "integer" {
            // Every number in the policy is a u32.
            property.insert("maximum".into(), u32::MAX.into());
        }
        let Some(Value::Object(extra)) = field(name) else {
            panic!("policy field {name} has no schema entry in src/policy_file.rs");
        };
        property.extend(extra);
        property.insert("default".into(), default.clone());
        properties.insert(name.clone(), Value::Object(property));
    }
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "The spreadguard policy file (camelCase; every field optional). Generated by `spreadguard policy schema`.",
        "properties": properties,
    })
}

/// One line for the startup log: mode, scope and the settings people ask about first.
pub fn summary(policy: &Policy) -> String {
    let overrides: Vec<String> = policy
        .rules
        .iter()
        .map(|(rule, setting)| {
            let setting = serde_json::to_value(setting)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!("{rule}={setting}")
        })
        .collect();
    format!(
        "mode={} scope={} minReplicas={} zoneLabels=[{}] whenUnsatisfiable={} exempt=[{}] allowWorkloadOverride={} failOpen={} rules={{{}}}",
        policy.mode.as_str(),
        serde_json::to_value(policy.scope)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        policy.min_replicas,
        policy.zone_labels.join(","),
        policy.when_unsatisfiable.as_str(),
        policy.exempt_namespaces.join(","),
        policy.allow_workload_override,
        policy.fail_open,
        overrides.join(","),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_and_rule_is_in_the_schema() {
        let schema = schema();
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(properties.len(), 23);
        let rules = &properties["rules"]["propertyNames"]["enum"];
        assert_eq!(rules.as_array().unwrap().len(), RuleId::ALL.len());
        // Enum values are exactly what the policy's serde names are.
        for mode in ["enforce", "warn", "audit", "off"] {
            Policy::from_yaml(&format!("mode: {mode}\n")).unwrap();
        }
        for value in ["auto", "always", "never"] {
            Policy::from_yaml(&format!("injectMinDomains: {value}\n")).unwrap();
        }
        for setting in ["deny", "warn", "info", "off"] {
            Policy::from_yaml(&format!("rules: {{HA004: {setting}}}\n")).unwrap();
        }
    }

    /// What the binary refuses, the schema refuses (a minimal draft-07 check of the few
    /// keywords used, enough to run the table; the chart's tests use a real validator).
    #[test]
    fn the_schema_refuses_what_the_binary_refuses() {
        let cases = [
            "minReplica: 2",
            "mode: strict",
            "maxSkew: 0",
            "antiAffinityWeight: 101",
            "antiAffinityWeight: 0",
            "zoneLabels: []",
            "assumedZones: 0",
            "rules: {HA999: warn}",
            "rules: {HA004: warning}",
            "minReplicas: two",
            "minReplicas: -1",
            "whenUnsatisfiable: Never",
            "failOpen: maybe",
            "exceptions: [{name: a, match: {namespace: x}, rules: [all], reason: r}]",
            "exceptions: [{name: a, match: {namespace: x, name: y}, rules: [HA999], reason: r}]",
            "exceptions: [{name: a, match: {namespace: x, name: y}, rules: [], reason: r}]",
            "exceptions: [{name: a, match: {namespace: x, name: y}, rules: [all]}]",
            "statefulZoneSpread: Always",
            "nodeTemplates: [{zone: a}]",
            "nodeTemplates: [{name: a, taints: [{key: k, effect: Sometimes}]}]",
            "zonalProvisioners: {ebs.csi.aws.com: {regionalParameters: {type: []}}}",
        ];
        let schema = schema();
        for yaml in cases {
            assert!(
                Policy::from_yaml(yaml).is_err(),
                "the binary accepts {yaml}"
            );
            let doc: Value = serde_norway::from_str(yaml).unwrap();
            assert!(!accepts(&schema, &doc), "the schema accepts {yaml}");
        }
        for yaml in [
            "mode: warn",
            "minReplicas: 3\nmaxSkew: 2\nantiAffinityWeight: 100",
            "rules: {HA004: warn, HA009: off}",
            "zoneLabels: [avaliable_zone]",
            "statefulZoneSpread: ScheduleAnyway",
            "nodeTemplates: [{name: mysql-k, zone: cn-beijing-k, labels: {node-pool: mysql}, taints: [{key: app, value: mysql, effect: NoSchedule}]}]",
            "zonalProvisioners: {csi.vsphere.vmware.com: null, rook-ceph.rbd.csi.ceph.com: {regionalParameters: {clusterID: [\"stretched-*\"]}}}",
            "exceptions: [{name: a, match: {namespace: x, name: y}, rules: [HA001], reason: r, expires: 2030-01-31}]",
        ] {
            Policy::from_yaml(yaml).unwrap();
            let doc: Value = serde_norway::from_str(yaml).unwrap();
            assert!(accepts(&schema, &doc), "the schema refuses {yaml}");
        }
        let defaults = serde_json::to_value(Policy::default()).unwrap();
        assert!(accepts(&schema, &defaults));
    }

    fn accepts(schema: &Value, doc: &Value) -> bool {
        let props = schema["properties"].as_object().unwrap();
        let Some(doc) = doc.as_object() else {
            return false;
        };
        doc.iter()
            .all(|(k, v)| props.get(k).is_some_and(|p| value_ok(p, v)))
    }

    fn value_ok(p: &Value, v: &Value) -> bool {
        let typed = match p["type"].as_str() {
            Some("boolean") => v.is_boolean(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("string") => v.is_string(),
            Some("array") => v.is_array(),
            Some("object") => v.is_object(),
            Some("null") => v.is_null(),
            _ => true,
        };
        let in_enum = p["enum"].as_array().is_none_or(|e| e.contains(v));
        let min = p["minimum"]
            .as_i64()
            .is_none_or(|m| v.as_i64().is_none_or(|n| n >= m));
        let max = p["maximum"]
            .as_i64()
            .is_none_or(|m| v.as_i64().is_none_or(|n| n <= m));
        let items = p["minItems"]
            .as_u64()
            .is_none_or(|m| v.as_array().is_none_or(|a| a.len() as u64 >= m));
        let names = p["propertyNames"]["enum"].as_array().is_none_or(|names| {
            v.as_object()
                .is_none_or(|o| o.keys().all(|k| names.contains(&Value::from(k.as_str()))))
        });
        let values = p["additionalProperties"].as_object().is_none_or(|_| {
            v.as_object()
                .is_none_or(|o| o.values().all(|x| value_ok(&p["additionalProperties"], x)))
        });
        let elements = p["items"].as_object().is_none_or(|_| {
            v.as_array()
                .is_none_or(|a| a.iter().all(|x| value_ok(&p["items"], x)))
        });
        let required = p["required"].as_array().is_none_or(|req| {
            v.as_object()
                .is_none_or(|o| req.iter().all(|k| o.contains_key(k.as_str().unwrap())))
        });
        let fields = p["properties"].as_object().is_none_or(|props| {
            v.as_object().is_none_or(|o| {
                o.iter()
                    .all(|(k, x)| props.get(k).is_some_and(|q| value_ok(q, x)))
            })
        });
        let one_of = p["oneOf"]
            .as_array()
            .is_none_or(|alts| alts.iter().filter(|alt| value_ok(alt, v)).count() == 1);
        typed
            && in_enum
            && min
            && max
            && items
            && names
            && values
            && elements
            && required
            && fields
            && one_of
    }
}
