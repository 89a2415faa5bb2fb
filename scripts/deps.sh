#!/bin/bash
# Installs what `make test` needs, idempotently: Debian packages (only when
# missing; `apt-get update` once, first) and the TensorFlow Lite C library from
# the npm package node-tflite into .cache/tflite. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# python3-scipy, -sklearn and -torch are the independent references of the
# PatchCore tests (gaussian_filter, roc_auc_score, avg_pool2d/interpolate).
# libopencv-dev is what GoCV (the camera package) builds against; ffmpeg and
# GStreamer make the test videos and pipelines; mosquitto is the real broker
# of the daemon's integration tests (started by the tests on free ports);
# qemu-user-static runs the arm64 and armhf test binaries; the cross
# compilers build the arm64 and armhf binaries against cross/sysroot.sh's
# sysroots.
for p in flatbuffers-compiler python3-numpy python3-scipy python3-sklearn python3-torch \
  libopencv-dev ffmpeg gstreamer1.0-plugins-base gstreamer1.0-tools mosquitto \
  qemu-user-static g++-aarch64-linux-gnu g++-arm-linux-gnueabihf; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# TensorFlow Lite 2.2 C library (linux x86-64 only), the engine's conformance oracle.
TFL=.cache/tflite
if [ "$(uname -m)" = x86_64 ] && [ ! -f "$TFL/package/tflite/linux_x86_64/libtensorflowlite_c.so" ]; then
  echo "deps: fetching node-tflite@0.0.2 (TensorFlow Lite C library) from npm"
  mkdir -p "$TFL"
  (cd "$TFL" && npm pack --silent node-tflite@0.0.2 >/dev/null && tar xzf node-tflite-0.0.2.tgz package/tflite/linux_x86_64 package/tflite/include && rm -f node-tflite-0.0.2.tgz)
fi
