{{/* The name of every object of a release: the release name, "-vigil" added unless it says vigil already. */}}
{{- define "vigil.fullname" -}}
{{- if contains "vigil" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-vigil" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The headless Service that gives each pod its DNS name (the timely hostfile). */}}
{{- define "vigil.clusterService" -}}
{{- printf "%s-cluster" (include "vigil.fullname" .) -}}
{{- end -}}

{{/* Whether the processes checkpoint into one shared directory (several processes, the graph). */}}
{{- define "vigil.sharedCheckpoints" -}}
{{- if and .Values.checkpoints.enabled (gt (int .Values.processes) 1) -}}true{{- end -}}
{{- end -}}

{{/* The claim of the shared checkpoint volume. */}}
{{- define "vigil.checkpointsClaim" -}}
{{- .Values.checkpoints.shared.existingClaim | default (printf "%s-checkpoints" (include "vigil.fullname" .)) -}}
{{- end -}}

{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vigil.labels" -}}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* One line per process: the pod's stable DNS name and the cluster port. */}}
{{- define "vigil.hostfile" -}}
{{- $name := include "vigil.fullname" . -}}
{{- $svc := include "vigil.clusterService" . -}}
{{- range $i := until (int .Values.processes) }}
{{ printf "%s-%d.%s.%s.svc.cluster.local:%d" $name $i $svc $.Release.Namespace (int $.Values.clusterPort) }}
{{- end -}}
{{- end -}}
