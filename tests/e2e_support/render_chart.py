"""Renders charts/spreadguard for the e2e tests, with real Helm (helm-python-sdk, the library
the chart tests use), and prints the objects as one JSON array.

    target/chart-venv/bin/python tests/e2e_support/render_chart.py RELEASE NAMESPACE [KUBECONFIG] < values.json

With a kubeconfig the render is cluster-aware, as `helm install` renders: the chart sees the
API server's version and API groups (.Capabilities) and `lookup` reads live objects. The
SDK's cluster-aware `render` only does `lookup` (its .Capabilities are Helm's defaults, which
name no `group/version/Kind`, so the chart would refuse an opt-out label), so this runs
`helm install --dry-run=server` through a read-only proxy to the test bed's API server:
discovery, OpenAPI and Secrets (what `lookup` and Helm's release storage read) come from the
bed; every other object answers 404, because the e2e harness creates the chart's objects
without Helm's ownership metadata and Helm would refuse to install over them; writes are
refused (a dry run makes none).
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "spreadguard"

# What the proxy passes through: discovery, OpenAPI, and Secrets (single or listed).
PASSED = re.compile(
    r"^/(version|api|apis|api/v1|apis/[^/]+/[^/]+|openapi/.*"
    r"|api/v1/namespaces/[^/]+/secrets(/[^/]+)?)$"
)


class ReadOnlyProxy:
    """Plain HTTP on a free loopback port, forwarding what PASSED allows to the bed."""

    def __init__(self, kubeconfig: str):
        config = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        self.upstream = cluster["server"].rstrip("/")
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self.tls = ssl.create_default_context(cadata=ca)
        self.token = config["users"][0]["user"]["token"]
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code: int, body: bytes, content_type: str):
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def status(self, code: int, reason: str, message: str):
                body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "reason": reason, "code": code, "message": message})
                self.reply(code, body.encode(), "application/json")

            def do_GET(self):
                path = self.path.split("?", 1)[0].rstrip("/")
                if not PASSED.match(path):
                    return self.status(404, "NotFound", f"{path}: not read through the proxy")
                request = urllib.request.Request(proxy.upstream + self.path, headers={
                    "Authorization": f"Bearer {proxy.token}",
                    "Accept": self.headers.get("Accept", "application/json"),
                })
                try:
                    with urllib.request.urlopen(request, context=proxy.tls, timeout=30) as r:
                        code, body, kind = r.status, r.read(), r.headers.get("Content-Type")
                except urllib.error.HTTPError as e:
                    code, body, kind = e.code, e.read(), e.headers.get("Content-Type")
                self.reply(code, body, kind or "application/json")

            def refuse(self):
                self.status(405, "MethodNotAllowed", "the render proxy writes nothing")

            do_POST = do_PUT = do_PATCH = do_DELETE = refuse

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.kubeconfig = yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {
                "server": f"http://127.0.0.1:{self.server.server_port}"}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
            "current-context": "proxy",
        })

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    release, namespace = sys.argv[1], sys.argv[2]
    kubeconfig = sys.argv[3] if len(sys.argv) > 3 else None
    values = json.load(sys.stdin)
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        if kubeconfig:
            proxy = ReadOnlyProxy(kubeconfig)
            try:
                with helm.Config(kubeconfig_content=proxy.kubeconfig,
                                 namespace=namespace) as config:
                    installed = config.install(chart, release, values, namespace=namespace,
                                               dry_run="server")
            finally:
                proxy.close()
            manifests = {"manifest": installed["manifest"]}
        else:
            manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    json.dump(objects, sys.stdout)


if __name__ == "__main__":
    main()
