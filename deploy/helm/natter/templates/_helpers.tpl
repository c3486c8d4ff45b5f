{{/*
Chart name, truncated to 63 characters (a DNS label).
*/}}
{{- define "natter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: release-chart unless the release name already contains
the chart name.
*/}}
{{- define "natter.fullname" -}}
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

{{- define "natter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of one tier's objects. Takes (dict "root" $ "component" "gateway").
*/}}
{{- define "natter.componentName" -}}
{{- printf "%s-%s" (include "natter.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. Takes (dict "root" $ "component" "gateway"); an empty component
gives the labels shared by the whole release.
*/}}
{{- define "natter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "natter.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/*
Common labels. Takes (dict "root" $ "component" "gateway").
*/}}
{{- define "natter.labels" -}}
helm.sh/chart: {{ include "natter.chart" .root }}
{{ include "natter.selectorLabels" . }}
app.kubernetes.io/part-of: natter
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "natter.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{- define "natter.configName" -}}
{{- printf "%s-config" (include "natter.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "natter.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- printf "%s-secrets" (include "natter.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Pod template annotations: config/secret checksums (pods roll when settings change),
Prometheus scrape hints, then the tier's own podAnnotations.
Takes (dict "root" $ "component" "gateway").
*/}}
{{- define "natter.podAnnotations" -}}
{{- $root := .root }}
{{- $c := index $root.Values .component }}
checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
{{- if not $root.Values.secrets.existingSecret }}
checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
{{- end }}
{{- if $root.Values.prometheusAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ $c.metricsPort | toString | quote }}
prometheus.io/path: "/metrics"
{{- end }}
{{- with $c.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by every tier: pull secrets, security context, node
placement. Takes (dict "root" $ "component" "gateway").
*/}}
{{- define "natter.podSpecCommon" -}}
{{- $root := .root }}
{{- $c := index $root.Values .component }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $root.Values.spreadAcrossNodes }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "natter.selectorLabels" . | nindent 8 }}
{{- end }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.secrets.natsFilesSecret }}
volumes:
  - name: nats-files
    secret:
      secretName: {{ . }}
      defaultMode: 0444           # the image's user (10001) reads them
{{- end }}
{{- end }}

{{/*
NATS credentials of one tier, from the Secret (every key optional: a pod without
them connects without credentials). Takes (dict "root" $ "component" "gateway").
*/}}
{{- define "natter.natsAuthEnv" -}}
{{- $secret := include "natter.secretName" .root }}
{{- $tier := upper .component -}}
- name: NATTER_NATS_USER
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: NATTER_NATS_USER_{{ $tier }}
      optional: true
- name: NATTER_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: NATTER_NATS_PASSWORD_{{ $tier }}
      optional: true
- name: NATTER_NATS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: NATTER_NATS_TOKEN
      optional: true
{{- end }}

{{/*
An HTTP probe on a named port.  Takes (dict "path" "/readyz" "port" "http" ...).
*/}}
{{- define "natter.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{- with .initialDelaySeconds }}
initialDelaySeconds: {{ . }}
{{- end }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- end }}
