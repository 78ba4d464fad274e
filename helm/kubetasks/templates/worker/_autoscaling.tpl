{{/* Queue selector pieces shared by the HPA and the KEDA query. */}}
{{- define "kubetasks.worker.queueRegex" -}}
{{- $escaped := list }}
{{- range .Values.worker.queues }}
{{- $escaped = append $escaped (regexQuoteMeta .) }}
{{- end }}
{{- join "|" $escaped }}
{{- end }}

{{/*
Backlog of the worker's queues. Every API replica exports the same queue gauges, so each queue is
deduplicated with max by (queue) before summing over the queues.
*/}}
{{- define "kubetasks.worker.backlogQuery" -}}
{{- printf "sum(max by (queue) (kubetasks_queue_backlog{namespace=\"%s\",service=\"%s-api\",queue=~\"%s\"}))" .Release.Namespace (include "kubetasks.fullname" .) (include "kubetasks.worker.queueRegex" .) }}
{{- end }}
