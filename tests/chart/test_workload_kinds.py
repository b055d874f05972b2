"""The webhook rules follow the kinds spreadguard judges (issue 11): apps/v1 and Pods, Argo
Rollouts, OpenKruise CloneSets and Advanced StatefulSets, the policy's workloadKinds, and,
for the validating webhook only, their scale subresource (a Scale cannot usefully be
mutated, but its replicas are judged against minReplicas)."""

from __future__ import annotations

WIDGET = {
    "group": "example.com",
    "version": "v1",
    "kind": "Widget",
    "resource": "widgets",
    "replicas": "/spec/size",
    "template": "/spec/podTemplate",
}


def resources(hook):
    out = set()
    for rule in hook["rules"]:
        for group in rule["apiGroups"]:
            for version in rule["apiVersions"]:
                for resource in rule["resources"]:
                    out.add((group, version, resource, tuple(rule["operations"])))
    return out


def test_built_in_kinds_and_scale_for_validation_only(render):
    r = render({})
    mutating = resources(r.webhook("MutatingWebhookConfiguration"))
    validating = resources(r.webhook("ValidatingWebhookConfiguration"))
    create_update = ("CREATE", "UPDATE")
    for kind in [
        ("apps", "v1", "deployments"),
        ("apps", "v1", "statefulsets"),
        ("apps", "v1", "replicasets"),
        ("", "v1", "pods"),
        ("argoproj.io", "v1alpha1", "rollouts"),
        ("apps.kruise.io", "v1alpha1", "clonesets"),
        ("apps.kruise.io", "v1beta1", "statefulsets"),
    ]:
        assert kind + (create_update,) in mutating, kind
        assert kind + (create_update,) in validating, kind
    for scale in [
        ("apps", "v1", "deployments/scale"),
        ("apps", "v1", "statefulsets/scale"),
        ("apps", "v1", "replicasets/scale"),
        ("argoproj.io", "v1alpha1", "rollouts/scale"),
    ]:
        assert scale + (("UPDATE",),) in validating, scale
    assert not any(r[2].endswith("/scale") for r in mutating)
    assert not any(r[2] == "pods/scale" for r in validating)


def test_declared_kinds_join_the_rules(render):
    r = render({"policy": {"workloadKinds": [WIDGET]}})
    validating = resources(r.webhook("ValidatingWebhookConfiguration"))
    mutating = resources(r.webhook("MutatingWebhookConfiguration"))
    assert ("example.com", "v1", "widgets", ("CREATE", "UPDATE")) in mutating
    assert ("example.com", "v1", "widgets", ("CREATE", "UPDATE")) in validating
    assert ("example.com", "v1", "widgets/scale", ("UPDATE",)) in validating
    # And the server reads the same list from its policy file.
    assert r.policy["workloadKinds"][0]["resource"] == "widgets"
