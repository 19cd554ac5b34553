#!/usr/bin/env bash
# Build FerretDB (MongoDB wire protocol, SQLite backend) from the Go module proxy, once, with our
# patches (deploy/local/ferretdb/*.patch; README "Decisions"). Usage: install-ferretdb.sh [--unpatched]
# --unpatched builds .local/bin/ferretdb-unpatched, the release as published, for bench-reads' comparison.
source "$(dirname "$0")/common.sh"
patches=("$ROOT"/deploy/local/ferretdb/*.patch)
if [[ ${1:-} == --unpatched ]]; then
  binary="$BIN/ferretdb-unpatched"; patches=(); tag=unpatched
else
  binary="$BIN/ferretdb"; tag=$(cat "${patches[@]}" | sha256sum | cut -c1-12)
fi
marker="$binary.$FERRETDB_VERSION-$tag"  # a new version or a changed patch rebuilds
if [[ -x "$binary" && -f "$marker" ]]; then exit 0; fi
log "building FerretDB $FERRETDB_VERSION ($tag) with go (first run only, a few minutes)"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"  # an older Go fetches the toolchain go.mod asks for
# `go install pkg@version` would ask the proxy for the module's version list, which it refuses
# here; download the exact version instead and build a writable copy, because FerretDB's
# version check wants build/version/version.txt, which release tooling writes and the module lacks.
src=$(cd /tmp && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
build="$LOCAL/build/ferretdb-$tag"
rm -rf "$build"; mkdir -p "$(dirname "$build")"
cp -r "$src" "$build"; chmod -R u+w "$build"
echo "$FERRETDB_VERSION" >"$build/build/version/version.txt"
for p in "${patches[@]}"; do patch --quiet --forward -p1 -d "$build" <"$p"; done
(cd "$build" && CGO_ENABLED=0 go build -trimpath -o "$binary" ./cmd/ferretdb)
rm -rf "$build" "$binary".*
touch "$marker"
