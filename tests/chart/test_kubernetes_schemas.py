"""Every rendered object is valid Kubernetes, and the chart lints clean.

Objects are validated with PyPI `kubernetes-validate` (the official OpenAPI schemas turned
into JSON schemas) in strict mode, so unknown fields (a typo such as `readinesProbe`) fail
too, for Kubernetes 1.33 (the chart's kubeVersion floor) and the newest version the package
ships.

Custom resources (cert-manager's Issuer and Certificate, the Prometheus Operator's
ServiceMonitor and PrometheusRule) have no schema in kubernetes-validate: they are skipped
here and their key fields are asserted in test_semantics.py instead.
"""

from __future__ import annotations

import helm_python as helm
import kubernetes_validate
import pytest

from conftest import CASES, CHART, CRD_GROUPS, NAMESPACE, deep_merge

KUBE_VERSIONS = ["1.33.0", kubernetes_validate.latest_version()]


def is_custom_resource(obj: dict) -> bool:
    return obj["apiVersion"].split("/")[0] in CRD_GROUPS


# Values that render only on a cluster serving the ValidatingAdmissionPolicy API (an opt-out
# label), rendered as `helm install --dry-run=server` against the fake API server.
CLUSTER_CASES = {
    "opt-out-label": {"webhooks": {
        "optOutLabel": "spreadguard.io/ignore",
        "optOutAllowedServiceAccounts": ["system:serviceaccount:ci:deployer"]}},
    "opt-out-label-production": deep_merge(CASES["production"], {
        "webhooks": {"optOutLabel": "example.com/skip-ha", "optOutAllowedGroups": [
            "platform-admins"]},
        "networkPolicy": CASES["network-policy"]["networkPolicy"]}),
}


def validate_all(rendered, kube_version: str) -> set[str]:
    """Validates every built-in object; returns the kinds checked."""
    kinds = set()
    for obj in rendered.objects:
        if is_custom_resource(obj):
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = "/".join(str(p) for p in err.path)
            pytest.fail(f"{name} is invalid for Kubernetes {kube_version} at {path}: {err.message}")
        kinds.add(obj["kind"])
    return kinds


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_object_matches_the_kubernetes_schema(case, kube_version):
    kinds = validate_all(case, kube_version)
    # Deployment, Service, ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap,
    # PDB and the two webhook configurations at the least.
    assert len(kinds) >= 9


@pytest.mark.parametrize("name", sorted(CLUSTER_CASES))
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_the_opt_out_policy_matches_the_kubernetes_schema(render_on_cluster, name, kube_version):
    kinds = validate_all(render_on_cluster(CLUSTER_CASES[name]), kube_version)
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds


def test_newest_schema_version_is_newer_than_the_floor():
    """Guards the matrix: the two versions must differ to mean anything."""
    assert KUBE_VERSIONS[1].split(".")[:2] > ["1", "33"]


def test_custom_resources_are_only_the_expected_kinds(case):
    kinds = {o["kind"] for o in case.objects if is_custom_resource(o)}
    assert kinds <= {"Issuer", "Certificate", "ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("kube_version", ["v1.33.0", "v1.36.0"])
def test_helm_lint_strict_is_clean(name, kube_version):
    report = helm.lint(str(CHART), CASES[name], strict=True, namespace=NAMESPACE,
                       kube_version=kube_version)
    assert report["errors"] == []
    # Severity 2 = warning, 3 = error; only informational messages (e.g. "icon is
    # recommended") may remain.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_chart_metadata(chart):
    meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["kubeVersion"] == ">=1.33.0-0"
    assert meta["type"] == "application"
    assert meta["appVersion"]
