"""Shared helpers for the chart tests: render the chart with real Helm and pick objects.

Helm comes from PyPI `helm-python-sdk`, which ships Helm's Go SDK as a shared library
(`libhelm_c.so`, loaded with ctypes) instead of a `helm` binary: `Chart.render` is
`helm template`, `lint` is `helm lint`, `Chart.validate_schema` is the values.schema.json
check every install runs. Nothing here needs a cluster or the network.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from fake_apiserver import VAP_KINDS, FakeApiServer

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "spreadguard"
RELEASE = "spreadguard"
NAMESPACE = "spreadguard-system"

# A CA certificate in PEM, as a user of certificates.mode=existingSecret would paste it.
# Only its shape matters to the chart (it is copied into the caBundle, never parsed).
EXAMPLE_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIUQ2FyZWZ1bGx5IG5vdCBhIHJlYWwgY2EwCgYIKoZIzj0E
AwIwETEPMA0GA1UEAwwGdGVzdGNhMB4XDTI2MDEwMTAwMDAwMFoXDTM2MDEwMTAw
MDAwMFowETEPMA0GA1UEAwwGdGVzdGNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD
QgAE
-----END CERTIFICATE-----
"""

# The values matrix. Every case is rendered, linted, validated against the Kubernetes
# schemas and checked for the chart's invariants.
CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "scope-optIn": {"scope": "optIn"},
    "scope-clusterWide": {"scope": "clusterWide"},
    "certs-helm": {"certificates": {"mode": "helm"}},
    "certs-certManager": {"certificates": {"mode": "certManager"}},
    "certs-certManager-clusterIssuer": {
        "certificates": {
            "mode": "certManager",
            "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}},
        }
    },
    "certs-existingSecret-pem": {
        "certificates": {
            "mode": "existingSecret",
            "existingSecret": {"name": "spreadguard-serving", "caBundle": EXAMPLE_CA_PEM},
        }
    },
    "certs-existingSecret-base64": {
        "certificates": {
            "mode": "existingSecret",
            "existingSecret": {
                "name": "spreadguard-serving",
                "caBundle": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
            },
        }
    },
    "monitoring": {
        "monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "prometheusRule": {"enabled": True},
        }
    },
    "extensions": {
        "webhooks": {
            "optOutLabel": "spreadguard.io/ignore",
            "optOutUnrestricted": True,
            "extraObjectSelector": {
                "matchLabels": {"spreadguard.io/judged": "true"},
                "matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["platform"]}],
            },
            "extraMatchConditions": [{"name": "skip-batch-namespaces",
                                      "expression": '!request.namespace.startsWith("batch-")'}],
            "skipControllerOwnedKinds": {
                "replicaSets": [{"apiGroup": "apps", "kind": "Deployment"},
                                {"apiGroup": "argoproj.io", "kind": "Rollout"}],
                "pods": [{"apiGroup": "apps", "kind": "ReplicaSet"},
                         {"apiGroup": "apps", "kind": "StatefulSet"},
                         {"apiGroup": "apps.kruise.io", "kind": "CloneSet"}],
            },
        }
    },
    "fail-closed": {
        "webhooks": {"mutating": {"failurePolicy": "Fail"}, "validating": {"failurePolicy": "Fail"}},
        "monitoring": {"prometheusRule": {"enabled": True}},
    },
    "network-policy": {
        "networkPolicy": {
            "enabled": True,
            "webhookFrom": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "monitoring"}}}],
        }
    },
    "production": {
        "scope": "clusterWide",
        "replicaCount": 3,
        "priorityClassName": "system-cluster-critical",
        "certificates": {"mode": "certManager"},
        "webhooks": {
            "mutating": {"failurePolicy": "Ignore"},
            "validating": {"failurePolicy": "Fail"},
        },
        "policy": {
            "mode": "warn",
            "exemptNamespaces": ["monitoring", "kube-system"],
            "rules": {"HA004": "warn", "HA009": "off"},
        },
        "monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    },
}

# API groups of custom resources: kubernetes-validate has no schema for them.
CRD_GROUPS = ("cert-manager.io", "monitoring.coreos.com")


class Rendered:
    """The objects of one render, with lookups by kind and name."""

    def __init__(self, manifests: dict[str, str], namespace: str, release: str):
        self.namespace = namespace
        self.release = release
        self.notes = ""
        self.objects: list[dict[str, Any]] = []
        for path, text in sorted(manifests.items()):
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    self.objects.append(doc)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
        return found[0]

    def has(self, kind: str) -> bool:
        return bool(self.all(kind))

    def yaml_stream(self) -> str:
        """All objects as one multi-document YAML stream, as `helm template` prints it."""
        return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in self.objects)

    # Shortcuts for the objects every render has.
    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def service(self) -> dict[str, Any]:
        return self.one("Service")

    @property
    def pod_spec(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod_spec["containers"]
        return container

    @property
    def policy(self) -> dict[str, Any]:
        return yaml.safe_load(self.one("ConfigMap")["data"]["policy.yaml"])

    def webhook(self, kind: str) -> dict[str, Any]:
        (hook,) = self.one(kind)["webhooks"]
        return hook


# === label selectors, evaluated like the API server does ===


def selector_matches(selector: dict | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def namespace_labels(name: str, **labels: str) -> dict[str, str]:
    """A namespace's labels, including the one the API server sets on every namespace."""
    return {"kubernetes.io/metadata.name": name, **labels}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.fixture(scope="session")
def chart():
    with helm.Chart.load(str(CHART)) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart):
    """render(values, name=, namespace=) -> Rendered. Cached per arguments."""
    cache: dict[tuple[str, str, str], Rendered] = {}

    def _render(values: dict[str, Any] | None = None, *, name: str = RELEASE,
                namespace: str = NAMESPACE) -> Rendered:
        key = (yaml.safe_dump(values or {}, sort_keys=True), name, namespace)
        if key not in cache:
            manifests = chart.render(values or {}, name=name, namespace=namespace,
                                     is_install=True)
            cache[key] = Rendered(manifests, namespace, name)
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def render_on_cluster(chart):
    """render_on_cluster(values, vap=True, kube=...) -> Rendered, as `helm install
    --dry-run=server` renders it against a cluster: `.Capabilities` come from the fake API
    server's discovery (with or without the ValidatingAdmissionPolicy API), `lookup` asks
    it. Raises helm.HelmError when the chart refuses to render. Cached per arguments."""
    cache: dict[tuple[str, bool, str], Rendered] = {}

    def _render(values: dict[str, Any] | None = None, *, vap: bool = True,
                kube: str = "v1.33.0") -> Rendered:
        key = (yaml.safe_dump(values or {}, sort_keys=True), vap, kube)
        if key not in cache:
            cluster = FakeApiServer(version=kube,
                                    without_kinds=frozenset() if vap else frozenset(VAP_KINDS))
            try:
                with helm.Config(kubeconfig_content=cluster.kubeconfig,
                                 namespace=NAMESPACE) as config:
                    release = config.install(chart, RELEASE, values or {}, namespace=NAMESPACE,
                                             dry_run="server")
            finally:
                cluster.close()
            cache[key] = Rendered({"manifest": release["manifest"]}, NAMESPACE, RELEASE)
        return cache[key]

    return _render


@pytest.fixture(params=sorted(CASES), scope="session")
def case(request, render) -> Rendered:
    """Every case of the values matrix, rendered."""
    return render(CASES[request.param])


def spreadguard_bin() -> Path:
    configured = os.environ.get("SPREADGUARD_BIN")
    if configured:
        return Path(configured)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "spreadguard"
