{{/*
The worker pools as {"pools": [...]} JSON (for fromJson): each entry has the pool's name, its
index in worker.pools, the pool's own keys (overrides, for messages that name the value to
change), its component label, the name of its objects, the name of its catalogue Job
(catalogue-job.yaml) and its values: worker: deep-merged with the pool's keys, the pool winning. The pool named default keeps the names and selector of the
single-pool chart, <fullname>-worker and component worker, since a Deployment's selector is
immutable and helm upgrade fails on a changed one. Any other pool is <fullname>-worker-<name>
with component worker-<name>, a label value no other pool's selector matches. Without
worker.pools, the one default pool: `helm upgrade --reuse-values` of a release installed before
pools existed renders with that chart's defaults, which have no pools, and must keep its workers.
*/}}
{{- define "kubetasks.worker.pools" -}}
{{- $defaults := omit .Values.worker "pools" }}
{{- $pools := list }}
{{- range $index, $overrides := .Values.worker.pools | default (list (dict "name" "default")) }}
{{- $component := ternary "worker" (printf "worker-%s" $overrides.name) (eq $overrides.name "default") }}
{{- $resourceName := printf "%s-%s" (include "kubetasks.fullname" $) $component }}
{{- $values := mergeOverwrite (deepCopy $defaults) (deepCopy $overrides) }}
{{- $pools = append $pools (dict "name" $overrides.name "index" $index "overrides" $overrides "component" $component "resourceName" $resourceName "catalogueJobName" (printf "%s-catalogue" $resourceName) "values" $values) }}
{{- end }}
{{- dict "pools" $pools | toJson }}
{{- end }}

{{/*
Where a pool's value comes from, for messages: worker.pools[<index>].<key> when the pool sets it,
else worker.<key>. Call with (dict "pool" <pool> "key" "autoscaling.minReplicas").
*/}}
{{- define "kubetasks.worker.valuePath" -}}
{{- $node := .pool.overrides }}
{{- $set := true }}
{{- range $part := splitList "." .key }}
{{- if and $set (kindIs "map" $node) (hasKey $node $part) }}
{{- $node = index $node $part }}
{{- else }}
{{- $set = false }}
{{- end }}
{{- end }}
{{- if $set }}worker.pools[{{ .pool.index }}].{{ .key }}{{ else }}worker.{{ .key }}{{ end }}
{{- end }}
