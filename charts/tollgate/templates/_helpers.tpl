{{/* Shared pieces of the tollgate chart's templates. */}}

{{- define "tollgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The port of metricsAddress (HOST:PORT or [V6]:PORT); "off" is refused: the probes need it. */}}
{{- define "tollgate.metricsPort" -}}
{{- $addr := toString .Values.metricsAddress -}}
{{- if not (regexMatch "^(\\[[0-9A-Fa-f:.]+\\]|[0-9A-Za-z.-]*):[0-9]{1,5}$" $addr) -}}
{{- fail (printf "metricsAddress: %q is not HOST:PORT (the kubelet's probes and the container port use it, so \"off\" cannot be used here)" $addr) -}}
{{- end -}}
{{- regexFind "[0-9]+$" $addr -}}
{{- end }}

{{/* The pod spec fields the agent and the cleanup DaemonSets share (include with trim | nindent). */}}
{{- define "tollgate.placement" -}}
hostNetwork: true
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "tollgate.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The agent's arguments as a YAML list. Options left null are not passed (the agent's default applies);
     numbers are printed as integers (Helm reads them as floats: 1000000 would print as 1e+06). */}}
{{- define "tollgate.agentArgs" -}}
{{- $a := .Values.agent -}}
{{- $args := list "agent" (printf "--metrics-addr=%s" (toString .Values.metricsAddress)) (printf "--state-dir=%s" (toString $a.stateDir)) -}}
{{- $reports := $a.dropReports -}}
{{- if kindIs "bool" $reports -}}
{{- $reports = ternary "on" "off" $reports -}}
{{- end -}}
{{- $flags := list
  (list "liveness-timeout-ms" $a.livenessTimeoutMs)
  (list "boot-closed" $a.bootClosed)
  (list "verify-interval-ms" $a.verifyIntervalMs)
  (list "min-sync-interval-ms" $a.minSyncIntervalMs)
  (list "watch-quiet-ms" $a.watchQuietMs)
  (list "relist-interval-ms" $a.relistIntervalMs)
  (list "heap-growth-percent" $a.heapGrowthPercent)
  (list "established" $a.established)
  (list "drop-reports" $reports)
  (list "drop-report-rate" $a.dropReportRate)
  (list "drop-report-burst" $a.dropReportBurst)
  (list "nflog-group" $a.nflogGroup)
  (list "log-level" .Values.logLevel) -}}
{{- range $flags -}}
{{- $v := index . 1 -}}
{{- if not (kindIs "invalid" $v) -}}
{{- if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) -}}
{{- $v = int64 $v -}}
{{- end -}}
{{- $args = append $args (printf "--%s=%v" (index . 0) $v) -}}
{{- end -}}
{{- end -}}
{{- range $a.extraArgs -}}
{{- $args = append $args (toString .) -}}
{{- end -}}
{{- toYaml $args -}}
{{- end }}
