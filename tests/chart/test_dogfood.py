"""Dog-food: spreadguard's own chart passes `spreadguard audit`.

The rendered chart is piped to the real binary, as a user would pipe `helm template`:

    helm template ... | spreadguard audit --nodes examples/nodes-3-zones.yaml -o json -

The binary is $SPREADGUARD_BIN, default target/debug/spreadguard (tests/chart/run.sh builds
it when it is missing). The chart exempts its own namespace from its policy, so the audit
that judges the chart's Deployment uses the chart's policy with that exemption removed and
mode enforce: the webhook's workload is held to the rules it enforces on everybody else.
"""

from __future__ import annotations

import json
import re
import subprocess

import helm_python as helm
import pytest
import yaml

from conftest import CASES, REPO, spreadguard_bin

NODES = REPO / "examples" / "nodes-3-zones.yaml"


def audit(stream: str, *args: str) -> tuple[int, dict]:
    binary = spreadguard_bin()
    assert binary.is_file(), (
        f"{binary} does not exist: build it with `cargo build --bin spreadguard` "
        "or point SPREADGUARD_BIN at it")
    proc = subprocess.run([str(binary), "audit", "--nodes", str(NODES), *args, "-o", "json", "-"],
                          input=stream, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), f"audit failed ({proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def strict_policy(rendered, tmp_path) -> str:
    """The chart's policy, but judging the release namespace in enforce mode."""
    policy = rendered.policy
    policy["mode"] = "enforce"
    policy["exemptNamespaces"] = [n for n in policy["exemptNamespaces"]
                                  if n != rendered.namespace]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return str(path)


@pytest.mark.parametrize("name", ["defaults", "production"])
def test_rendered_chart_has_no_deny_finding(render, tmp_path, name):
    rendered = render(CASES[name])
    code, report = audit(rendered.yaml_stream(), "--config", strict_policy(rendered, tmp_path))
    deployment = rendered.deployment["metadata"]
    (entry,) = [r for r in report["results"]
                if (r["kind"], r["name"]) == ("Deployment", deployment["name"])]
    assert entry["namespace"] == deployment["namespace"]
    assert entry["mode"] == "enforce"
    denies = [f for r in report["results"] for f in r["findings"] if f["severity"] == "deny"]
    assert denies == [], json.dumps(denies, indent=2)
    assert entry["decision"] == "allow"
    assert code == 0
    assert report["summary"]["denied"] == 0
    # The audit saw a real three-zone topology, not the assumed one.
    assert len(report["topology"]["zones"]) == 3


def test_chart_deployment_needs_no_injection(render, tmp_path):
    """The chart already spreads over zones and nodes, so the webhook would add nothing."""
    rendered = render({})
    _, report = audit(rendered.yaml_stream(), "--config", strict_policy(rendered, tmp_path))
    (entry,) = [r for r in report["results"] if r["kind"] == "Deployment"]
    assert entry["patch"] == [], json.dumps(entry["patch"], indent=2)


def test_chart_deployment_passes_the_default_policy(render):
    """Without --config: the server's built-in defaults (cluster-wide, enforce)."""
    rendered = render({})
    code, report = audit(rendered.yaml_stream())
    assert code == 0, json.dumps(report["results"], indent=2)
    # The chart's own PodDisruptionBudget is judged too (HA013, HA016), and passes: it lets
    # one of the two pods go and selects them.
    assert sorted(r["kind"] for r in report["results"]) == ["Deployment", "PodDisruptionBudget"]
    assert all(r["findings"] == [] for r in report["results"]), json.dumps(report, indent=2)
    (deployment,) = [r for r in report["results"] if r["kind"] == "Deployment"]
    assert [b["name"] for b in deployment["disruptionBudgets"]] == [
        r["name"] for r in report["results"] if r["kind"] == "PodDisruptionBudget"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_binary_accepts_the_rendered_policy_file(render, tmp_path, name):
    """The ConfigMap's policy.yaml loads in the real binary (unknown fields are errors there).

    With the chart's own policy the release namespace is exempt, so the Deployment is
    reported in mode off, which is the point of exempting it.
    """
    rendered = render(CASES[name])
    path = tmp_path / "policy.yaml"
    path.write_text(rendered.one("ConfigMap")["data"]["policy.yaml"])
    code, report = audit(rendered.yaml_stream(), "--config", str(path))
    assert code == 0
    (entry,) = [r for r in report["results"] if r["kind"] == "Deployment"]
    assert entry["mode"] == "off"


def test_schema_accepts_exactly_the_rule_ids_the_binary_knows(chart, tmp_path):
    """values.schema.json lists the rule IDs; the binary's policy parser is the truth."""
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  HA999: warn\n")
    proc = subprocess.run([str(spreadguard_bin()), "audit", "--config", str(path), "-"],
                          input="", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    known = sorted(set(re.findall(r"`(HA\d{3})`", proc.stderr)) - {"HA999"})
    assert "HA001" in known, proc.stderr
    for rule in known:
        chart.validate_schema({"policy": {"rules": {rule: "warn"}}})
    last = int(known[-1][2:])
    for unknown in (f"HA{last + 1:03d}", "HA999"):
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema({"policy": {"rules": {unknown: "warn"}}})
