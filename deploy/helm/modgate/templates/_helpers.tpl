{{/* Names, labels and the checks every template relies on. */}}

{{- define "modgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modgate.fullname" -}}
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

{{- define "modgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modgate.labels" -}}
helm.sh/chart: {{ include "modgate.chart" . }}
{{ include "modgate.selectorLabels" . }}
app.kubernetes.io/version: {{ include "modgate.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modgate.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "modgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "modgate.imageTag" .) }}
{{- end }}
{{- end }}

{{/* The Secret the chart creates for credentials given inline. */}}
{{- define "modgate.secretName" -}}
{{- include "modgate.fullname" . }}
{{- end }}

{{- define "modgate.gitSecretName" -}}
{{- default (printf "%s-git" (include "modgate.fullname" .)) .Values.gitCredentials.existingSecret }}
{{- end }}

{{- define "modgate.isS3" -}}
{{- if eq .Values.storage.kind "s3" }}true{{ end }}
{{- end }}

{{/* The replica count of the mode, after the checks. */}}
{{- define "modgate.replicas" -}}
{{- if eq .Values.storage.kind "disk" }}
{{- 1 }}
{{- else if kindIs "invalid" .Values.replicaCount }}
{{- 3 }}
{{- else }}
{{- .Values.replicaCount | int }}
{{- end }}
{{- end }}

{{- define "modgate.servicePort" -}}
{{- if not (kindIs "invalid" .Values.service.port) }}
{{- .Values.service.port | int }}
{{- else if .Values.tls.enabled }}
{{- 443 }}
{{- else }}
{{- 80 }}
{{- end }}
{{- end }}

{{- define "modgate.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{- define "modgate.hasRedis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{- define "modgate.hasS3Keys" -}}
{{- if or .Values.storage.s3.existingSecret .Values.storage.s3.accessKey }}true{{ end }}
{{- end }}

{{- define "modgate.hasTokens" -}}
{{- if or .Values.tokens.file .Values.tokens.existingSecret }}true{{ end }}
{{- end }}

{{- define "modgate.hasGit" -}}
{{- if or .Values.gitCredentials.netrc .Values.gitCredentials.files .Values.gitCredentials.existingSecret }}true{{ end }}
{{- end }}

{{- define "modgate.hasWebhook" -}}
{{- if or .Values.webhook.secret .Values.webhook.existingSecret }}true{{ end }}
{{- end }}

{{- define "modgate.hasConfig" -}}
{{- if or .Values.config .Values.configExistingSecret }}true{{ end }}
{{- end }}

{{/* Whether the chart's own Secret has anything to hold. */}}
{{- define "modgate.ownSecret" -}}
{{- if or (and (not .Values.storage.s3.existingSecret) .Values.storage.s3.accessKey) (and (not .Values.redis.existingSecret) .Values.redis.url) (and (not .Values.tokens.existingSecret) .Values.tokens.file) (and (not .Values.webhook.existingSecret) .Values.webhook.secret) }}true{{ end }}
{{- end }}

{{/*
The options the chart sets itself, which `options` must not repeat: two
sources for one variable would make one of them silently lose.
*/}}
{{- define "modgate.managedOptions" -}}
config data-dir listen upstream storage s3-endpoint s3-bucket s3-prefix s3-region s3-path-style s3-access-key s3-secret-key redis tls-cert tls-key tokens netrc webhook-secret policy shutdown-timeout
{{- end }}

{{/*
modgate.validate stops the render on values that cannot work, with a
message saying which value to change.
*/}}
{{- define "modgate.validate" -}}
{{- $kind := .Values.storage.kind }}
{{- if not (has $kind (list "disk" "s3")) }}
{{- fail (printf "storage.kind must be disk or s3, not %q" $kind) }}
{{- end }}
{{- if not .Values.upstream }}
{{- fail "upstream is required: the upstream proxy list in GOPROXY syntax (the image has no go command to ask for a default)" }}
{{- end }}
{{- if eq $kind "disk" }}
{{- if and (not (kindIs "invalid" .Values.replicaCount)) (ne (.Values.replicaCount | int) 1) }}
{{- fail "storage.kind disk runs exactly one replica (one volume, one writer); use storage.kind s3 with redis for more" }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- fail "autoscaling needs storage.kind s3: the disk mode runs exactly one replica" }}
{{- end }}
{{- else }}
{{- if not .Values.storage.s3.bucket }}
{{- fail "storage.s3.bucket is required with storage.kind s3" }}
{{- end }}
{{- if and (not .Values.storage.s3.existingSecret) (ne (empty .Values.storage.s3.accessKey) (empty .Values.storage.s3.secretKey)) }}
{{- fail "storage.s3.accessKey and storage.s3.secretKey go together (or leave both empty for the AWS credential chain)" }}
{{- end }}
{{- $replicas := include "modgate.replicas" . | int }}
{{- if and (or (gt $replicas 1) .Values.autoscaling.enabled) (not (include "modgate.hasRedis" .)) }}
{{- fail "more than one s3 replica needs redis.url (or redis.existingSecret): without it each replica fetches and caches on its own" }}
{{- end }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName, a kubernetes.io/tls Secret" }}
{{- end }}
{{- if and .Values.config .Values.configExistingSecret }}
{{- fail "set config or configExistingSecret, not both" }}
{{- end }}
{{- if and .Values.gitCredentials.existingSecret (or .Values.gitCredentials.netrc .Values.gitCredentials.files) }}
{{- fail "set gitCredentials.existingSecret or gitCredentials.netrc/files, not both" }}
{{- end }}
{{- if and (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (null the other)" }}
{{- end }}
{{- if not (has .Values.podAntiAffinity (list "soft" "hard" "none")) }}
{{- fail (printf "podAntiAffinity must be soft, hard or none, not %q" .Values.podAntiAffinity) }}
{{- end }}
{{- $managed := splitList " " (include "modgate.managedOptions" .) }}
{{- range $name, $_ := .Values.options }}
{{- if has $name $managed }}
{{- fail (printf "options.%s: set by the chart from its own values (see values.yaml), not through options" $name) }}
{{- end }}
{{- if not (regexMatch "^[a-z][a-z0-9-]*$" $name) }}
{{- fail (printf "options.%s: an option is named by its flag name, lower case with dashes (e.g. list-ttl)" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The environment variable of a flag name: list-ttl → MODGATE_LIST_TTL. */}}
{{- define "modgate.envName" -}}
{{- printf "MODGATE_%s" (. | upper | replace "-" "_") }}
{{- end }}
