"""Renders charts/spreadguard for the e2e tests, with real Helm (helm-python-sdk, the library
the chart tests use), and prints the objects as one JSON array.

    target/chart-venv/bin/python tests/e2e_support/render_chart.py RELEASE NAMESPACE [KUBECONFIG] < values.json

With a kubeconfig the render is cluster-aware, as `helm install --dry-run=server` renders: the
chart sees the API server's version, API groups and kinds (.Capabilities) and `lookup` reads
live objects.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "spreadguard"


def main() -> None:
    release, namespace = sys.argv[1], sys.argv[2]
    kubeconfig = sys.argv[3] if len(sys.argv) > 3 else None
    values = json.load(sys.stdin)
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        if kubeconfig:
            # `helm install --dry-run=server`: .Capabilities come from the API server's
            # discovery (Config.render keeps Helm's built-in defaults, which name no kinds, so
            # a chart asking for the ValidatingAdmissionPolicy kind would be refused).
            # A re-render over objects the harness applied without Helm's ownership
            # annotations (an upgrade: Spreadguard::upgrade) is refused by install, and falls
            # back to Config.render.
            with helm.Config(kubeconfig_path=kubeconfig, namespace=namespace) as config:
                try:
                    installed = config.install(chart, release, values, namespace=namespace,
                                               dry_run="server")
                    manifests = {"manifest": installed["manifest"]}
                except helm.HelmReleaseError as e:
                    if "cannot be imported into the current release" not in str(e):
                        raise
                    manifests = config.render(chart, values, name=release,
                                              namespace=namespace, is_install=True)
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
