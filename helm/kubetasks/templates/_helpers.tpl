{{/* Names, labels and the pieces every pod shares. */}}

{{- define "kubetasks.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name, truncated to 63 characters (DNS label limit). */}}
{{- define "kubetasks.fullname" -}}
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

{{- define "kubetasks.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels; call with (dict "ctx" $ "component" "api"). */}}
{{- define "kubetasks.labels" -}}
helm.sh/chart: {{ include "kubetasks.chart" .ctx }}
{{ include "kubetasks.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kubetasks
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kubetasks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetasks.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{- define "kubetasks.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubetasks.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubetasks.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* Secret names: an existing Secret wins over the one the chart generates. */}}
{{- define "kubetasks.apiKeySecretName" -}}
{{- default (printf "%s-api-key" (include "kubetasks.fullname" .)) .Values.api.apiKey.existingSecret }}
{{- end }}

{{- define "kubetasks.redisSecretName" -}}
{{- default (printf "%s-redis" (include "kubetasks.fullname" .)) .Values.redis.auth.existingSecret }}
{{- end }}

{{/*
KUBETASKS_API_KEY from the API key Secret, when the API requires a key: the API's own, and that of
the pods that call it with the key.
*/}}
{{- define "kubetasks.apiKeyEnv" -}}
{{- if .Values.api.apiKey.enabled -}}
- name: KUBETASKS_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "kubetasks.apiKeySecretName" . }}
      key: {{ .Values.api.apiKey.existingSecretKey }}
{{- end }}
{{- end }}

{{/* The API Service's URL for pods in the release. */}}
{{- define "kubetasks.apiUrl" -}}
{{- printf "http://%s-api:%v" (include "kubetasks.fullname" .) .Values.api.service.port }}
{{- end }}

{{/*
The declared schedules' ConfigMap and Job. The Job controller puts a Job's name into its pods'
labels, whose values have 63 characters at most: the full name is cut to leave room.
*/}}
{{- define "kubetasks.schedulesName" -}}
{{- printf "%s-schedules" (include "kubetasks.fullname" . | trunc 53 | trimSuffix "-") }}
{{- end }}

{{- define "kubetasks.flowerSecretName" -}}
{{- default (printf "%s-flower" (include "kubetasks.fullname" .)) .Values.flower.auth.existingSecret }}
{{- end }}

{{/*
The in-release Redis's ClusterIP Service, which every Redis URL the chart builds names. Its suffix
is the longest of any Service: the full name is cut so that the name stays a 63-character DNS
label wherever the older Services' names (up to `-flower`) fit.
*/}}
{{- define "kubetasks.redisHost" -}}
{{- printf "%s-redis-client" (include "kubetasks.fullname" . | trunc 50 | trimSuffix "-") }}
{{- end }}

{{/* The StatefulSet's headless Service; its name is immutable in the StatefulSet. */}}
{{- define "kubetasks.redisHeadlessName" -}}
{{- printf "%s-redis" (include "kubetasks.fullname" .) }}
{{- end }}

{{/*
A secret value generated once and then kept: on upgrade the value already stored in the
cluster is reused. Call with (dict "ctx" $ "name" <secret> "key" <key> "value" <fresh value>);
returns the base64 value.
*/}}
{{- define "kubetasks.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key }}
{{- else }}
{{- .value | b64enc }}
{{- end }}
{{- end }}

{{/* Pod security context of the restricted Pod Security Standard. */}}
{{- define "kubetasks.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
fsGroup: {{ .fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* devMode (skaffold dev) leaves the root filesystem writable for file sync. */}}
{{- define "kubetasks.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ not .Values.devMode }}
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
KUBETASKS_REDIS_URL (and what it is built from) for every kubetasks container: the in-release
Redis with the password from its Secret (a dependent variable, so the password never lands in a
ConfigMap), or the whole URL from the external Secret.
*/}}
{{- define "kubetasks.redisEnv" -}}
{{- if .Values.redis.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "kubetasks.redisSecretName" . }}
      key: {{ .Values.redis.auth.existingSecretKey }}
- name: KUBETASKS_REDIS_URL
  value: "redis://:$(REDIS_PASSWORD)@{{ include "kubetasks.redisHost" . }}:6379/0"
{{- else }}
- name: KUBETASKS_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalRedis.existingSecret }}
      key: {{ .Values.externalRedis.existingSecretKey }}
{{- end }}
{{- end }}

{{/* Environment of the api, worker, flower and scheduler containers. */}}
{{- define "kubetasks.commonEnv" -}}
{{ include "kubetasks.redisEnv" . }}
{{- with .Values.settings.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Restarts pods when the shared settings change. */}}
{{- define "kubetasks.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/*
The pod template metadata of a kubetasks Deployment: the settings checksum and the component's
podAnnotations and podLabels. Call with (dict "ctx" $ "component" <component> "values" <its values>).
*/}}
{{- define "kubetasks.podMetadata" -}}
annotations:
  {{- include "kubetasks.configChecksum" .ctx | nindent 2 }}
  {{- with .values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
labels:
  {{- include "kubetasks.labels" (dict "ctx" .ctx "component" .component) | nindent 2 }}
  {{- with .values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
The pod spec fields every kubetasks pod shares (Redis runs as its image's own user instead): the
ServiceAccount without its token, the pull secrets and the restricted pod security context.
*/}}
{{- define "kubetasks.podSpecCommon" -}}
serviceAccountName: {{ include "kubetasks.serviceAccountName" . }}
automountServiceAccountToken: false
{{- include "kubetasks.imagePullSecrets" . }}
securityContext:
  {{- include "kubetasks.podSecurityContext" .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
A PodDisruptionBudget over a component's pods; call with (dict "ctx" $ "name" <name> "component"
<component> "maxUnavailable" <count or percentage>).
*/}}
{{- define "kubetasks.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- include "kubetasks.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
spec:
  # Client-side `kubectl apply` reports every PDB "configured" on each apply though nothing
  # changes: policy/v1 gives spec.selector the patch strategy replace, so kubectl always re-sends
  # it. No field rendered here can avoid that; `kubectl diff` shows what would really change.
  maxUnavailable: {{ .maxUnavailable }}
  selector:
    matchLabels:
      {{- include "kubetasks.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
{{- end }}

{{/*
The replicas field of a Deployment; call with (dict "ctx" $ "name" <Deployment> "count" <fixed
count, or nil when an autoscaler owns it>). When an autoscaler owns the count the field carries
the live Deployment's count, so an upgrade that hands the count to an autoscaler (or keeps it
there) leaves the running pods alone: without the field Helm's three-way patch would remove the
one the last release set and Kubernetes would reset the Deployment to 1 replica until the
autoscaler's next sync. On a first install, or where lookup cannot reach a cluster (helm
template, Argo CD), the field is left out.
*/}}
{{- define "kubetasks.replicas" -}}
{{- if not (kindIs "invalid" .count) }}
replicas: {{ .count }}
{{- else }}
{{- $live := lookup "apps/v1" "Deployment" .ctx.Release.Namespace .name }}
{{- if and $live (hasKey ($live.spec | default dict) "replicas") }}
replicas: {{ $live.spec.replicas }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod-wide scheduling fields; call with the component's values. */}}
{{- define "kubetasks.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "kubetasks.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Refuse values that would deploy a broken release; rendered once from validate.yaml. */}}
{{- define "kubetasks.validateValues" -}}
{{- if ge (int .Values.api.gracefulShutdownSeconds) (int .Values.api.terminationGracePeriodSeconds) }}
{{- fail (printf "api.gracefulShutdownSeconds (%v) must be lower than api.terminationGracePeriodSeconds (%v)" .Values.api.gracefulShutdownSeconds .Values.api.terminationGracePeriodSeconds) }}
{{- end }}
{{- if and (not .Values.redis.enabled) (not .Values.externalRedis.existingSecret) }}
{{- fail "redis.enabled=false needs externalRedis.existingSecret: a Secret holding the Redis URL" }}
{{- end }}
{{- $scheduler := .Values.scheduler }}
{{- if and $scheduler.enabled (lt (float64 $scheduler.leaseSeconds) (mulf 2 $scheduler.pollSeconds)) }}
{{- fail (printf "scheduler.leaseSeconds (%v) must be at least twice scheduler.pollSeconds (%v): the holder renews its lease once a poll, and a lease that one late renewal lets expire passes from replica to replica. Raise scheduler.leaseSeconds or lower scheduler.pollSeconds" $scheduler.leaseSeconds $scheduler.pollSeconds) }}
{{- end }}
{{- if and .Values.api.autoscaling.enabled (gt (int .Values.api.autoscaling.minReplicas) (int .Values.api.autoscaling.maxReplicas)) }}
{{- fail "api.autoscaling.minReplicas must not exceed api.autoscaling.maxReplicas" }}
{{- end }}
{{- include "kubetasks.validateTimeLimits" . }}
{{- include "kubetasks.validateSchedules" . }}
{{- $names := list }}
{{- range $pool := (include "kubetasks.worker.pools" . | fromJson).pools }}
{{- if has $pool.name $names }}
{{- fail (printf "worker.pools: two pools are named %s; each pool needs its own name, which names its Deployment, PodDisruptionBudget and autoscaler" $pool.name) }}
{{- end }}
{{- $names = append $names $pool.name }}
{{- include "kubetasks.validatePool" (dict "ctx" $ "pool" $pool) }}
{{- end }}
{{- end }}

{{/*
The checks of one worker pool, each message starting with the pool's name and naming the value
to change: the pool's own (worker.pools[i].<key>) or the default it inherits (worker.<key>).
*/}}
{{- define "kubetasks.validatePool" -}}
{{- $pool := .pool }}
{{- $worker := $pool.values }}
{{- $prefix := printf "worker pool %s: " $pool.name }}
{{- $grace := include "kubetasks.worker.valuePath" (dict "pool" $pool "key" "terminationGracePeriodSeconds") }}
{{- $soft := include "kubetasks.worker.valuePath" (dict "pool" $pool "key" "softShutdownTimeoutSeconds") }}
{{- $minGrace := add (int (ceil $worker.softShutdownTimeoutSeconds)) 10 }}
{{- if lt (int $worker.terminationGracePeriodSeconds) $minGrace }}
{{- fail (printf "%s%s (%v) must be at least %d, %s (%v) + 10 s to requeue and exit, or Kubernetes kills a stopping worker (scale-down, rollout, drain) before it requeues its running tasks, which then wait for the heartbeat max age. Raise %s or lower %s" $prefix $grace $worker.terminationGracePeriodSeconds $minGrace $soft $worker.softShutdownTimeoutSeconds $grace $soft) }}
{{- end }}
{{- $scaling := $worker.autoscaling }}
{{- $mode := include "kubetasks.worker.valuePath" (dict "pool" $pool "key" "autoscaling.mode") }}
{{- $min := include "kubetasks.worker.valuePath" (dict "pool" $pool "key" "autoscaling.minReplicas") }}
{{- $max := include "kubetasks.worker.valuePath" (dict "pool" $pool "key" "autoscaling.maxReplicas") }}
{{- $gate := include "kubetasks.worker.valuePath" (dict "pool" $pool "key" "autoscaling.hpa.allowScaleToZero") }}
{{- if and (ne $scaling.mode "none") (gt (int $scaling.minReplicas) (int $scaling.maxReplicas)) }}
{{- fail (printf "%s%s (%v) must not exceed %s (%v)" $prefix $min $scaling.minReplicas $max $scaling.maxReplicas) }}
{{- end }}
{{- if and (eq (include "kubetasks.worker.autoscaler" (dict "ctx" .ctx "pool" $pool)) "hpa") (eq (int $scaling.minReplicas) 0) (not $scaling.hpa.allowScaleToZero) }}
{{- if eq $scaling.mode "auto" }}
{{- fail (printf "%s%s 0: mode auto chose an HPA (the cluster serves external.metrics.k8s.io/v1beta1 but not KEDA's keda.sh/v1alpha1), which needs the HPAScaleToZero feature gate: set %s=true, install KEDA, or set minReplicas to 1 or more" $prefix $min $gate) }}
{{- end }}
{{- fail (printf "%s%s 0 with mode hpa needs the HPAScaleToZero feature gate: set %s=true, or use mode keda" $prefix $min $gate) }}
{{- end }}
{{- if and (eq $scaling.mode "none") (eq (int $scaling.minReplicas) 0) }}
{{- fail (printf "%s%s 0 (scale to zero) needs %s keda or hpa" $prefix $min $mode) }}
{{- end }}
{{- /* The Job controller puts a Job's name into its pods' labels, whose values have 63 characters at most. */}}
{{- if and (include "kubetasks.worker.mayBeAtZero" (dict "ctx" .ctx "pool" $pool)) (gt (len $pool.catalogueJobName) 63) }}
{{- fail (printf "%sits catalogue Job (it may have no worker to publish its tasks) would be named %s (%d characters), and a Job's name may have 63 at most: shorten the pool's name, the release name or fullnameOverride" $prefix $pool.catalogueJobName (len $pool.catalogueJobName)) }}
{{- end }}
{{- /* KEDA names its HPA keda-hpa-<ScaledObject>, a DNS label: 63 - 9 characters are left. */}}
{{- if and (eq (include "kubetasks.worker.autoscaler" (dict "ctx" .ctx "pool" $pool)) "keda") (gt (len $pool.resourceName) 54) }}
{{- fail (printf "%sits ScaledObject would be named %s (%d characters), and KEDA accepts 54 at most (it names the HPA it makes keda-hpa-<name>, which must stay within 63): shorten the pool's name, the release name or fullnameOverride" $prefix $pool.resourceName (len $pool.resourceName)) }}
{{- end }}
{{- end }}

{{/*
Declared schedules (values `schedules`): only the scheduler fires them, and each name is one
schedule, which a second entry of that name would overwrite at every upgrade. Whatever else a
schedule needs (its task, arguments, cron expression, time zone) the API checks when the Job
applies it.
*/}}
{{- define "kubetasks.validateSchedules" -}}
{{- if and .Values.schedules (not .Values.scheduler.enabled) }}
{{- fail (printf "schedules declares %d schedule(s), but scheduler.enabled is false and nothing would fire them: set scheduler.enabled=true, or empty schedules" (len .Values.schedules)) }}
{{- end }}
{{- $names := list }}
{{- range .Values.schedules }}
{{- if has .name $names }}
{{- fail (printf "schedules: two are named %s; a name is one schedule, give each its own" .name) }}
{{- end }}
{{- $names = append $names .name }}
{{- end }}
{{- end }}

{{/*
The workers' start-up check (worker/app.py check_profile) made at install time, as far as the
chart can see, so values it would refuse fail here instead of crash-looping the workers: a
visibility timeout of at least the longest hard time limit plus a margin, over the built-in
tasks' limits (files/catalogue.json, generated by `make manifests` from packages/kubetasks-builtins)
and every settings.taskTimeLimits entry. A team's own tasks are checked by their workers.
Numbers are compared as float64: values files give float64, --set int64.
*/}}
{{- define "kubetasks.validateTimeLimits" -}}
{{- $tasks := (.Files.Get "files/catalogue.json" | fromJson).tasks }}
{{- if not $tasks }}
{{- fail "files/catalogue.json (the task catalogue) is missing from the chart or unreadable: run `make manifests`" }}
{{- end }}
{{- $limits := .Values.settings.taskTimeLimits }}
{{- $longest := 0.0 }}
{{- $longestTask := "" }}
{{- /* The built-ins with their overrides, and the overrides of tasks only the images know. */}}
{{- range $name := concat (keys $tasks) (keys $limits) | uniq | sortAlpha }}
{{- $builtin := 0 }}
{{- if hasKey $tasks $name }}
{{- $builtin = (index $tasks $name).timeLimitSeconds }}
{{- end }}
{{- $limit := float64 (get $limits $name | default $builtin) }}
{{- if gt $limit $longest }}
{{- $longest = $limit }}
{{- $longestTask = $name }}
{{- end }}
{{- end }}
{{- /* The twin of worker/app.py visibility_margin: change both together. */}}
{{- $margin := maxf 5.0 (mulf $longest 0.1) }}
{{- $minimum := addf $longest $margin }}
{{- $visibility := .Values.settings.visibilityTimeoutSeconds }}
{{- if lt (float64 $visibility) $minimum }}
{{- fail (printf "settings.visibilityTimeoutSeconds (%d) must be at least %d: the longest task time limit (%d s, task %s) plus a margin of %s s, or Redis hands running tasks to a second worker and the workers refuse to start. Raise settings.visibilityTimeoutSeconds or lower settings.taskTimeLimits" (int64 $visibility) (ceil $minimum | int64) (int64 $longest) $longestTask (printf "%.1f" $margin | trimSuffix ".0")) }}
{{- end }}
{{- end }}

{{/* A Flower path under its url prefix; call with (dict "prefix" <prefix> "path" <path>). */}}
{{- define "kubetasks.flower.path" -}}
{{- if .prefix }}/{{ .prefix }}/{{ .path }}{{ else }}/{{ .path }}{{ end }}
{{- end }}
