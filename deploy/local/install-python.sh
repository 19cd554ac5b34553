#!/usr/bin/env bash
# The project's virtualenv under .local/venv, reinstalled only when pyproject.toml changes.
source "$(dirname "$0")/common.sh"
stamp="$VENV/.pyproject-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
[[ -f "$stamp" ]] && exit 0
log "installing Python dependencies into .local/venv"
[[ -x "$PY" ]] || python3 -m venv "$VENV"
pip_log="$LOCAL/pip-install.log"
{ "$PY" -m pip install --disable-pip-version-check --upgrade pip &&
  "$PY" -m pip install --disable-pip-version-check -e "$ROOT[test]"; } >"$pip_log" 2>&1 \
  || { tail -30 "$pip_log" >&2; exit 1; }
rm -f "$VENV"/.pyproject-*
touch "$stamp"
