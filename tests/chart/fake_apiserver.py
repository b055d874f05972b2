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

By default it stores nothing a client sends (writes answer 405). With `writable=True` it
keeps objects in memory (create, server-side apply, replace, delete, list by label), enough
for a real `helm install` and `helm uninstall`, and records the order of the deletes.
Anything else is a 404.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

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

    def __init__(self, *, version: str = "v1.33.0", without_kinds: frozenset[str] = frozenset(),
                 writable: bool = False):
        self.version = version
        self.resources = {gv: [r for r in rs if r[1] not in without_kinds]
                          for gv, rs in RESOURCES.items()}
        self.writable = writable
        # (group/version, namespace or "", plural, name) -> object
        self.objects: dict[tuple[str, str, str, str], dict] = {}
        self.deleted: list[tuple[str, str]] = []  # (Kind, name), in order
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
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
                url = urlsplit(self.path)
                with fake.lock:
                    code, body = fake.answer(url.path.rstrip("/"), parse_qs(url.query))
                self.reply(code, body)

            def do_POST(self):
                fake.requests.append((self.command, self.path))
                if not fake.writable:
                    return self.reply(405, {"kind": "Status", "apiVersion": "v1",
                                            "status": "Failure", "code": 405,
                                            "message": "the fake API server stores nothing"})
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with fake.lock:
                    code, answer = fake.write(self.command, urlsplit(self.path).path.rstrip("/"),
                                              body)
                self.reply(code, answer)

            do_PUT = do_PATCH = do_DELETE = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # === what the fake answers ===

    def answer(self, path: str, query: dict[str, list[str]] | None = None) -> tuple[int, dict]:
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
        where = self.locate(path)
        if where and where[3]:
            if where in self.objects:
                return 200, self.objects[where]
        elif where:
            selector = dict(term.split("=", 1) for term in
                            ",".join((query or {}).get("labelSelector", [])).split(",") if term)
            items = [o for key, o in sorted(self.objects.items()) if key[:3] == where[:3]
                     and selector.items() <= (o["metadata"].get("labels") or {}).items()]
            kind = self.kind_of(where[0], where[2])
            return 200, {"kind": f"{kind}List", "apiVersion": where[0],
                         "metadata": {"resourceVersion": "1"}, "items": items}
        return self.not_found(path)

    @staticmethod
    def not_found(path: str) -> tuple[int, dict]:
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                     "reason": "NotFound", "code": 404, "message": f"{path} not found"}

    def locate(self, path: str) -> tuple[str, str, str, str] | None:
        """(group/version, namespace, plural, name) of an object or ("...", "") of a
        collection path; None for anything else."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            gv, rest = "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if gv not in self.resources or not 1 <= len(rest) <= 2 or \
                rest[0] not in {r[0] for r in self.resources[gv]}:
            return None
        return gv, namespace, rest[0], rest[1] if len(rest) == 2 else ""

    def kind_of(self, gv: str, plural: str) -> str:
        return next(kind for p, kind, _ in self.resources[gv] if p == plural)

    def write(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        where = self.locate(path)
        if where is None:
            return self.not_found(path)
        if method == "DELETE":
            if where not in self.objects:
                return self.not_found(path)
            self.objects.pop(where)
            self.deleted.append((self.kind_of(where[0], where[2]), where[3]))
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        obj = yaml.safe_load(body)  # JSON, or YAML for server-side apply
        if method == "POST":
            where = (*where[:3], obj["metadata"]["name"])
            if where in self.objects:
                return 409, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "reason": "AlreadyExists", "code": 409, "message": "exists"}
        created = where not in self.objects
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata["resourceVersion"] = str(len(self.requests))
        if where[1]:
            metadata["namespace"] = where[1]
        self.objects[where] = obj
        return (201 if created else 200), obj

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
        self.objects[("v1", meta["namespace"], "secrets", meta["name"])] = secret

    def close(self):
        self.server.shutdown()
        self.server.server_close()
