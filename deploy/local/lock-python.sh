#!/usr/bin/env bash
# Writes requirements.lock: every Python package the services and their tests install (pyproject.toml's
# dependencies and its `test` extra) and the pip and setuptools that install them, each pinned with its
# hashes, for Python 3.11 on Linux x86_64. Pins already in the lock are kept; to move some, pass uv's
# options, e.g. `lock-python.sh --upgrade-package fastapi` (or `--upgrade` for all).
# uv runs from a throwaway virtualenv, never the project's.
source "$(dirname "$0")/common.sh"
UV_VERSION="${UV_VERSION:-0.13.9}"
tool="$(mktemp -d)"
trap 'rm -rf "$tool"' EXIT
python3 -m venv "$tool"
"$tool/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
cd "$ROOT"
# install-python.sh and the Dockerfile build the project without build isolation, with the lock's setuptools.
python3 -c 'import tomllib; print("pip", *tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' |
  "$tool/bin/uv" pip compile pyproject.toml - --extra test --generate-hashes \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
    --custom-compile-command "deploy/local/lock-python.sh" --output-file requirements.lock "$@"
log "requirements.lock written; make venv installs it"
