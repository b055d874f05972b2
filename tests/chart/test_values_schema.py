"""values.schema.json rejects bad values with a message that names the value.

Helm runs the same check on install, upgrade, template and lint; the tests call it through
`Chart.validate_schema` and once through a full render to show the install path stops too.
"""

from __future__ import annotations

import json
import subprocess

import helm_python as helm
import pytest

from conftest import CASES, NAMESPACE, RELEASE, REPO, spreadguard_bin

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
    "policy unknown rule": ({"policy": {"rules": {"HA042": "off"}}}, "HA042"),
    "policy stateful spread typo": ({"policy": {"statefulZoneSpread": "Always"}},
                                    "/policy/statefulZoneSpread': value must be one of"),
    "policy node template without name": ({"policy": {"nodeTemplates": [{"zone": "a"}]}},
                                          "/policy/nodeTemplates/0': missing property 'name'"),
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
    "opt-out label with a space": ({"webhooks": {"optOutLabel": "spreadguard io/ignore"}},
                                   "/webhooks/optOutLabel'"),
    "opt-out service account not a username": (
        {"webhooks": {"optOutAllowedServiceAccounts": ["ci:deployer"]}},
        "/webhooks/optOutAllowedServiceAccounts/0'"),
    "opt-out group empty": ({"webhooks": {"optOutAllowedGroups": [""]}},
                            "/webhooks/optOutAllowedGroups/0'"),
    "the old skipControllerOwnedPods": ({"webhooks": {"skipControllerOwnedPods": False}},
                                        "additional properties 'skipControllerOwnedPods'"),
    "owner kind without its group": (
        {"webhooks": {"skipControllerOwnedKinds": {"pods": [{"kind": "CloneSet"}]}}},
        "missing property 'apiGroup'"),
    "owner kind in lower case": (
        {"webhooks": {"skipControllerOwnedKinds": {"replicaSets": [
            {"apiGroup": "argoproj.io", "kind": "rollout"}]}}},
        "/webhooks/skipControllerOwnedKinds/replicaSets/0/kind'"),
    "owner list for another resource": (
        {"webhooks": {"skipControllerOwnedKinds": {"jobs": []}}},
        "additional properties 'jobs' not allowed"),
    "extra condition without an expression": (
        {"webhooks": {"extraMatchConditions": [{"name": "x"}]}},
        "missing property 'expression'"),
    "extra condition name with a space": (
        {"webhooks": {"extraMatchConditions": [{"name": "skip batch", "expression": "true"}]}},
        "/webhooks/extraMatchConditions/0/name'"),
    "too many extra conditions": (
        {"webhooks": {"extraMatchConditions": [{"name": f"c{i}", "expression": "true"}
                                               for i in range(63)]}},
        "/webhooks/extraMatchConditions': maxItems"),
    "extra selector operator": (
        {"webhooks": {"extraObjectSelector": {"matchExpressions": [
            {"key": "team", "operator": "Equals", "values": ["x"]}]}}},
        "/webhooks/extraObjectSelector/matchExpressions/0/operator'"),
    "priority class name": ({"priorityClassName": "System_Critical"}, "/priorityClassName'"),
    "network peer typo": ({"networkPolicy": {"enabled": True, "webhookFrom": [
        {"ipblock": {"cidr": "10.0.0.0/8"}}]}}, "additional properties 'ipblock' not allowed"),
    "network peer without a CIDR": ({"networkPolicy": {"webhookFrom": [{"ipBlock": {}}]}},
                                    "missing property 'cidr'"),
    "previous CA kept for a negative time": (
        {"certificates": {"helm": {"keepPreviousCAMinutes": -1}}},
        "/certificates/helm/keepPreviousCAMinutes': minimum"),
    "API server selector without quotes": (
        {"monitoring": {"prometheusRule": {"apiServerSelector": "job=apiserver"}}},
        "/monitoring/prometheusRule/apiServerSelector'"),
}

GOOD_VALUES = {
    "guarded opt-out label": {"webhooks": {
        "optOutLabel": "example.com/skip-ha-checks",
        "optOutAllowedGroups": ["platform-admins", "oidc:sre"],
        "optOutAllowedServiceAccounts": ["system:serviceaccount:argocd:argocd-application-controller"]}},
    "argo rollouts and kruise": {"webhooks": {"skipControllerOwnedKinds": {
        "replicaSets": [{"apiGroup": "apps", "kind": "Deployment"},
                        {"apiGroup": "argoproj.io", "kind": "Rollout"}],
        "pods": [{"apiGroup": "apps.kruise.io", "kind": "CloneSet"},
                 {"apiGroup": "", "kind": "ReplicationController"}]}}},
    "no priority class": {"priorityClassName": ""},
    "a priority class": {"priorityClassName": "platform-critical"},
    "network policy any source": {"networkPolicy": {"enabled": True, "webhookFrom": [
        {"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]}},
    "API server selector": {"monitoring": {"prometheusRule": {
        "apiServerSelector": 'job="apiserver", cluster=~"prod-.*"'}}},
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


@pytest.mark.parametrize("name", sorted(GOOD_VALUES))
def test_documented_values_are_accepted(chart, name):
    chart.validate_schema(GOOD_VALUES[name])


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


# === the embedded policy schema is the binary's ===

def binary_or_skip():
    binary = spreadguard_bin()
    if not binary.is_file():
        pytest.skip(f"{binary} does not exist (cargo build first)")
    return binary


def test_the_policy_schema_is_the_binarys():
    """`policy:` in values.schema.json is `spreadguard policy schema` without `scope` (set
    through the top-level `scope` value): fields, types, enums (rule IDs from the binary's own
    list), ranges and defaults."""
    out = subprocess.run([str(binary_or_skip()), "policy", "schema"], capture_output=True,
                         text=True, check=True)
    generated = json.loads(out.stdout)
    embedded = json.loads((REPO / "charts/spreadguard/values.schema.json").read_text())
    embedded = embedded["properties"]["policy"]
    expected = dict(generated["properties"])
    del expected["scope"]
    assert embedded["properties"] == expected, \
        "regenerate it: spreadguard policy schema (see the policy property's description)"
    assert embedded["additionalProperties"] is False
    assert embedded["type"] == "object"


POLICY_REFUSED = ["minReplica: 2", "mode: strict", "maxSkew: 0", "antiAffinityWeight: 101",
                  "zoneLabels: []", "assumedZones: 0", "rules: {HA999: warn}",
                  "rules: {HA004: warning}", "minReplicas: two", "whenUnsatisfiable: Never"]


@pytest.mark.parametrize("policy", POLICY_REFUSED)
def test_what_policy_check_refuses_helm_refuses(chart, tmp_path, policy):
    import yaml
    path = tmp_path / "policy.yaml"
    path.write_text(policy + "\n")
    check = subprocess.run([str(binary_or_skip()), "policy", "check", str(path)],
                           capture_output=True, text=True)
    assert check.returncode == 1, check.stderr
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"policy": yaml.safe_load(policy)})
