#!/usr/bin/env bash
# Build the stillpoint container image from the static binary `make build`
# left in .bin/stillpoint. The context is assembled in a temp dir so it
# holds only what the image needs (not the repository, not .bin's tools).
#
# Usage: deploy/docker/build.sh [IMAGE]     (default stillpoint:dev)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
image=${1:-stillpoint:dev}
bin="$repo/.bin/stillpoint"

if [[ ! -x "$bin" ]]; then
	echo "build.sh: $bin not found: run 'make build' first" >&2
	exit 1
fi
if ! file_out=$(od -An -c -N4 "$bin" | tr -d ' \n') || [[ "$file_out" != '177ELF' ]]; then
	echo "build.sh: $bin is not an ELF binary" >&2
	exit 1
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

cp "$here/Dockerfile" "$bin" "$ctx/"
mkdir -p "$ctx/data" "$ctx/rootfs/tmp" "$ctx/rootfs/etc/ssl/certs"
chmod 0755 "$ctx/rootfs" "$ctx/rootfs/etc" "$ctx/rootfs/etc/ssl" "$ctx/rootfs/etc/ssl/certs"
chmod 0700 "$ctx/data"
chmod 1777 "$ctx/rootfs/tmp"
printf 'root:x:0:0:root:/:/sbin/nologin\nstillpoint:x:65532:65532:stillpoint:/var/lib/stillpoint:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nstillpoint:x:65532:\n' >"$ctx/rootfs/etc/group"
if [[ -r /etc/ssl/certs/ca-certificates.crt ]]; then
	cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
else
	echo "build.sh: no /etc/ssl/certs/ca-certificates.crt on this host: image has no public CA roots" >&2
fi

version=$("$bin" version 2>/dev/null | awk '{print $2}')
docker build --build-arg "VERSION=${version:-dev}" -t "$image" "$ctx"
echo "built $image (stillpoint ${version:-dev})"
