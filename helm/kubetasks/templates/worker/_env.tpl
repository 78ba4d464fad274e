{{/*
The envFrom and env of a pool's containers: its workers' and its catalogue Job's
(catalogue-job.yaml), which must publish the tasks those workers would, with the same task
modules, time limits and Redis. Call with (dict "ctx" $ "pool" <pool>).
*/}}
{{- define "kubetasks.worker.env" -}}
{{- $worker := .pool.values -}}
envFrom:
  - configMapRef:
      name: {{ include "kubetasks.fullname" .ctx }}-config
env:
  {{- include "kubetasks.commonEnv" .ctx | nindent 2 }}
  # SIGTERM starts Celery's soft shutdown instead of a warm one that waits forever.
  - name: REMAP_SIGTERM
    value: SIGQUIT
  - name: PROMETHEUS_MULTIPROC_DIR
    value: /tmp/kubetasks/metrics
  {{- /* The ConfigMap holds worker:'s values; env wins over envFrom for a pool's own. */}}
  {{- if ne (toJson $worker.queues) (toJson .ctx.Values.worker.queues) }}
  - name: KUBETASKS_WORKER_QUEUES
    value: {{ toJson $worker.queues | quote }}
  {{- end }}
  {{- if ne (toJson $worker.concurrency) (toJson .ctx.Values.worker.concurrency) }}
  - name: KUBETASKS_WORKER_CONCURRENCY
    value: {{ $worker.concurrency | int64 | quote }}
  {{- end }}
  {{- if ne (toJson $worker.softShutdownTimeoutSeconds) (toJson .ctx.Values.worker.softShutdownTimeoutSeconds) }}
  - name: KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT
    value: {{ $worker.softShutdownTimeoutSeconds | quote }}
  {{- end }}
  {{- with $worker.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
