#!/usr/bin/env bash
# Build MinIO's server (the local stack's S3-compatible object store) once from the Go module proxy and
# cache it outside git, like the jars: ${FEEDSTREAM_CACHE_DIR:-~/.cache/feedstream}/minio/minio-<version>.
# Prints the binary's path (`--path`: only the path, no build). Needs Go (https://go.dev/dl). The first build takes a few minutes (a
# ~150 MB binary); `make bootstrap` runs it, and `feedstream local up media` would too.
set -euo pipefail
# MinIO tags releases as RELEASE.<date>, not semver: the module proxy serves them as pseudo-versions.
VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
CACHE=${FEEDSTREAM_CACHE_DIR:-$HOME/.cache/feedstream}/minio
BIN="$CACHE/minio-$VERSION"
if [ "${1:-}" = "--path" ]; then echo "$BIN"; exit 0; fi  # where it is (or will be), without building
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
if ! command -v go >/dev/null; then
  echo "error: go not found; install Go (Debian: sudo apt-get install golang) to build the MinIO server" >&2
  exit 1
fi
mkdir -p "$CACHE"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[minio] building github.com/minio/minio@$VERSION (once, a few minutes)" >&2
start=$(date +%s)
GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/minio/minio@$VERSION" >&2
mv "$tmp/minio" "$BIN"
echo "[minio] built in $(( $(date +%s) - start )) s: $BIN" >&2
echo "$BIN"
