{{/*
areamesh chart helpers / 共通テンプレート
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "areamesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Release-qualified name. The release name is used as is when it already contains the chart
name. Truncated to leave room for the "-registry" / "-connector" suffixes (63-char limit).
*/}}
{{- define "areamesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "areamesh.registry.fullname" -}}
{{- printf "%s-registry" (include "areamesh.fullname" .) -}}
{{- end -}}

{{- define "areamesh.connector.fullname" -}}
{{- printf "%s-connector" (include "areamesh.fullname" .) -}}
{{- end -}}

{{- define "areamesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels common to every object. */}}
{{- define "areamesh.labels" -}}
helm.sh/chart: {{ include "areamesh.chart" . }}
app.kubernetes.io/name: {{ include "areamesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: areamesh
{{- end -}}

{{/*
Selector labels of one component. Usage:
  include "areamesh.selectorLabels" (dict "ctx" . "component" "registry")
*/}}
{{- define "areamesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "areamesh.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component (same arguments as selectorLabels). */}}
{{- define "areamesh.componentLabels" -}}
{{ include "areamesh.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "areamesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "areamesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "areamesh.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Registry gRPC address the connector joins and talks to. */}}
{{- define "areamesh.connector.registryAddress" -}}
{{- if .Values.connector.registryAddress -}}
{{- .Values.connector.registryAddress -}}
{{- else if .Values.registry.enabled -}}
{{- printf "%s.%s.svc:%d" (include "areamesh.registry.fullname" .) .Release.Namespace (int .Values.registry.service.grpcPort) -}}
{{- else -}}
{{- fail "connector.registryAddress is required (registry gRPC HOST:PORT) / connector.registryAddress（レジストリの HOST:PORT）を指定してください" -}}
{{- end -}}
{{- end -}}

{{/*
Registry enrolment address for the join, or empty to let the connector use the registry's
port - 1. For this release's own registry the Service's enrolPort is used.
*/}}
{{- define "areamesh.connector.enrolAddress" -}}
{{- if .Values.connector.enrolAddress -}}
{{- .Values.connector.enrolAddress -}}
{{- else if and (not .Values.connector.registryAddress) .Values.registry.enabled -}}
{{- printf "%s.%s.svc:%d" (include "areamesh.registry.fullname" .) .Release.Namespace (int .Values.registry.service.enrolPort) -}}
{{- end -}}
{{- end -}}

{{/* Address other connectors dial to reach this connector. */}}
{{- define "areamesh.connector.advertise" -}}
{{- if .Values.connector.advertise -}}
{{- .Values.connector.advertise -}}
{{- else -}}
{{- printf "%s.%s.svc:%d" (include "areamesh.connector.fullname" .) .Release.Namespace (int .Values.connector.service.grpcPort) -}}
{{- end -}}
{{- end -}}

{{/*
Shell snippet shared by the init containers: private keys must be 0600 (areamesh refuses
group-readable keys, and a volume's fsGroup handling may have added group bits).
*/}}
{{- define "areamesh.fixKeyPermissions" -}}
# Private keys must be 0600 (fsGroup handling can add group bits).
# 秘密鍵のパーミッションを 0600 に戻します。
find "$DATA_DIR" -type f -name '*.key' ! -perm 600 -print -exec chmod 600 {} + \
  | sed 's|^|chmod 600 (秘密鍵のパーミッション修正 / fixed key permissions): |'
{{- end -}}

{{/* HTTP probes on the named port "http": readiness asks /healthz; startup and liveness ask
"livenessPath" (default /healthz). The connector passes /livez: its /healthz answers 503 while
the registry has been unreachable past the revocation list's grace, and restarting the pod would
not bring the registry back. Call as (dict "Values" .Values "livenessPath" "/livez"). */}}
{{- define "areamesh.probes" -}}
startupProbe:
  httpGet:
    path: {{ .livenessPath | default "/healthz" }}
    port: http
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: {{ .livenessPath | default "/healthz" }}
    port: http
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end -}}

{{/*
The Secret holding the registry's PostgreSQL URL, or empty for SQLite: the operator's own
(registry.database.existingSecret) or the bundled PostgreSQL's (postgresql.enabled).
*/}}
{{- define "areamesh.registry.databaseSecret" -}}
{{- if .Values.registry.database.existingSecret -}}
{{- .Values.registry.database.existingSecret -}}
{{- else if .Values.postgresql.enabled -}}
{{- printf "%s-postgresql" (include "areamesh.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "areamesh.registry.databaseSecretKey" -}}
{{- if .Values.registry.database.existingSecret -}}
{{- .Values.registry.database.key -}}
{{- else -}}
url
{{- end -}}
{{- end -}}

{{- define "areamesh.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "areamesh.fullname" .) -}}
{{- end -}}
