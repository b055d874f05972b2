//! Realistic workload and pod objects as the API server lists them (managed fields, status,
//! containers), for the cluster audit tests and the 150,000-pod benchmark.

use serde_json::{Value, json};

/// A Deployment as listed (no `kind`/`apiVersion`: the fake strips them from list items).
pub fn deployment(ns: &str, name: &str, replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-deploy-{ns}-{name}"),
                     "labels": {"app": name}, "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas},
    })
}

/// A StatefulSet.
pub fn statefulset(ns: &str, name: &str, replicas: u32) -> Value {
    let mut d = deployment(ns, name, replicas);
    d["kind"] = json!("StatefulSet");
    d["metadata"]["uid"] = json!(format!("uid-sts-{ns}-{name}"));
    d["spec"]["serviceName"] = json!(name);
    d
}

/// The ReplicaSet a Deployment controls.
pub fn replicaset(ns: &str, name: &str, deployment: &str, replicas: u32) -> Value {
    let mut rs = self::deployment(ns, name, replicas);
    rs["kind"] = json!("ReplicaSet");
    rs["metadata"]["uid"] = json!(format!("uid-rs-{ns}-{name}"));
    rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
        "name": deployment, "uid": format!("uid-deploy-{ns}-{deployment}"), "controller": true,
        "blockOwnerDeletion": true}]);
    rs
}

/// How a generated pod is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodState {
    Ready,
    NotReady,
    Pending,
}

/// A pod as a list item (about 3.5 KB of JSON, like a small real one), owned by `owner`
/// (`(kind, name)`; `None`: a bare pod).
pub fn pod(
    ns: &str,
    name: &str,
    owner: Option<(&str, &str)>,
    node: Option<&str>,
    state: PodState,
) -> String {
    let ready = if state == PodState::Ready {
        "True"
    } else {
        "False"
    };
    let phase = if state == PodState::Pending {
        "Pending"
    } else {
        "Running"
    };
    let mut p = json!({
        "metadata": {
            "name": name, "namespace": ns, "uid": format!("uid-pod-{ns}-{name}"),
            "resourceVersion": "12345", "creationTimestamp": "2026-11-20T10:00:00Z",
            "labels": {"app": owner.map_or(name, |o| o.1), "pod-template-hash": "5d9c7b8f6"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-20T10:00:00Z"},
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                 "time": "2026-11-20T10:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                   "f:ownerReferences": {".": {}, "k:{\"uid\":\"x\"}": {}}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                     "f:ports": {}, "f:resources": {}, "f:terminationMessagePath": {}}}, "f:dnsPolicy": {}, "f:restartPolicy": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "subresource": "status",
                 "time": "2026-11-20T10:00:05Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {}, "f:podIP": {}, "f:startTime": {}}}}
            ]
        },
        "spec": {
            "containers": [{"name": "app", "image": "registry.example/shop/app:1.2.3", "imagePullPolicy": "IfNotPresent",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 1},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "schedulerName": "default-scheduler", "priority": 0,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}]
        },
        "status": {
            "phase": phase, "qosClass": "Burstable", "hostIP": "10.0.0.1", "podIP": "10.1.0.1",
            "startTime": "2026-11-20T10:00:01Z",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-11-20T10:00:03Z"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-11-20T10:00:01Z"},
                {"type": "Ready", "status": ready, "lastTransitionTime": "2026-11-20T10:00:05Z"},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": "2026-11-20T10:00:05Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-20T10:00:00Z"}],
            "containerStatuses": [{"name": "app", "ready": state == PodState::Ready, "restartCount": 0, "started": true,
                "image": "registry.example/shop/app:1.2.3", "imageID": "registry.example/shop/app@sha256:0123456789abcdef",
                "containerID": "containerd://0123456789abcdef", "state": {"running": {"startedAt": "2026-11-20T10:00:02Z"}}}]
        }
    });
    if let Some((kind, owner)) = owner {
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner,
            "uid": format!("uid-{owner}"), "controller": true, "blockOwnerDeletion": true}]);
    }
    match node {
        Some(n) if state != PodState::Pending => p["spec"]["nodeName"] = json!(n),
        _ => {}
    }
    p.to_string()
}
