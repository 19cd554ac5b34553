#!/usr/bin/env bash
# The chart's PrometheusRules are deploy/prometheus/rules/*.yml: Helm reads no file outside the chart,
# so they are copied into it. Run after changing a rule; tests/unit/test_kubernetes.py checks the copy.
set -euo pipefail
cd "$(dirname "$0")"
rm -f dossier-tracker/files/rules/*.yml
cp ../prometheus/rules/*.yml dossier-tracker/files/rules/
