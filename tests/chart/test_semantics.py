"""What the rendered chart means, not just that it parses.

The webhooks reach the Service on the right paths, they intercept exactly the namespaces
the scope promises (selectors are evaluated, not string-matched), every certificate mode
yields a caBundle the API server can use, RBAC is read-only on nodes and namespaces, and
the webhook's own Deployment is highly available and runs under the restricted Pod
Security Standard.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import helm_python as helm
import pytest

from conftest import (CASES, EXAMPLE_CA_PEM, NAMESPACE, RELEASE, REPO, namespace_labels,
                      selector_matches)

WEBHOOK_KINDS = {
    "MutatingWebhookConfiguration": "/mutate",
    "ValidatingWebhookConfiguration": "/validate",
}
SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease"}
OPT_OUT = "spreadguard.io/ignore"

def intercepted_namespaces(hook: dict, namespaces: dict[str, dict[str, str]]) -> set[str]:
    return {n for n, labels in namespaces.items()
            if selector_matches(hook.get("namespaceSelector"), labels)}


NAMESPACES = {
    "default": namespace_labels("default"),
    "shop": namespace_labels("shop", **{"spreadguard.io/enabled": "true"}),
    "shop-audit": namespace_labels("shop-audit", **{"spreadguard.io/enabled": "true",
                                                     "spreadguard.io/mode": "audit"}),
    "legacy": namespace_labels("legacy", **{"spreadguard.io/enabled": "false"}),
    # Opting a protected namespace in must not work.
    "kube-system": namespace_labels("kube-system", **{"spreadguard.io/enabled": "true"}),
    "kube-public": namespace_labels("kube-public"),
    "kube-node-lease": namespace_labels("kube-node-lease"),
    NAMESPACE: namespace_labels(NAMESPACE, **{"spreadguard.io/enabled": "true"}),
}


# === webhooks ===


@pytest.mark.parametrize("kind", sorted(WEBHOOK_KINDS))
def test_webhook_calls_the_service_on_its_path(case, kind):
    hook = case.webhook(kind)
    service = case.service
    ref = hook["clientConfig"]["service"]
    assert ref["name"] == service["metadata"]["name"]
    assert ref["namespace"] == case.namespace == service["metadata"]["namespace"]
    assert ref["path"] == WEBHOOK_KINDS[kind]
    assert "url" not in hook["clientConfig"]

    # Service port -> targetPort name -> the container port the server listens on.
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == ref["port"]]
    assert port["port"] == 443
    container_ports = {p["name"]: p["containerPort"] for p in case.container["ports"]}
    assert container_ports[port["targetPort"]] == 8443
    assert "--listen=0.0.0.0:8443" in case.container["args"]
    # The Service selects the webhook pods.
    assert selector_matches({"matchLabels": service["spec"]["selector"]},
                            case.deployment["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("kind", sorted(WEBHOOK_KINDS))
def test_webhook_settings(case, kind):
    hook = case.webhook(kind)
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["sideEffects"] == "None"
    assert hook["timeoutSeconds"] == 5
    assert hook["name"].endswith(".spreadguard.io")
    rules = sorted((r["apiGroups"][0], tuple(r["apiVersions"]), tuple(sorted(r["resources"])),
                    tuple(sorted(r["operations"])), r["scope"]) for r in hook["rules"])
    objects = [
        ("", ("v1",), ("pods",), ("CREATE", "UPDATE"), "Namespaced"),
        ("apps", ("v1",), ("deployments", "replicasets", "statefulsets"), ("CREATE", "UPDATE"),
         "Namespaced"),
        ("apps.kruise.io", ("v1alpha1",), ("clonesets",), ("CREATE", "UPDATE"), "Namespaced"),
        ("apps.kruise.io", ("v1beta1", "v1alpha1"), ("statefulsets",), ("CREATE", "UPDATE"),
         "Namespaced"),
        ("argoproj.io", ("v1alpha1",), ("rollouts",), ("CREATE", "UPDATE"), "Namespaced"),
    ]
    # `kubectl scale` reaches the validating webhook only (a Scale has nothing to mutate);
    # status updates reach neither.
    scales = [
        ("apps", ("v1",), ("deployments/scale", "replicasets/scale", "statefulsets/scale"),
         ("UPDATE",), "Namespaced"),
        ("apps.kruise.io", ("v1alpha1",), ("clonesets/scale",), ("UPDATE",), "Namespaced"),
        ("apps.kruise.io", ("v1beta1", "v1alpha1"), ("statefulsets/scale",), ("UPDATE",),
         "Namespaced"),
        ("argoproj.io", ("v1alpha1",), ("rollouts/scale",), ("UPDATE",), "Namespaced"),
    ]
    # Autoscalers (HA012) and disruption budgets (HA013) are judged, never patched: only the
    # validating webhook is sent them (autoscaling/v1 arrives converted to v2: matchPolicy
    # Equivalent, the default).
    judged_alone = [
        ("autoscaling", ("v2",), ("horizontalpodautoscalers",), ("CREATE", "UPDATE"),
         "Namespaced"),
        ("policy", ("v1",), ("poddisruptionbudgets",), ("CREATE", "UPDATE"), "Namespaced"),
    ]
    validating = kind == "ValidatingWebhookConfiguration"
    want = objects + (scales + judged_alone if validating else [])
    assert rules == sorted(want)
    assert hook.get("matchPolicy", "Equivalent") == "Equivalent"
    assert not any(res.endswith("/status") for r in hook["rules"] for res in r["resources"])


def test_mutating_webhook_is_reinvoked_if_needed(case):
    assert case.webhook("MutatingWebhookConfiguration")["reinvocationPolicy"] == "IfNeeded"
    assert "reinvocationPolicy" not in case.webhook("ValidatingWebhookConfiguration")


def test_failure_policy_defaults_to_ignore(render):
    rendered = render({})
    for kind in WEBHOOK_KINDS:
        assert rendered.webhook(kind)["failurePolicy"] == "Ignore"


@pytest.mark.parametrize("mutating,validating", [("Fail", "Ignore"), ("Ignore", "Fail"),
                                                 ("Fail", "Fail")])
def test_failure_policies_are_set_separately(render, mutating, validating):
    rendered = render({"webhooks": {"mutating": {"failurePolicy": mutating},
                                    "validating": {"failurePolicy": validating}}})
    assert rendered.webhook("MutatingWebhookConfiguration")["failurePolicy"] == mutating
    assert rendered.webhook("ValidatingWebhookConfiguration")["failurePolicy"] == validating


def test_timeout_is_configurable(render):
    rendered = render({"webhooks": {"timeoutSeconds": 2}})
    for kind in WEBHOOK_KINDS:
        assert rendered.webhook(kind)["timeoutSeconds"] == 2


# === scope ===


@pytest.mark.parametrize("kind", sorted(WEBHOOK_KINDS))
def test_opt_in_scope_intercepts_only_labelled_namespaces(render, kind):
    hook = render({"scope": "optIn"}).webhook(kind)
    assert intercepted_namespaces(hook, NAMESPACES) == {"shop", "shop-audit"}


@pytest.mark.parametrize("kind", sorted(WEBHOOK_KINDS))
def test_cluster_wide_scope_excludes_system_and_release_namespaces(render, kind):
    hook = render({"scope": "clusterWide"}).webhook(kind)
    assert intercepted_namespaces(hook, NAMESPACES) == {"default", "shop", "shop-audit",
                                                        "legacy"}


def test_release_namespace_is_excluded_wherever_the_release_goes(render):
    rendered = render({"scope": "clusterWide"}, name="guard", namespace="platform-tools")
    namespaces = {**NAMESPACES, "platform-tools": namespace_labels("platform-tools")}
    for kind in WEBHOOK_KINDS:
        hook = rendered.webhook(kind)
        assert "platform-tools" not in intercepted_namespaces(hook, namespaces)
        assert NAMESPACE in intercepted_namespaces(hook, namespaces)
    assert "platform-tools" in rendered.policy["exemptNamespaces"]


def test_policy_exempt_namespaces_are_excluded_at_the_api_server_too(render):
    rendered = render({"scope": "clusterWide", "policy": {"exemptNamespaces": ["monitoring"]}})
    namespaces = {**NAMESPACES, "monitoring": namespace_labels("monitoring")}
    for kind in WEBHOOK_KINDS:
        assert "monitoring" not in intercepted_namespaces(rendered.webhook(kind), namespaces)
    assert set(rendered.policy["exemptNamespaces"]) == SYSTEM_NAMESPACES | {NAMESPACE,
                                                                          "monitoring"}


def test_policy_file_carries_the_scope_and_exemptions(case):
    policy = case.policy
    hook = case.webhook("ValidatingWebhookConfiguration")
    assert policy["scope"] == ("optIn" if hook["namespaceSelector"].get("matchLabels")
                               else "clusterWide")
    assert SYSTEM_NAMESPACES | {case.namespace} <= set(policy["exemptNamespaces"])


@pytest.mark.parametrize("name", [n for n in sorted(CASES)
                                  if "optOutLabel" not in CASES[n].get("webhooks", {})])
@pytest.mark.parametrize("kind", sorted(WEBHOOK_KINDS))
def test_no_label_exempts_an_object_by_default(render, name, kind):
    rendered = render(CASES[name])
    selector = rendered.webhook(kind)["objectSelector"]
    assert selector == {}
    assert not rendered.has("ValidatingAdmissionPolicy")


def test_the_chart_needs_no_opt_out_label_for_itself(case):
    """Its namespace is never intercepted (test_cel.py shows it for every kind)."""
    deployment = case.deployment
    for labels in (deployment["metadata"]["labels"],
                   deployment["spec"]["template"]["metadata"]["labels"]):
        assert not any("ignore" in key for key in labels)


def test_an_unrestricted_opt_out_label_renders_without_a_policy(render):
    rendered = render({"webhooks": {"optOutLabel": OPT_OUT, "optOutUnrestricted": True}})
    for kind in WEBHOOK_KINDS:
        selector = rendered.webhook(kind)["objectSelector"]
        assert not selector_matches(selector, {OPT_OUT: "true"})
        assert selector_matches(selector, {OPT_OUT: "false"})
        assert selector_matches(selector, {})
    assert not rendered.has("ValidatingAdmissionPolicy")
    assert not rendered.has("ValidatingAdmissionPolicyBinding")


@pytest.mark.parametrize("kind", sorted(WEBHOOK_KINDS))
def test_objects_of_judged_controllers_are_skipped_with_cel(case, kind):
    """The names and shape; test_cel.py evaluates the expressions."""
    conditions = case.webhook(kind)["matchConditions"]
    assert [c["name"] for c in conditions][:2] == ["skip-controller-owned-replicasets",
                                                  "skip-controller-owned-pods"]
    for condition in conditions[:2]:
        assert "has(r.controller) && r.controller" in condition["expression"]


def test_extensions_are_appended_to_the_chart_selector_and_conditions(render):
    rendered = render(CASES["extensions"])
    for kind in WEBHOOK_KINDS:
        hook = rendered.webhook(kind)
        assert hook["objectSelector"] == {
            "matchLabels": {"spreadguard.io/judged": "true"},
            "matchExpressions": [{"key": OPT_OUT, "operator": "NotIn", "values": ["true"]},
                                 {"key": "team", "operator": "NotIn", "values": ["platform"]}]}
        names = [c["name"] for c in hook["matchConditions"]]
        assert names == ["skip-controller-owned-replicasets", "skip-controller-owned-pods",
                         "skip-batch-namespaces"]
        assert hook["matchConditions"][-1]["expression"] == \
            CASES["extensions"]["webhooks"]["extraMatchConditions"][0]["expression"]


def test_an_extra_condition_may_not_take_a_chart_name(chart):
    with pytest.raises(helm.HelmError) as err:
        chart.render({"webhooks": {"extraMatchConditions": [
            {"name": "skip-controller-owned-pods", "expression": "true"}]}},
            name=RELEASE, namespace=NAMESPACE)
    assert "used by the chart's own matchConditions" in str(err.value)


# === the opt-out label's ValidatingAdmissionPolicy ===


def test_an_opt_out_label_comes_with_a_policy_on_clusters_that_have_the_api(render_on_cluster):
    rendered = render_on_cluster({"webhooks": {"optOutLabel": OPT_OUT}})
    policy = rendered.one("ValidatingAdmissionPolicy")
    binding = rendered.one("ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"] == \
        f"{RELEASE}-opt-out-label"
    # It never judges spreadguard's own namespace or the system namespaces.
    selector = policy["spec"]["matchConstraints"]["namespaceSelector"]
    for namespace in SYSTEM_NAMESPACES | {NAMESPACE}:
        assert not selector_matches(selector, namespace_labels(namespace))
    assert selector_matches(selector, namespace_labels("shop"))
    for kind in WEBHOOK_KINDS:
        assert not selector_matches(rendered.webhook(kind)["objectSelector"], {OPT_OUT: "true"})
    (validation,) = policy["spec"]["validations"]
    assert validation["message"] == (
        f"the label {OPT_OUT} exempts a workload from spreadguard: only members of "
        "system:masters may set, change or remove it (on the workload or its pod template)")


@pytest.mark.parametrize("where", ["offline", "cluster"])
def test_an_opt_out_label_is_refused_without_the_policy_api(chart, render_on_cluster, where):
    values = {"webhooks": {"optOutLabel": OPT_OUT}}
    with pytest.raises(helm.HelmError) as err:
        if where == "offline":
            # helm template without --api-versions: Helm's default capabilities name group
            # versions only, never the ValidatingAdmissionPolicy kind.
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
        else:
            render_on_cluster(values, vap=False)
    message = str(err.value)
    assert f'webhooks.optOutLabel "{OPT_OUT}" needs the ValidatingAdmissionPolicy API' in message
    assert "webhooks.optOutUnrestricted=true" in message
    assert "--api-versions admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" in message
    # Accepting the risk renders, on the same cluster.
    unrestricted = {"webhooks": {"optOutLabel": OPT_OUT, "optOutUnrestricted": True}}
    assert not render_on_cluster(unrestricted, vap=False).has("ValidatingAdmissionPolicy")
    # Without an opt-out label nothing needs the API.
    assert render_on_cluster({}, vap=False).has("ValidatingWebhookConfiguration")


def test_the_capabilities_come_from_the_cluster(render_on_cluster):
    """Guards the test above: the fake's discovery really decides what Helm sees."""
    values = {"webhooks": {"optOutLabel": OPT_OUT}}
    assert render_on_cluster(values, vap=True).has("ValidatingAdmissionPolicy")
    with pytest.raises(helm.HelmError):
        render_on_cluster(values, vap=False)


# === certificates ===


def ca_bundles(rendered) -> set[str | None]:
    return {rendered.webhook(k)["clientConfig"].get("caBundle") for k in WEBHOOK_KINDS}


def mounted_tls_secret(rendered) -> str:
    (volume,) = [v for v in rendered.pod_spec["volumes"] if v["name"] == "tls"]
    return volume["secret"]["secretName"]


def test_helm_mode_generates_one_ca_for_the_secret_and_both_webhooks(render):
    rendered = render({"certificates": {"mode": "helm"}})
    secret = rendered.one("Secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["name"] == mounted_tls_secret(rendered)
    (bundle,) = ca_bundles(rendered)
    assert bundle == secret["data"]["ca.crt"]
    for key in ("ca.crt", "tls.crt"):
        assert base64.b64decode(secret["data"][key]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY-----" in base64.b64decode(secret["data"]["tls.key"])
    assert not rendered.has("Certificate")


def test_helm_mode_certificate_is_valid_for_the_service(render, tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed; certificate contents not inspected")
    secret = render({"certificates": {"mode": "helm"}}).one("Secret")
    for key in ("ca.crt", "tls.crt"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    verify = subprocess.run([openssl, "verify", "-CAfile", tmp_path / "ca.crt",
                             tmp_path / "tls.crt"], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    text = subprocess.run([openssl, "x509", "-noout", "-text", "-in", tmp_path / "tls.crt"],
                          capture_output=True, text=True, check=True).stdout
    assert f"DNS:{RELEASE}.{NAMESPACE}.svc" in text
    assert f"DNS:{RELEASE}.{NAMESPACE}.svc.cluster.local" in text


def test_cert_manager_mode_injects_the_ca_of_the_serving_certificate(render):
    rendered = render({"certificates": {"mode": "certManager"}})
    # cainjector writes the caBundle; the chart must not write a stale one.
    assert ca_bundles(rendered) == {None}
    annotations = {rendered.one(k)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
                   for k in WEBHOOK_KINDS}
    (serving,) = [c for c in rendered.all("Certificate") if not c["spec"].get("isCA")]
    assert annotations == {f"{NAMESPACE}/{serving['metadata']['name']}"}
    spec = serving["spec"]
    assert spec["secretName"] == mounted_tls_secret(rendered)
    assert f"{RELEASE}.{NAMESPACE}.svc" in spec["dnsNames"]
    assert spec["privateKey"]["rotationPolicy"] == "Always"
    assert "server auth" in spec["usages"]
    # The issuer chain: serving cert <- CA Issuer <- CA Certificate <- self-signed Issuer.
    issuers = {i["metadata"]["name"]: i["spec"] for i in rendered.all("Issuer")}
    ca_issuer = issuers[spec["issuerRef"]["name"]]
    (ca_cert,) = [c for c in rendered.all("Certificate") if c["spec"].get("isCA")]
    assert ca_issuer["ca"]["secretName"] == ca_cert["spec"]["secretName"]
    assert "selfSigned" in issuers[ca_cert["spec"]["issuerRef"]["name"]]
    assert not rendered.has("Secret")


def test_cert_manager_mode_can_use_an_existing_cluster_issuer(render):
    rendered = render(CASES["certs-certManager-clusterIssuer"])
    (serving,) = rendered.all("Certificate")
    assert serving["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer",
                                            "group": "cert-manager.io"}
    assert not rendered.has("Issuer")


@pytest.mark.parametrize("given", [EXAMPLE_CA_PEM,
                                   base64.b64encode(EXAMPLE_CA_PEM.encode()).decode()])
def test_existing_secret_mode_uses_the_given_ca_bundle(render, given):
    rendered = render({"certificates": {"mode": "existingSecret", "existingSecret": {
        "name": "my-serving-cert", "caBundle": given}}})
    (bundle,) = ca_bundles(rendered)
    assert base64.b64decode(bundle).decode() == EXAMPLE_CA_PEM
    assert mounted_tls_secret(rendered) == "my-serving-cert"
    assert not rendered.has("Secret") and not rendered.has("Certificate")


def test_ca_bundle_is_present_in_every_mode(case):
    bundles = ca_bundles(case)
    if case.has("Certificate"):
        assert bundles == {None}
        for kind in WEBHOOK_KINDS:
            assert case.one(kind)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    else:
        (bundle,) = bundles
        assert base64.b64decode(bundle).startswith(b"-----BEGIN CERTIFICATE-----")


def test_offline_renders_generate_fresh_certificates(render, chart):
    """Without a cluster, lookup finds nothing: each offline render has its own CA.

    This is why docs/operations.md sends `helm template` and Argo CD users to certManager
    or existingSecret; reuse on a real upgrade is covered by test_lookup.py.
    """
    first = chart.render({}, name=RELEASE, namespace=NAMESPACE)
    second = chart.render({}, name=RELEASE, namespace=NAMESPACE)
    key = "spreadguard/templates/certificates.yaml"
    assert first[key] != second[key]


# === RBAC ===


def test_rbac_is_read_only_on_exactly_what_the_caches_watch(case):
    """get/list/watch on Nodes and Namespaces (the topology and the modes), on
    HorizontalPodAutoscalers and PodDisruptionBudgets (the replica and budget caches), on
    the storage placement reads (StorageClasses, PersistentVolumeClaims,
    PersistentVolumes) and on Karpenter's NodePools; nothing else, and no write."""
    role = case.one("ClusterRole")
    rules = [(tuple(r.get("apiGroups", [])), tuple(sorted(r["resources"])),
              tuple(sorted(r["verbs"]))) for r in role["rules"]]
    read = ("get", "list", "watch")
    assert rules == [(("",), ("namespaces", "nodes"), read),
                     (("autoscaling",), ("horizontalpodautoscalers",), read),
                     (("policy",), ("poddisruptionbudgets",), read),
                     (("",), ("persistentvolumeclaims", "persistentvolumes"), read),
                     (("storage.k8s.io",), ("storageclasses",), read),
                     (("karpenter.sh",), ("nodepools",), read)]
    assert not any(r.get("resourceNames") or r.get("nonResourceURLs") for r in role["rules"])
    assert not case.has("Role") and not case.has("RoleBinding")
    binding = case.one("ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": role["metadata"]["name"]}
    account = case.one("ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount",
                                    "name": account["metadata"]["name"],
                                    "namespace": case.namespace}]
    assert case.pod_spec["serviceAccountName"] == account["metadata"]["name"]


def test_the_posture_page_is_off_by_default_and_when_on_lists_what_audit_reads(render):
    off = render()
    assert not any(a.startswith("--ui") for a in off.container["args"])
    on = render({"ui": {"enabled": True, "interval": "2m"}})
    args = on.container["args"]
    assert "--ui" in args and "--ui-interval=2m" in args
    rules = {(tuple(r["apiGroups"]), tuple(sorted(r["resources"]))): tuple(r["verbs"])
             for r in on.one("ClusterRole")["rules"]}
    assert rules[(("",), ("pods",))] == ("list",)
    assert rules[(("apps",), ("deployments", "replicasets", "statefulsets"))] == ("list",)
    # The page's scan writes nothing: no report rule, no Lease.
    assert all(set(verbs) <= {"get", "list", "watch"} for verbs in rules.values())
    assert not on.has("Role") and not on.has("RoleBinding")
    # The admin port (where the page is) is the one the NOTES tell to port-forward.
    ports = {p["name"]: p["containerPort"] for p in on.container["ports"]}
    assert "admin" in ports


# === the webhook's own Deployment ===


def test_deployment_is_highly_available(case):
    deployment = case.deployment
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod_labels = spec["template"]["metadata"]["labels"]
    assert selector_matches(spec["selector"], pod_labels)
    keys = {}
    for constraint in case.pod_spec["topologySpreadConstraints"]:
        assert selector_matches(constraint["labelSelector"], pod_labels)
        keys[constraint["topologyKey"]] = constraint
    assert set(keys) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    pdb = case.one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert selector_matches(pdb["spec"]["selector"], pod_labels)


def test_single_replica_gets_no_pdb_that_would_block_drains(render):
    assert not render({"replicaCount": 1}).has("PodDisruptionBudget")


def test_probes_use_the_admin_port(case):
    container = case.container
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "admin"}
    assert ports["admin"] == 8080
    assert "--admin-listen=0.0.0.0:8080" in container["args"]


def test_resources_are_set(case):
    resources = case.container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_restricted_pod_security(case):
    pod = case.pod_spec["securityContext"]
    container = case.container["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["runAsNonRoot"] is True
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["runAsUser"] != 0
    assert not case.pod_spec.get("hostNetwork")
    for port in case.container["ports"]:
        assert port["containerPort"] >= 1024


def test_no_priority_class_while_both_webhooks_fail_open(render):
    rendered = render({})
    assert "priorityClassName" not in rendered.pod_spec
    assert not rendered.has("ResourceQuota")


@pytest.mark.parametrize("mutating,validating", [("Fail", "Ignore"), ("Ignore", "Fail"),
                                                 ("Fail", "Fail")])
def test_fail_closed_webhook_pods_are_system_cluster_critical(render, mutating, validating):
    rendered = render({"webhooks": {"mutating": {"failurePolicy": mutating},
                                    "validating": {"failurePolicy": validating}}})
    assert rendered.pod_spec["priorityClassName"] == "system-cluster-critical"
    # Clusters that admit critical pods only under a quota scoped to the class (GKE's
    # default) admit these: two replicas, a rollout's surge pod, pods still terminating.
    quota = rendered.one("ResourceQuota")
    assert quota["metadata"]["namespace"] == NAMESPACE
    assert quota["spec"]["scopeSelector"] == {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["system-cluster-critical"]}]}
    assert quota["spec"]["hard"] == {"pods": "6"}
    assert list(quota["spec"]) == ["hard", "scopeSelector"]  # limits nothing else


@pytest.mark.parametrize("values,expected_class,quota", [
    ({"priorityClassName": "", "webhooks": {"validating": {"failurePolicy": "Fail"}}}, None,
     False),
    ({"priorityClassName": "platform-critical"}, "platform-critical", False),
    ({"priorityClassName": "system-node-critical"}, "system-node-critical", True),
    ({"priorityClassName": "system-cluster-critical", "priorityClassQuota": {"create": False}},
     "system-cluster-critical", False),
    ({"priorityClassName": "system-cluster-critical", "replicaCount": 3},
     "system-cluster-critical", True),
], ids=["none-despite-fail", "own-class", "node-critical", "no-quota", "three-replicas"])
def test_priority_class_can_be_chosen(render, values, expected_class, quota):
    rendered = render(values)
    assert rendered.pod_spec.get("priorityClassName") == expected_class
    assert rendered.has("ResourceQuota") is quota
    if quota:
        quota_object = rendered.one("ResourceQuota")
        assert quota_object["spec"]["scopeSelector"]["matchExpressions"][0]["values"] == \
            [expected_class]
        replicas = rendered.deployment["spec"]["replicas"]
        surge = rendered.deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        assert int(quota_object["spec"]["hard"]["pods"]) >= 2 * replicas + surge


# === NetworkPolicy ===


def test_network_policy_is_off_by_default(render):
    assert not render({}).has("NetworkPolicy")


def test_network_policy_lets_only_the_given_peers_reach_each_port(render):
    rendered = render(CASES["network-policy"])
    policy = rendered.one("NetworkPolicy")["spec"]
    assert selector_matches(policy["podSelector"],
                            rendered.deployment["spec"]["template"]["metadata"]["labels"])
    assert policy["policyTypes"] == ["Ingress"]  # egress stays open: the pods watch the API
    ports = {p["name"]: p["containerPort"] for p in rendered.container["ports"]}
    webhook, admin = policy["ingress"]
    assert webhook["ports"] == [{"port": ports["https"], "protocol": "TCP"}]
    assert webhook["from"] == CASES["network-policy"]["networkPolicy"]["webhookFrom"]
    assert admin["ports"] == [{"port": ports["admin"], "protocol": "TCP"}]
    assert admin["from"] == CASES["network-policy"]["networkPolicy"]["metricsFrom"]
    # The Service's webhook port targets the port the policy opens.
    (https,) = [p for p in rendered.service["spec"]["ports"] if p["name"] == "https"]
    assert ports[https["targetPort"]] == ports["https"]


def test_network_policy_leaves_the_admin_port_open_without_metrics_peers(render):
    rendered = render({"networkPolicy": {"enabled": True, "webhookFrom": [
        {"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]}})
    webhook, admin = rendered.one("NetworkPolicy")["spec"]["ingress"]
    assert "from" not in admin  # any source: kubelet probes and scrapers keep working
    assert len(webhook["from"]) == 2


def test_network_policy_needs_the_api_server_peers(chart):
    with pytest.raises(helm.HelmError) as err:
        chart.render({"networkPolicy": {"enabled": True}}, name=RELEASE, namespace=NAMESPACE)
    assert "networkPolicy.enabled needs networkPolicy.webhookFrom" in str(err.value)


def test_server_arguments_point_at_the_mounted_files(case):
    args = dict(a.split("=", 1) for a in case.container["args"] if a.startswith("--"))
    assert case.container["args"][0] == "serve"
    mounts = {m["name"]: m for m in case.container["volumeMounts"]}
    # Whole-directory mounts: subPath mounts never see Secret or ConfigMap updates, which
    # would silently break certificate rotation and policy hot reload.
    assert not any("subPath" in m for m in mounts.values())
    assert args["--tls-cert"] == mounts["tls"]["mountPath"] + "/tls.crt"
    assert args["--tls-key"] == mounts["tls"]["mountPath"] + "/tls.key"
    assert args["--config"] == mounts["policy"]["mountPath"] + "/policy.yaml"
    volumes = {v["name"]: v for v in case.pod_spec["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == case.one("ConfigMap")["metadata"]["name"]
    assert "policy.yaml" in case.one("ConfigMap")["data"]
    # No --nodes: in a cluster the server watches the nodes itself.
    assert "--nodes" not in args


def test_policy_change_does_not_restart_the_pods(render):
    """The server hot-reloads the policy, so the pod template must not hash it."""
    before = render({})
    after = render({"policy": {"mode": "audit", "minReplicas": 3}})
    assert before.policy != after.policy
    assert before.deployment["spec"]["template"] == after.deployment["spec"]["template"]
    annotations = before.deployment["spec"]["template"]["metadata"].get("annotations") or {}
    assert not any(k.startswith("checksum/") for k in annotations)


def test_policy_file_holds_only_fields_the_server_knows(case):
    known = {"mode", "scope", "minReplicas", "minSurvivingReplicas", "zoneLabels", "maxSkew", "whenUnsatisfiable",
             "matchPodTemplateHash", "antiAffinityWeight", "spreadAcrossNodes",
             "rewriteLegacyZoneKey", "exemptNamespaces", "allowWorkloadOverride",
             "assumedZones", "failOpen", "defaultedReplicas", "rules", "statefulZoneSpread",
             "zonalProvisioners", "nodeTemplates", "injectMinDomains", "workloadKinds"}
    assert set(case.policy) <= known


def test_policy_values_reach_the_policy_file(render):
    policy = render(CASES["production"]).policy
    assert policy["mode"] == "warn"
    assert policy["rules"] == {"HA004": "warn", "HA009": "off"}
    assert policy["exemptNamespaces"].count("kube-system") == 1


# === monitoring ===


def test_monitoring_is_off_by_default(render):
    rendered = render({})
    assert not rendered.has("ServiceMonitor") and not rendered.has("PrometheusRule")


def test_service_monitor_scrapes_the_admin_port(render):
    rendered = render(CASES["monitoring"])
    monitor = rendered.one("ServiceMonitor")
    service = rendered.service
    assert selector_matches(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert port["targetPort"] == "admin"
    assert endpoint["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# === NOTES.txt ===


def test_notes_tell_the_operator_how_to_opt_in(render):
    assert "kubectl label namespace <namespace> spreadguard.io/enabled=true" in render({}).notes
    notes = render({"scope": "clusterWide"}).notes
    assert "every namespace except" in notes and NAMESPACE in notes


def test_chart_version_bump_alone_does_not_roll_the_pods(chart, render):
    labels = render({}).deployment["spec"]["template"]["metadata"]["labels"]
    assert "helm.sh/chart" not in labels
    assert labels["app.kubernetes.io/version"] == chart.metadata["appVersion"]


def test_notes_and_the_guide_agree_on_reusing_values(render):
    """NOTES.txt and docs/operations.md give the same advice: --reset-then-reuse-values,
    never --reuse-values, which keeps the previous chart's defaults."""
    notes = render({}).notes
    commands = [line.strip() for line in notes.splitlines()
                if line.strip().startswith("helm upgrade")]
    assert len(commands) == 2
    assert all("--reset-then-reuse-values" in c for c in commands)
    guide = (REPO / "docs" / "operations.md").read_text()
    guide_commands = re.findall(r"^\s*(?:\d\. `)?(helm upgrade[^\n`]*)", guide, re.M)
    assert len(guide_commands) >= 5
    for command in guide_commands:
        assert not re.search(r"--reuse-values\b", command), command


def test_the_guide_links_only_to_its_own_headings():
    guide = (REPO / "docs" / "operations.md").read_text()
    headings = {re.sub(r"[^\w\- ]", "", h.strip().lower().replace("`", "")).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", guide, re.M)}
    links = set(re.findall(r"\]\(#([^)]+)\)", guide))
    assert links and links <= headings, links - headings


def test_existing_secret_mode_takes_several_cas_for_a_rotation(render):
    """Step 1 of a CA change (docs/operations.md, rotating certificates): both CAs."""
    other = EXAMPLE_CA_PEM.replace("MIIBdzCCAR2g", "MIIBdzCCAR3g")
    rendered = render({"certificates": {"mode": "existingSecret", "existingSecret": {
        "name": "my-serving-cert", "caBundle": other + EXAMPLE_CA_PEM}}})
    (bundle,) = ca_bundles(rendered)
    assert base64.b64decode(bundle).decode() == other + EXAMPLE_CA_PEM


def test_reports_watch_what_audit_reads_write_their_reports_and_hold_a_lease(render):
    off = render()
    assert not any(a.startswith("--reports") for a in off.container["args"])
    on = render({"reports": {"enabled": True, "interval": "1m"}})
    args = on.container["args"]
    assert "--reports=1m" in args and "--reports-format=openreports" in args
    rules = {(tuple(r["apiGroups"]), tuple(sorted(r["resources"]))): tuple(r["verbs"])
             for r in on.one("ClusterRole")["rules"]}
    # The writer judges from watches: list and watch on what `audit --cluster` reads.
    assert rules[(("",), ("pods",))] == ("list", "watch")
    assert rules[(("apps",), ("deployments", "replicasets", "statefulsets"))] == ("list", "watch")
    assert rules[(("openreports.io",), ("reports",))] == (
        "get", "list", "create", "patch", "delete")
    role = on.one("Role")
    assert [r["resources"] for r in role["rules"]] == [["leases"]]
    assert on.one("RoleBinding")["roleRef"]["name"] == role["metadata"]["name"]
