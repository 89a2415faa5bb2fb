#!/bin/bash
# Cross-builds the full linesight binary (GoCV included) for a Debian 12
# arm64 or armhf machine against the sysroot of cross/sysroot.sh:
#
#   cross/build.sh arm64|armhf|amd64 [OUT]     default OUT: bin/linesight-ARCH
#
# (amd64 is the native release build on an amd64 Debian 12 host: the same
# stripped, version-stamped binary, with GoCV through pkg-config.)
#
# GoCV is built with its `customenv` tag so that the flags come from here and
# not from the host's pkg-config: the OpenCV modules its main package links
# (the same eleven a native Debian build ends up needing), Debian's cross
# compilers (gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf) pointed at the
# sysroot, and -rpath-link so the linker can follow OpenCV's own dependencies
# (GStreamer, FFmpeg, GTK, BLAS...) inside the sysroot without them being
# recorded in the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-}
version=$(cross/version.sh)
ldflags="-s -w -X main.version=$version"
out=${2:-bin/linesight-$arch}
case $arch in
  amd64)
    [ "$(dpkg --print-architecture)" = amd64 ] || { echo "cross/build.sh: amd64 is built natively on an amd64 host" >&2; exit 1; }
    mkdir -p "$(dirname "$out")"
    CGO_ENABLED=1 go build -trimpath -ldflags "$ldflags" -o "$out" ./cmd/linesight
    echo "cross/build.sh: $out ($(du -h "$out" | cut -f1))"
    exit 0 ;;
  arm64) triplet=aarch64-linux-gnu goenv=(GOARCH=arm64) ;;
  armhf) triplet=arm-linux-gnueabihf goenv=(GOARCH=arm GOARM=7) ;;
  *) echo "usage: cross/build.sh arm64|armhf|amd64 [OUT]" >&2; exit 2 ;;
esac
for tool in "$triplet-gcc" "$triplet-g++"; do
  command -v "$tool" >/dev/null || { echo "cross/build.sh: $tool missing (make deps installs it)" >&2; exit 1; }
done
root=$(cross/sysroot.sh "$arch")
lib=$root/usr/lib/$triplet
libs=""
for m in core imgproc imgcodecs videoio highgui video objdetect calib3d features2d dnn photo; do
  libs+=" -lopencv_$m"
done
rpath="$root/lib/$triplet:$lib:$lib/blas:$lib/lapack"
mkdir -p "$(dirname "$out")"
env "${goenv[@]}" CGO_ENABLED=1 CC="$triplet-gcc" CXX="$triplet-g++" \
  PKG_CONFIG=/bin/false \
  CGO_CPPFLAGS="--sysroot=$root -I$root/usr/include/opencv4" \
  CGO_CFLAGS="-O2" CGO_CXXFLAGS="-O2" \
  CGO_LDFLAGS="--sysroot=$root -L$lib -Wl,--as-needed$libs -Wl,-rpath-link,$rpath" \
  go build -tags customenv -trimpath -ldflags "$ldflags" -o "$out" ./cmd/linesight
echo "cross/build.sh: $out ($(du -h "$out" | cut -f1), $arch, linked against $(basename "$root"))"
