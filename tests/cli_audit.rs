//! `spreadguard audit` as users run it: the real binary, fixture files, exit codes and the
//! documented JSON format.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_spreadguard");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/audit");
const NODES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nodes-3-zones.yaml");

fn audit(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("audit")
        .args(args)
        .current_dir(FIXTURES)
        .env_remove("SPREADGUARD_NODES")
        .env_remove("SPREADGUARD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn rules(result: &Value) -> Vec<String> {
    result["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["rule"].as_str().unwrap(),
                f["severity"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_clean_workload_exits_zero_and_skips_other_kinds() {
    let out = audit(
        &[
            "--nodes",
            NODES,
            "-o",
            "json",
            "clean-deployment-3-replicas.yaml",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["summary"]["documents"], 2);
    assert_eq!(
        report["summary"]["workloads"], 1,
        "the Service is skipped silently"
    );
    let r = &report["results"][0];
    assert_eq!(r["source"], "clean-deployment-3-replicas.yaml#0");
    assert_eq!(
        (
            r["kind"].as_str(),
            r["namespace"].as_str(),
            r["name"].as_str()
        ),
        (Some("Deployment"), Some("shop"), Some("api"))
    );
    assert_eq!(r["decision"], "allow");
    assert_eq!(r["patch"], serde_json::json!([]));
    // Its own ScheduleAnyway zone spread aims for one replica per zone, without a promise.
    assert_eq!(
        r["placement"]["zones"],
        serde_json::json!({"eu-west-1a": 1, "eu-west-1b": 1, "eu-west-1c": 1})
    );
    assert_eq!(
        r["placement"]["worstZoneLoss"],
        serde_json::json!({"zone": "eu-west-1a", "lost": 1, "left": 2})
    );
    assert_eq!(r["placement"]["guaranteed"], false);
    assert_eq!(r["placement"]["basis"], "expected");
    assert_eq!(report["topology"]["zoneKey"], "topology.kubernetes.io/zone");
    assert_eq!(report["topology"]["zones"].as_object().unwrap().len(), 3);
    assert!(report["topology"]["unzonedNodes"].is_number());
}

#[test]
fn an_autoscaler_supplies_the_effective_replica_count() {
    let out = audit(
        &[
            "--nodes",
            NODES,
            "-o",
            "json",
            "deployment-with-hpa-min-1.yaml",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let r = &json(&out)["results"][0];
    assert_eq!(r["decision"], "deny");
    assert_eq!(rules(r), ["HA001:deny"]);
    let message = r["findings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("HorizontalPodAutoscaler minReplicas 1"),
        "{message}"
    );
}

#[test]
fn lists_are_expanded_and_json_files_read() {
    let out = audit(
        &["--nodes", NODES, "-o", "json", "list-of-workloads.json"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["summary"]["workloads"], 1);
    assert_eq!(
        report["results"][0]["source"],
        "list-of-workloads.json#0/items/0"
    );
    assert_eq!(report["results"][0]["kind"], "StatefulSet");
    assert!(rules(&report["results"][0]).contains(&"HA001:deny".to_owned()));
}

#[test]
fn stdin_is_read_with_a_dash_and_without_nodes_zones_are_assumed() {
    let manifest =
        std::fs::read_to_string(format!("{FIXTURES}/deployment-with-hpa-min-1.yaml")).unwrap();
    let out = audit(&["-o", "json", "-"], Some(&manifest));
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["topology"]["source"], "assumed");
    assert_eq!(report["topology"]["zones"].as_object().unwrap().len(), 3);
    assert_eq!(report["results"][0]["source"], "-#0");

    let table = audit(&["-"], Some(&manifest));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.starts_with("Topology: assumed 3 zones under topology.kubernetes.io/zone"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn directories_are_walked_and_a_broken_file_fails_before_anything_is_printed() {
    let out = audit(&["--nodes", NODES, "."], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "nothing half-printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    // libyaml notices the unclosed `[` of line 7 at the end of the file.
    assert!(
        err.contains("broken-unclosed-flow-sequence.yaml: line 8: did not find expected ','"),
        "{err}"
    );
}

#[test]
fn unusable_arguments_exit_two() {
    for args in [
        vec!["no-such-file.yaml"],
        vec![
            "--nodes",
            "clean-deployment-3-replicas.yaml",
            "clean-deployment-3-replicas.yaml",
        ],
        vec!["-o", "xml", "clean-deployment-3-replicas.yaml"],
        vec![],
    ] {
        let out = audit(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn exempt_namespaces_are_reported_as_off() {
    let out = audit(
        &["--nodes", NODES, "-o", "json", "exempt-namespace.yaml"],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let r = &json(&out)["results"][0];
    assert_eq!(
        (r["mode"].as_str(), r["decision"].as_str()),
        (Some("off"), Some("allow"))
    );
    assert_eq!(rules(r), Vec::<String>::new());
}

#[test]
fn the_table_names_every_finding_and_the_summary() {
    let out = audit(
        &[
            "--nodes",
            NODES,
            "--color",
            "always",
            "deployment-with-hpa-min-1.yaml",
        ],
        None,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Deployment jobs/worker"), "{text}");
    assert!(text.contains("HA001"), "{text}");
    // The HPA is judged too: it may scale the worker down to 1.
    assert!(
        text.contains("HorizontalPodAutoscaler jobs/worker"),
        "{text}"
    );
    assert!(text.contains("HA012"), "{text}");
    assert!(text.contains("\x1b[1;31mDENY"), "{text}");
    assert!(text.contains("would inject: zone-spread"), "{text}");
    // 1 replica (the autoscaler's minimum) over 3 zones, as the injected soft spread puts it.
    assert!(
        text.contains("placement: eu-west-1a=1,eu-west-1b=0,eu-west-1c=0 (expected); losing eu-west-1a leaves 0 of 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("Summary: 1 workload, 1 autoscaler in 2 documents: 2 denied"),
        "{text}"
    );
}

#[test]
fn a_nodes_file_without_any_node_exits_two_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("empty.yaml", ""),
        (
            "empty-list.yaml",
            "apiVersion: v1\nkind: NodeList\nitems: []\n",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = audit(
            &[
                "--nodes",
                path.to_str().unwrap(),
                "clean-deployment-3-replicas.yaml",
            ],
            None,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}");
        assert!(
            err.contains(name) && err.contains("no Node"),
            "{name}: {err}"
        );
    }
}

/// `-o html`: one self-contained page whose data block is the `-o json` document, and which
/// names no other origin (no CDN, no request at view time).
#[test]
fn html_inlines_the_json_document_and_names_no_url() {
    let files = ["list-of-workloads.json", "deployment-with-hpa-min-1.yaml"];
    let json_out = audit(
        &[&["--nodes", NODES, "-o", "json"][..], &files].concat(),
        None,
    );
    let html_out = audit(
        &[&["--nodes", NODES, "-o", "html"][..], &files].concat(),
        None,
    );
    assert_eq!(html_out.status.code(), json_out.status.code());
    let html = String::from_utf8(html_out.stdout).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    let open = r#"<script id="posture-data" type="application/json">"#;
    let start = html.find(open).expect("a data block") + open.len();
    let end = start + html[start..].find("</script>").unwrap();
    let inlined: Value = serde_json::from_str(&html[start..end]).expect("the data block is JSON");
    assert_eq!(inlined, json(&json_out));
    assert!(!inlined["results"].as_array().unwrap().is_empty());
    for external in [
        "http://",
        "https://",
        "src=",
        "href=\"//",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(external), "{external} in the page");
    }
}
