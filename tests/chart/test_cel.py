"""The chart's CEL, evaluated against sample admission requests.

Who is sent to spreadguard and who may touch the opt-out label is decided by CEL the API
server evaluates: the webhooks' matchConditions and the opt-out label's
ValidatingAdmissionPolicy. String checks on the rendered text prove nothing about that, so
these tests run the rendered expressions through a real CEL implementation (PyPI
`cel-expr-python`, the bindings of Google's cel-cpp) on AdmissionRequests shaped like the
API server's: a ReplicaSet a Deployment owns, one a ConfigMap owns, Pods of each
controller, bare Pods, UPDATEs that add, remove or keep the label, objects a kube-system
controller writes, a system:masters user and a tenant with the `edit` ClusterRole.

What the API server does around the CEL (rules, namespaceSelector, objectSelector) is
evaluated in Python the way the admission plugins document it. What only a real API server
can show (RBAC, the typed schema checks of a ValidatingAdmissionPolicy, Helm upgrades
against live objects) is left to the control-plane test bed (tests/e2e).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import pytest
from cel_expr_python import cel

from conftest import NAMESPACE, namespace_labels, selector_matches

ENV = cel.NewEnv(variables={name: cel.Type.DYN for name in
                            ("object", "oldObject", "request", "variables")})

OPT_OUT = "spreadguard.io/ignore"
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")

# Users as the API server's authenticator describes them.
TENANT = {"username": "alice", "groups": ["team-shop", "system:authenticated"]}  # edit in shop
ADMIN = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
CI = {"username": "system:serviceaccount:ci:deployer",
      "groups": ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"]}
DEPLOYMENT_CONTROLLER = {"username": "system:serviceaccount:kube-system:deployment-controller",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                                    "system:authenticated"]}
REPLICASET_CONTROLLER = {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": DEPLOYMENT_CONTROLLER["groups"]}
TENANT_OPERATOR = {"username": "system:serviceaccount:shop:operator",
                   "groups": ["system:serviceaccounts", "system:serviceaccounts:shop",
                              "system:authenticated"]}
CONTROLLER_MANAGER = {"username": "system:kube-controller-manager",
                      "groups": ["system:authenticated"]}

NAMESPACES = {
    "shop": namespace_labels("shop", **{"spreadguard.io/enabled": "true"}),
    "batch-nightly": namespace_labels("batch-nightly", **{"spreadguard.io/enabled": "true"}),
    NAMESPACE: namespace_labels(NAMESPACE, **{"spreadguard.io/enabled": "true"}),
    "kube-system": namespace_labels("kube-system"),
}

RESOURCES = {"Deployment": ("apps", "deployments"), "StatefulSet": ("apps", "statefulsets"),
             "ReplicaSet": ("apps", "replicasets"), "Pod": ("", "pods"),
             "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
             "PodDisruptionBudget": ("policy", "poddisruptionbudgets")}


# === CEL ===


class CelError(Exception):
    """An expression that fails to evaluate: the API server applies the failurePolicy."""


@functools.lru_cache(maxsize=None)
def compiled(expression: str):
    return ENV.compile(expression)


def evaluate(expression: str, request: dict[str, Any], variables: dict | None = None,
             *, returns: Any = cel.Type.BOOL) -> Any:
    """Evaluates like the API server: object, oldObject (null on CREATE), request and a
    policy's variables."""
    result = compiled(expression).eval(data={"object": request.get("object"),
                                             "oldObject": request.get("oldObject"),
                                             "request": request,
                                             "variables": variables or {}})
    if result.type() == cel.Type.ERROR:
        raise CelError(f"{result.value()} in {expression}")
    assert result.type() == returns, expression
    return result.value()


# === sample objects and requests ===


def owner(api_version: str, kind: str, *, controller: bool | None = True) -> dict[str, Any]:
    ref = {"apiVersion": api_version, "kind": kind, "name": "web", "uid": str(uuid.uuid4())}
    if controller is not None:
        ref["controller"] = controller
        ref["blockOwnerDeletion"] = controller
    return ref


def workload(kind: str, *, labels: dict[str, str] | None = None,
             template_labels: dict[str, str] | None = None, owners: list | None = None,
             template_metadata: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web", "namespace": "shop"}
    if labels is not None:
        metadata["labels"] = labels
    if owners is not None:
        metadata["ownerReferences"] = owners
    pod_spec = {"containers": [{"name": "web", "image": "nginx"}]}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}
    template: dict[str, Any] = {"spec": pod_spec}
    if template_metadata:
        template["metadata"] = {} if template_labels is None else {"labels": template_labels}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata,
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": template}}


def request(obj: dict[str, Any], *, old: dict[str, Any] | None = None,
            user: dict[str, Any] = TENANT, namespace: str = "shop") -> dict[str, Any]:
    """An AdmissionRequest for a CREATE (no old object) or UPDATE of obj."""
    group, resource = RESOURCES[obj["kind"]]
    version = obj["apiVersion"].split("/")[-1]
    obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
    return {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": obj["kind"]},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": obj["metadata"]["name"],
        "namespace": namespace,
        "operation": "CREATE" if old is None else "UPDATE",
        "userInfo": user,
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }


# === what the API server does around the CEL ===


def rules_match(rules: list[dict], req: dict[str, Any]) -> bool:
    res = req["resource"]
    return any(res["group"] in r["apiGroups"] and res["version"] in r["apiVersions"]
               and res["resource"] in r["resources"] and req["operation"] in r["operations"]
               for r in rules)


def labels_of(obj: dict[str, Any] | None) -> dict[str, str] | None:
    return None if obj is None else obj["metadata"].get("labels") or {}


def webhook_called(hook: dict[str, Any], req: dict[str, Any]) -> bool:
    """Rules, namespaceSelector, objectSelector (the new or the old object's labels), then
    every matchCondition must be true."""
    if not rules_match(hook["rules"], req):
        return False
    if not selector_matches(hook["namespaceSelector"], NAMESPACES[req["namespace"]]):
        return False
    selector = hook.get("objectSelector") or {}
    if not any(labels is not None and selector_matches(selector, labels)
               for labels in (labels_of(req["object"]), labels_of(req["oldObject"]))):
        return False
    return all(evaluate(c["expression"], req) for c in hook.get("matchConditions", []))


def called_by(rendered, req: dict[str, Any]) -> set[str]:
    """Which of the two webhooks the API server calls for this request."""
    return {kind for kind in WEBHOOK_KINDS if webhook_called(rendered.webhook(kind), req)}


def policy_denies(rendered, req: dict[str, Any]) -> str | None:
    """The ValidatingAdmissionPolicy's answer: the message when it denies, else None."""
    policy = rendered.one("ValidatingAdmissionPolicy")["spec"]
    constraints = policy["matchConstraints"]
    if not rules_match(constraints["resourceRules"], req):
        return None
    if not selector_matches(constraints.get("namespaceSelector"), NAMESPACES[req["namespace"]]):
        return None
    if not all(evaluate(c["expression"], req) for c in policy.get("matchConditions", [])):
        return None
    # The API server evaluates variables lazily; all of them here, so that one that would
    # fail on some object cannot hide behind another.
    variables: dict[str, Any] = {}
    for variable in policy.get("variables", []):
        variables[variable["name"]] = evaluate(variable["expression"], req, variables,
                                               returns=variable_type(variable["name"]))
    for validation in policy["validations"]:
        if not evaluate(validation["expression"], req, variables):
            return validation["message"]
    return None


def variable_type(name: str):
    return cel.Type.BOOL if name == "changed" else cel.Type.STRING


# === the evaluator itself ===


@pytest.mark.parametrize("expression", [
    'has(object.metadata.labels) && !has(object.metadata.annotations)',
    '[1, 2].all(x, x > 0) && [1, 2].exists(x, x == 2) && "a" in ["a"]',
    '"k" in {"k": "v"} && !("x" in {"k": "v"})',
    '"apps/v1".startsWith("apps/") && !"v1".contains("/")',
    '(true ? "a" : "b") == "a" && oldObject == null',
])
def test_the_evaluator_supports_what_the_chart_uses(expression):
    assert evaluate(expression, {"object": {"metadata": {"labels": {}}}, "oldObject": None})


def test_a_missing_field_is_an_error_not_false():
    """Why every field the chart reads is guarded with has(): the API server treats an
    evaluation error as a failure of the webhook (failurePolicy) or the policy (Fail)."""
    with pytest.raises(CelError):
        evaluate("object.metadata.labels['a'] == 'b'", {"object": {"metadata": {}}})


# === webhooks: who is sent to spreadguard ===

BOTH = set(WEBHOOK_KINDS)

CALLED = {
    "a bare Deployment": workload("Deployment"),
    "a bare ReplicaSet": workload("ReplicaSet"),
    "a bare Pod": workload("Pod"),
    "a ReplicaSet whose controller is a ConfigMap":
        workload("ReplicaSet", owners=[owner("v1", "ConfigMap")]),
    "a ReplicaSet a Deployment owns without being its controller":
        workload("ReplicaSet", owners=[owner("apps/v1", "Deployment", controller=False)]),
    "a ReplicaSet whose controller reference has no controller field":
        workload("ReplicaSet", owners=[owner("apps/v1", "Deployment", controller=None)]),
    "a ReplicaSet whose controller is a Deployment of another API group":
        workload("ReplicaSet", owners=[owner("example.com/v1", "Deployment")]),
    "a Pod whose controller is a ConfigMap": workload("Pod", owners=[owner("v1", "ConfigMap")]),
    "a Pod whose controller is a ReplicationController":
        workload("Pod", owners=[owner("v1", "ReplicationController")]),
    "a Pod whose controller is a Deployment (Deployments own ReplicaSets, not Pods)":
        workload("Pod", owners=[owner("apps/v1", "Deployment")]),
    "a Pod a ReplicaSet owns without being its controller":
        workload("Pod", owners=[owner("apps/v1", "ReplicaSet", controller=False)]),
    "a Pod whose controller is an Argo Rollout (not configured)":
        workload("Pod", owners=[owner("argoproj.io/v1alpha1", "Rollout")]),
    "a Deployment with a controller owner (an operator's custom resource)":
        workload("Deployment", owners=[owner("example.com/v1", "App")]),
    "a StatefulSet": workload("StatefulSet"),
    f"a Deployment labelled {OPT_OUT}=true while no opt-out label is configured":
        workload("Deployment", labels={OPT_OUT: "true"}, template_labels={OPT_OUT: "true"}),
}

SKIPPED = {
    "a ReplicaSet whose controller is a Deployment":
        workload("ReplicaSet", owners=[owner("apps/v1", "Deployment")]),
    "a Pod whose controller is a ReplicaSet": workload("Pod", owners=[owner("apps/v1", "ReplicaSet")]),
    "a Pod whose controller is a StatefulSet":
        workload("Pod", owners=[owner("apps/v1", "StatefulSet")]),
    "a Pod whose controller is a DaemonSet": workload("Pod", owners=[owner("apps/v1", "DaemonSet")]),
    "a Pod whose controller is a Job": workload("Pod", owners=[owner("batch/v1", "Job")]),
    "a Pod with a ConfigMap owner and a ReplicaSet controller":
        workload("Pod", owners=[owner("v1", "ConfigMap", controller=False),
                                owner("apps/v1", "ReplicaSet")]),
}


@pytest.mark.parametrize("name", sorted(CALLED))
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_judged_objects_reach_both_webhooks(render, name, operation):
    obj = CALLED[name]
    req = request(obj, old=obj if operation == "UPDATE" else None)
    assert called_by(render({}), req) == BOTH


def autoscaler(*, labels: dict[str, str] | None = None, min_replicas: int = 1) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web", "namespace": "shop"}
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata,
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": min_replicas, "maxReplicas": 5}}


def budget(*, labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web", "namespace": "shop"}
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata,
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}}}


@pytest.mark.parametrize("obj", [autoscaler(), budget()], ids=["hpa", "pdb"])
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_autoscalers_and_budgets_reach_only_the_validating_webhook(render, obj, operation):
    req = request(obj, old=obj if operation == "UPDATE" else None)
    assert called_by(render({}), req) == {"ValidatingWebhookConfiguration"}
    assert called_by(render({}), request(obj, namespace="kube-system")) == set()


@pytest.mark.parametrize("make", [autoscaler, budget], ids=["hpa", "pdb"])
def test_the_opt_out_label_is_guarded_on_autoscalers_and_budgets(render_on_cluster, make):
    rendered = render_on_cluster({"webhooks": {"optOutLabel": OPT_OUT}})
    labelled = make(labels={OPT_OUT: "true"})
    assert called_by(rendered, request(labelled)) == set()
    assert policy_denies(rendered, request(labelled)) is not None
    assert policy_denies(rendered, request(make())) is None
    assert policy_denies(rendered, request(labelled, old=labelled)) is None


@pytest.mark.parametrize("name", sorted(SKIPPED))
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_objects_of_judged_controllers_are_skipped(render, name, operation):
    obj = SKIPPED[name]
    req = request(obj, old=obj if operation == "UPDATE" else None)
    assert called_by(render({}), req) == set()


def test_the_release_namespace_is_never_sent(render):
    for scope in ("optIn", "clusterWide"):
        rendered = render({"scope": scope})
        for obj in [*CALLED.values(), *SKIPPED.values()]:
            assert called_by(rendered, request(obj, namespace=NAMESPACE)) == set()
            assert called_by(rendered, request(obj, namespace="kube-system")) == set()


def test_configured_workload_kinds_skip_their_replicasets_and_pods(render):
    rendered = render({"webhooks": {"skipControllerOwnedKinds": {
        "replicaSets": [{"apiGroup": "apps", "kind": "Deployment"},
                        {"apiGroup": "argoproj.io", "kind": "Rollout"}],
        "pods": [{"apiGroup": "apps", "kind": "ReplicaSet"},
                 {"apiGroup": "apps.kruise.io", "kind": "CloneSet"}]}}})
    skipped = [workload("ReplicaSet", owners=[owner("argoproj.io/v1alpha1", "Rollout")]),
               workload("ReplicaSet", owners=[owner("apps/v1", "Deployment")]),
               workload("Pod", owners=[owner("apps.kruise.io/v1alpha1", "CloneSet")]),
               workload("Pod", owners=[owner("apps/v1", "ReplicaSet")])]
    for obj in skipped:
        assert called_by(rendered, request(obj)) == set(), obj["metadata"]
    # The lists replace the defaults: StatefulSet Pods are judged with this one.
    judged = [workload("Pod", owners=[owner("apps/v1", "StatefulSet")]),
              workload("ReplicaSet", owners=[owner("apps.kruise.io/v1alpha1", "CloneSet")])]
    for obj in judged:
        assert called_by(rendered, request(obj)) == BOTH, obj["metadata"]


def test_empty_lists_skip_nothing(render):
    rendered = render({"webhooks": {"skipControllerOwnedKinds": {"replicaSets": [],
                                                                 "pods": []}}})
    for kind in WEBHOOK_KINDS:
        assert "matchConditions" not in rendered.webhook(kind)
    for obj in SKIPPED.values():
        assert called_by(rendered, request(obj)) == BOTH


def test_the_opt_out_label_skips_an_object_only_when_configured(render_on_cluster):
    labelled = workload("Deployment", labels={OPT_OUT: "true"})
    assert called_by(render_on_cluster({}), request(labelled)) == BOTH
    rendered = render_on_cluster({"webhooks": {"optOutLabel": OPT_OUT}})
    assert called_by(rendered, request(labelled)) == set()
    assert called_by(rendered, request(workload("Deployment", labels={OPT_OUT: "false"}))) \
        == BOTH
    # Removing the label from a labelled object: the old object still matches the
    # objectSelector's exclusion only when both carry it, so the update is judged.
    assert called_by(rendered, request(workload("Deployment"), old=labelled)) == BOTH


def test_operator_extensions_apply_to_both_webhooks(render):
    rendered = render({"webhooks": {
        "extraObjectSelector": {"matchExpressions": [
            {"key": "team", "operator": "NotIn", "values": ["platform"]}]},
        "extraMatchConditions": [{"name": "skip-batch-namespaces",
                                  "expression": '!request.namespace.startsWith("batch-")'}]}})
    assert called_by(rendered, request(workload("Deployment"))) == BOTH
    assert called_by(rendered, request(workload("Deployment"), namespace="batch-nightly")) == set()
    assert called_by(rendered, request(workload("Deployment", labels={"team": "platform"}))) \
        == set()
    # The chart's own conditions still hold.
    assert called_by(rendered, request(SKIPPED["a Pod whose controller is a ReplicaSet"])) == set()


@pytest.mark.parametrize("obj", [
    workload("Deployment", template_metadata=False),
    workload("Deployment", labels={}, template_labels={}),
    workload("Pod", owners=[]),
    workload("ReplicaSet", owners=[{"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": "x", "uid": "1"}]),
], ids=["template-without-metadata", "empty-labels", "empty-owner-list", "minimal-owner"])
def test_unusual_but_valid_objects_never_make_the_conditions_fail(render, obj):
    """An evaluation error would apply the failurePolicy: with Fail, a rejection."""
    for old in (None, obj):
        called_by(render({}), request(obj, old=old))


# === the opt-out label's ValidatingAdmissionPolicy ===

GUARDED = {"webhooks": {"optOutLabel": OPT_OUT,
                        "optOutAllowedServiceAccounts": [CI["username"]]}}


@pytest.fixture(scope="module")
def guarded(render_on_cluster):
    return render_on_cluster(GUARDED)


def labelled(kind: str = "Deployment", *, on: str = "object", value: str = "true",
             owners: list | None = None) -> dict[str, Any]:
    if on == "object":
        return workload(kind, labels={"app": "web", OPT_OUT: value},
                        template_labels=None if kind == "Pod" else {"app": "web"}, owners=owners)
    return workload(kind, labels={"app": "web"}, template_labels={"app": "web", OPT_OUT: value},
                    owners=owners)


def plain(kind: str = "Deployment", owners: list | None = None) -> dict[str, Any]:
    return workload(kind, labels={"app": "web"},
                    template_labels=None if kind == "Pod" else {"app": "web"}, owners=owners)


DENIED_FOR_A_TENANT = {
    "create a Deployment carrying it": request(labelled()),
    "create a Deployment whose pod template carries it": request(labelled(on="template")),
    "create a StatefulSet whose pod template carries it":
        request(labelled("StatefulSet", on="template")),
    "create a bare Pod carrying it": request(labelled("Pod")),
    "create a Pod carrying it with a forged ReplicaSet controller":
        request(labelled("Pod", owners=[owner("apps/v1", "ReplicaSet")])),
    "create a Deployment carrying it with value false": request(labelled(value="false")),
    "add it to a Deployment": request(labelled(), old=plain()),
    "add it to a Deployment's pod template": request(labelled(on="template"), old=plain()),
    "remove it from a Deployment": request(plain(), old=labelled()),
    "remove it from a pod template": request(plain(), old=labelled(on="template")),
    "change its value": request(labelled(value="false"), old=labelled()),
    "move it from the template to the Deployment": request(labelled(),
                                                           old=labelled(on="template")),
    "a tenant's own controller (a service account outside kube-system) creates a Pod "
    "carrying it": request(labelled("Pod", owners=[owner("apps/v1", "ReplicaSet")]),
                           user=TENANT_OPERATOR),
}

ALLOWED = {
    "a tenant creates a Deployment without it": request(plain()),
    "a tenant updates a Deployment that keeps it (a Helm upgrade, an image change)":
        request(labelled(), old=labelled()),
    "a tenant updates a pod template that keeps it": request(labelled(on="template"),
                                                             old=labelled(on="template")),
    "a tenant removes another label": request(plain(), old=workload(
        "Deployment", labels={"app": "web", "tier": "x"}, template_labels={"app": "web"})),
    "system:masters creates a Deployment carrying it": request(labelled(), user=ADMIN),
    "system:masters removes it": request(plain(), old=labelled(), user=ADMIN),
    "the listed service account creates it": request(labelled(on="template"), user=CI),
    "the deployment controller creates the ReplicaSet of a labelled template":
        request(labelled("ReplicaSet", on="template", owners=[owner("apps/v1", "Deployment")]),
                user=DEPLOYMENT_CONTROLLER),
    "the replicaset controller creates the Pod of a labelled template":
        request(labelled("Pod", owners=[owner("apps/v1", "ReplicaSet")]),
                user=REPLICASET_CONTROLLER),
    "the deployment controller rolls a ReplicaSet's label back (an UPDATE)":
        request(plain("ReplicaSet", owners=[owner("apps/v1", "Deployment")]),
                old=labelled("ReplicaSet", on="template",
                             owners=[owner("apps/v1", "Deployment")]),
                user=DEPLOYMENT_CONTROLLER),
    "kube-controller-manager without per-controller accounts creates a labelled Pod":
        request(labelled("Pod", owners=[owner("apps/v1", "StatefulSet")]),
                user=CONTROLLER_MANAGER),
    "anything in the release namespace (spreadguard's own objects)":
        request(labelled(), namespace=NAMESPACE),
    "anything in kube-system": request(labelled(), namespace="kube-system"),
}


@pytest.mark.parametrize("name", sorted(DENIED_FOR_A_TENANT))
def test_a_tenant_cannot_set_change_or_remove_the_label(guarded, name):
    message = policy_denies(guarded, DENIED_FOR_A_TENANT[name])
    assert message is not None, name
    assert OPT_OUT in message and "system:masters" in message and CI["username"] in message


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_the_policy_never_blocks_what_it_must_not(guarded, name):
    assert policy_denies(guarded, ALLOWED[name]) is None


def test_a_kube_system_account_is_exempt_only_for_objects_with_a_controller(guarded):
    """The exemption is for what controllers write from a template already judged, not for
    everything an account in kube-system does."""
    req = request(labelled(), user=DEPLOYMENT_CONTROLLER)
    assert policy_denies(guarded, req) is not None


def test_allowed_groups_are_configurable(render_on_cluster):
    rendered = render_on_cluster({"webhooks": {"optOutLabel": OPT_OUT,
                                               "optOutAllowedGroups": ["platform-admins"]}})
    platform = {"username": "bob", "groups": ["platform-admins", "system:authenticated"]}
    assert policy_denies(rendered, request(labelled(), user=platform)) is None
    message = policy_denies(rendered, request(labelled(), user=ADMIN))
    assert message is not None and "platform-admins" in message


def test_the_policy_binding_denies(guarded):
    policy = guarded.one("ValidatingAdmissionPolicy")
    binding = guarded.one("ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"],
                               "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"
    # The policy guards exactly what the validating webhook intercepts (the mutating one
    # leaves HPAs and PDBs alone: a labelled HPA or PDB would skip HA012 and HA013 too),
    # but for its scale subresource rules, which carry no labels to guard.
    objects = [r for r in guarded.webhook("ValidatingWebhookConfiguration")["rules"]
               if not any(res.endswith("/scale") for res in r["resources"])]
    assert policy["spec"]["matchConstraints"]["resourceRules"] == objects


@pytest.mark.parametrize("obj", [
    workload("Deployment", template_metadata=False),
    workload("Deployment"),
    workload("ReplicaSet", owners=[{"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": "x", "uid": "1"}]),
    workload("Pod", labels={}),
], ids=["template-without-metadata", "no-labels", "minimal-owner", "pod-empty-labels"])
def test_unusual_but_valid_objects_never_make_the_policy_fail(guarded, obj):
    for user in (TENANT, ADMIN, DEPLOYMENT_CONTROLLER):
        for old in (None, obj, labelled()):
            if old is not None and old["kind"] != obj["kind"]:
                continue
            policy_denies(guarded, request(obj, old=old, user=user))


def test_with_nobody_allowed_only_controllers_write_the_label(render_on_cluster):
    rendered = render_on_cluster({"webhooks": {"optOutLabel": OPT_OUT,
                                               "optOutAllowedGroups": []}})
    message = policy_denies(rendered, request(labelled(), user=ADMIN))
    assert message is not None and f"the label {OPT_OUT} exempts a workload from " \
        "spreadguard: nobody may set" in message
    assert policy_denies(rendered, request(
        labelled("Pod", owners=[owner("apps/v1", "ReplicaSet")]),
        user=REPLICASET_CONTROLLER)) is None
