{{- define "dossier.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The contract ports (CONTRACT §7): the same in every deployment. */}}
{{- define "dossier.port" -}}
{{- get (dict "intake" 8001 "processing" 8002 "metrics" 8003 "notifications" 8004 "signature" 8005) . -}}
{{- end -}}

{{/* The topic each consumer reads, as the services' settings name it. */}}
{{- define "dossier.topic" -}}
{{- get (dict "processing" "dossier-events" "signature" "dossier-events" "metrics" "dossier-status" "notifications" "dossier-status") . -}}
{{- end -}}

{{/* root, component */}}
{{- define "dossier.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dossier.labels" -}}
{{ include "dossier.selectorLabels" . }}
app.kubernetes.io/part-of: dossier-tracker
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Strimzi names the bootstrap Service <cluster>-kafka-bootstrap and the nodes <cluster>-<pool>-<n>. */}}
{{- define "dossier.kafkaCluster" -}}
{{ include "dossier.fullname" . }}
{{- end -}}

{{/* A service's Kafka user, and the Secret holding its password (key `password`): root, component */}}
{{- define "dossier.kafkaUser" -}}
{{ .root.Values.kafka.userPrefix | default (printf "%s-kafka-" (include "dossier.fullname" .root)) }}{{ .component }}
{{- end -}}

{{- define "dossier.bootstrapServers" -}}
{{- if .Values.kafka.bootstrapServers -}}
{{ .Values.kafka.bootstrapServers }}
{{- else if .Values.kafka.create -}}
{{ include "dossier.kafkaCluster" . }}-kafka-bootstrap:9092
{{- else -}}
{{ fail "kafka.bootstrapServers is required when kafka.create is false" }}
{{- end -}}
{{- end -}}

{{/* The largest record batch a broker and every topic take: shared/kafka.py MAX_MESSAGE_BYTES (2 MiB). */}}
{{- define "dossier.maxMessageBytes" -}}
2097152
{{- end -}}

{{- define "dossier.mongoUrlSecret" -}}
{{- if .Values.mongodb.urlSecret.name -}}
{{ .Values.mongodb.urlSecret.name }}
{{- else if .Values.mongodb.create -}}
{{ include "dossier.fullname" . }}-mongodb-url
{{- else -}}
{{ fail "mongodb.urlSecret.name is required when mongodb.create is false" }}
{{- end -}}
{{- end -}}

{{/* An env entry read from a Secret: name, secret, key, optional */}}
{{- define "dossier.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* What every service is given: root */}}
{{- define "dossier.commonEnv" -}}
- name: DOSSIER_ENVIRONMENT
  value: {{ .Values.environment | quote }}
- name: DOSSIER_BIND_HOST
  value: "0.0.0.0"
- name: DOSSIER_LOG_FORMAT
  value: json
- name: DOSSIER_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: DOSSIER_KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "dossier.bootstrapServers" . | quote }}
- name: DOSSIER_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: DOSSIER_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
{{ include "dossier.secretEnv" (dict "name" "DOSSIER_MONGO_URL" "secret" (include "dossier.mongoUrlSecret" .) "key" .Values.mongodb.urlSecret.key) }}
- name: DOSSIER_MONGO_DATABASE
  value: {{ .Values.mongodb.database | quote }}
{{- if .Values.calendar }}
- name: DOSSIER_CALENDAR
  value: /config/calendar/calendar.yaml
{{- end }}
- name: PYTHONDONTWRITEBYTECODE  # the root file system is read-only
  value: "1"
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/*
A pod of one service: root, component, env (YAML list), mounts and volumes (YAML lists), values (the
component's), startupSeconds.
*/}}
{{- define "dossier.pod" -}}
{{- $root := .root -}}
{{- $port := include "dossier.port" .component -}}
metadata:
  labels:
    {{- include "dossier.labels" . | nindent 4 }}
    {{- with .shard }}
    dossier-tracker/shard: {{ . }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmaps.yaml") $root | sha256sum }}
spec:
  serviceAccountName: {{ include "dossier.fullname" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  # Consumers commit what they processed when stopped; give them the time.
  terminationGracePeriodSeconds: 30
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "dossier.selectorLabels" . | nindent 10 }}
          {{- with .shard }}
          dossier-tracker/shard: {{ . }}
          {{- end }}
  containers:
    - name: {{ .component }}
      image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag | default $root.Chart.AppVersion }}"
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command: ["python", "-m", "services.{{ .component }}"]
      ports:
        - name: http
          containerPort: {{ $port }}
      env:
        - name: DOSSIER_{{ upper .component }}_PORT
          value: {{ $port | quote }}
        {{- include "dossier.commonEnv" $root | nindent 8 }}
        # Its own Kafka user (docs/security.md, finding 12).
        - name: DOSSIER_KAFKA_USERNAME
          value: {{ include "dossier.kafkaUser" . | quote }}
        {{- include "dossier.secretEnv" (dict "name" "DOSSIER_KAFKA_PASSWORD" "secret" (include "dossier.kafkaUser" .) "key" "password") | nindent 8 }}
        {{- with .env }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- range $name, $value := .values.env }}
        - name: {{ $name }}
          value: {{ $value | quote }}
        {{- end }}
      startupProbe:
        httpGet: {path: /healthz, port: http}
        periodSeconds: 5
        failureThreshold: {{ div (.startupSeconds | default 60) 5 }}
      livenessProbe:
        httpGet: {path: /healthz, port: http}
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      # 503 until Kafka and MongoDB are reachable and the service has loaded what it needs.
      readinessProbe:
        httpGet: {path: /readyz, port: http}
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 3
      resources:
        {{- toYaml .values.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if $root.Values.calendar }}
        - name: calendar
          mountPath: /config/calendar
          readOnly: true
        {{- end }}
        {{- with .mounts }}
        {{- . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {sizeLimit: 256Mi}
    {{- if $root.Values.calendar }}
    - name: calendar
      configMap:
        name: {{ include "dossier.fullname" $root }}-calendar
    {{- end }}
    {{- with .volumes }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* A Secret's file mounted read-only at /secrets/<file>: name (volume), secret, keys */}}
{{- define "dossier.secretVolume" -}}
- name: {{ .name }}
  secret:
    secretName: {{ .secret }}
    defaultMode: 0440
    items:
      {{- range .keys }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end -}}
