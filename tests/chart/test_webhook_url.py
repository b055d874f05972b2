"""webhooks.url: both webhook configurations call a server outside the cluster by URL.

This is how the e2e test bed (tests/e2e_*.rs) registers a `spreadguard serve` running on the
test machine with a real API server: the chart renders the configurations, with the URL in
place of the Service and the caBundle from certificates.existingSecret.
"""

from __future__ import annotations

import base64

import helm_python as helm
import pytest

from conftest import EXAMPLE_CA_PEM

URL_VALUES = {
    "webhooks": {"url": "https://127.0.0.1:8443"},
    "certificates": {
        "mode": "existingSecret",
        "existingSecret": {"name": "spreadguard-serving", "caBundle": EXAMPLE_CA_PEM},
    },
}
PATHS = {"MutatingWebhookConfiguration": "/mutate", "ValidatingWebhookConfiguration": "/validate"}


@pytest.mark.parametrize("kind", sorted(PATHS))
def test_url_replaces_the_service_reference(render, kind):
    hook = render(URL_VALUES).webhook(kind)
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:8443" + PATHS[kind]
    assert "service" not in hook["clientConfig"]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]).decode() == EXAMPLE_CA_PEM
    # Everything else is what the in-cluster registration has.
    default = render({}).webhook(kind)
    for key in ("rules", "namespaceSelector", "objectSelector", "sideEffects", "failurePolicy",
                "timeoutSeconds", "admissionReviewVersions"):
        assert hook[key] == default[key], key


def test_a_trailing_slash_does_not_double(render):
    values = {**URL_VALUES, "webhooks": {"url": "https://10.0.0.5:9443/"}}
    hook = render(values).webhook("MutatingWebhookConfiguration")
    assert hook["clientConfig"]["url"] == "https://10.0.0.5:9443/mutate"


def test_empty_url_keeps_the_service(render):
    hook = render({"webhooks": {"url": ""}}).webhook("ValidatingWebhookConfiguration")
    assert "url" not in hook["clientConfig"]
    assert hook["clientConfig"]["service"]["path"] == "/validate"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8443", "https://127.0.0.1:8443/?x=1",
                                 "https://user@host", "127.0.0.1:8443", "https://host#frag"])
def test_urls_the_api_server_refuses_are_rejected_by_the_schema(chart, url):
    # The API server wants https, no user info, no query, no fragment.
    with pytest.raises(helm.HelmValuesError) as err:
        chart.validate_schema({"webhooks": {"url": url}})
    assert "/webhooks/url'" in str(err.value)
