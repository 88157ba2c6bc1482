#!/usr/bin/env bash
# Builds, from source with Go, the two programs the live collector tests run:
#   otelcol-lunary  an OpenTelemetry Collector holding exactly the components that the
#                   configs in collector-config/ use (Go module collector-config/otelcol/)
#   jaeger          Jaeger v2 (github.com/jaegertracing/jaeger/cmd/jaeger, pinned in
#                   collector-config/jaeger/go.mod)
# into a git-ignored folder keyed by their versions:
#   .otel-bin/otelcol-lunary-<contrib version>-<hash of the module's files>/otelcol-lunary
#   .otel-bin/jaeger-<version>/jaeger
# A binary that is already there is not rebuilt, so a second run costs a few
# milliseconds; changing a component list or a version makes a new key and a new build.
#
# How to run it (from anywhere; needs Go >= 1.24 and the Go module proxy):
#   bash collector-config/build.sh            build what is missing, print the two paths
#   bash collector-config/build.sh --print    only print the paths (OTELCOL=..., JAEGER=...)
#
# Environment variables:
#   OTEL_BIN_DIR  where the binaries go (default <repo>/.otel-bin)
#   GOMAXPROCS    compile parallelism (default 2: the machines have 2 shared cores)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONFIG="$ROOT/collector-config"
OUT="${OTEL_BIN_DIR:-$ROOT/.otel-bin}"

module_version() {  # module_version GO_MOD MODULE_PATH -> the version go.mod requires
  awk -v m="$2" '$1 == m { print $2; exit }' "$1"
}

OTELCOL_VERSION="$(module_version "$CONFIG/otelcol/go.mod" go.opentelemetry.io/collector/otelcol)"
JAEGER_VERSION="$(module_version "$CONFIG/jaeger/go.mod" github.com/jaegertracing/jaeger)"
OTELCOL_HASH="$(cat "$CONFIG"/otelcol/go.mod "$CONFIG"/otelcol/go.sum "$CONFIG"/otelcol/*.go | sha256sum | cut -c1-10)"
OTELCOL="$OUT/otelcol-lunary-$OTELCOL_VERSION-$OTELCOL_HASH/otelcol-lunary"
JAEGER="$OUT/jaeger-$JAEGER_VERSION/jaeger"

if [ "${1:-}" = "--print" ]; then
  echo "OTELCOL=$OTELCOL"
  echo "JAEGER=$JAEGER"
  exit 0
fi

command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"   # Go's default install place
export GOTOOLCHAIN=local                      # the machine's Go; never fetch another
export GOFLAGS="${GOFLAGS:-} -trimpath -mod=readonly"
export GOMAXPROCS="${GOMAXPROCS:-2}"
# -s -w drop the symbol and DWARF tables: a smaller binary and a faster link.
LDFLAGS="-s -w"

build() {  # build MODULE_DIR PACKAGE OUTPUT [extra ldflags]
  local dir="$1" package="$2" output="$3" extra="${4:-}"
  if [ -x "$output" ]; then
    return 0
  fi
  mkdir -p "$(dirname "$output")"
  local started=$SECONDS
  echo "== building $(basename "$output") into $(dirname "$output")" >&2
  # Into a temporary name first: a killed build never leaves a binary that looks done.
  (cd "$dir" && go build -ldflags="$LDFLAGS $extra" -o "$output.partial" "$package")
  mv "$output.partial" "$output"
  echo "== $(basename "$output") built in $((SECONDS - started)) s" >&2
}

build "$CONFIG/otelcol" . "$OTELCOL" "-X main.version=$OTELCOL_VERSION"
build "$CONFIG/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger "$JAEGER"

echo "OTELCOL=$OTELCOL"
echo "JAEGER=$JAEGER"
