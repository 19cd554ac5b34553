#!/usr/bin/env bash
# The project's virtualenv under .local/venv: exactly what requirements.lock pins, each package checked
# against its hashes, then the project itself (editable, nothing resolved beyond the lock). Installed
# again only when the lock or pyproject.toml changes; a package the lock no longer names is removed.
# deploy/local/lock-python.sh writes the lock.
source "$(dirname "$0")/common.sh"
stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" | sha256sum | cut -c1-16)"
[[ -f "$stamp" ]] && exit 0
log "installing Python dependencies from requirements.lock into .local/venv"
[[ -x "$PY" ]] || python3 -m venv "$VENV"
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }
names() { sed -nE 's/^([A-Za-z0-9][A-Za-z0-9._-]*).*/\1/p' | tr 'A-Z' 'a-z' | sed -E 's/[-_.]+/-/g' | sort -u; }
remove_unlocked() {
  local unlocked
  unlocked=$(comm -23 <(pip freeze --exclude-editable | names) \
                      <(grep -E '^[A-Za-z0-9][A-Za-z0-9._-]*==' "$ROOT/requirements.lock" | names))
  [[ -z "$unlocked" ]] || pip uninstall -y $unlocked
}
pip_log="$LOCAL/pip-install.log"
{ pip install --require-hashes -r "$ROOT/requirements.lock" &&
  remove_unlocked &&
  pip install --no-deps --no-build-isolation -e "$ROOT" &&
  pip check; } >"$pip_log" 2>&1 \
  || { tail -30 "$pip_log" >&2; exit 1; }
rm -f "$VENV"/.pyproject-* "$VENV"/.installed-*
touch "$stamp"
