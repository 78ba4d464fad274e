{{/*
The autoscaler the worker gets: keda, hpa or none, as worker.autoscaling.mode says; auto looks at
what the cluster serves. KEDA wins when both APIs are there: KEDA's metrics server registers
external.metrics.k8s.io/v1beta1 itself (one APIService per group version), so on a cluster with
KEDA that API is KEDA's, which serves only its ScaledObjects' metrics, and an External HPA would
read nothing. A cluster lists keda.sh/v1alpha1 both alone and with each kind, `helm template
--api-versions` only as given, so either form counts. Without a cluster (helm template) neither is
known: a fixed replica count.
*/}}
{{- define "kubetasks.worker.autoscaler" -}}
{{- $apis := .Capabilities.APIVersions }}
{{- if ne .Values.worker.autoscaling.mode "auto" }}
{{- .Values.worker.autoscaling.mode }}
{{- else if or ($apis.Has "keda.sh/v1alpha1") ($apis.Has "keda.sh/v1alpha1/ScaledObject") }}
{{- "keda" }}
{{- else if $apis.Has "external.metrics.k8s.io/v1beta1" }}
{{- "hpa" }}
{{- else }}
{{- "none" }}
{{- end }}
{{- end }}

{{/* Queue selector pieces shared by the HPA and the KEDA query. */}}
{{- define "kubetasks.worker.queueRegex" -}}
{{- $escaped := list }}
{{- range .Values.worker.queues }}
{{- $escaped = append $escaped (regexQuoteMeta .) }}
{{- end }}
{{- join "|" $escaped }}
{{- end }}

{{/*
The value of the label worker.autoscaling.seriesLabel that marks this release's queue gauges
among other releases' in the namespace: the API Service's name, which a ServiceMonitor puts on
its targets as `service`, or the release name, which the API exports itself as `release`
(KUBETASKS_METRICS_RELEASE in configmap.yaml).
*/}}
{{- define "kubetasks.worker.seriesLabelValue" -}}
{{- if eq .Values.worker.autoscaling.seriesLabel "release" }}
{{- .Release.Name }}
{{- else }}
{{- include "kubetasks.fullname" . }}-api
{{- end }}
{{- end }}

{{/*
Backlog of the worker's queues. Every API replica exports the same queue gauges, so each queue is
deduplicated with max by (queue) before summing over the queues.
*/}}
{{- define "kubetasks.worker.backlogQuery" -}}
{{- printf "sum(max by (queue) (kubetasks_queue_backlog{namespace=\"%s\",%s=\"%s\",queue=~\"%s\"}))" .Release.Namespace .Values.worker.autoscaling.seriesLabel (include "kubetasks.worker.seriesLabelValue" .) (include "kubetasks.worker.queueRegex" .) }}
{{- end }}
