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

Returns a dict with base64-encoded ca, cert and key.
*/}}
{{- define "spreadguard.helmCerts" -}}
{{- if not (hasKey .Release "spreadguardCerts") }}
{{- $secretName := include "spreadguard.tlsSecretName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName }}
{{- $data := dict }}
{{- if and $existing (not .Values.certificates.helm.rotate) }}
{{- $data = default dict $existing.data }}
{{- end }}
{{- $certs := dict }}
{{- if and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") }}
{{- $certs = dict "ca" (index $data "ca.crt") "cert" (index $data "tls.crt") "key" (index $data "tls.key") }}
{{- else }}
{{- $days := int .Values.certificates.helm.validityDays }}
{{- $ca := genCA (printf "%s-ca" (include "spreadguard.fullname" .)) $days }}
{{- $dnsNames := include "spreadguard.dnsNames" . | fromJsonArray }}
{{- $cn := printf "%s.%s.svc" (include "spreadguard.fullname" .) .Release.Namespace }}
{{- $cert := genSignedCert $cn nil $dnsNames $days $ca }}
{{- $certs = dict "ca" ($ca.Cert | b64enc) "cert" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) }}
{{- end }}
{{- $_ := set .Release "spreadguardCerts" $certs }}
{{- end }}
{{- index .Release "spreadguardCerts" | toJson }}
{{- end }}

{{/*
The caBundle (base64 PEM) for certificates.mode helm or existingSecret.
certManager leaves it out: cainjector writes it.
*/}}
{{- define "spreadguard.caBundle" -}}
{{- if eq .Values.certificates.mode "helm" }}
{{- (include "spreadguard.helmCerts" . | fromJson).ca }}
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
Webhook settings shared by the mutating and validating configurations.
Call with (dict "root" $ "path" "/mutate").
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
  - apiGroups: ["apps"]
    apiVersions: ["v1"]
    resources: ["deployments", "statefulsets", "replicasets"]
    operations: ["CREATE", "UPDATE"]
    scope: Namespaced
  - apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods"]
    operations: ["CREATE", "UPDATE"]
    scope: Namespaced
namespaceSelector:
  {{- if eq $v.scope "optIn" }}
  matchLabels:
    spreadguard.io/enabled: "true"
  {{- end }}
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "spreadguard.exemptNamespaces" $root }}
objectSelector:
  matchExpressions:
    - key: {{ $v.webhooks.optOutLabel }}
      operator: NotIn
      values: ["true"]
{{- if and $v.webhooks.skipControllerOwnedPods (semverCompare ">=1.30-0" $root.Capabilities.KubeVersion.Version) }}
matchConditions:
  # Pods created by a controller (ReplicaSet, StatefulSet, Job...) are skipped:
  # their owner was judged when it was created or updated.
  - name: skip-controller-owned-pods
    expression: >-
      request.resource.group != "" || request.resource.resource != "pods" ||
      !has(object.metadata.ownerReferences) ||
      !object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller)
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
