"""The PrometheusRule: every expression is valid PromQL and asks only for series and labels
that exist, with the tuning values in place; every runbook link lands on a heading.

The series catalog is in alerts.py; test_server.py checks the same expressions against the
/metrics of a running server.
"""

from __future__ import annotations

import re

import pytest

from alerts import (APISERVER_ERROR_TYPES, APISERVER_SERIES, SERVER_SERIES, TARGET_LABELS,
                    parse, template_labels)
from conftest import CASES, NAMESPACE, REPO

ALERTS = {
    "SpreadguardWebhookUnavailable", "SpreadguardPodNotReady", "SpreadguardConfigReloadFailed",
    "SpreadguardCacheStale", "SpreadguardEnginePanics", "SpreadguardCertificateExpiringSoon",
    "SpreadguardTopologyCollapsed", "SpreadguardDenialSurge", "SpreadguardWebhookFailingOpen",
    "SpreadguardWebhookCallsRejected",
}


def rules(rendered) -> dict[str, dict]:
    (group,) = rendered.one("PrometheusRule")["spec"]["groups"]
    return {r["alert"]: r for r in group["rules"]}


@pytest.fixture(scope="module")
def alerts(render):
    return rules(render(CASES["monitoring"]))


def test_the_alerts(alerts):
    assert set(alerts) == ALERTS


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_asks_for_series_and_labels_that_exist(render, alerts, name):
    rendered = render(CASES["monitoring"])
    rule = alerts[name]
    query = parse(rule["expr"])
    assert query.selectors, name
    webhook_names = {rendered.webhook(k)["name"] for k in ("MutatingWebhookConfiguration",
                                                           "ValidatingWebhookConfiguration")}
    available: set[str] = set()
    for selector in query.selectors:
        labels = selector.label_names()
        if selector.name.startswith("spreadguard_"):
            assert selector.name in SERVER_SERIES, (name, selector.name)
            own = SERVER_SERIES[selector.name]
            assert labels <= own | TARGET_LABELS, (name, selector.name, labels - own)
            # Only this release's pods: the ServiceMonitor's job (the Service) and namespace.
            assert ("job", "=", rendered.service["metadata"]["name"]) in selector.matchers
            assert ("namespace", "=", NAMESPACE) in selector.matchers
            available |= own | TARGET_LABELS
        else:
            assert selector.name in APISERVER_SERIES, (name, selector.name)
            own = APISERVER_SERIES[selector.name]
            assert labels <= own, (name, selector.name, labels - own)
            # The API server's series name the webhooks: both, and nothing else.
            (pattern,) = [m[2] for m in selector.matchers if m[:2] == ("name", "=~")]
            assert all(re.fullmatch(pattern, n) for n in webhook_names), (pattern, webhook_names)
            assert not re.fullmatch(pattern, "mutateXspreadguard.io")
            for label, op, value in selector.matchers:
                if label == "error_type":
                    assert op == "=" and value in APISERVER_ERROR_TYPES
            available |= own
    assert query.grouping <= available, (name, query.grouping - available)
    # What the annotations print must survive the expression's aggregation.
    shown = available if not query.grouping else query.grouping | set()
    used = template_labels(rule["annotations"]["description"] + rule["annotations"]["summary"])
    assert used <= shown, (name, used - shown)


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_is_labelled_and_documented(alerts, name):
    rule = alerts[name]
    assert rule["labels"]["severity"] == "warning"
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    if "for" in rule:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
    url = rule["annotations"]["runbook_url"]
    prefix = "https://github.com/spreadguard/spreadguard/blob/main/"
    assert url.startswith(prefix)
    path, _, anchor = url.removeprefix(prefix).partition("#")
    headings = {slug(h) for h in re.findall(r"^#+ (.+)$", (REPO / path).read_text(), re.M)}
    assert anchor in headings, (name, url)


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_tuning_values_reach_the_expressions(render):
    values = {"monitoring": {"prometheusRule": {
        "enabled": True, "unavailableFor": "2m", "podNotReadyFor": "30m",
        "cacheStaleSeconds": 120, "certificateExpiryDays": 30, "minZones": 3,
        "denialRatio": 0.5, "denialRatePerSecond": 1, "severity": "critical",
        "apiServerSelector": 'job="apiserver"'}}}
    alerts = rules(render(values))
    assert alerts["SpreadguardWebhookUnavailable"]["for"] == "2m"
    assert alerts["SpreadguardPodNotReady"]["for"] == "30m"
    assert alerts["SpreadguardCacheStale"]["expr"].strip().endswith("> 120")
    assert "< 30 * 86400" in alerts["SpreadguardCertificateExpiringSoon"]["expr"]
    assert alerts["SpreadguardTopologyCollapsed"]["expr"].strip().endswith("< 3")
    assert ") > 0.5" in alerts["SpreadguardDenialSurge"]["expr"]
    for name in ("SpreadguardWebhookFailingOpen", "SpreadguardWebhookCallsRejected"):
        (selector,) = parse(alerts[name]["expr"]).selectors
        assert ("job", "=", "apiserver") in selector.matchers
    assert {r["labels"]["severity"] for r in alerts.values()} == {"critical"}


def test_the_defaults_in_the_expressions(alerts):
    assert alerts["SpreadguardWebhookUnavailable"]["for"] == "5m"
    assert "< 14 * 86400" in alerts["SpreadguardCertificateExpiringSoon"]["expr"]
    assert alerts["SpreadguardTopologyCollapsed"]["expr"].strip().endswith("< 2")
    assert alerts["SpreadguardCacheStale"]["expr"].strip().endswith("> 300")
    surge = parse(alerts["SpreadguardDenialSurge"]["expr"])
    assert all(("webhook", "=", "validate") in s.matchers for s in surge.selectors)
    rejected = parse(alerts["SpreadguardWebhookCallsRejected"]["expr"])
    assert ("error_type", "=", "calling_webhook_error") in rejected.selectors[0].matchers
