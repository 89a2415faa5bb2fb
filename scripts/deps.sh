#!/bin/bash
# Installs what a make target needs, idempotently: the Debian packages of the
# groups named that are missing (one `apt-get update`, then one `apt-get
# install`, only when something is missing), and for the tflite group the
# TensorFlow Lite C library from the npm package node-tflite into
# .cache/tflite. Safe to run again and again: with everything there it only
# looks (a fraction of a second).
#
#   scripts/deps.sh GROUP...
#
# Groups (a target names the ones it needs; `make test` names all but
# generate, so one update and one install cover the whole suite):
#   demo      nothing but Go: the demo builds a static binary without GoCV
#   build     libopencv-dev: GoCV (the camera package) builds against it
#   test      build, plus the tests' references and real peers:
#             python3-numpy/-scipy/-sklearn/-torch (the PatchCore and
#             builder references: gaussian_filter, roc_auc_score,
#             avg_pool2d/interpolate, torch checkpoints), ffmpeg and
#             GStreamer with jpegenc (-good: test videos, pipelines, the
#             exec: camera source's streams), mosquitto (the real
#             broker of the MQTT tests, started by the tests on free ports),
#             chromium (the console's browser test, headless), protoc and
#             python3-protobuf (the Sparkplug tests' independent decoder:
#             our .proto compiled by Debian's protoc at test time), and
#             aarch64 binutils (GNU as checks our arm64 instruction words)
#   qemu      qemu-user-static: runs the arm64 and armhf test binaries
#   cross     build and qemu, plus the cross compilers that build the arm64
#             and armhf binaries against cross/sysroot.sh's sysroots
#   tflite    npm, and through it the TensorFlow Lite 2.2 C library (linux
#             x86-64 only), the engine's conformance oracle
#   generate  flatbuffers-compiler (flatc 2.0.8) for `make generate`
#   all       every group
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A group=(
  [demo]=""
  [build]="libopencv-dev"
  [test]="libopencv-dev python3-numpy python3-scipy python3-sklearn python3-torch ffmpeg gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-tools mosquitto chromium protobuf-compiler python3-protobuf binutils-aarch64-linux-gnu"
  [qemu]="qemu-user-static"
  [cross]="libopencv-dev qemu-user-static g++-aarch64-linux-gnu g++-arm-linux-gnueabihf"
  [tflite]=""
  [generate]="flatbuffers-compiler"
)

(($#)) || { echo "usage: scripts/deps.sh GROUP... (demo build test qemu cross tflite generate all)" >&2; exit 2; }
groups=()
for g in "$@"; do
  if [ "$g" = all ]; then
    groups+=(demo build test qemu cross tflite generate)
  elif [[ -v group[$g] ]]; then
    groups+=("$g")
  else
    echo "scripts/deps.sh: unknown group $g (demo build test qemu cross tflite generate all)" >&2; exit 2
  fi
done

if ! command -v go >/dev/null 2>&1; then
  echo "deps: Go 1.26 is needed (https://go.dev/dl); Debian 12's golang package is too old" >&2
  exit 1
fi

want=() tflite=no
for g in "${groups[@]}"; do
  # shellcheck disable=SC2206 # word splitting of the package lists is meant
  want+=(${group[$g]})
  [ "$g" = tflite ] && tflite=yes
done
missing=()
for p in $(printf '%s\n' "${want[@]}" | sort -u); do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# npm may come from elsewhere than Debian's package: any npm will do.
if [ $tflite = yes ] && [ "$(uname -m)" = x86_64 ] && ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "deps: installing ${missing[*]}"
  # Another apt or dpkg (unattended upgrades, a second make) may hold the
  # lock for a while: apt waits for it rather than failing at once.
  lock=(-o DPkg::Lock::Timeout=600)
  $SUDO apt-get "${lock[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${lock[@]}" install -y -qq "${missing[@]}" >/dev/null
fi

# TensorFlow Lite 2.2 C library (linux x86-64 only), the engine's conformance oracle.
TFL=.cache/tflite
if [ $tflite = yes ] && [ "$(uname -m)" = x86_64 ] && [ ! -f "$TFL/package/tflite/linux_x86_64/libtensorflowlite_c.so" ]; then
  echo "deps: fetching node-tflite@0.0.2 (TensorFlow Lite C library) from npm"
  mkdir -p "$TFL"
  (cd "$TFL" && npm pack --silent node-tflite@0.0.2 >/dev/null && tar xzf node-tflite-0.0.2.tgz package/tflite/linux_x86_64 package/tflite/include && rm -f node-tflite-0.0.2.tgz)
fi
