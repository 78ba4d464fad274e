{{/*
The autoscaler a worker pool gets: keda, hpa or none, as its autoscaling.mode says; auto looks at
what the cluster serves. KEDA wins when both APIs are there: KEDA's metrics server registers
external.metrics.k8s.io/v1beta1 itself (one APIService per group version), so on a cluster with
KEDA that API is KEDA's, which serves only its ScaledObjects' metrics, and an External HPA would
read nothing. A cluster lists keda.sh/v1alpha1 both alone and with each kind, `helm template
--api-versions` only as given, so either form counts. Without a cluster (helm template) neither is
known: a fixed replica count. Call with (dict "ctx" $ "pool" <pool>).
*/}}
{{- define "kubetasks.worker.autoscaler" -}}
{{- $mode := .pool.values.autoscaling.mode }}
{{- if ne $mode "auto" }}
{{- $mode }}
{{- else if include "kubetasks.clusterServesKeda" .ctx }}
{{- "keda" }}
{{- else if .ctx.Capabilities.APIVersions.Has "external.metrics.k8s.io/v1beta1" }}
{{- "hpa" }}
{{- else }}
{{- "none" }}
{{- end }}
{{- end }}

{{/* "true" when the cluster serves KEDA's API, listed alone or with its kinds (above); else "". */}}
{{- define "kubetasks.clusterServesKeda" -}}
{{- $apis := .Capabilities.APIVersions }}
{{- if or ($apis.Has "keda.sh/v1alpha1") ($apis.Has "keda.sh/v1alpha1/ScaledObject") }}true{{ end }}
{{- end }}

{{/* The KEDA query's regex of a pool's queues; call with the pool. */}}
{{- define "kubetasks.worker.queueRegex" -}}
{{- $escaped := list }}
{{- range .values.queues }}
{{- $escaped = append $escaped (regexQuoteMeta .) }}
{{- end }}
{{- join "|" $escaped }}
{{- end }}

{{/*
The label a pool's autoscaling.seriesLabel names. `helm upgrade --reuse-values` renders with the
values of the chart the release was installed from, which may not have the key: service then, as
before the key existed. Call with the pool.
*/}}
{{- define "kubetasks.worker.seriesLabel" -}}
{{- .values.autoscaling.seriesLabel | default "service" }}
{{- end }}

{{/*
The value of the label a pool's autoscaling.seriesLabel names, which marks this release's queue
gauges among other releases' in the namespace: the API Service's name, which a ServiceMonitor puts
on its targets as `service`, or the release name, which the API exports itself as `release`
(KUBETASKS_METRICS_RELEASE in configmap.yaml). Call with (dict "ctx" $ "pool" <pool>).
*/}}
{{- define "kubetasks.worker.seriesLabelValue" -}}
{{- if eq (include "kubetasks.worker.seriesLabel" .pool) "release" }}
{{- .ctx.Release.Name }}
{{- else }}
{{- include "kubetasks.fullname" .ctx }}-api
{{- end }}
{{- end }}

{{/*
Backlog of a pool's queues. Every API replica exports the same queue gauges, so each queue is
deduplicated with max by (queue) before summing over the queues. Call with (dict "ctx" $ "pool"
<pool>).
*/}}
{{- define "kubetasks.worker.backlogQuery" -}}
{{- printf "sum(max by (queue) (kubetasks_queue_backlog{namespace=\"%s\",%s=\"%s\",queue=~\"%s\"}))" .ctx.Release.Namespace (include "kubetasks.worker.seriesLabel" .pool) (include "kubetasks.worker.seriesLabelValue" (dict "ctx" .ctx "pool" .pool)) (include "kubetasks.worker.queueRegex" .pool) }}
{{- end }}

{{/*
"true" when a pool may have no worker: its autoscaler's minReplicas is 0, or with no autoscaler
(mode none, or auto that found neither API) its replicaCount is. Such a pool gets a catalogue Job
(catalogue-job.yaml), since no worker of it may ever publish its tasks. Call with (dict "ctx" $
"pool" <pool>).
*/}}
{{- define "kubetasks.worker.mayBeAtZero" -}}
{{- $values := .pool.values }}
{{- $count := $values.autoscaling.minReplicas }}
{{- if eq (include "kubetasks.worker.autoscaler" .) "none" }}
{{- $count = $values.replicaCount }}
{{- end }}
{{- if eq (int $count) 0 }}true{{ end }}
{{- end }}
