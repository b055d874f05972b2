#!/usr/bin/env python3
"""Writes N realistic workload documents (default 10,000) as one multi-document YAML file.

Used by benches/audit.sh to measure `spreadguard audit` throughput.
"""
import sys

TEMPLATE = """---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: svc-{i}
  namespace: team-{ns}
  labels: {{app.kubernetes.io/name: svc-{i}, app.kubernetes.io/part-of: shop}}
  annotations: {{deployment.kubernetes.io/revision: "3"}}
spec:
  replicas: {replicas}
  revisionHistoryLimit: 5
  selector:
    matchLabels: {{app.kubernetes.io/name: svc-{i}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 25%, maxUnavailable: 0}}}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: svc-{i}, app.kubernetes.io/part-of: shop}}
      annotations: {{prometheus.io/scrape: "true", prometheus.io/port: "9090"}}
    spec:
      serviceAccountName: svc-{i}
      nodeSelector: {{kubernetes.io/os: linux}}
      tolerations:
      - {{key: dedicated, operator: Equal, value: shop, effect: NoSchedule}}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 50
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector: {{matchLabels: {{app.kubernetes.io/name: svc-{i}}}}}
      containers:
      - name: app
        image: registry.example/shop/svc-{i}:1.{i}
        ports: [{{name: http, containerPort: 8080}}, {{name: metrics, containerPort: 9090}}]
        env:
        - {{name: LOG_LEVEL, value: info}}
        - {{name: DB_HOST, valueFrom: {{secretKeyRef: {{name: db, key: host}}}}}}
        resources:
          requests: {{cpu: 100m, memory: 128Mi}}
          limits: {{memory: 256Mi}}
        readinessProbe: {{httpGet: {{path: /ready, port: http}}, periodSeconds: 5}}
        livenessProbe: {{httpGet: {{path: /live, port: http}}, periodSeconds: 10}}
        securityContext: {{runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}}
        volumeMounts: [{{name: tmp, mountPath: /tmp}}]
      volumes: [{{name: tmp, emptyDir: {{}}}}]
"""

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
out = sys.stdout
for i in range(n):
    out.write(TEMPLATE.format(i=i, ns=i % 40, replicas=1 + i % 4))
