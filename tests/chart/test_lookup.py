"""certificates.mode=helm keeps its CA and certificate across upgrades, and a rotation
keeps the old CA trusted until the pods serve the new certificate.

The chart finds the Secret of a previous install with Helm's `lookup`, which only answers
against a cluster. No Kubernetes API server can run here, so the tests start the in-process
fake of fake_apiserver.py and render through `helm_python.Config.render`, the cluster-aware
render an install or upgrade performs.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import helm_python as helm
import pytest

from conftest import NAMESPACE, RELEASE, Rendered
from fake_apiserver import FakeApiServer

SECRET = f"{RELEASE}-tls"
OPENSSL = shutil.which("openssl")


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


def pem_certificates(b64: str) -> list[str]:
    """The PEM certificates in a base64-encoded bundle, in order."""
    text = base64.b64decode(b64).decode()
    blocks = text.split("-----END CERTIFICATE-----")
    return [b.strip() + "\n-----END CERTIFICATE-----\n" for b in blocks if b.strip()]


def verifies(bundle_b64: str, cert_b64: str, tmp_path) -> bool:
    """openssl verify: is the serving certificate signed by a CA of the bundle?"""
    (tmp_path / "bundle.pem").write_bytes(base64.b64decode(bundle_b64))
    (tmp_path / "cert.pem").write_bytes(base64.b64decode(cert_b64))
    result = subprocess.run([OPENSSL, "verify", "-CAfile", tmp_path / "bundle.pem",
                             tmp_path / "cert.pem"], capture_output=True, text=True)
    return result.returncode == 0


def upgrade_with_stored(cluster, chart, rendered: Rendered, values: dict | None = None):
    """Store what the last render applied (as Helm would), then upgrade."""
    cluster.store(rendered.one("Secret", SECRET))
    return render_against(cluster, chart, values, upgrade=True)


ROTATE = {"certificates": {"helm": {"rotate": True}}}


def test_rotate_generates_new_certificates_and_keeps_the_old_ca_trusted(cluster, chart,
                                                                           tmp_path):
    installed = render_against(cluster, chart, upgrade=False)
    old = installed.one("Secret", SECRET)["data"]
    rotated = upgrade_with_stored(cluster, chart, installed, ROTATE)
    secret = rotated.one("Secret", SECRET)
    new = secret["data"]
    assert new["ca.crt"] != old["ca.crt"] and new["tls.crt"] != old["tls.crt"]
    assert new["previous-ca.crt"] == old["ca.crt"]
    until = secret["metadata"]["annotations"]["spreadguard.io/previous-ca-kept-until"]
    kept_for = datetime.fromisoformat(until.replace("Z", "+00:00")) - datetime.now(timezone.utc)
    assert timedelta(minutes=9) < kept_for <= timedelta(minutes=10)

    # Both webhooks trust the new CA first and the old one too: the pods serve the old
    # certificate until the kubelet refreshes the mounted Secret.
    (bundle,) = ca_bundles(rotated)
    assert pem_certificates(bundle) == pem_certificates(new["ca.crt"]) + pem_certificates(
        old["ca.crt"])
    if OPENSSL:
        assert verifies(bundle, old["tls.crt"], tmp_path)
        assert verifies(bundle, new["tls.crt"], tmp_path)
        assert not verifies(new["ca.crt"], old["tls.crt"], tmp_path)


def test_upgrades_keep_the_old_ca_until_the_time_has_passed(cluster, chart):
    rotated = upgrade_with_stored(cluster, chart, render_against(cluster, chart, upgrade=False),
                                  ROTATE)
    rotated_data = rotated.one("Secret", SECRET)["data"]

    # An upgrade right after the rotation (the second of the two documented commands)
    # keeps the old CA: the pods may not serve the new certificate yet.
    again = upgrade_with_stored(cluster, chart, rotated, {"certificates": {"helm": {
        "rotate": False}}})
    assert again.one("Secret", SECRET) == rotated.one("Secret", SECRET)
    assert ca_bundles(again) == ca_bundles(rotated)

    # Once the time is past, the next upgrade drops it.
    stored = again.one("Secret", SECRET)
    stored["metadata"]["annotations"]["spreadguard.io/previous-ca-kept-until"] = \
        (datetime.now(timezone.utc) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.store(stored)
    later = render_against(cluster, chart, upgrade=True)
    secret = later.one("Secret", SECRET)
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    assert secret["data"]["ca.crt"] == rotated_data["ca.crt"]
    assert "annotations" not in secret["metadata"]
    assert ca_bundles(later) == {rotated_data["ca.crt"]}


def test_a_garbled_kept_until_drops_the_old_ca(cluster, chart):
    rotated = upgrade_with_stored(cluster, chart, render_against(cluster, chart, upgrade=False),
                                  ROTATE)
    stored = rotated.one("Secret", SECRET)
    stored["metadata"]["annotations"]["spreadguard.io/previous-ca-kept-until"] = "soon"
    cluster.store(stored)
    later = render_against(cluster, chart, upgrade=True)
    assert ca_bundles(later) == {stored["data"]["ca.crt"]}


def test_keep_previous_ca_minutes_zero_drops_it_at_the_next_upgrade(cluster, chart):
    values = {"certificates": {"helm": {"rotate": True, "keepPreviousCAMinutes": 0}}}
    rotated = upgrade_with_stored(cluster, chart, render_against(cluster, chart, upgrade=False),
                                  values)
    assert len(pem_certificates(ca_bundles(rotated).pop())) == 2
    later = upgrade_with_stored(cluster, chart, rotated)
    assert len(pem_certificates(ca_bundles(later).pop())) == 1


def test_incomplete_secret_is_replaced(cluster, chart):
    cluster.store({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                   "metadata": {"name": SECRET, "namespace": NAMESPACE},
                   "data": {"tls.crt": base64.b64encode(b"x").decode()}})
    rendered = render_against(cluster, chart, upgrade=True)
    data = rendered.one("Secret", SECRET)["data"]
    assert set(data) == {"ca.crt", "tls.crt", "tls.key"}
    assert base64.b64decode(data["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert ca_bundles(rendered) == {data["ca.crt"]}
