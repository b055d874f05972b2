"""values.schema.json rejects bad values with a message that names the value.

Helm runs the same check on install, upgrade, template and lint; the tests call it through
`Chart.validate_schema` and once through a full render to show the install path stops too.
"""

from __future__ import annotations

import helm_python as helm
import pytest

from conftest import CASES, NAMESPACE, RELEASE

# (values, text the error must contain): the path of the bad value and what is wrong.
BAD_VALUES = {
    "scope typo": ({"scope": "optin"}, "/scope': value must be one of 'optIn', 'clusterWide'"),
    "unknown top-level value": ({"replicas": 3}, "additional properties 'replicas' not allowed"),
    "no replicas": ({"replicaCount": 0}, "/replicaCount': minimum"),
    "certificate mode typo": ({"certificates": {"mode": "cert-manager"}},
                              "/certificates/mode': value must be one of"),
    "existingSecret without a secret": (
        {"certificates": {"mode": "existingSecret"}}, "/certificates/existingSecret/name'"),
    "existingSecret without a caBundle": (
        {"certificates": {"mode": "existingSecret", "existingSecret": {"name": "x"}}},
        "/certificates/existingSecret/caBundle'"),
    "failurePolicy in lower case": ({"webhooks": {"mutating": {"failurePolicy": "ignore"}}},
                                    "/webhooks/mutating/failurePolicy': value must be one of"),
    "validating reinvocationPolicy": (
        {"webhooks": {"validating": {"reinvocationPolicy": "IfNeeded"}}},
        "additional properties 'reinvocationPolicy' not allowed"),
    "timeout above the API server's limit": ({"webhooks": {"timeoutSeconds": 31}},
                                             "/webhooks/timeoutSeconds': maximum"),
    "policy mode typo": ({"policy": {"mode": "enforcing"}}, "/policy/mode': value must be one of"),
    "policy unknown field": ({"policy": {"minReplica": 3}},
                             "additional properties 'minReplica' not allowed"),
    "policy.scope instead of scope": ({"policy": {"scope": "optIn"}},
                                      "additional properties 'scope' not allowed"),
    "policy weight out of range": ({"policy": {"antiAffinityWeight": 101}},
                                   "/policy/antiAffinityWeight': maximum"),
    "policy rule severity": ({"policy": {"rules": {"HA004": "warning"}}},
                             "/policy/rules/HA004': value must be one of"),
    "policy unknown rule": ({"policy": {"rules": {"HA042": "off"}}}, "'HA042' does not match"),
    "policy empty zone labels": ({"policy": {"zoneLabels": []}}, "/policy/zoneLabels': minItems"),
    "bad namespace name": ({"policy": {"exemptNamespaces": ["Kube_System"]}},
                           "/policy/exemptNamespaces/0'"),
    "privileged port": ({"ports": {"https": 443}}, "/ports/https': minimum"),
    "image digest": ({"image": {"digest": "latest"}}, "/image/digest'"),
    "certManager duration": ({"certificates": {"certManager": {"duration": "90d"}}},
                             "/certificates/certManager/duration'"),
    "monitoring typo": ({"monitoring": {"serviceMonitors": {"enabled": True}}},
                        "additional properties 'serviceMonitors' not allowed"),
    "log format": ({"logFormat": "logfmt"}, "/logFormat': value must be one of"),
}


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_bad_values_are_rejected_with_a_clear_message(chart, name):
    values, message = BAD_VALUES[name]
    with pytest.raises(helm.HelmValuesError) as err:
        chart.validate_schema(values)
    assert message in str(err.value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matrix_values_are_accepted(chart, name):
    chart.validate_schema(CASES[name])


def test_install_stops_on_bad_values(chart):
    with pytest.raises(helm.HelmValuesError) as err:
        chart.render({"scope": "everywhere"}, name=RELEASE, namespace=NAMESPACE)
    assert "/scope'" in str(err.value)


def test_fail_closed_with_one_replica_is_refused(chart):
    """A rule the schema cannot express well, checked by the templates with a sentence."""
    with pytest.raises(helm.HelmError) as err:
        chart.render({"replicaCount": 1, "webhooks": {"validating": {"failurePolicy": "Fail"}}},
                     name=RELEASE, namespace=NAMESPACE)
    assert "failurePolicy Fail needs replicaCount >= 2" in str(err.value)


def test_defaults_in_values_yaml_pass_the_schema(chart):
    chart.validate_schema(chart.values)
