//! Workload kinds beyond apps/v1 on a real API server (issue 11, item 9): Argo Rollouts,
//! OpenKruise CloneSets and a kind the policy declares (`workloadKinds:`) are installed as
//! CustomResourceDefinitions, spreadguard is installed from the chart with that policy, and
//! the API server sends their CREATEs and `scale` UPDATEs to the webhooks the chart rendered:
//! the stored objects carry the injected spreads at each kind's own pod template path, one
//! replica is denied (HA001), and so is scaling to one through the `scale` subresource.
//!
//! No Argo Rollouts or OpenKruise controller runs in the bed (their images cannot be built or
//! run here), so no pods are created for these objects: what is proven is admission, the part
//! spreadguard owns. Their CRDs are reduced to what the API server needs to serve them (a
//! schema that keeps unknown fields, and the `scale` subresource at the paths the projects'
//! own CRDs declare).
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build`.

mod e2e_support;

use std::time::Duration;

use axum::http::Method;
use e2e_support::api::{self, opted_in};
use e2e_support::bed::{Bed, ZONE_KEY};
use e2e_support::spreadguard::{Options, Spreadguard};
use e2e_support::wait::until;
use serde_json::{Value, json};

const HOSTNAME_KEY: &str = "kubernetes.io/hostname";

/// A kind of the test: its CRD names and where its pod template is.
struct Kind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    /// JSON pointer to the replica count.
    replicas: &'static str,
    /// JSON pointer to the pod template.
    template: &'static str,
    /// The label injected spreads name in `matchLabelKeys`, if any.
    revision_label: Option<&'static str>,
}

const ROLLOUT: Kind = Kind {
    group: "argoproj.io",
    version: "v1alpha1",
    kind: "Rollout",
    plural: "rollouts",
    replicas: "/spec/replicas",
    template: "/spec/template",
    revision_label: Some("rollouts-pod-template-hash"),
};

const CLONESET: Kind = Kind {
    group: "apps.kruise.io",
    version: "v1alpha1",
    kind: "CloneSet",
    plural: "clonesets",
    replicas: "/spec/replicas",
    template: "/spec/template",
    revision_label: None,
};

/// The kind the policy declares: replicas, selector and template where no built-in keeps them.
const WIDGET: Kind = Kind {
    group: "example.com",
    version: "v1",
    kind: "Widget",
    plural: "widgets",
    replicas: "/spec/size",
    template: "/spec/podTemplate",
    revision_label: Some("example.com/revision"),
};

fn crd(k: &Kind) -> Value {
    let to_dotted = |p: &str| p.replace('/', ".");
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", k.plural, k.group)},
        "spec": {
            "group": k.group,
            "scope": "Namespaced",
            "names": {"kind": k.kind, "plural": k.plural, "singular": k.kind.to_lowercase(),
                      "listKind": format!("{}List", k.kind)},
            "versions": [{
                "name": k.version, "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                                               "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": to_dotted(k.replicas),
                    "statusReplicasPath": ".status.replicas",
                    "labelSelectorPath": ".status.selector",
                }},
            }],
        },
    })
}

fn collection(k: &Kind, ns: &str) -> String {
    format!(
        "/apis/{}/{}/namespaces/{ns}/{}",
        k.group, k.version, k.plural
    )
}

/// An object of kind `k` with `replicas` replicas and a minimal pod template.
fn object(k: &Kind, ns: &str, name: &str, replicas: i64) -> Value {
    let mut o = json!({
        "apiVersion": format!("{}/{}", k.group, k.version),
        "kind": k.kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {},
    });
    let template = json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
    });
    set(&mut o, k.replicas, json!(replicas));
    set(&mut o, k.template, template);
    if k.kind == "Widget" {
        o["spec"]["podSelector"] = json!({"matchLabels": {"app": name}});
    } else {
        o["spec"]["selector"] = json!({"matchLabels": {"app": name}});
    }
    o
}

fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    for key in pointer.trim_start_matches('/').split('/') {
        at = &mut at[key];
    }
    *at = value;
}

async fn create(client: &kube::Client, k: &Kind, object: &Value) -> api::Answer {
    let ns = object["metadata"]["namespace"].as_str().unwrap();
    api::send(
        client,
        Method::POST,
        &collection(k, ns),
        "application/json",
        Some(object),
    )
    .await
}

/// Installs the CRDs and waits until the API server serves each kind.
async fn install_crds(client: &kube::Client) {
    for k in [&ROLLOUT, &CLONESET, &WIDGET] {
        api::send(
            client,
            Method::POST,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "application/json",
            Some(&crd(k)),
        )
        .await
        .expect_ok(&format!("CRD {}", k.plural));
    }
    for k in [&ROLLOUT, &CLONESET, &WIDGET] {
        let path = format!("/apis/{}/{}/{}", k.group, k.version, k.plural);
        until(
            Duration::from_secs(30),
            &format!("the API server to serve {}", k.plural),
            || async {
                let answer = api::send(client, Method::GET, &path, "application/json", None).await;
                if answer.ok() {
                    Ok(())
                } else {
                    Err(format!("{answer:?}"))
                }
            },
        )
        .await;
    }
}

#[tokio::test]
async fn rollouts_clonesets_and_declared_kinds_are_mutated_and_judged_at_the_api_server() {
    let bed = Bed::shared();
    let client = bed.client().await;
    install_crds(&client).await;

    let declared = json!({
        "group": WIDGET.group, "version": WIDGET.version, "kind": WIDGET.kind,
        "resource": WIDGET.plural, "replicas": WIDGET.replicas, "selector": "/spec/podSelector",
        "template": WIDGET.template, "revisionLabel": WIDGET.revision_label,
    });
    let sg = Spreadguard::start(
        bed,
        Options::new("kinds").values(json!({"policy": {"workloadKinds": [declared]}})),
    )
    .await;
    // The chart's webhook rules follow the policy: the declared kind is intercepted.
    let mutating = sg.webhook_configuration("MutatingWebhookConfiguration");
    assert!(
        mutating.to_string().contains("\"widgets\""),
        "the rendered rules lack the declared kind: {mutating}"
    );
    sg.register(bed).await;
    let ns = api::namespace(&client, "kinds", &opted_in("enforce")).await;
    sg.wait_mode(bed, &ns, "enforce").await;

    for k in [&ROLLOUT, &CLONESET, &WIDGET] {
        // Three replicas: admitted and stored with the injected spreads at the kind's template.
        let name = format!("{}-three", k.kind.to_lowercase());
        let created = create(&client, k, &object(k, &ns, &name, 3))
            .await
            .expect_ok(&format!("{} with 3 replicas", k.kind));
        let spec = created
            .body
            .pointer(&format!("{}/spec", k.template))
            .unwrap_or_else(|| panic!("{}: no pod spec in {}", k.kind, created.body));
        let spreads = spec["topologySpreadConstraints"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: nothing injected: {spec}", k.kind));
        let keys: Vec<&str> = spreads
            .iter()
            .map(|c| c["topologyKey"].as_str().unwrap())
            .collect();
        assert_eq!(keys, [ZONE_KEY, HOSTNAME_KEY], "{}", k.kind);
        for c in spreads {
            assert_eq!(
                c["labelSelector"],
                json!({"matchLabels": {"app": name}}),
                "{}",
                k.kind
            );
            let expected = k.revision_label.map(|l| json!([l]));
            assert_eq!(
                c.get("matchLabelKeys").cloned(),
                expected,
                "{}: {c}",
                k.kind
            );
        }
        assert!(
            created.body["metadata"]["annotations"]["spreadguard.io/injected"]
                .as_str()
                .is_some_and(|s| s.contains("zone-spread")),
            "{}: {}",
            k.kind,
            created.body["metadata"]
        );

        // One replica: denied by the validating webhook with HA001.
        let single = create(
            &client,
            k,
            &object(k, &ns, &format!("{}-one", k.kind.to_lowercase()), 1),
        )
        .await;
        assert_eq!(single.status, 403, "{}: {single:?}", k.kind);
        assert!(
            single.message().contains("HA001"),
            "{}: {}",
            k.kind,
            single.message()
        );

        // Scaling the admitted one to 1 through its scale subresource: denied too.
        let scale = api::send(
            &client,
            Method::PATCH,
            &format!("{}/{name}/scale", collection(k, &ns)),
            "application/merge-patch+json",
            Some(&json!({"spec": {"replicas": 1}})),
        )
        .await;
        assert_eq!(scale.status, 403, "{} scale: {scale:?}", k.kind);
        assert!(
            scale.message().contains("HA001"),
            "{} scale: {}",
            k.kind,
            scale.message()
        );
        // And to 4: allowed, nothing else changes.
        api::send(
            &client,
            Method::PATCH,
            &format!("{}/{name}/scale", collection(k, &ns)),
            "application/merge-patch+json",
            Some(&json!({"spec": {"replicas": 4}})),
        )
        .await
        .expect_ok(&format!("{} scale to 4", k.kind));
        let stored = api::send(
            &client,
            Method::GET,
            &format!("{}/{name}", collection(k, &ns)),
            "application/json",
            None,
        )
        .await
        .expect_ok("get");
        assert_eq!(
            stored.body.pointer(k.replicas),
            Some(&json!(4)),
            "{}",
            k.kind
        );
    }
}
