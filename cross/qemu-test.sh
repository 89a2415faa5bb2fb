#!/bin/bash
# Runs the pure-Go packages' tests for arm64 (under qemu-aarch64-static,
# as a Cortex-A72 without dotprod and a Cortex-A76 with it) and for armhf
# (GOARM=7, qemu-arm-static). Test binaries are cross-compiled with
# CGO_ENABLED=0 and -tags nogocv, once per architecture and all packages in
# one go command (which compiles and links them in parallel), and run in
# their package folders with -test.short (dataset-scale runs stay native),
# QEMU_JOBS (default 2) at a time, the longest first.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-aarch64-static >/dev/null || ! command -v qemu-arm-static >/dev/null; then
  echo "qemu-test: skipped (qemu-user-static is not installed; make deps installs it)"
  exit 0
fi
GO=${GO:-go}
JOBS=${QEMU_JOBS:-2}
# Left out: what needs cgo or GoCV (the command, the daemon, the camera, the
# TensorFlow Lite backend and runner), the op-model helper, and archtest
# (it checks the source tree with the go command, the same on any target).
PKGS=$($GO list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./... |
  grep -vE '/(cmd/linesight|daemon|camera|model/tflitec|model/runner|internal/optest|internal/archtest)$' || true)
mod=$($GO list -m)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

build() { # arch env...
  local arch=$1; shift
  mkdir -p "$out/$arch"
  # shellcheck disable=SC2086 # PKGS is a list of import paths
  if ! env "$@" CGO_ENABLED=0 $GO test -c -tags nogocv -o "$out/$arch/" $PKGS >"$out/$arch.build.log" 2>&1; then
    echo "FAIL $arch: building the test binaries"; cat "$out/$arch.build.log"; return 1
  fi
}
build arm64 GOARCH=arm64 &
b64=$!
build armhf GOARCH=arm GOARM=7 &
b32=$!
wait $b64 && wait $b32

# One line per run: arch qemu cpu package-folder binary. go test -c -o DIR/
# names a binary after the last element of its import path.
# The heavy packages first, so that the two lanes end together.
heavy='internal/qgemm model patchcore bank model/resnet internal/rgb'
ordered=$(for p in $heavy; do echo "$mod/$p"; done; for p in $PKGS; do echo "$p"; done)
jobs=$out/jobs
for run in "arm64 qemu-aarch64-static cortex-a72" "arm64 qemu-aarch64-static cortex-a76" "armhf qemu-arm-static cortex-a15"; do
  set -- $run
  for p in $ordered; do
    grep -qxF "$p" <<<"$PKGS" || continue
    dir=.${p#"$mod"}
    bin=$out/$1/${p##*/}.test
    [ -f "$bin" ] && echo "$1 $2 $3 $dir $bin"
  done
done | awk '!seen[$0]++' >"$jobs"

run_one() { # arch qemu cpu dir bin
  local log="$5.$3.log" start=$SECONDS msg
  if (cd "$4" && "$2" -cpu "$3" "$5" -test.short -test.count=1 >"$log" 2>&1); then
    msg="ok $1 $3 $4 $((SECONDS - start))"
  else
    msg="FAIL $1 ($3) $4"$'\n'"$(tail -20 "$log")"
  fi
  printf '%s\n' "$msg" # one write: the lanes share the results file
}
export -f run_one
xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _ <"$jobs" >"$out/results"

failed=0
grep -v '^ok ' "$out/results" && failed=1
for run in "arm64 cortex-a72" "arm64 cortex-a76" "armhf cortex-a15"; do
  set -- $run
  n=$(grep -c "^ok $1 $2 " "$out/results" || true)
  want=$(grep -c "^$1 [^ ]* $2 " "$jobs" || true)
  slow=$(grep "^ok $1 $2 " "$out/results" | sort -k5 -n -r | head -1 | awk '{print $4, $5 "s"}')
  [ "$n" = "$want" ] && echo "qemu-test: $1 ($2): $n packages pass (longest: $slow)"
done
exit $failed
