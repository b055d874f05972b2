{{/*
Names. Kubernetes names are limited to 63 characters (DNS labels).
*/}}
{{- define "spreadguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, with the chart name appended unless the release
name already contains it (`helm install spreadguard ...` gives "spreadguard").
*/}}
{{- define "spreadguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "spreadguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable across upgrades (a Deployment's selector is immutable).
*/}}
{{- define "spreadguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spreadguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "spreadguard.labels" -}}
helm.sh/chart: {{ include "spreadguard.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{ include "spreadguard.podLabels" . }}
{{- end }}

{{/*
Labels of the webhook pods: no chart version or managed-by, so that a chart
release that changes nothing in the pod does not roll the pods.
*/}}
{{- define "spreadguard.podLabels" -}}
{{ include "spreadguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/part-of: spreadguard
{{- end }}

{{- define "spreadguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "spreadguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "spreadguard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The Secret the serving certificate lives in, in every certificate mode.
*/}}
{{- define "spreadguard.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "existingSecret" }}
{{- required "certificates.existingSecret.name is required when certificates.mode is existingSecret" .Values.certificates.existingSecret.name }}
{{- else }}
{{- printf "%s-tls" (include "spreadguard.fullname" .) }}
{{- end }}
{{- end }}

{{/*
DNS names the API server may use to reach the Service. It uses
<service>.<namespace>.svc; the others are for humans with curl.
*/}}
{{- define "spreadguard.dnsNames" -}}
{{- $svc := include "spreadguard.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/*
Namespaces the webhooks never intercept and the server treats as exempt:
the Kubernetes system namespaces, the release's own namespace (so a broken
spreadguard can never block its own repair), and policy.exemptNamespaces.
Returned as JSON; use with fromJsonArray.
*/}}
{{- define "spreadguard.exemptNamespaces" -}}
{{- $fixed := list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace -}}
{{- concat $fixed (default list .Values.policy.exemptNamespaces) | uniq | toJson }}
{{- end }}

{{/*
The policy file: values.policy with scope and exemptNamespaces filled in.
*/}}
{{- define "spreadguard.policy" -}}
{{- $policy := deepCopy .Values.policy -}}
{{- $_ := set $policy "scope" .Values.scope -}}
{{- $_ := set $policy "exemptNamespaces" (include "spreadguard.exemptNamespaces" . | fromJsonArray) -}}
{{- toYaml $policy }}
{{- end }}

{{/*
Certificate material for certificates.mode=helm, computed once per render and
shared by the Secret and both webhook configurations (they must agree).

An existing Secret (found with lookup) is reused so that upgrades keep the
CA the API server already trusts; a new CA and certificate are generated at
install, when the Secret is incomplete, or when certificates.helm.rotate is
set. `helm template` and --dry-run=client have no cluster, so lookup returns
nothing there and they show freshly generated material.

A rotation keeps the CA it replaces (Secret key previous-ca.crt) and the
webhooks trust both: the API server gets the new caBundle at once, but the
pods serve the old certificate until the kubelet refreshes the mounted Secret
(up to a minute or two). Upgrades within certificates.helm.keepPreviousCAMinutes
of the rotation (annotation spreadguard.io/previous-ca-kept-until) keep it;
the first upgrade after that drops it.

Returns a dict with base64-encoded ca, cert, key and previousCA (may be
empty), and previousUntil (RFC 3339, empty without a previous CA).
*/}}
{{- define "spreadguard.helmCerts" -}}
{{- if not (hasKey .Release "spreadguardCerts") }}
{{- $h := .Values.certificates.helm }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "spreadguard.tlsSecretName" .) | default dict }}
{{- $data := $existing.data | default dict }}
{{- $annotations := ($existing.metadata | default dict).annotations | default dict }}
{{- $complete := and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") }}
{{- $certs := dict "previousCA" "" "previousUntil" "" }}
{{- if and $complete (not $h.rotate) }}
{{- $_ := set $certs "ca" (index $data "ca.crt") }}
{{- $_ := set $certs "cert" (index $data "tls.crt") }}
{{- $_ := set $certs "key" (index $data "tls.key") }}
{{- $previous := index $data "previous-ca.crt" | default "" }}
{{- $until := index $annotations "spreadguard.io/previous-ca-kept-until" | default "" }}
{{- if and $previous $until (lt (now | unixEpoch | int64) (toDate "2006-01-02T15:04:05Z07:00" $until | unixEpoch | int64)) }}
{{- $_ := set $certs "previousCA" $previous }}
{{- $_ := set $certs "previousUntil" $until }}
{{- end }}
{{- else }}
{{- $days := int $h.validityDays }}
{{- $ca := genCA (printf "%s-ca" (include "spreadguard.fullname" .)) $days }}
{{- $dnsNames := include "spreadguard.dnsNames" . | fromJsonArray }}
{{- $cn := printf "%s.%s.svc" (include "spreadguard.fullname" .) .Release.Namespace }}
{{- $cert := genSignedCert $cn nil $dnsNames $days $ca }}
{{- $_ := set $certs "ca" ($ca.Cert | b64enc) }}
{{- $_ := set $certs "cert" ($cert.Cert | b64enc) }}
{{- $_ := set $certs "key" ($cert.Key | b64enc) }}
{{- if $complete }}
{{- $_ := set $certs "previousCA" (index $data "ca.crt") }}
{{- $_ := set $certs "previousUntil" (dateInZone "2006-01-02T15:04:05Z07:00" (now | dateModify (printf "+%dm" (int $h.keepPreviousCAMinutes))) "UTC") }}
{{- end }}
{{- end }}
{{- $_ := set .Release "spreadguardCerts" $certs }}
{{- end }}
{{- index .Release "spreadguardCerts" | toJson }}
{{- end }}

{{/*
The caBundle (base64 PEM) for certificates.mode helm or existingSecret.
certManager leaves it out: cainjector writes it. In helm mode it holds the
current CA, followed by the previous one while a rotation is under way.
*/}}
{{- define "spreadguard.caBundle" -}}
{{- if eq .Values.certificates.mode "helm" }}
{{- $certs := include "spreadguard.helmCerts" . | fromJson }}
{{- if $certs.previousCA }}
{{- printf "%s\n%s\n" ($certs.ca | b64dec | trim) ($certs.previousCA | b64dec | trim) | b64enc }}
{{- else }}
{{- $certs.ca }}
{{- end }}
{{- else if eq .Values.certificates.mode "existingSecret" }}
{{- $bundle := required "certificates.existingSecret.caBundle is required when certificates.mode is existingSecret" .Values.certificates.existingSecret.caBundle | trim }}
{{- if contains "-----BEGIN" $bundle }}
{{- printf "%s\n" $bundle | b64enc }}
{{- else }}
{{- $bundle }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Either webhook fails closed (failurePolicy Fail): "true" or empty.
*/}}
{{- define "spreadguard.failClosed" -}}
{{- if or (eq .Values.webhooks.mutating.failurePolicy "Fail") (eq .Values.webhooks.validating.failurePolicy "Fail") }}true{{ end }}
{{- end }}

{{/*
Whether the Helm of this version (a string such as v4.2.3) deletes the
webhook configurations first on uninstall: Helm 4 does (its UninstallOrder
starts with ValidatingWebhookConfiguration, then
MutatingWebhookConfiguration); Helm 3 sorts them, as kinds it does not know,
after everything else, so the Service and the pods go first. "true" or empty.
*/}}
{{- define "spreadguard.helmDeletesWebhooksFirst" -}}
{{- if semverCompare ">=4.0.0-0" . }}true{{ end }}
{{- end }}

{{/*
The PriorityClass of the webhook pods: priorityClassName "auto" means
system-cluster-critical when either webhook fails closed (every workload
change in the intercepted namespaces then depends on these pods), none
otherwise; "" means none; anything else is used as given.
*/}}
{{- define "spreadguard.priorityClassName" -}}
{{- if eq .Values.priorityClassName "auto" }}
{{- if include "spreadguard.failClosed" . }}system-cluster-critical{{ end }}
{{- else }}
{{- .Values.priorityClassName }}
{{- end }}
{{- end }}

{{/*
The workloads spreadguard judges and patches (apps/v1, Argo Rollouts,
OpenKruise CloneSets and Advanced StatefulSets, and the policy's workloadKinds),
on CREATE and UPDATE: what the mutating webhook intercepts. A rule for a resource the cluster does
not serve (no Argo Rollouts installed) matches nothing. With "scale" (the
validating webhook only), also UPDATEs of their scale subresource, which
`kubectl scale` and autoscalers use: a Scale carries replicas only, so there
is nothing to mutate, but minReplicas is judged. Status updates are never
sent. Call with (dict "root" $ "scale" true|false).
*/}}
{{- define "spreadguard.workloadRules" -}}
{{- $scale := .scale -}}
{{- $kinds := list
  (dict "group" "apps" "versions" (list "v1") "resources" (list "deployments" "statefulsets" "replicasets"))
  (dict "group" "" "versions" (list "v1") "resources" (list "pods") "noScale" true)
  (dict "group" "argoproj.io" "versions" (list "v1alpha1") "resources" (list "rollouts"))
  (dict "group" "apps.kruise.io" "versions" (list "v1alpha1") "resources" (list "clonesets"))
  (dict "group" "apps.kruise.io" "versions" (list "v1beta1" "v1alpha1") "resources" (list "statefulsets"))
-}}
{{- range .root.Values.policy.workloadKinds | default list }}
{{- $kinds = append $kinds (dict "group" (.group | default "") "versions" (list .version) "resources" (list .resource)) }}
{{- end }}
{{- range $kinds }}
- apiGroups: [{{ .group | quote }}]
  apiVersions: {{ .versions | toJson }}
  resources: {{ .resources | toJson }}
  operations: ["CREATE", "UPDATE"]
  scope: Namespaced
{{- if and $scale (not .noScale) }}
{{- $sub := list }}
{{- range .resources }}{{ $sub = append $sub (printf "%s/scale" .) }}{{ end }}
- apiGroups: [{{ .group | quote }}]
  apiVersions: {{ .versions | toJson }}
  resources: {{ $sub | toJson }}
  operations: ["UPDATE"]
  scope: Namespaced
{{- end }}
{{- end }}
{{- end }}

{{/*
Everything spreadguard judges: the workloads, and the HorizontalPodAutoscalers
(HA012) and PodDisruptionBudgets (HA013) that decide how many of their
replicas run. What the validating webhook intercepts and the opt-out label's
ValidatingAdmissionPolicy guards (a labelled HPA or PDB would skip its rules
too). The mutating webhook leaves HPAs and PDBs alone: it never patches them.
autoscaling/v1 requests reach the webhook converted to v2 (matchPolicy
Equivalent, the default).
Call with (dict "root" $ "scale" true|false), as spreadguard.workloadRules.
*/}}
{{- define "spreadguard.resourceRules" -}}
{{ include "spreadguard.workloadRules" . }}
- apiGroups: ["autoscaling"]
  apiVersions: ["v2"]
  resources: ["horizontalpodautoscalers"]
  operations: ["CREATE", "UPDATE"]
  scope: Namespaced
- apiGroups: ["policy"]
  apiVersions: ["v1"]
  resources: ["poddisruptionbudgets"]
  operations: ["CREATE", "UPDATE"]
  scope: Namespaced
{{- end }}

{{/*
The webhooks' objectSelector: objects labelled <optOutLabel>: "true" are
skipped when an opt-out label is configured (none by default), and
webhooks.extraObjectSelector is added to that. Empty: every object.
*/}}
{{- define "spreadguard.objectSelector" -}}
{{- $w := .Values.webhooks }}
{{- $extra := $w.extraObjectSelector | default dict }}
{{- $expressions := list }}
{{- if $w.optOutLabel }}
{{- $expressions = append $expressions (dict "key" $w.optOutLabel "operator" "NotIn" "values" (list "true")) }}
{{- end }}
{{- $expressions = concat $expressions ($extra.matchExpressions | default list) }}
{{- $selector := dict }}
{{- with $extra.matchLabels }}
{{- $_ := set $selector "matchLabels" . }}
{{- end }}
{{- with $expressions }}
{{- $_ := set $selector "matchExpressions" . }}
{{- end }}
{{- toYaml $selector }}
{{- end }}

{{/*
CEL: the ownerReference r is a controller reference to one of the given
kinds, each {apiGroup, kind} (apiGroup "" is the core group).
Call with a list of kinds.
*/}}
{{- define "spreadguard.celOwnerIsOneOf" -}}
{{- $terms := list }}
{{- range . }}
{{- if .apiGroup }}
{{- $terms = append $terms (printf "(r.kind == %q && r.apiVersion.startsWith(%q))" .kind (printf "%s/" .apiGroup)) }}
{{- else }}
{{- $terms = append $terms (printf "(r.kind == %q && !r.apiVersion.contains(\"/\"))" .kind) }}
{{- end }}
{{- end -}}
has(r.controller) && r.controller && ({{ join " || " $terms }})
{{- end }}

{{/*
The webhooks' matchConditions (CEL, all must hold for spreadguard to be
called): skip ReplicaSets and Pods whose controller is a workload spreadguard
judges already (webhooks.skipControllerOwnedKinds), then the operator's
webhooks.extraMatchConditions. A ReplicaSet or Pod owned by anything else (a
ConfigMap, an unknown kind) is judged like a bare one.
*/}}
{{- define "spreadguard.matchConditions" -}}
{{- $w := .Values.webhooks }}
{{- $skip := $w.skipControllerOwnedKinds | default dict }}
{{- $names := list }}
{{- with $skip.replicaSets }}
{{- $names = append $names "skip-controller-owned-replicasets" }}
# A ReplicaSet whose controller is a judged workload (a Deployment) is
# skipped: its owner was judged, and every rollout and scale updates it.
- name: skip-controller-owned-replicasets
  expression: >-
    request.resource.group != "apps" || request.resource.resource != "replicasets" ||
    !has(object.metadata.ownerReferences) ||
    !object.metadata.ownerReferences.exists(r, {{ include "spreadguard.celOwnerIsOneOf" . }})
{{- end }}
{{- with $skip.pods }}
{{- $names = append $names "skip-controller-owned-pods" }}
# A Pod whose controller is a judged workload (a ReplicaSet, StatefulSet,
# DaemonSet or Job) is skipped: its owner was judged.
- name: skip-controller-owned-pods
  expression: >-
    request.resource.group != "" || request.resource.resource != "pods" ||
    !has(object.metadata.ownerReferences) ||
    !object.metadata.ownerReferences.exists(r, {{ include "spreadguard.celOwnerIsOneOf" . }})
{{- end }}
{{- range $w.extraMatchConditions }}
{{- if has .name $names }}
{{- fail (printf "webhooks.extraMatchConditions: the name %q is used by the chart's own matchConditions; choose another" .name) }}
{{- end }}
{{- $names = append $names .name }}
- name: {{ .name | toJson }}
  expression: {{ .expression | toJson }}
{{- end }}
{{- end }}

{{/*
Webhook settings shared by the mutating and validating configurations.
Call with (dict "root" $ "path" "/mutate" "rules" "spreadguard.workloadRules").
*/}}
{{- define "spreadguard.webhookCommon" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
admissionReviewVersions: ["v1"]
sideEffects: None
timeoutSeconds: {{ $v.webhooks.timeoutSeconds }}
clientConfig:
  {{- if $v.webhooks.url }}
  url: {{ printf "%s%s" (trimSuffix "/" $v.webhooks.url) .path | quote }}
  {{- else }}
  service:
    name: {{ include "spreadguard.fullname" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: {{ .path }}
    port: {{ $v.service.port }}
  {{- end }}
  {{- with (include "spreadguard.caBundle" $root) }}
  caBundle: {{ . }}
  {{- end }}
rules:
  {{- include .rules (dict "root" $root "scale" (eq .path "/validate")) | nindent 2 }}
namespaceSelector:
  {{- if eq $v.scope "optIn" }}
  matchLabels:
    spreadguard.io/enabled: "true"
  {{- end }}
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "spreadguard.exemptNamespaces" $root }}
{{- $objectSelector := include "spreadguard.objectSelector" $root }}
{{- if eq $objectSelector "{}" }}
objectSelector: {}
{{- else }}
objectSelector:
  {{- $objectSelector | nindent 2 }}
{{- end }}
{{- with include "spreadguard.matchConditions" $root | trim }}
matchConditions:
  {{- . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Metadata annotations of both webhook configurations: in certManager mode,
ask cainjector to copy the CA of the serving Certificate into the caBundle.
*/}}
{{- define "spreadguard.webhookAnnotations" -}}
{{- if eq .Values.certificates.mode "certManager" -}}
cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "spreadguard.fullname" .) }}
{{- end }}
{{- end }}
