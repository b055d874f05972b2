"""Uninstall never leaves the API server calling a webhook that is gone.

With failurePolicy Fail, a webhook configuration that outlives the Service and pods it
points to makes the API server reject every intercepted workload change. Helm 4 deletes
ValidatingWebhookConfigurations, then MutatingWebhookConfigurations, before anything else
(its UninstallOrder); Helm 3 (through 3.21) does not know these kinds and deletes them last.
So the chart refuses failurePolicy Fail under Helm 3, and these tests show both halves: a
real Helm 4 install and uninstall (the SDK's, against the writable fake API server, which
records the deletes in order), and the version check itself.
"""

from __future__ import annotations

import shutil

import helm_python as helm
import pytest

from conftest import CASES, CHART, NAMESPACE, RELEASE
from fake_apiserver import FakeApiServer

WEBHOOKS = [("ValidatingWebhookConfiguration", RELEASE), ("MutatingWebhookConfiguration", RELEASE)]


@pytest.mark.parametrize("name", ["defaults", "fail-closed"])
def test_helm_4_deletes_the_webhook_configurations_before_what_they_call(chart, name):
    cluster = FakeApiServer(writable=True)
    try:
        # The release record stays in the client (memory driver): the fake speaks JSON only,
        # and Helm's storage driver talks protobuf.
        with helm.Config(kubeconfig_content=cluster.kubeconfig, namespace=NAMESPACE,
                         storage_driver="memory") as config:
            config.install(chart, RELEASE, CASES[name], namespace=NAMESPACE)
            installed = {(key[2], key[3]) for key in cluster.objects}
            config.uninstall(RELEASE)
    finally:
        cluster.close()
    assert ("validatingwebhookconfigurations", RELEASE) in installed
    assert cluster.deleted[:2] == WEBHOOKS
    assert len(cluster.deleted) == len(installed)
    assert not cluster.objects


def version_check(tmp_path, version: str) -> bool:
    """Renders the chart's own spreadguard.helmDeletesWebhooksFirst for a Helm version."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    (copy / "templates" / "zz-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\ndata:\n"
        f'  first: {{{{ include "spreadguard.helmDeletesWebhooksFirst" "{version}" | quote }}}}\n')
    with helm.Chart.load(str(copy)) as probe:
        manifests = probe.render({}, name=RELEASE, namespace=NAMESPACE)
    return 'first: "true"' in manifests["spreadguard/templates/zz-probe.yaml"]


@pytest.mark.parametrize("version,first", [
    ("v3.14.0", False), ("v3.21.4", False), ("v3.99.0", False),
    ("v4.0.0-rc.1", True), ("v4.0.0", True), ("v4.2", True), ("v4.2.3", True), ("v5.0.0", True),
])
def test_which_helm_deletes_webhook_configurations_first(tmp_path, version, first):
    assert version_check(tmp_path, version) is first


def test_this_helm_is_helm_4(chart, tmp_path):
    """The SDK the tests run is Helm 4, so fail-closed values render here."""
    (copy := tmp_path / "chart").mkdir()
    shutil.copytree(CHART, copy, dirs_exist_ok=True)
    (copy / "templates" / "zz-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\ndata:\n"
        "  helm: {{ .Capabilities.HelmVersion.Version | quote }}\n")
    with helm.Chart.load(str(copy)) as probe:
        text = probe.render({}, name=RELEASE, namespace=NAMESPACE)[
            "spreadguard/templates/zz-probe.yaml"]
    assert 'helm: "v4.' in text
    chart.render(CASES["fail-closed"], name=RELEASE, namespace=NAMESPACE)


def test_the_refusal_names_the_helm_version(tmp_path):
    """Under Helm 3 (simulated: the check's input replaced by a Helm 3 version string), a
    fail-closed render stops with the reason."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    deployment = copy / "templates" / "deployment.yaml"
    text = deployment.read_text()
    assert text.count(".Capabilities.HelmVersion.Version") == 2
    deployment.write_text(text.replace(".Capabilities.HelmVersion.Version", '"v3.21.4"'))
    with helm.Chart.load(str(copy)) as probe:
        with pytest.raises(helm.HelmError) as err:
            probe.render(CASES["fail-closed"], name=RELEASE, namespace=NAMESPACE)
        probe.render({}, name=RELEASE, namespace=NAMESPACE)  # Ignore: any Helm
    assert "failurePolicy Fail needs Helm 4 or newer (this is Helm v3.21.4)" in str(err.value)
