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
