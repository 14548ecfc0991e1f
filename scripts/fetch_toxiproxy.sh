#!/usr/bin/env bash
# Build Toxiproxy's server once from the Go module proxy and cache it outside git, like the jars:
# ${FEEDSTREAM_CACHE_DIR:-~/.cache/feedstream}/toxiproxy/toxiproxy-server-<version>.
# Prints the binary's path. Needs Go (https://go.dev/dl); `feedstream chaos` calls this lazily.
set -euo pipefail
VERSION=${TOXIPROXY_VERSION:-v2.5.0}
CACHE=${FEEDSTREAM_CACHE_DIR:-$HOME/.cache/feedstream}/toxiproxy
BIN="$CACHE/toxiproxy-server-$VERSION"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
if ! command -v go >/dev/null; then
  echo "error: go not found; install Go (Debian: sudo apt-get install golang) to build toxiproxy-server" >&2
  exit 1
fi
mkdir -p "$CACHE"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[toxiproxy] building github.com/Shopify/toxiproxy/v2/cmd/server@$VERSION (once)" >&2
GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/Shopify/toxiproxy/v2/cmd/server@$VERSION" >&2
mv "$tmp/server" "$BIN"
echo "$BIN"
