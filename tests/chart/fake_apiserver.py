"""Just enough of a Kubernetes API server for Helm's cluster-aware paths.

No Kubernetes API server can run in the chart tests, so this in-process fake (plain HTTP on
127.0.0.1) answers what real Helm asks while rendering against a cluster:

- `lookup` (GET of a Secret): the certificate reuse and rotation in certificates.mode=helm;
- discovery (`/version`, `/api`, `/apis`, one resource list per group version): Helm builds
  `.Capabilities.APIVersions` and `.Capabilities.KubeVersion` from it, which is how the chart
  knows whether the cluster serves ValidatingAdmissionPolicy. The SDK's offline render has
  no `--api-versions` option, and Helm's built-in default set names group versions only,
  never `group/version/Kind`, so this is the only way to render the chart "on a cluster that
  has the API" and "on one that does not";
- the OpenAPI v3 documents that tell the client the server validates fields itself (so the
  client skips schema validation, which needs the full OpenAPI), and 404 for every object
  an install checks for before creating it.

It never stores anything a client sends: writes answer 405. Anything else is a 404.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

# (group/version, [(plural, Kind, namespaced)]) the fake serves; "v1" is the core group.
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [("secrets", "Secret", True), ("configmaps", "ConfigMap", True),
           ("services", "Service", True), ("serviceaccounts", "ServiceAccount", True),
           ("pods", "Pod", True), ("resourcequotas", "ResourceQuota", True),
           ("namespaces", "Namespace", False)],
    "apps/v1": [("deployments", "Deployment", True), ("replicasets", "ReplicaSet", True),
                ("statefulsets", "StatefulSet", True), ("daemonsets", "DaemonSet", True)],
    "batch/v1": [("jobs", "Job", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
    "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False),
                                     ("roles", "Role", True), ("rolebindings", "RoleBinding", True)],
    "admissionregistration.k8s.io/v1": [
        ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
        ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False),
        ("validatingadmissionpolicies", "ValidatingAdmissionPolicy", False),
        ("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", False)],
    "cert-manager.io/v1": [("issuers", "Issuer", True), ("certificates", "Certificate", True)],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True),
                                 ("prometheusrules", "PrometheusRule", True)],
}

# What a cluster without the ValidatingAdmissionPolicy API (before 1.30, or with
# admissionregistration.k8s.io/v1 policies disabled) lacks.
VAP_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


class FakeApiServer:
    """A fake API server on a free loopback port; `kubeconfig` points a client at it."""

    def __init__(self, *, version: str = "v1.33.0", without_kinds: frozenset[str] = frozenset()):
        self.version = version
        self.resources = {gv: [r for r in rs if r[1] not in without_kinds]
                          for gv, rs in RESOURCES.items()}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.requests.append(("GET", self.path))
                code, body = fake.answer(self.path.split("?")[0].rstrip("/"))
                self.reply(code, body)

            def do_POST(self):  # nothing is ever written
                fake.requests.append((self.command, self.path))
                self.reply(405, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "code": 405, "message": "the fake API server stores nothing"})

            do_PUT = do_PATCH = do_DELETE = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # === what the fake answers ===

    def answer(self, path: str) -> tuple[int, dict]:
        if path == "/version":
            major, minor = self.version.lstrip("v").split(".")[:2]
            return 200, {"major": major, "minor": minor, "gitVersion": self.version,
                         "platform": "linux/amd64"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups: dict[str, list[dict]] = {}
            for gv in self.resources:
                if "/" in gv:
                    group, version = gv.split("/")
                    groups.setdefault(group, []).append({"groupVersion": gv, "version": version})
            return 200, {"kind": "APIGroupList", "apiVersion": "v1",
                         "groups": [{"name": g, "versions": vs, "preferredVersion": vs[0]}
                                    for g, vs in groups.items()]}
        gv = path.removeprefix("/api/").removeprefix("/apis/")
        if path in ("/api/v1", f"/apis/{gv}") and gv in self.resources:
            return 200, self.resource_list(gv)
        if path == "/openapi/v3":
            return 200, {"paths": {self.gv_path(gv): {"serverRelativeURL":
                                                      f"/openapi/v3/{self.gv_path(gv)}?hash=0"}
                                   for gv in self.resources}}
        if path.startswith("/openapi/v3/"):
            return self.openapi_v3(path.removeprefix("/openapi/v3/"))
        parts = path.strip("/").split("/")
        if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] \
                and parts[4] == "secrets" and (parts[3], parts[5]) in self.secrets:
            return 200, self.secrets[(parts[3], parts[5])]
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                     "reason": "NotFound", "code": 404, "message": f"{path} not found"}

    @staticmethod
    def gv_path(gv: str) -> str:
        return "api/v1" if gv == "v1" else f"apis/{gv}"

    def resource_list(self, gv: str) -> dict:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": [{"name": plural, "singularName": kind.lower(),
                               "namespaced": namespaced, "kind": kind,
                               "verbs": ["create", "delete", "get", "list", "patch", "update",
                                         "watch"]}
                              for plural, kind, namespaced in self.resources[gv]]}

    def openapi_v3(self, gv_path: str) -> tuple[int, dict]:
        """A PATCH operation with the fieldValidation parameter per kind: the server
        validates fields itself, so the client does not need the schemas."""
        matching = [gv for gv in self.resources if self.gv_path(gv) == gv_path]
        if not matching:
            return 404, {}
        (gv,) = matching
        group, version = gv.split("/") if "/" in gv else ("", gv)
        paths = {
            f"/{gv_path}/{plural}/{{name}}": {"patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": version,
                                                    "kind": kind},
                "parameters": [{"name": "fieldValidation", "in": "query",
                                "schema": {"type": "string"}}],
                "responses": {}}}
            for plural, kind, _ in self.resources[gv]}
        return 200, {"openapi": "3.0.0", "info": {"title": "fake", "version": version},
                     "paths": paths}

    # === for the tests ===

    @property
    def kubeconfig(self) -> str:
        url = f"http://127.0.0.1:{self.server.server_port}"
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": url}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        })

    def store(self, secret: dict):
        meta = secret["metadata"]
        self.secrets[(meta["namespace"], meta["name"])] = secret

    def close(self):
        self.server.shutdown()
        self.server.server_close()
