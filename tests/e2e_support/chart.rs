//! The Helm chart, rendered by real Helm: the Go Helm SDK that the chart tests use
//! (`helm-python-sdk` in target/chart-venv), through tests/e2e_support/render_chart.py.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn python() -> PathBuf {
    // Where tests/chart/run.sh creates it.
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/chart-venv/bin/python");
    assert!(
        venv.is_file(),
        "{} is missing: the e2e tests render the Helm chart with the chart tests' Helm SDK. \
         Create it with\n\n    scripts/controlplane.sh build\n\n(or tests/chart/run.sh)",
        venv.display()
    );
    venv
}

/// Renders the chart as release `release` in `namespace` with `values`; with a kubeconfig the
/// render sees the cluster (`.Capabilities`, `lookup`), as `helm install` does.
pub fn render(
    release: &str,
    namespace: &str,
    values: &Value,
    kubeconfig: Option<&Path>,
) -> Vec<Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e_support/render_chart.py"
    );
    let mut command = Command::new(python());
    command.arg(script).arg(release).arg(namespace);
    if let Some(kc) = kubeconfig {
        command.arg(kc);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(values.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rendering the chart with {values} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("render_chart.py prints JSON")
}

/// The rendered objects of one kind.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The one rendered object of a kind.
pub fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "expected one {kind} in the render");
    found[0]
}
