#!/bin/bash
# Runs the pure-Go packages' tests for arm64 (under qemu-aarch64-static,
# as a Cortex-A72 without dotprod and a Cortex-A76 with it) and for armhf
# (GOARM=7, qemu-arm-static). Test binaries are cross-compiled with
# CGO_ENABLED=0 and -tags nogocv, and run in their package folders with
# -test.short (dataset-scale runs stay native).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-aarch64-static >/dev/null || ! command -v qemu-arm-static >/dev/null; then
  echo "qemu-test: skipped (qemu-user-static is not installed; make deps installs it)"
  exit 0
fi
GO=${GO:-go}
PKGS=$($GO list ./... | grep -vE '/(cmd/linesight|daemon|camera|model/tflitec|model/runner)$' | grep -v '/internal/optest$' || true)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { # arch qemu cpu env...
  local arch=$1 qemu=$2 cpu=$3; shift 3
  local failed=0 n=0
  for p in $PKGS; do
    dir=${p#github.com/linesight/linesight}; dir=.${dir}
    bin="$out/$(echo "$dir" | tr / _).$arch.test"
    env "$@" CGO_ENABLED=0 $GO test -c -tags nogocv -o "$bin" "$dir" >/dev/null
    [ -f "$bin" ] || continue # no tests
    n=$((n + 1))
    if ! (cd "$dir" && $qemu -cpu "$cpu" "$bin" -test.short -test.count=1 >"$bin.log" 2>&1); then
      echo "FAIL $arch ($cpu) $dir"; tail -20 "$bin.log"; failed=1
    fi
  done
  [ $failed = 0 ] && echo "qemu-test: $arch ($cpu): $n packages pass"
  return $failed
}
run arm64 qemu-aarch64-static cortex-a72 GOARCH=arm64
run arm64 qemu-aarch64-static cortex-a76 GOARCH=arm64
run armhf qemu-arm-static cortex-a15 GOARCH=arm GOARM=7
