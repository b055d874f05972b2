//! The AdmissionReview envelope, decoded in one pass over the body and only as far as routing
//! needs: uid, resource, subresource, operation, namespace, name and dry-run. The objects are
//! decoded only when the request is one spreadguard judges, and on CREATE without the parts no
//! decision reads (see [`super::prune`]).

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::prune;
use crate::engine::policy::Policy;
use crate::engine::{Subject, WorkloadKind};

pub const V1: &str = "admission.k8s.io/v1";
pub const V1BETA1: &str = "admission.k8s.io/v1beta1";

/// A body that is not an AdmissionReview. Answered with HTTP 400 and a JSON error; anything
/// else gets HTTP 200 and a review.
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    #[error("not an AdmissionReview")]
    Json(#[source] serde_json::Error),
    #[error("not an AdmissionReview: kind is {0:?}")]
    Kind(String),
    #[error("unsupported AdmissionReview apiVersion {0:?} (expected {V1})")]
    ApiVersion(String),
    #[error("AdmissionReview without a request")]
    NoRequest,
    #[error("AdmissionReview request without a uid")]
    NoUid,
}

/// A decoded review: its apiVersion (echoed in the answer) and its request.
pub struct Review<'a> {
    pub api_version: &'static str,
    pub request: Request<'a>,
}

/// Decodes a review body. In one pass, an object that does not decode (nested too deep, a
/// bad escape, a number out of range) fails the whole body like a broken envelope would, so
/// on failure the body is read again with its objects kept raw: only a broken envelope is
/// refused; a bad object is answered, with HA000, when it is judged.
pub fn decode<'a>(body: &'a [u8], policy: &Policy) -> Result<Review<'a>, BadReview> {
    let review = match decode_with(body, false, policy) {
        Ok(r) => r,
        Err(_) => decode_with(body, true, policy).map_err(BadReview::Json)?,
    };
    let api_version = match review.api_version.as_deref() {
        Some(V1) | None => V1,
        Some(V1BETA1) => V1BETA1,
        Some(other) => return Err(BadReview::ApiVersion(other.to_owned())),
    };
    match review.kind.as_deref() {
        Some("AdmissionReview") | None => {}
        Some(other) => return Err(BadReview::Kind(other.to_owned())),
    }
    let request = review.request.ok_or(BadReview::NoRequest)?;
    if request.uid.is_empty() {
        return Err(BadReview::NoUid);
    }
    Ok(Review {
        api_version,
        request,
    })
}

fn decode_with<'a>(
    body: &'a [u8],
    keep_raw: bool,
    policy: &Policy,
) -> serde_json::Result<ReviewIn<'a>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let review = ReviewSeed { keep_raw, policy }.deserialize(&mut de)?;
    de.end()?;
    Ok(review)
}

struct ReviewIn<'a> {
    api_version: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    request: Option<Request<'a>>,
}

/// The request. The API server sends `resource`, `subResource` and `operation` before
/// `object`, so by the time the object comes it is known whether it is needed at all and how
/// much of it; should the fields come in another order, the object is kept raw and decoded
/// afterwards.
#[derive(Default)]
pub struct Request<'a> {
    pub uid: String,
    pub resource: Resource<'a>,
    /// The workload kind behind `resource`, as the policy in force names kinds.
    pub kind: Option<WorkloadKind>,
    seen_resource: bool,
    pub sub_resource: Option<Cow<'a, str>>,
    pub operation: Cow<'a, str>,
    seen_operation: bool,
    pub namespace: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub dry_run: Option<bool>,
    pub object: Embedded<'a>,
    pub old_object: Embedded<'a>,
    /// Set when the body is read a second time with its objects kept raw.
    keep_raw: bool,
}

/// `request.object` or `oldObject`.
#[derive(Default)]
pub enum Embedded<'a> {
    #[default]
    Absent,
    /// Not needed: skipped without building anything.
    Skipped,
    /// Came before the fields that say whether it is needed, or could not be decoded in one
    /// pass.
    Raw(&'a RawValue),
    Decoded(prune::Decoded<'a>),
}

/// How much of an embedded object to decode.
#[derive(Clone, Copy)]
enum Want {
    Unknown,
    Nothing,
    /// Decoded as [`prune`] does: as a workload of the kind, or whole (`None`); on UPDATE
    /// with the pod template's raw text.
    Decode(Option<WorkloadKind>, bool),
}

/// What spreadguard judges at admission: workloads, their scale subresource, and the
/// objects that decide how many replicas a workload keeps (autoscalers, disruption budgets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// A workload's CREATE or UPDATE.
    Workload(WorkloadKind),
    /// An UPDATE of a workload's `scale` subresource (`kubectl scale`, an autoscaler): the
    /// object is an `autoscaling/v1` Scale.
    Scale(WorkloadKind),
    Autoscaler,
    DisruptionBudget,
}

impl Handled {
    /// The kind, as a metric label and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Handled::Workload(k) | Handled::Scale(k) => k.as_str(),
            Handled::Autoscaler => "HorizontalPodAutoscaler",
            Handled::DisruptionBudget => "PodDisruptionBudget",
        }
    }

    /// What the engine calls the object.
    pub fn subject(self) -> Subject {
        match self {
            Handled::Workload(kind) | Handled::Scale(kind) => Subject::Workload(kind),
            Handled::Autoscaler => Subject::Autoscaler,
            Handled::DisruptionBudget => Subject::DisruptionBudget,
        }
    }

    /// The workload kind to decode the object as, leaving out what no decision reads;
    /// `None` decodes it whole (autoscalers, budgets and Scales are small).
    pub fn prune_as(self) -> Option<WorkloadKind> {
        match self {
            Handled::Workload(k) => Some(k),
            Handled::Scale(_) | Handled::Autoscaler | Handled::DisruptionBudget => None,
        }
    }
}

impl Request<'_> {
    /// What spreadguard judges in this request, if anything.
    pub fn handled(&self) -> Option<Handled> {
        let sub = self.sub_resource.as_deref().unwrap_or_default();
        let write = matches!(&*self.operation, "CREATE" | "UPDATE");
        match self.kind {
            Some(kind) => match sub {
                "" if write => Some(Handled::Workload(kind)),
                "scale" if self.operation == "UPDATE" && kind != WorkloadKind::Pod => {
                    Some(Handled::Scale(kind))
                }
                _ => None,
            },
            None => self
                .resource
                .replica_setter()
                .filter(|_| sub.is_empty() && write),
        }
    }

    pub fn is_update(&self) -> bool {
        self.operation == "UPDATE"
    }

    fn want(&self, old: bool) -> Want {
        if !(self.seen_resource && self.seen_operation) || self.keep_raw {
            return Want::Unknown;
        }
        match self.handled() {
            None => Want::Nothing,
            Some(Handled::Scale(_)) => Want::Decode(None, false),
            Some(h) if self.is_update() => Want::Decode(h.prune_as(), true),
            Some(_) if old => Want::Nothing,
            Some(h) => Want::Decode(h.prune_as(), false),
        }
    }

    /// The operation as a metric label (a closed set).
    pub fn operation_label(&self) -> &'static str {
        match &*self.operation {
            "CREATE" => "CREATE",
            "UPDATE" => "UPDATE",
            "DELETE" => "DELETE",
            "CONNECT" => "CONNECT",
            _ => "other",
        }
    }
}

impl<'a> Embedded<'a> {
    /// The object decoded: `None` when absent or null. A raw object is decoded as a
    /// `kind` workload (`None`: whole), on UPDATE (`template`) with its template's raw text;
    /// it is decoded so already when the request said in time what it needs.
    pub fn decode(
        self,
        kind: Option<WorkloadKind>,
        template: bool,
    ) -> serde_json::Result<Option<prune::Decoded<'a>>> {
        let decoded = match self {
            Embedded::Absent | Embedded::Skipped => return Ok(None),
            Embedded::Decoded(d) => d,
            Embedded::Raw(raw) => prune::parse_keeping(raw.get(), kind, template)?,
        };
        Ok(Some(decoded).filter(|d| d.too_large || !d.value.is_null()))
    }
}

#[derive(Default, Deserialize)]
pub struct Resource<'a> {
    #[serde(borrow, default)]
    pub group: Cow<'a, str>,
    #[serde(borrow, default)]
    pub version: Cow<'a, str>,
    #[serde(borrow, default)]
    pub resource: Cow<'a, str>,
}

impl Resource<'_> {
    /// The workload kind behind a resource spreadguard judges.
    pub fn workload_kind(&self, policy: &Policy) -> Option<WorkloadKind> {
        WorkloadKind::from_resource(&self.group, &self.version, &self.resource, policy)
    }

    /// The objects behind a resource that decide how many replicas a workload keeps: an
    /// autoscaler (`autoscaling/v1` and `v2` carry the fields read alike) or a disruption
    /// budget.
    pub fn replica_setter(&self) -> Option<Handled> {
        match (&*self.group, &*self.version, &*self.resource) {
            ("autoscaling", "v1" | "v2", "horizontalpodautoscalers") => Some(Handled::Autoscaler),
            ("policy", "v1", "poddisruptionbudgets") => Some(Handled::DisruptionBudget),
            _ => None,
        }
    }
}

// === decoding ===

/// A string borrowed from the body when it has no escapes.
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum ReviewField {
    ApiVersion,
    Kind,
    Request,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum RequestField {
    Uid,
    Resource,
    SubResource,
    Operation,
    Namespace,
    Name,
    DryRun,
    Object,
    OldObject,
    #[serde(other)]
    Other,
}

/// Decodes the review; `keep_raw` and the policy (which names the kinds) are passed down to
/// the request.
struct ReviewSeed<'p> {
    keep_raw: bool,
    policy: &'p Policy,
}

impl<'de> DeserializeSeed<'de> for ReviewSeed<'_> {
    type Value = ReviewIn<'de>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ReviewSeed<'_> {
    type Value = ReviewIn<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an AdmissionReview")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut review = ReviewIn {
            api_version: None,
            kind: None,
            request: None,
        };
        let mut seen_request = false;
        while let Some(field) = map.next_key::<ReviewField>()? {
            match field {
                ReviewField::ApiVersion => {
                    review.api_version = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0)
                }
                ReviewField::Kind => {
                    review.kind = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0)
                }
                // Two requests in one review: which one would the API server mean?
                ReviewField::Request if seen_request => {
                    return Err(serde::de::Error::duplicate_field("request"));
                }
                ReviewField::Request => {
                    seen_request = true;
                    review.request = map.next_value_seed(OptionalRequest {
                        keep_raw: self.keep_raw,
                        policy: self.policy,
                    })?
                }
                ReviewField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(review)
    }
}

/// `request`, which may be `null`.
struct OptionalRequest<'p> {
    keep_raw: bool,
    policy: &'p Policy,
}

impl<'de> DeserializeSeed<'de> for OptionalRequest<'_> {
    type Value = Option<Request<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptionalRequest<'_> {
    type Value = Option<Request<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an admission request")
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(RequestVisitor {
            keep_raw: self.keep_raw,
            policy: self.policy,
            _body: PhantomData,
        })
        .map(Some)
    }
}

struct RequestVisitor<'a, 'p> {
    keep_raw: bool,
    policy: &'p Policy,
    _body: PhantomData<&'a ()>,
}

impl<'de> Visitor<'de> for RequestVisitor<'de, '_> {
    type Value = Request<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an admission request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut r = Request {
            keep_raw: self.keep_raw,
            ..Request::default()
        };
        while let Some(field) = map.next_key::<RequestField>()? {
            match field {
                RequestField::Uid => {
                    r.uid = map.next_value::<Option<String>>()?.unwrap_or_default()
                }
                RequestField::Resource => {
                    r.resource = map
                        .next_value::<Option<Resource<'de>>>()?
                        .unwrap_or_default();
                    r.kind = r.resource.workload_kind(self.policy);
                    r.seen_resource = true;
                }
                RequestField::SubResource => {
                    r.sub_resource = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0)
                }
                RequestField::Operation => {
                    r.operation = map
                        .next_value::<Option<Str<'de>>>()?
                        .map_or(Cow::Borrowed(""), |s| s.0);
                    r.seen_operation = true;
                }
                RequestField::Namespace => {
                    r.namespace = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0)
                }
                RequestField::Name => r.name = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0),
                RequestField::DryRun => r.dry_run = map.next_value()?,
                RequestField::Object => {
                    r.object = map.next_value_seed(EmbeddedSeed(r.want(false)))?
                }
                RequestField::OldObject => {
                    r.old_object = map.next_value_seed(EmbeddedSeed(r.want(true)))?
                }
                RequestField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

struct EmbeddedSeed(Want);

impl<'de> DeserializeSeed<'de> for EmbeddedSeed {
    type Value = Embedded<'de>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Embedded<'de>, D::Error> {
        Ok(match self.0 {
            Want::Unknown => Embedded::Raw(<&'de RawValue>::deserialize(de)?),
            Want::Nothing => {
                IgnoredAny::deserialize(de)?;
                Embedded::Skipped
            }
            Want::Decode(kind, template) => {
                Embedded::Decoded(prune::Seed::new(kind, template).deserialize(de)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_map_to_workload_kinds() {
        let r = |g: &'static str, v: &'static str, res: &'static str| Resource {
            group: g.into(),
            version: v.into(),
            resource: res.into(),
        };
        let p = Policy::default();
        assert_eq!(
            r("apps", "v1", "deployments").workload_kind(&p),
            Some(WorkloadKind::Deployment)
        );
        assert_eq!(
            r("", "v1", "pods").workload_kind(&p),
            Some(WorkloadKind::Pod)
        );
        assert_eq!(r("", "v1", "configmaps").workload_kind(&p), None);
        assert_eq!(
            r("autoscaling", "v2", "horizontalpodautoscalers").replica_setter(),
            Some(Handled::Autoscaler)
        );
        assert_eq!(
            r("autoscaling", "v1", "horizontalpodautoscalers").replica_setter(),
            Some(Handled::Autoscaler)
        );
        assert_eq!(
            r("policy", "v1", "poddisruptionbudgets").replica_setter(),
            Some(Handled::DisruptionBudget)
        );
        assert_eq!(
            r("policy", "v1beta1", "poddisruptionbudgets").replica_setter(),
            None
        );
        assert_eq!(r("apps", "v1beta2", "deployments").workload_kind(&p), None);
        assert_eq!(
            r("argoproj.io", "v1alpha1", "rollouts").workload_kind(&p),
            Some(WorkloadKind::Rollout)
        );
        assert_eq!(
            r("apps.kruise.io", "v1beta1", "statefulsets").workload_kind(&p),
            Some(WorkloadKind::KruiseStatefulSet)
        );
        let declared = Policy::from_yaml(
            "workloadKinds:\n- {group: example.com, version: v1, kind: Widget, resource: widgets, replicas: /spec/size, template: /spec/podTemplate}\n",
        )
        .unwrap();
        assert_eq!(
            r("example.com", "v1", "widgets").workload_kind(&declared),
            Some(WorkloadKind::Custom(0))
        );
        assert_eq!(r("example.com", "v1", "widgets").workload_kind(&p), None);
    }

    #[test]
    fn scale_updates_are_handled_for_scalable_kinds() {
        let p = Policy::default();
        let body = |res: &str, op: &str| {
            format!(
                r#"{{"request":{{"uid":"u","operation":"{op}","subResource":"scale","resource":{{"group":"apps","version":"v1","resource":"{res}"}},"object":{{"spec":{{"replicas":1}}}}}}}}"#
            )
        };
        for (res, op, want) in [
            (
                "deployments",
                "UPDATE",
                Some(Handled::Scale(WorkloadKind::Deployment)),
            ),
            (
                "statefulsets",
                "UPDATE",
                Some(Handled::Scale(WorkloadKind::StatefulSet)),
            ),
            (
                "replicasets",
                "UPDATE",
                Some(Handled::Scale(WorkloadKind::ReplicaSet)),
            ),
            ("deployments", "CREATE", None),
        ] {
            let b = body(res, op);
            let review = decode(b.as_bytes(), &p).unwrap();
            assert_eq!(review.request.handled(), want, "{res} {op}");
        }
    }

    #[test]
    fn objects_before_the_routing_fields_are_kept_raw() {
        let body = br#"{"request":{"object":{"kind":"Deployment"},"uid":"u","operation":"CREATE","resource":{"group":"apps","version":"v1","resource":"deployments"}}}"#;
        let review = decode(body, &Policy::default()).unwrap();
        assert!(matches!(review.request.object, Embedded::Raw(_)));
        assert_eq!(
            review.request.handled(),
            Some(Handled::Workload(WorkloadKind::Deployment))
        );
    }

    #[test]
    fn a_bad_object_does_not_fail_the_envelope() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let body = format!(
            r#"{{"request":{{"uid":"u","operation":"CREATE","resource":{{"group":"apps","version":"v1","resource":"deployments"}},"object":{deep}}}}}"#
        );
        let review = decode(body.as_bytes(), &Policy::default()).unwrap();
        let Embedded::Raw(_) = review.request.object else {
            panic!("kept raw for the judge to report");
        };
        assert!(decode(b"{\"request\":", &Policy::default()).is_err());
    }
}
