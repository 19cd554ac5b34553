#!/usr/bin/env bash
# The project's virtualenv under .local/venv, reinstalled only when pyproject.toml changes.
source "$(dirname "$0")/common.sh"
stamp="$VENV/.pyproject-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
[[ -f "$stamp" ]] && exit 0
log "installing Python dependencies into .local/venv"
[[ -x "$PY" ]] || python3 -m venv "$VENV"
"$PY" -m pip install -q --disable-pip-version-check --upgrade pip
"$PY" -m pip install -q --disable-pip-version-check -e "$ROOT[test]"
rm -f "$VENV"/.pyproject-*
touch "$stamp"
