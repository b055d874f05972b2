//! `spreadguard fix FILES…` as users run it: what the mutating webhook would inject is written
//! into the manifests, every line the patch does not touch (comments, key order, quoting,
//! flow maps) stays as it was, the result is exactly the webhook's patch applied, and running
//! it again changes nothing.

use std::path::Path;
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;
use spreadguard::engine::policy::Policy;
use spreadguard::engine::{Input, decide};
use spreadguard::load;

const BIN: &str = env!("CARGO_BIN_EXE_spreadguard");
const NODES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nodes-3-zones.yaml");

const MANIFEST: &str = r#"# The shop's web tier.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # keep the name short
  namespace: shop
  annotations:
    team: storefront
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels:
        app: web
    spec:
      # containers come last in our style
      containers:
        - name: web
          image: "web:1.2.3"
      tolerations:
      - key: spot
        operator: Exists
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{port: 80}]
---
# Already spread across zones: only the node spread is added, appended to its list.
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: shop
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: DoNotSchedule
          nodeTaintsPolicy: Honor
          labelSelector: {matchLabels: {app: db}}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                labelSelector: {matchLabels: {app: db}}
                topologyKey: topology.kubernetes.io/zone
      containers: [{name: db, image: "postgres:17"}]
"#;

fn fix(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("fix")
        .args(["--nodes", NODES])
        .args(args)
        .env_remove("SPREADGUARD_CONFIG")
        .output()
        .unwrap()
}

fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Whether every line of `old` appears in `new`, in order (the fix only adds lines).
fn only_adds_lines(old: &str, new: &str) -> bool {
    let mut new_lines = new.lines();
    old.lines().all(|l| new_lines.any(|n| n == l))
}

#[test]
fn fix_writes_the_webhooks_injection_and_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yaml");
    std::fs::write(&path, MANIFEST).unwrap();

    let check = fix(&["--check", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1), "--check: would change");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        MANIFEST,
        "--check writes nothing"
    );

    let out = fix(&[path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("#0 Deployment shop/web: zone-spread,node-spread,zone-anti-affinity"),
        "{stdout}"
    );
    assert!(
        stdout.contains("#2 StatefulSet shop/db: node-spread"),
        "{stdout}"
    );
    let fixed = std::fs::read_to_string(&path).unwrap();
    assert!(
        only_adds_lines(MANIFEST, &fixed),
        "a line changed or moved:\n{fixed}"
    );
    for kept in [
        "# The shop's web tier.",
        "  name: web   # keep the name short",
        "      # containers come last in our style",
        "    matchLabels: {app: web}",
        "          image: \"web:1.2.3\"",
        "  ports: [{port: 80}]",
    ] {
        assert!(fixed.contains(kept), "lost {kept:?}");
    }

    // Exactly what the webhook's patch makes of each document.
    let policy = Policy::default();
    let topology = load::topology(Some(Path::new(NODES)), &policy).unwrap();
    for (before, after) in documents(MANIFEST).iter().zip(documents(&fixed)) {
        let mut expected = before.clone();
        let d = decide(Input::new(before), &topology, &policy);
        json_patch::patch(&mut expected, &d.patch).unwrap();
        assert_eq!(after, expected);
    }

    // Idempotent: nothing more to write.
    let again = fix(&["--check", path.to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let again = fix(&[path.to_str().unwrap()]);
    assert!(again.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), fixed);
}

#[test]
fn lists_and_json_files_are_left_alone_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.yaml");
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: web, namespace: shop}\n  spec:\n    replicas: 3\n    selector: {matchLabels: {app: web}}\n    template:\n      metadata: {labels: {app: web}}\n      spec: {containers: [{name: web, image: web}]}\n";
    std::fs::write(&list, text).unwrap();
    let json = dir.path().join("app.json");
    std::fs::write(
        &json,
        serde_json::to_string(&documents(text)[0]["items"][0]).unwrap(),
    )
    .unwrap();
    let out = fix(&[list.to_str().unwrap(), json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("an item of a List: not edited"), "{err}");
    assert!(err.contains("a JSON file: not edited"), "{err}");
    assert_eq!(std::fs::read_to_string(&list).unwrap(), text);
}
