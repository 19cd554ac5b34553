#!/usr/bin/env bash
# Build FerretDB (MongoDB wire protocol, SQLite backend) from the Go module proxy, once.
source "$(dirname "$0")/common.sh"
marker="$BIN/.ferretdb-$FERRETDB_VERSION"
if [[ -x "$BIN/ferretdb" && -f "$marker" ]]; then exit 0; fi
log "building FerretDB $FERRETDB_VERSION with go (first run only, a few minutes)"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"  # an older Go fetches the toolchain go.mod asks for
# `go install pkg@version` would ask the proxy for the module's version list, which it refuses
# here; download the exact version instead and build a writable copy, because FerretDB's
# version check wants build/version/version.txt, which release tooling writes and the module lacks.
src=$(cd /tmp && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
build="$LOCAL/build/ferretdb"
rm -rf "$build"; mkdir -p "$(dirname "$build")"
cp -r "$src" "$build"; chmod -R u+w "$build"
echo "$FERRETDB_VERSION" >"$build/build/version/version.txt"
(cd "$build" && CGO_ENABLED=0 go build -trimpath -o "$BIN/ferretdb" ./cmd/ferretdb)
rm -rf "$build" "$BIN"/.ferretdb-*
touch "$marker"
