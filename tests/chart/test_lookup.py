"""certificates.mode=helm keeps its CA and certificate across upgrades.

The chart finds the Secret of a previous install with Helm's `lookup`, which only answers
against a cluster. No Kubernetes API server can run here, so the test starts a small fake
one in-process (plain HTTP on 127.0.0.1: discovery for core/v1 and GET of Secrets) and
renders through `helm_python.Config.render`, the cluster-aware render an install or
upgrade performs. The fake answers only what lookup asks; anything else is a 404.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import helm_python as helm
import pytest
import yaml

from conftest import NAMESPACE, RELEASE, Rendered

SECRET = f"{RELEASE}-tls"


class FakeApiServer:
    """Just enough of the Kubernetes API for `lookup "v1" "Secret" ns name`."""

    def __init__(self):
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
                path = self.path.split("?")[0].strip("/").split("/")
                if path == ["api", "v1"]:
                    return self.reply(200, {
                        "kind": "APIResourceList", "groupVersion": "v1",
                        "resources": [{"name": "secrets", "singularName": "secret",
                                       "namespaced": True, "kind": "Secret",
                                       "verbs": ["get", "list"]}]})
                if len(path) == 6 and path[:3] == ["api", "v1", "namespaces"] \
                        and path[4] == "secrets" and (path[3], path[5]) in fake.secrets:
                    return self.reply(200, fake.secrets[(path[3], path[5])])
                return self.reply(404, {"kind": "Status", "apiVersion": "v1",
                                        "status": "Failure", "reason": "NotFound",
                                        "code": 404, "message": f"{self.path} not found"})

            def do_POST(self):  # lookup must never write
                fake.requests.append(("POST", self.path))
                self.reply(405, {"kind": "Status", "code": 405})

            do_PUT = do_PATCH = do_DELETE = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

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


@pytest.fixture
def cluster():
    fake = FakeApiServer()
    yield fake
    fake.close()


def render_against(cluster: FakeApiServer, chart, values: dict | None = None, *,
                   upgrade: bool) -> Rendered:
    with helm.Config(kubeconfig_content=cluster.kubeconfig, namespace=NAMESPACE) as config:
        manifests = config.render(chart, values or {}, name=RELEASE, namespace=NAMESPACE,
                                  is_install=not upgrade, is_upgrade=upgrade)
    return Rendered(manifests, NAMESPACE, RELEASE)


def ca_bundles(rendered: Rendered) -> set[str]:
    return {rendered.one(kind)["webhooks"][0]["clientConfig"]["caBundle"]
            for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")}


def test_upgrade_reuses_the_installed_certificates(cluster, chart):
    installed = render_against(cluster, chart, upgrade=False)
    secret = installed.one("Secret", SECRET)
    cluster.store(secret)

    upgraded = render_against(cluster, chart, {"policy": {"mode": "audit"}}, upgrade=True)
    assert upgraded.one("Secret", SECRET)["data"] == secret["data"]
    assert ca_bundles(upgraded) == ca_bundles(installed) == {secret["data"]["ca.crt"]}
    assert ("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}") in [
        (m, p.split("?")[0]) for m, p in cluster.requests]
    assert {m for m, _ in cluster.requests} == {"GET"}


def test_rotate_generates_new_certificates(cluster, chart):
    installed = render_against(cluster, chart, upgrade=False)
    cluster.store(installed.one("Secret", SECRET))
    rotated = render_against(cluster, chart, {"certificates": {"helm": {"rotate": True}}},
                             upgrade=True)
    new = rotated.one("Secret", SECRET)["data"]
    assert new["ca.crt"] != installed.one("Secret", SECRET)["data"]["ca.crt"]
    assert ca_bundles(rotated) == {new["ca.crt"]}


def test_incomplete_secret_is_replaced(cluster, chart):
    cluster.store({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                   "metadata": {"name": SECRET, "namespace": NAMESPACE},
                   "data": {"tls.crt": base64.b64encode(b"x").decode()}})
    rendered = render_against(cluster, chart, upgrade=True)
    data = rendered.one("Secret", SECRET)["data"]
    assert set(data) == {"ca.crt", "tls.crt", "tls.key"}
    assert base64.b64decode(data["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert ca_bundles(rendered) == {data["ca.crt"]}
