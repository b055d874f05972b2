"""The PrometheusRule's expressions, parsed, and the series they may use.

Every alert expression is parsed with PyPI `promql-parser` (the Rust promql-parser crate)
into the series it selects, the label matchers it applies and the labels it groups by, so
the tests check what a query really asks for, not what a regular expression finds in it.
test_alerts.py checks them against the catalog below; test_server.py against the /metrics
of a running server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import promql_parser

# Labels Prometheus attaches to every scraped series of a target (the ServiceMonitor's
# target labels): selectors and groupings may use them on any spreadguard series.
TARGET_LABELS = {"job", "namespace", "pod", "service", "endpoint", "instance", "container"}

# The server's series and their own labels, as src/metrics.rs registers them (counters are
# exposed with the _total suffix, histograms with _bucket, _sum and _count).
SERVER_SERIES: dict[str, set[str]] = {
    "spreadguard_admission_requests_total":
        {"webhook", "kind", "operation", "decision", "mode", "dry_run"},
    "spreadguard_admission_duration_seconds_bucket": {"webhook", "le"},
    "spreadguard_findings_total": {"rule", "severity", "mode", "dry_run"},
    "spreadguard_injections_total": {"item"},
    "spreadguard_topology_zones": set(),
    "spreadguard_topology_nodes": set(),
    "spreadguard_topology_unzoned_nodes": set(),
    "spreadguard_reloads_total": {"what", "result"},
    "spreadguard_certificate_expiry_timestamp_seconds": set(),
    "spreadguard_engine_panics_total": set(),
    "spreadguard_cache_staleness_seconds": {"cache"},
    "spreadguard_ready": set(),
    "spreadguard_config_last_reload_successful": {"config"},
    "spreadguard_config_last_reload_success_timestamp_seconds": {"config"},
    "spreadguard_build_info": {"version", "commit"},
    "spreadguard_tls_handshake_failures_total": {"reason"},
    "spreadguard_http_rejections_total": {"code", "reason"},
    "spreadguard_inflight_body_bytes": set(),
    "spreadguard_namespace_mode_label_invalid_total": set(),
}

# What the alerts use that the binary does not export yet: empty since the Rust half of
# issue 17 landed (readiness, reload and build-info gauges; the `webhook` label; findings by
# mode and dry run). test_server.py skips what is listed here while it is missing and fails
# once it exists, so that a future entry is removed as soon as it lands.
PENDING_IN_BINARY: dict[tuple[str, str | None], str] = {}

# Series the server exports only while it watches a cluster (its node and namespace caches);
# the tests run it with --nodes FILE, so they look for these in src/metrics.rs instead.
CLUSTER_ONLY_SERIES = {"spreadguard_cache_staleness_seconds": "cache_staleness_seconds"}

# The API server's own series the alerts read, with their labels
# (k8s.io/apiserver/pkg/admission/metrics; both are ALPHA metrics, stable since 1.24).
APISERVER_SERIES: dict[str, set[str]] = {
    "apiserver_admission_webhook_fail_open_count": {"name", "type"},
    "apiserver_admission_webhook_rejection_count":
        {"name", "type", "operation", "error_type", "rejection_code"},
}
# Values of the rejection counter's error_type label.
APISERVER_ERROR_TYPES = {"calling_webhook_error", "apiserver_internal_error", "no_error"}


@dataclass
class Selector:
    """One vector selector: a series name and its label matchers (name, op, value)."""

    name: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)

    def label_names(self) -> set[str]:
        return {m[0] for m in self.matchers}


@dataclass
class Query:
    selectors: list[Selector]
    grouping: set[str]


def parse(expression: str) -> Query:
    """Raises ValueError (from the parser) when the expression is not valid PromQL."""
    ast = promql_parser.parse(expression)
    selectors: list[Selector] = []
    grouping: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            ops = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~",
                   "MatchOp.NotRe": "!~"}
            selectors.append(Selector(node.name, [(m.name, ops[str(m.op)], m.value)
                                                  for m in node.matchers.matchers]))
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping.update(node.modifier.labels)

    promql_parser.walk(ast, visit)
    return Query(selectors, grouping)


def template_labels(text: str) -> set[str]:
    """Labels an alert's annotations refer to as {{ $labels.NAME }}."""
    return set(re.findall(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)", text))
