#!/usr/bin/env python3
"""Writes the soak test's review bodies, one compact JSON per line: Deployments, StatefulSets,
ReplicaSets, bare Pods and ConfigMaps; CREATE, UPDATE (template changed and unchanged) and
dry runs; each mode through the workload annotation (the soak policy allows overrides); some
denied in enforce mode (one replica).

usage: bodies.py FIXTURES_DIR > bodies.jsonl
"""
import copy
import itertools
import json
import sys
from pathlib import Path

fixtures = Path(sys.argv[1])
deployment = json.loads((fixtures / "deployment-create.json").read_text())
pod = json.loads((fixtures / "pod-create.json").read_text())
configmap = json.loads((fixtures / "configmap-create.json").read_text())

RESOURCES = {
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "ReplicaSet": ("apps", "replicasets"),
}


def as_kind(review, kind):
    r = copy.deepcopy(review)
    group, resource = RESOURCES[kind]
    r["request"]["kind"]["kind"] = kind
    r["request"]["resource"]["resource"] = resource
    r["request"]["requestKind"]["kind"] = kind
    r["request"]["requestResource"]["resource"] = resource
    r["request"]["object"]["kind"] = kind
    return r


out = []
n = 0
for kind, mode, replicas, op, dry in itertools.product(
    ["Deployment", "StatefulSet", "ReplicaSet"],
    [None, "enforce", "warn", "audit", "off"],
    [3, 1],
    ["CREATE", "UPDATE"],
    [False],
):
    r = as_kind(deployment, kind)
    n += 1
    r["request"]["uid"] = f"soak-{n:04d}"
    obj = r["request"]["object"]
    obj["spec"]["replicas"] = replicas
    if mode:
        obj["metadata"]["annotations"]["spreadguard.io/mode"] = mode
    r["request"]["operation"] = op
    if op == "UPDATE":
        old = copy.deepcopy(obj)
        # Every other update changes the pod template (a rollout, mutated); the rest scale.
        if n % 2:
            old["spec"]["template"]["spec"]["containers"][0]["image"] += "-previous"
        else:
            old["spec"]["replicas"] = replicas + 1
        r["request"]["oldObject"] = old
    r["request"]["dryRun"] = n % 7 == 0
    out.append(r)
for i, mode in enumerate([None, "enforce", "audit"]):
    r = copy.deepcopy(pod)
    r["request"]["uid"] = f"soak-pod-{i}"
    if mode:
        r["request"]["object"]["metadata"].setdefault("annotations", {})["spreadguard.io/mode"] = mode
    out.append(r)
out.append(configmap)
for r in out:
    print(json.dumps(r, separators=(",", ":")))
