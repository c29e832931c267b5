#!/usr/bin/env bash
# Builds the image mgrplane:dev (deploy/docker/Dockerfile, FROM scratch) from
# static binaries built here, and prints the size of each binary and of the
# image. No image is pulled. IMAGE overrides the tag; BIN_OUT, when set, is
# a directory that receives a copy of the three binaries (the compose test
# runs that mgrctl).
#   scripts/images.sh            # or: make images
#   IMAGE=mgrplane:test BIN_OUT=/tmp/bin scripts/images.sh
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-mgrplane:dev}
GO=${GO:-go}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/bin" "$ctx/data"
# -trimpath and no symbol table: smaller, and the same bytes from any checkout.
CGO_ENABLED=0 "$GO" build -trimpath -ldflags='-s -w' -o "$ctx/bin/" ./cmd/monsim ./cmd/standby ./cmd/mgrctl
cp deploy/docker/Dockerfile "$ctx/Dockerfile"
# The legacy builder is enough for FROM scratch (its deprecation notice is
# shown only when the build fails).
if ! docker build --quiet --tag "$IMAGE" "$ctx" >"$ctx/build.log" 2>&1; then
  cat "$ctx/build.log" >&2
  exit 1
fi
if [ -n "${BIN_OUT:-}" ]; then
  mkdir -p "$BIN_OUT"
  cp "$ctx"/bin/monsim "$ctx"/bin/standby "$ctx"/bin/mgrctl "$BIN_OUT"/
fi
mib() { awk -v b="$1" 'BEGIN { printf "%6.1f MiB", b / 1048576 }'; }
for b in monsim standby mgrctl; do
  printf '%-8s %s\n' "$b" "$(mib "$(stat -c %s "$ctx/bin/$b")")"
done
printf '%-8s %s  (%s)\n' image "$(mib "$(docker image inspect --format '{{.Size}}' "$IMAGE")")" "$IMAGE"
