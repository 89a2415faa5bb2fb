#!/bin/bash
# Builds and packages a static linesight for boards without Debian 12's
# OpenCV (Jetson L4T, other distributions): pure Go, no cgo, no GoCV, so
# the camera takes dir:, seq:, image:, exec: and pipe: sources only.
#
#   cross/static.sh amd64|arm64|armhf [OUTDIR]       default OUTDIR: bin/
#
# Leaves in OUTDIR:
#   linesight-static-ARCH                      the binary (stripped, versioned)
#   linesight-static_VERSION_ARCH.deb          cross/deb.sh: no Depends;
#                                              an alternative to linesight
#   linesight-static-VERSION-ARCH.tar.gz       binary, systemd unit, example
#                                              config and README
# and fails if the binary has an interpreter or a DT_NEEDED library, or if
# the package depends on anything.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-} outdir=${2:-bin}
case $arch in
  amd64) env=(GOARCH=amd64) ;;
  arm64) env=(GOARCH=arm64) ;;
  armhf) env=(GOARCH=arm GOARM=7) ;;
  *) echo "usage: cross/static.sh amd64|arm64|armhf [OUTDIR]" >&2; exit 2 ;;
esac
GO=${GO:-go}
version=$(cross/version.sh)
mkdir -p "$outdir"
bin=$outdir/linesight-static-$arch
env "${env[@]}" CGO_ENABLED=0 GOOS=linux $GO build -tags nogocv -trimpath \
  -ldflags "-s -w -X main.version=$version" -o "$bin" ./cmd/linesight

# Static: no program interpreter, no dynamic section needing libraries.
if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
  echo "cross/static.sh: $bin has a program interpreter" >&2; exit 1
fi
if readelf -dW "$bin" | grep -q NEEDED; then
  echo "cross/static.sh: $bin needs shared libraries" >&2; exit 1
fi
echo "cross/static.sh: $bin ($(du -h "$bin" | cut -f1)): $(file -b "$bin")"

# The same version in the binary, the package and the tarball, even when a
# commit lands meanwhile.
msg=$(LINESIGHT_VERSION=$version cross/deb.sh "$arch" "$bin" "$outdir")
echo "$msg"
deb=$(sed -n 's|^cross/deb.sh: \([^ ]*\) .*|\1|p' <<<"$msg")
[ -n "$deb" ] || { echo "cross/static.sh: cross/deb.sh made no package" >&2; exit 1; }
if dpkg-deb -f "$deb" Depends | grep -q .; then
  echo "cross/static.sh: $deb has Depends: $(dpkg-deb -f "$deb" Depends)" >&2; exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
top=linesight-static-$version-$arch
mkdir -p "$stage/$top"
install -m 0755 "$bin" "$stage/$top/linesight"
install -m 0644 systemd/linesight.service config/linesight.example.yaml README.md "$stage/$top/"
tgz=$outdir/$top.tar.gz
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$tgz" "$top"
echo "cross/static.sh: $tgz ($(du -h "$tgz" | cut -f1)): $(tar -tzf "$tgz" | sed 's|^[^/]*/||' | grep . | paste -sd' ')"
