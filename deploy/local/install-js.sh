#!/usr/bin/env bash
# The operators' page's charting library (Chart.js, exact version in deploy/web/package-lock.json),
# installed with npm from the lockfile into .local/web and copied into the metrics package, which
# serves it itself: the browser loads nothing from elsewhere (docs/operators.md). Redone only when
# the lockfile changes. The Dockerfile's node stage does the same for the image.
source "$(dirname "$0")/common.sh"
web="$LOCAL/web"
vendor="$ROOT/services/metrics/static/vendor"
tag=$(cat "$ROOT/deploy/web/package.json" "$ROOT/deploy/web/package-lock.json" | sha256sum | cut -c1-12)
marker="$vendor/.installed-$tag"
if [[ -f "$marker" && -f "$vendor/chart.umd.min.js" ]]; then exit 0; fi
command -v npm >/dev/null || { log "npm not found: install Node.js (Debian: apt-get install npm)"; exit 1; }
log "installing Chart.js from the npm registry (deploy/web/package-lock.json)"
mkdir -p "$web"
cp "$ROOT/deploy/web/package.json" "$ROOT/deploy/web/package-lock.json" "$web/"
(cd "$web" && npm ci --ignore-scripts --no-audit --no-fund --cache "$web/npm-cache" >"$web/npm-ci.log" 2>&1) \
  || { tail -20 "$web/npm-ci.log" >&2; exit 1; }
rm -rf "$vendor"; mkdir -p "$vendor"
cp "$web/node_modules/chart.js/dist/chart.umd.min.js" "$web/node_modules/chart.js/LICENSE.md" "$vendor/"
touch "$marker"
