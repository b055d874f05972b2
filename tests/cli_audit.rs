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

// === storage and node templates ===

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/workloads");

/// A nodes file with a Karpenter NodePool beside the Nodes that can add nodes in a fourth
/// zone, eu-west-1d.
fn nodes_with_a_pool(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(NODES).unwrap();
    text.push_str(
        "\n---\napiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: general}\nspec:\n  template:\n    spec:\n      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}\n      requirements:\n        - {key: topology.kubernetes.io/zone, operator: In, values: [eu-west-1d]}\n",
    );
    let path = dir.join("nodes-and-pools.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn storage_objects_beside_the_workloads_are_taken_into_account() {
    let out = audit(
        &[
            "--nodes",
            NODES,
            "-o",
            "json",
            &format!("{EXAMPLES}/ha017-statefulset-zonal-volumes-bound-immediately.yaml"),
            &format!("{EXAMPLES}/ha019-statefulset-bound-volumes-all-in-one-zone.yaml"),
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings only: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let results = report["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        2,
        "the StatefulSets; classes, claims and volumes are inputs"
    );
    let kafka = &results[0];
    assert_eq!(rules(kafka), ["HA017:warn"]);
    let class = &kafka["considered"]["storageClasses"][0];
    assert_eq!(class["name"], "gp2");
    assert_eq!(class["template"], "logs");
    assert_eq!(class["provisioner"], "kubernetes.io/aws-ebs");
    assert_eq!(class["volumeBindingMode"], "Immediate");
    assert_eq!(class["locality"], "zonal");
    assert_eq!(class["default"], true);
    let zk = &results[1];
    assert_eq!(rules(zk), ["HA019:warn"]);
    assert_eq!(
        zk["considered"]["claims"],
        serde_json::json!(["coord/data-zk-0", "coord/data-zk-1", "coord/data-zk-2"])
    );
    assert_eq!(
        zk["considered"]["storageClasses"][0]["volumeBindingMode"],
        "WaitForFirstConsumer"
    );
    // Without the storage objects the same StatefulSet is judged without them.
    let example = std::fs::read_to_string(format!(
        "{EXAMPLES}/ha017-statefulset-zonal-volumes-bound-immediately.yaml"
    ))
    .unwrap();
    let statefulset_only = example.split("---\n").last().unwrap();
    let alone = audit(
        &["--nodes", NODES, "-o", "json", "-"],
        Some(statefulset_only),
    );
    let r = &json(&alone)["results"][0];
    assert!(rules(r).is_empty(), "{r}");
    assert!(r.get("considered").is_none(), "nothing considered: {r}");
}

#[test]
fn a_shared_read_write_once_claim_is_denied_and_exits_one() {
    let out = audit(
        &[
            "--nodes",
            NODES,
            "-o",
            "json",
            &format!("{EXAMPLES}/ha020-deployment-replicas-share-read-write-once-claim.yaml"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let r = &json(&out)["results"][0];
    assert_eq!(rules(r), ["HA020:deny"]);
    assert_eq!(r["considered"]["claims"][0], "docs/wiki-content");
}

#[test]
fn node_pools_in_the_nodes_file_add_zones_and_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = nodes_with_a_pool(dir.path());
    let example = format!("{EXAMPLES}/ha002-deployment-hard-zone-anti-affinity-4-replicas.yaml");
    // Three zones: four replicas with required zone anti-affinity leave one Pending.
    assert_eq!(
        audit(&["--nodes", NODES, &example], None).status.code(),
        Some(1)
    );
    // The NodePool can add nodes in eu-west-1d: four eligible zones, one per replica.
    let out = audit(
        &["--nodes", nodes.to_str().unwrap(), "-o", "json", &example],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = json(&out);
    assert_eq!(report["topology"]["zones"]["eu-west-1d"], 0);
    assert_eq!(report["topology"]["nodes"], 7, "templates are not nodes");
    let template = &report["topology"]["nodeTemplates"][0];
    assert_eq!(
        (
            template["name"].as_str(),
            template["source"].as_str(),
            template["zone"].as_str()
        ),
        (Some("general"), Some("nodePool"), Some("eu-west-1d"))
    );
    assert_eq!(
        report["results"][0]["considered"]["nodeTemplates"][0],
        "NodePool general (zone eu-west-1d)"
    );
}

#[test]
fn a_broken_storage_object_is_unusable_input() {
    let out = audit(
        &["-"],
        Some(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c, namespace: n}\nspec: {accessModes: ReadWriteOnce}\n",
        ),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PersistentVolumeClaim c"), "{err}");
}

#[test]
fn topology_shows_node_templates_apart_from_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = nodes_with_a_pool(dir.path());
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "nodeTemplates:\n  - {name: gpu-c, zone: eu-west-1c, labels: {accelerator: nvidia}, taints: [{key: gpu, value: present, effect: NoSchedule}]}\n",
    )
    .unwrap();
    let run = |format: &str| {
        Command::new(BIN)
            .args(["topology", "--nodes", nodes.to_str().unwrap()])
            .arg("--config")
            .arg(&policy)
            .args(["-o", format])
            .output()
            .unwrap()
    };
    let table = run("table");
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("Node templates (nodes a pool can add; none of them exists now):"),
        "{text}"
    );
    assert!(text.contains("gpu-c"), "{text}");
    assert!(text.contains("gpu=present:NoSchedule"), "{text}");
    assert!(
        text.contains("Zones with no node now that a node pool can add one: eu-west-1d"),
        "{text}"
    );
    let json: Value = serde_json::from_slice(&run("json").stdout).unwrap();
    assert_eq!(json["nodes"], 7);
    let names: Vec<&str> = json["nodeTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gpu-c", "general"], "policy templates first");
    let d = json["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone"] == "eu-west-1d")
        .unwrap();
    assert_eq!(d["nodes"], 0);
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
