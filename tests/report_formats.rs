//! `audit -o openreports`, `-o policyreport` and `-o sarif` as users run them, validated
//! against the published schemas vendored in tests/fixtures/schemas/ (sources in its README):
//! the `Report` and `PolicyReport` CRDs' OpenAPI schemas, and the SARIF 2.1.0 JSON schema.
//!
//! A CRD schema accepts fields it does not declare (the API server prunes them silently), so
//! the report objects are also checked for undeclared fields, which would be lost.

use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_spreadguard");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn audit(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("audit")
        .args(args)
        .current_dir(ROOT)
        .env_remove("SPREADGUARD_NODES")
        .env_remove("SPREADGUARD_CONFIG")
        .env_remove("SPREADGUARD_OUTPUT")
        .output()
        .expect("the binary runs")
}

/// The bundled examples (one manifest per rule) against the 3-zone nodes.
fn examples(format: &str) -> Output {
    audit(&[
        "--nodes",
        "examples/nodes-3-zones.yaml",
        "-o",
        format,
        "examples/workloads/",
        "tests/fixtures/audit/exempt-namespace.yaml",
        "tests/fixtures/audit/list-of-workloads.json",
    ])
}

fn yaml_stream(out: &Output) -> Vec<Value> {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The `openAPIV3Schema` of one served version of a vendored CRD, as JSON.
fn crd_schema(file: &str, version: &str) -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/tests/fixtures/schemas/{file}")).unwrap();
    let crd: Value = serde_norway::from_str(&text).unwrap();
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{file} serves no {version}"))["schema"]["openAPIV3Schema"]
        .clone()
}

/// Schema violations of `instance`, plus every field the schema does not declare.
fn violations(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::draft4::new(schema).expect("the CRD schema compiles");
    let mut out: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    undeclared(schema, instance, String::new(), &mut out);
    out
}

/// Fields a structural schema would prune: present in the object, absent from `properties`
/// (where the schema neither allows additional properties nor preserves unknown fields).
fn undeclared(schema: &Value, instance: &Value, path: String, out: &mut Vec<String>) {
    match instance {
        Value::Object(map) => {
            if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true)) {
                return;
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties");
            for (k, v) in map {
                match (props.and_then(|p| p.get(k)), extra) {
                    (Some(s), _) => undeclared(s, v, format!("{path}/{k}"), out),
                    (None, Some(s)) if s.is_object() => {
                        undeclared(s, v, format!("{path}/{k}"), out)
                    }
                    (None, _) if path == "/metadata" || path.is_empty() && k == "metadata" => {}
                    (None, _) => {
                        out.push(format!("{path}/{k}: not in the schema (would be pruned)"))
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    undeclared(s, v, format!("{path}/{i}"), out);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn the_validators_reject_what_the_schemas_forbid() {
    let schema = crd_schema("openreports.io_reports.yaml", "v1alpha1");
    let good = json!({"apiVersion": "openreports.io/v1alpha1", "kind": "Report",
        "metadata": {"name": "x", "namespace": "y"},
        "results": [{"policy": "p", "result": "fail", "severity": "high", "properties": {"a": "1"}}]});
    assert_eq!(violations(&schema, &good), Vec::<String>::new());
    for (bad, why) in [
        (json!({"policy": "p", "result": "denied"}), "result enum"),
        (
            json!({"policy": "p", "properties": {"a": 1}}),
            "properties are strings",
        ),
        (json!({"result": "pass"}), "policy is required"),
        (json!({"policy": "p", "zone": "a"}), "undeclared field"),
    ] {
        let mut object = good.clone();
        object["results"][0] = bad;
        assert!(!violations(&schema, &object).is_empty(), "{why}");
    }
}

#[test]
fn openreports_validate_against_the_report_crd() {
    let out = examples("openreports");
    assert_eq!(out.status.code(), Some(1), "the examples include denials");
    let objects = yaml_stream(&out);
    assert!(!objects.is_empty());
    let schema = crd_schema("openreports.io_reports.yaml", "v1alpha1");
    for o in &objects {
        assert_eq!(violations(&schema, o), Vec::<String>::new(), "{o:#}");
        assert_eq!(o["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(o["kind"], "Report");
        assert_eq!(o["source"], "spreadguard");
    }
    check_results(&objects);
}

#[test]
fn policyreports_validate_against_the_wgpolicyk8s_crd() {
    let out = examples("policyreport");
    let objects = yaml_stream(&out);
    let schema = crd_schema("wgpolicyk8s.io_policyreports.yaml", "v1alpha2");
    for o in &objects {
        assert_eq!(violations(&schema, o), Vec::<String>::new(), "{o:#}");
        assert_eq!(o["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(o["kind"], "PolicyReport");
    }
    check_results(&objects);
}

/// One object per namespace; one result per workload and rule, agreeing with `-o json`;
/// summaries that add up.
fn check_results(objects: &[Value]) {
    let json: Value = serde_json::from_slice(&examples("json").stdout).unwrap();
    let mut namespaces: Vec<&str> = objects
        .iter()
        .map(|o| o["metadata"]["namespace"].as_str().unwrap())
        .collect();
    let before = namespaces.len();
    namespaces.dedup();
    assert_eq!(before, namespaces.len(), "one object per namespace");
    let mut expected = Vec::new();
    for r in json["results"].as_array().unwrap() {
        let ns = r["namespace"].as_str().unwrap_or("default");
        let mut rules: Vec<&str> = Vec::new();
        for f in r["findings"].as_array().unwrap() {
            let rule = f["rule"].as_str().unwrap();
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        if rules.is_empty() {
            rules.push("all");
        }
        for rule in rules {
            expected.push(format!(
                "{ns}/{}/{}/{rule}",
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            ));
        }
    }
    let mut got = Vec::new();
    for o in objects {
        let results = o["results"].as_array().unwrap();
        for key in ["pass", "fail", "warn", "skip"] {
            let n = results.iter().filter(|r| r["result"] == key).count();
            assert_eq!(o["summary"][key], n, "summary.{key}");
        }
        for r in results {
            assert_eq!(r["source"], "spreadguard");
            assert_eq!(r["policy"], "spreadguard");
            let res = &r["resources"][0];
            assert_eq!(res["namespace"], o["metadata"]["namespace"]);
            got.push(format!(
                "{}/{}/{}/{}",
                res["namespace"].as_str().unwrap(),
                res["kind"].as_str().unwrap(),
                res["name"].as_str().unwrap(),
                r["rule"].as_str().unwrap()
            ));
            // Deny findings fail and are scored; warnings are not scored.
            match r["result"].as_str().unwrap() {
                "fail" => assert_eq!(
                    (&r["severity"], &r["scored"]),
                    (&json!("high"), &json!(true))
                ),
                "warn" => assert_eq!(
                    (&r["severity"], &r["scored"]),
                    (&json!("medium"), &json!(false))
                ),
                _ => {}
            }
            assert!(r["properties"]["mode"].is_string());
        }
    }
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    assert!(got.iter().any(|k| k.ends_with("/HA001")), "{got:?}");
}

#[test]
fn sarif_validates_against_the_schema_and_points_at_file_and_line() {
    let out = examples("sarif");
    assert_eq!(out.status.code(), Some(1));
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{ROOT}/tests/fixtures/schemas/sarif-schema-2.1.0.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft4::new(&schema).expect("the SARIF schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert_eq!(errors, Vec::<String>::new());
    // The validator bites: a level SARIF does not know is refused.
    let mut bad = log.clone();
    bad["runs"][0]["results"][0]["level"] = json!("deny");
    assert!(!validator.is_valid(&bad));

    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let mut unique = rules.clone();
    unique.dedup();
    assert_eq!(unique, rules, "one rule per rule ID");
    assert!(rules.contains(&"HA001") && rules.contains(&"HA011"));
    let results = run["results"].as_array().unwrap();
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index], r["ruleId"].as_str().unwrap());
    }
    // Every result points at its manifest and the line its document starts on.
    for r in results {
        let loc = &r["locations"][0]["physicalLocation"];
        let path = loc["artifactLocation"]["uri"].as_str().unwrap();
        let line = loc["region"]["startLine"].as_u64().unwrap() as usize;
        let text = std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap();
        let first = text.lines().nth(line - 1).unwrap();
        assert!(
            first.starts_with("apiVersion")
                || first.starts_with("kind")
                || first.starts_with('{')
                || first.starts_with("  {")
                || first.trim_start().starts_with('"'),
            "{path}:{line} is {first:?}"
        );
    }
    let ha001 = results
        .iter()
        .find(|r| {
            r["ruleId"] == "HA001"
                && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    == "examples/workloads/ha001-deployment-single-replica.yaml"
        })
        .expect("the HA001 example is reported at its file");
    assert_eq!(ha001["level"], "error");
    let text = std::fs::read_to_string(format!(
        "{ROOT}/examples/workloads/ha001-deployment-single-replica.yaml"
    ))
    .unwrap();
    let expected_line = text
        .lines()
        .position(|l| l.starts_with("apiVersion"))
        .unwrap()
        + 1;
    assert_eq!(
        ha001["locations"][0]["physicalLocation"]["region"]["startLine"],
        expected_line
    );
}

#[test]
fn sarif_locates_every_document_of_a_multi_document_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.yaml");
    let one = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a, namespace: n}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: c, image: x}]}\n";
    let text = format!(
        "# two single-replica deployments\n---\n{one}---\n\n{}",
        one.replace("name: a", "name: b")
    );
    std::fs::write(&path, &text).unwrap();
    let out = audit(&["-o", "sarif", path.to_str().unwrap()]);
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: Vec<(String, u64)> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ruleId"] == "HA001")
        .map(|r| {
            (
                r["message"]["text"]
                    .as_str()
                    .unwrap()
                    .split(':')
                    .next()
                    .unwrap()
                    .to_owned(),
                r["locations"][0]["physicalLocation"]["region"]["startLine"]
                    .as_u64()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("Deployment n/a".to_owned(), 3),
            ("Deployment n/b".to_owned(), 14)
        ]
    );
    let uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
        ["uri"]
        .as_str()
        .unwrap();
    assert!(
        uri.starts_with("file:///") && uri.ends_with("/two.yaml"),
        "{uri}"
    );
}
