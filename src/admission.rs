//! AdmissionReview in, AdmissionReview out: the webhook's contract with the API server.
//!
//! The envelope is decoded only as far as routing needs (uid, kind, resource, subresource,
//! operation, namespace, dry-run), in one pass over the body: requests spreadguard does not
//! handle are answered without building their object, and a workload is decoded as raw JSON
//! (`serde_json::Value`, never a typed struct), leaving out on CREATE the parts no decision
//! reads (see [`prune`]).
//!
//! Mode handling lives here, not in the engine: the engine always says what it thinks, and
//! this module decides whether that becomes a patch, a denial, a warning or an audit
//! annotation.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use json_patch::PatchOperation;
use kube::core::Status;
use kube::core::admission::AdmissionResponse;
use kube::core::response::StatusSummary;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::engine::{self, Decision, Finding, Input, Severity, Subject, Topology, WorkloadKind};
use crate::metrics::{DecisionLabel, Endpoint, Metrics, RequestLabels};
use crate::policy::{Mode, Policy};

/// Warnings longer than this are cut (the API server may truncate or drop longer ones).
pub const MAX_WARNING_CHARS: usize = 120;
/// Audit annotation with every finding of a judged object, in full.
pub const VIOLATIONS_ANNOTATION: &str = "violations";
/// Audit annotation with the JSON patch audit mode did not apply.
pub const WOULD_PATCH_ANNOTATION: &str = "would-patch";
/// Audit annotation naming what `/mutate` injected.
pub const INJECTED_ANNOTATION: &str = "injected";

const V1: &str = "admission.k8s.io/v1";
const V1BETA1: &str = "admission.k8s.io/v1beta1";

/// The engine entry point; a seam so that tests can make it fail.
pub type Decider = fn(Input<'_>, &Topology, &Policy) -> Decision;

/// Labels of a namespace, for mode resolution. The cluster cache implements this; without
/// one every namespace's labels are unknown (`None`), and the API server's
/// `namespaceSelector` is trusted to have done the opt-in.
pub trait NamespaceLabels: Send + Sync + 'static {
    fn labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>>;
}

/// No namespace cache: labels are unknown.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnknownNamespaces;

impl NamespaceLabels for UnknownNamespaces {
    fn labels(&self, _: &str) -> Option<Arc<BTreeMap<String, String>>> {
        None
    }
}

impl<F> NamespaceLabels for F
where
    F: Fn(&str) -> Option<Arc<BTreeMap<String, String>>> + Send + Sync + 'static,
{
    fn labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>> {
        self(namespace)
    }
}

/// Everything one review is judged against, borrowed for the request's duration.
pub struct Context<'a> {
    pub policy: &'a Policy,
    pub topology: &'a Topology,
    pub namespaces: &'a dyn NamespaceLabels,
    pub metrics: &'a Metrics,
    pub decide: Decider,
}

/// A body that is not an AdmissionReview. Answered with HTTP 400 and a JSON error; anything
/// else gets HTTP 200 and a review.
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    #[error("not an AdmissionReview: {0}")]
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

// === the envelope ===

#[derive(Deserialize)]
struct ReviewIn<'a> {
    #[serde(rename = "apiVersion", borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    request: Option<RequestIn<'a>>,
}

/// The request, decoded in one pass over the body. The API server sends `resource`,
/// `subResource` and `operation` before `object`, so by the time the object comes it is known
/// whether it is needed at all and how much of it; should the fields come in another order,
/// the object is kept raw and decoded afterwards.
#[derive(Default)]
struct RequestIn<'a> {
    uid: String,
    resource: Resource<'a>,
    seen_resource: bool,
    sub_resource: Option<Cow<'a, str>>,
    operation: Cow<'a, str>,
    seen_operation: bool,
    namespace: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    dry_run: Option<bool>,
    object: Embedded<'a>,
    old_object: Embedded<'a>,
}

/// `request.object` or `oldObject`.
#[derive(Default)]
enum Embedded<'a> {
    #[default]
    Absent,
    /// Not needed: skipped without building anything.
    Skipped,
    /// Came before the fields that say whether it is needed.
    Raw(&'a RawValue),
    Decoded(Value),
}

thread_local! {
    /// Set while a body is decoded a second time with its objects kept raw (see [`review`]).
    static KEEP_RAW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How much of an embedded object to decode.
#[derive(Clone, Copy)]
enum Want {
    Unknown,
    Nothing,
    Whole,
    Pruned(WorkloadKind),
}

impl RequestIn<'_> {
    /// The workload kind, when spreadguard judges this request.
    fn handled(&self) -> Option<WorkloadKind> {
        let kind = self.resource.workload_kind()?;
        let plain = self.sub_resource.as_deref().is_none_or(str::is_empty);
        (plain && matches!(&*self.operation, "CREATE" | "UPDATE")).then_some(kind)
    }

    fn want(&self, old: bool) -> Want {
        if !(self.seen_resource && self.seen_operation) || KEEP_RAW.get() {
            return Want::Unknown;
        }
        match self.handled() {
            None => Want::Nothing,
            Some(_) if self.operation == "UPDATE" => Want::Whole,
            Some(_) if old => Want::Nothing,
            Some(kind) => Want::Pruned(kind),
        }
    }
}

/// A string borrowed from the body when it has no escapes.
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
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

impl<'de: 'a, 'a> Deserialize<'de> for RequestIn<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_map(RequestVisitor(std::marker::PhantomData))
    }
}

struct RequestVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for RequestVisitor<'a> {
    type Value = RequestIn<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an admission request")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut r = RequestIn::default();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Uid => r.uid = map.next_value::<Option<String>>()?.unwrap_or_default(),
                Field::Resource => {
                    r.resource = map
                        .next_value::<Option<Resource<'de>>>()?
                        .unwrap_or_default();
                    r.seen_resource = true;
                }
                Field::SubResource => {
                    r.sub_resource = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0)
                }
                Field::Operation => {
                    r.operation = map
                        .next_value::<Option<Str<'de>>>()?
                        .map_or(Cow::Borrowed(""), |s| s.0);
                    r.seen_operation = true;
                }
                Field::Namespace => {
                    r.namespace = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0)
                }
                Field::Name => r.name = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0),
                Field::DryRun => r.dry_run = map.next_value()?,
                Field::Object => r.object = map.next_value_seed(EmbeddedSeed(r.want(false)))?,
                Field::OldObject => {
                    r.old_object = map.next_value_seed(EmbeddedSeed(r.want(true)))?
                }
                Field::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

struct EmbeddedSeed(Want);

impl<'de> serde::de::DeserializeSeed<'de> for EmbeddedSeed {
    type Value = Embedded<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Embedded<'de>, D::Error> {
        Ok(match self.0 {
            Want::Unknown => Embedded::Raw(<&'de RawValue>::deserialize(de)?),
            Want::Nothing => {
                serde::de::IgnoredAny::deserialize(de)?;
                Embedded::Skipped
            }
            Want::Whole => Embedded::Decoded(Value::deserialize(de)?),
            Want::Pruned(kind) => Embedded::Decoded(prune::seed(kind).deserialize(de)?),
        })
    }
}

#[derive(Default, Deserialize)]
struct Resource<'a> {
    #[serde(borrow, default)]
    group: Cow<'a, str>,
    #[serde(borrow, default)]
    version: Cow<'a, str>,
    #[serde(borrow, default)]
    resource: Cow<'a, str>,
}

impl Resource<'_> {
    /// The workload kind behind a resource spreadguard judges.
    fn workload_kind(&self) -> Option<WorkloadKind> {
        match (&*self.group, &*self.version, &*self.resource) {
            ("apps", "v1", "deployments") => Some(WorkloadKind::Deployment),
            ("apps", "v1", "statefulsets") => Some(WorkloadKind::StatefulSet),
            ("apps", "v1", "replicasets") => Some(WorkloadKind::ReplicaSet),
            ("", "v1", "pods") => Some(WorkloadKind::Pod),
            _ => None,
        }
    }
}

fn operation_label(op: &str) -> &'static str {
    match op {
        "CREATE" => "CREATE",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

// === the review ===

/// Answers one AdmissionReview body: `Ok` is the serialised review to send with HTTP 200.
pub fn review(endpoint: Endpoint, body: &[u8], ctx: &Context<'_>) -> Result<Vec<u8>, BadReview> {
    let started = Instant::now();
    let review: ReviewIn<'_> = match serde_json::from_slice(body) {
        Ok(review) => review,
        // In one pass, an object that does not decode (nested too deep, a bad escape, a number
        // out of range) fails the whole body like a broken envelope would. Read the objects
        // raw to tell the two apart: only a broken envelope is refused (400); a bad object is
        // answered, with HA000, when it is judged.
        Err(_) => {
            KEEP_RAW.set(true);
            let again = serde_json::from_slice(body);
            KEEP_RAW.set(false);
            again.map_err(BadReview::Json)?
        }
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
    let mut request = review.request.ok_or(BadReview::NoRequest)?;
    if request.uid.is_empty() {
        return Err(BadReview::NoUid);
    }

    let kind = request.resource.workload_kind();
    let operation = operation_label(&request.operation);
    let dry_run = request.dry_run.unwrap_or(false);
    let handled = request.handled();

    let mut labels = RequestLabels {
        endpoint,
        kind: kind.map_or("other", WorkloadKind::as_str),
        operation,
        decision: DecisionLabel::allowed,
        mode: "none",
        dry_run,
    };
    let mut verdict = if let Some(kind) = handled {
        judge(endpoint, kind, &mut request, ctx, &mut labels)
    } else {
        Verdict::allow()
    };
    let detail = std::mem::take(&mut verdict.detail);
    let out = verdict.encode(api_version, &request.uid);
    let elapsed = started.elapsed();
    ctx.metrics.request(&labels, elapsed);
    log(&labels, &request, elapsed, &detail);
    Ok(out)
}

/// One line per request: info when something was patched, denied or reported, debug for a
/// plain allow (not even formatted when debug is off).
fn log(
    labels: &RequestLabels,
    request: &RequestIn<'_>,
    elapsed: std::time::Duration,
    detail: &str,
) {
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let name = request.name.as_deref().unwrap_or_default();
    let micros = elapsed.as_micros() as u64;
    let decision = match labels.decision {
        DecisionLabel::allowed => "allowed",
        DecisionLabel::patched => "patched",
        DecisionLabel::denied => "denied",
        DecisionLabel::error => "error",
    };
    if labels.decision == DecisionLabel::allowed && detail.is_empty() {
        tracing::debug!(
            uid = %request.uid, endpoint = ?labels.endpoint, kind = labels.kind, operation = labels.operation,
            namespace, name, decision, mode = labels.mode, dry_run = labels.dry_run, micros,
            "admission"
        );
    } else {
        tracing::info!(
            uid = %request.uid, endpoint = ?labels.endpoint, kind = labels.kind, operation = labels.operation,
            namespace, name, decision, mode = labels.mode, dry_run = labels.dry_run, micros,
            detail, "admission"
        );
    }
}

/// Runs the engine and maps its decision through the mode.
fn judge(
    endpoint: Endpoint,
    kind: WorkloadKind,
    request: &mut RequestIn<'_>,
    ctx: &Context<'_>,
    labels: &mut RequestLabels,
) -> Verdict {
    let policy = ctx.policy;
    let namespace = request.namespace.as_deref().filter(|ns| !ns.is_empty());
    let ns_labels = namespace.and_then(|ns| ctx.namespaces.labels(ns));

    // Without workload overrides the mode is known before the object is decoded.
    if !policy.allow_workload_override
        && policy.resolve_mode(namespace, ns_labels.as_deref(), None) == Mode::Off
    {
        labels.mode = Mode::Off.as_str();
        return Verdict::allow();
    }

    // On UPDATE the engine compares the whole pod template (an image change is a rollout), so
    // both objects are read in full; a CREATE is read without what no decision reads.
    let update = request.operation == "UPDATE";
    let decode = |embedded: Embedded<'_>, prune: bool| -> Result<Option<Value>, String> {
        match embedded {
            Embedded::Absent | Embedded::Skipped => Ok(None),
            Embedded::Decoded(Value::Null) => Ok(None),
            Embedded::Decoded(v) => Ok(Some(v)),
            Embedded::Raw(raw) if prune => prune::parse(raw.get(), kind)
                .map(|v| Some(v).filter(|v| !v.is_null()))
                .map_err(|e| e.to_string()),
            Embedded::Raw(raw) => serde_json::from_str::<Value>(raw.get())
                .map(|v| Some(v).filter(|v| !v.is_null()))
                .map_err(|e| e.to_string()),
        }
    };
    let object = match decode(std::mem::take(&mut request.object), !update) {
        Ok(Some(object)) => object,
        Ok(None) => {
            return Verdict::allow().warn(format!(
                "{}: not checked: the request carries no object",
                engine::RuleId::HA000
            ));
        }
        Err(e) => return Verdict::allow().warn(format!("HA000: not checked: {e}")),
    };
    let old = if update {
        decode(std::mem::take(&mut request.old_object), false)
            .ok()
            .flatten()
    } else {
        None
    };
    let annotations =
        engine::workload::at(&object, &["metadata", "annotations"]).and_then(Value::as_object);
    let mode = policy.resolve_mode(namespace, ns_labels.as_deref(), annotations);
    labels.mode = mode.as_str();
    if mode == Mode::Off {
        return Verdict::allow();
    }

    let decide = ctx.decide;
    let input = Input::new(&object).with_old(old.as_ref());
    let decision = match catch_unwind(AssertUnwindSafe(|| decide(input, ctx.topology, policy))) {
        Ok(d) => d,
        Err(panic) => {
            ctx.metrics.engine_panic();
            labels.decision = DecisionLabel::error;
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(uid = %request.uid, panic = %what, fail_open = policy.fail_open, "the decision engine panicked");
            return if policy.fail_open {
                Verdict::allow().warn(
                    "spreadguard could not evaluate this object (internal error); allowed because failOpen is true".to_owned(),
                )
            } else {
                Verdict::deny(
                    500,
                    "spreadguard could not evaluate this object (internal error) and failOpen is false".to_owned(),
                )
            };
        }
    };
    if matches!(decision.subject, Subject::Skipped(_)) {
        return Verdict::allow();
    }

    let verdict = match endpoint {
        Endpoint::mutate => mutate_verdict(mode, decision, ctx, labels.dry_run),
        Endpoint::validate => validate_verdict(mode, &decision, ctx),
    };
    labels.decision = if !verdict.allowed {
        DecisionLabel::denied
    } else if verdict.patch.is_some() {
        DecisionLabel::patched
    } else {
        DecisionLabel::allowed
    };
    verdict
}

fn mutate_verdict(mode: Mode, decision: Decision, ctx: &Context<'_>, dry_run: bool) -> Verdict {
    if decision.patch.is_empty() {
        return Verdict::allow();
    }
    let items = decision
        .injected
        .iter()
        .map(|i| i.as_str())
        .collect::<Vec<_>>()
        .join(",");
    match mode {
        Mode::Enforce | Mode::Warn => {
            if !dry_run {
                ctx.metrics.injections(&decision.injected);
            }
            let mut v = Verdict::allow();
            if !items.is_empty() {
                v.detail = format!("injected {items}");
                v.audit.insert(INJECTED_ANNOTATION.to_owned(), items);
            }
            v.patch = Some(decision.patch);
            v
        }
        Mode::Audit => {
            let mut v = Verdict::allow();
            if decision.injected.is_empty() {
                v = v.warn(format!(
                    "audit mode: would patch {} field(s)",
                    decision.patch.len()
                ));
            }
            for item in &decision.injected {
                v = v.warn(format!("audit mode: would inject {}", item.as_str()));
            }
            let patch = serde_json::to_string(&decision.patch).unwrap_or_default();
            v.detail = format!("would patch {patch}");
            v.audit.insert(WOULD_PATCH_ANNOTATION.to_owned(), patch);
            v
        }
        Mode::Off => Verdict::allow(),
    }
}

fn validate_verdict(mode: Mode, decision: &Decision, ctx: &Context<'_>) -> Verdict {
    let reported: Vec<&Finding> = decision
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warn)
        .collect();
    if decision.findings.is_empty() {
        return Verdict::allow();
    }
    ctx.metrics.findings(&decision.findings);
    let mut v = Verdict::allow();
    if !reported.is_empty() {
        let full: Vec<String> = reported.iter().map(|f| f.to_string()).collect();
        v.detail = full.join("; ");
        v.audit.insert(
            VIOLATIONS_ANNOTATION.to_owned(),
            serde_json::to_string(&full).unwrap_or_default(),
        );
    }
    match mode {
        Mode::Enforce => {
            for f in reported.iter().filter(|f| f.severity == Severity::Warn) {
                v = v.warn(format!("{}: {}", f.rule, f.message));
            }
            if decision.denies() {
                let mut message = String::from("spreadguard: ");
                for (i, f) in reported
                    .iter()
                    .filter(|f| f.severity == Severity::Deny)
                    .enumerate()
                {
                    if i > 0 {
                        message.push_str("; ");
                    }
                    let _ = write!(message, "{}: {}", f.rule, f.message);
                }
                v.allowed = false;
                v.code = 403;
                v.message = message;
            }
        }
        Mode::Warn => {
            for f in &reported {
                v = v.warn(format!("{}: {}", f.rule, f.message));
            }
        }
        Mode::Audit => {
            for f in &reported {
                v = match f.severity {
                    Severity::Deny => v.warn(format!("would deny: {}: {}", f.rule, f.message)),
                    _ => v.warn(format!("{}: {}", f.rule, f.message)),
                };
            }
        }
        Mode::Off => return Verdict::allow(),
    }
    v
}

// === reading the object ===

/// Decodes a workload without the parts no decision reads.
///
/// Most of a workload's bytes are containers (images, env, probes), volumes, managed fields
/// and status; building a `Value` for them is most of the cost of a request. The engine only
/// reads metadata and the scheduling fields of the pod spec, and patches are computed against
/// the paths it reads, so leaving those subtrees out changes no decision and no patch on
/// CREATE (`tests/server_router.rs` checks this on fully populated objects). UPDATEs are read
/// in full, because whether the pod template changed decides whether to mutate at all. The object is never written back: the API server
/// applies the patch to the object it holds, every field intact.
pub mod prune {
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde_json::{Map, Value};

    use crate::engine::WorkloadKind;

    /// Subtrees skipped, by where they sit.
    const ROOT: &[&str] = &["status"];
    const METADATA: &[&str] = &["managedFields"];
    const POD_SPEC: &[&str] = &[
        "containers",
        "initContainers",
        "ephemeralContainers",
        "volumes",
        "resourceClaims",
    ];

    #[derive(Clone, Copy)]
    enum At {
        Root(WorkloadKind),
        Metadata,
        /// A controller's spec: its `template` leads to the pod spec.
        Spec,
        Template,
        PodSpec,
    }

    impl At {
        fn skipped(self) -> &'static [&'static str] {
            match self {
                At::Root(_) => ROOT,
                At::Metadata => METADATA,
                At::PodSpec => POD_SPEC,
                At::Spec | At::Template => &[],
            }
        }

        fn child(self, key: &str) -> Option<At> {
            match (self, key) {
                (At::Root(_), "metadata") => Some(At::Metadata),
                (At::Root(WorkloadKind::Pod), "spec") => Some(At::PodSpec),
                (At::Root(_), "spec") => Some(At::Spec),
                (At::Spec, "template") => Some(At::Template),
                (At::Template, "spec") => Some(At::PodSpec),
                _ => None,
            }
        }
    }

    /// Parses `json` as a `kind` workload, leaving out what no decision reads.
    pub fn parse(json: &str, kind: WorkloadKind) -> serde_json::Result<Value> {
        let mut de = serde_json::Deserializer::from_str(json);
        let value = seed(kind).deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    /// The same, as a seed for decoding inside a larger document.
    pub(super) fn seed(kind: WorkloadKind) -> Seed {
        Seed(At::Root(kind))
    }

    pub(super) struct Seed(At);

    impl<'de> DeserializeSeed<'de> for Seed {
        type Value = Value;

        fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
            de.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Seed {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if self.0.skipped().contains(&key.as_str()) {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                let value = match self.0.child(&key) {
                    Some(at) => map.next_value_seed(Seed(at))?,
                    None => map.next_value::<Value>()?,
                };
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }

        // Anything but a map where a map is expected is kept as is, for the engine to report.
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
            serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
    }
}

// === the answer ===

/// What the response says, before it is encoded.
struct Verdict {
    allowed: bool,
    code: u16,
    message: String,
    patch: Option<Vec<PatchOperation>>,
    warnings: Vec<String>,
    audit: HashMap<String, String>,
    /// Full text of what was found or injected, for the log.
    detail: String,
}

impl Verdict {
    fn allow() -> Self {
        Verdict {
            allowed: true,
            code: 0,
            message: String::new(),
            patch: None,
            warnings: Vec::new(),
            audit: HashMap::new(),
            detail: String::new(),
        }
    }

    fn deny(code: u16, message: String) -> Self {
        Verdict {
            allowed: false,
            code,
            message,
            ..Verdict::allow()
        }
    }

    fn warn(mut self, text: String) -> Self {
        self.warnings.push(truncate(text));
        self
    }

    /// The response review. kube's `AdmissionResponse` is used for its shape, but it encodes
    /// `patch` as a list of numbers, which the API server (a Go `[]byte`) rejects: the patch
    /// is put on the wire as a base64 string instead.
    fn encode(self, api_version: &str, uid: &str) -> Vec<u8> {
        let mut response = AdmissionResponse::invalid("");
        response.types.api_version = api_version.to_owned();
        response.uid = uid.to_owned();
        response.allowed = true;
        response.result = Status::default();
        if !self.allowed {
            response.result = Status {
                status: Some(StatusSummary::Failure),
                code: self.code,
                reason: if self.code == 403 {
                    "Forbidden".to_owned()
                } else {
                    "InternalError".to_owned()
                },
                ..Status::default()
            };
            response = response.deny(self.message);
        }
        response.warnings = (!self.warnings.is_empty()).then_some(self.warnings);
        response.audit_annotations = self.audit;

        let mut patch_b64 = None;
        if let Some(ops) = self.patch {
            // `with_patch` sets the private `patchType`; its byte list is then replaced.
            match response.with_patch(json_patch::Patch(ops)) {
                Ok(mut r) => {
                    patch_b64 = r
                        .patch
                        .take()
                        .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes));
                    response = r;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not encode a patch");
                    response = AdmissionResponse::invalid("could not encode the patch");
                }
            }
        }
        let review = response.into_review();
        let mut out = serde_json::to_vec(&review).expect("an AdmissionReview always serialises");
        if let Some(b64) = patch_b64 {
            // `response` is the review's last field, so its object closes right before the
            // review's: the patch goes in there, as a string.
            assert!(out.ends_with(b"}}"), "a review ends with its response");
            out.truncate(out.len() - 2);
            out.reserve(b64.len() + 14);
            out.extend_from_slice(b",\"patch\":\"");
            out.extend_from_slice(b64.as_bytes());
            out.extend_from_slice(b"\"}}");
        }
        out
    }
}

/// Cuts a warning to [`MAX_WARNING_CHARS`] characters, ending it with an ellipsis.
pub fn truncate(mut text: String) -> String {
    if text.chars().count() <= MAX_WARNING_CHARS {
        return text;
    }
    let cut = text
        .char_indices()
        .nth(MAX_WARNING_CHARS - 1)
        .map_or(text.len(), |(i, _)| i);
    text.truncate(cut);
    text.push('…');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_cut_at_120_characters() {
        let short = "HA001: 1 replica".to_owned();
        assert_eq!(truncate(short.clone()), short);
        let long = "é".repeat(300);
        let cut = truncate(long);
        assert_eq!(cut.chars().count(), MAX_WARNING_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn resources_map_to_workload_kinds() {
        let r = |g: &'static str, v: &'static str, res: &'static str| Resource {
            group: g.into(),
            version: v.into(),
            resource: res.into(),
        };
        assert_eq!(
            r("apps", "v1", "deployments").workload_kind(),
            Some(WorkloadKind::Deployment)
        );
        assert_eq!(r("", "v1", "pods").workload_kind(), Some(WorkloadKind::Pod));
        assert_eq!(r("", "v1", "configmaps").workload_kind(), None);
        assert_eq!(r("apps", "v1beta2", "deployments").workload_kind(), None);
    }
}
