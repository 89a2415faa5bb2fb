# Linesight. `make test` is what CI runs; it installs what it needs first.
GO        ?= go
BIN       := bin/linesight
TFLITE    := $(CURDIR)/.cache/tflite/package/tflite
TFLITE_LIB:= $(TFLITE)/linux_x86_64
# Where the C compiler and linker find the TensorFlow Lite backend (build
# tag "tflite"): header and library search paths and the binary's run path.
# They are given through gcc's and ld's own variables, not CGO_CFLAGS and
# CGO_LDFLAGS, which the go command hashes into every cgo package's build:
# those would make it compile GoCV's C++ again for the tflite builds.
TFLITE_ENV:= CGO_ENABLED=1 CPATH="$(TFLITE)/include" LIBRARY_PATH="$(TFLITE_LIB)" \
             LD_RUN_PATH="$(TFLITE_LIB)"
FUZZTIME  ?= 10s
HAVE_TFLITE := $(shell [ "$$(uname -m)" = x86_64 ] && echo yes)

# Targets of `make test` that run side by side (2 cores: while one target
# waits on qemu, a GoCV C++ file, dpkg or a broker outage, another uses the
# core).
TEST_JOBS ?= 2

.PHONY: static static-amd64 static-arm64 static-armhf test-static fuzz-brief bench-peer test-qemu test-cross test-deb cross-arm64 cross-armhf cross-amd64 deb all demo build build-tflite deps test test-core test-accept test-tflite lint bench fuzz generate clean
.PHONY: deps-build deps-test deps-qemu deps-cross deps-tflite deps-generate

all: build

VERSION    = $(shell cross/version.sh)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/linesight

# Release binaries (stripped, version-stamped): amd64 natively, arm64 and
# armhf against Debian 12 sysroots (cross/sysroot.sh, cached in
# ~/.cache/linesight/cross) with Debian's cross compilers.
cross-amd64: deps-cross
	@cross/build.sh amd64
cross-arm64: deps-cross
	@cross/build.sh arm64
cross-armhf: deps-cross
	@cross/build.sh armhf

# Debian packages for the three, in bin/.
deb: cross-amd64 cross-arm64 cross-armhf
	@for a in amd64 arm64 armhf; do cross/deb.sh $$a bin/linesight-$$a || exit 1; done

# Static release artefacts for boards without Debian 12's OpenCV (Jetson
# L4T, other distributions): CGO_ENABLED=0 -tags nogocv (cameras through
# dir:, seq:, image:, exec: and pipe: only), stripped, in bin/: the binary
# linesight-static-ARCH, the package linesight-static_VERSION_ARCH.deb (no
# Depends; an alternative to linesight) and linesight-static-VERSION-ARCH.tar.gz
# (binary, unit file, example config, README). Needs nothing but Go and dpkg-deb.
static-amd64 static-arm64 static-armhf:
	@cross/static.sh $(@:static-%=%)
static: static-amd64 static-arm64 static-armhf

# The static arm64 binary under qemu (Cortex-A72 and Cortex-A76) captures
# frames from an exec: source running ffmpeg and inspects them with the
# static amd64 binary's verdicts and scores, and the armhf one under
# qemu-arm as a Cortex-A7 (about 3 minutes plus the builds; not part of
# `make test`). Skips and says so without qemu-user-static or ffmpeg.
test-static: static-amd64 static-arm64 static-armhf
	@LINESIGHT_STATIC=1 $(GO) test -count=1 -v -run Static ./cross/ > bin/static.log 2>&1; \
	  rc=$$?; grep -E '^(static:|--- |ok|FAIL)|_test.go|SKIP' bin/static.log; exit $$rc

# The quick start: a sample line served end to end (scripts/demo.sh). It
# needs nothing but Go: a static binary without GoCV (bin/linesight-demo).
demo:
	@scripts/demo.sh

# The same binary with the TensorFlow Lite backend (--backend tflite).
build-tflite: deps-build deps-tflite
	$(TFLITE_ENV) $(GO) build -tags tflite -o $(BIN) ./cmd/linesight

# What each target needs from Debian (and npm), installed when missing:
# scripts/deps.sh GROUP. deps installs every group.
deps:
	@scripts/deps.sh all
deps-build deps-test deps-qemu deps-cross deps-tflite deps-generate:
	@scripts/deps.sh $(@:deps-%=%)

# Everything CI runs: what the suite needs installed first (one apt-get
# update and install), then the targets TEST_JOBS at a time, each one's
# output printed when it ends. The longest chains start first.
test:
	@scripts/deps.sh test qemu cross tflite
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target test-core test-cross lint test-qemu test-accept test-deb test-tflite fuzz-brief
	@echo "make test: all passed"

# Everything, with the race detector, without the cgo backend; then the
# camera and the CLI without GoCV and without cgo (folder, sequence and
# image sources on Go's decoders); then the kernel packages (qgemm, vec) and
# their users with -tags noasm (the portable Go kernels only).
test-core: deps-test
	$(GO) test -race -count=1 ./...
	CGO_ENABLED=0 $(GO) test -count=1 -short -tags nogocv ./camera/ ./cmd/linesight/
	$(GO) test -count=1 -short -tags noasm ./internal/qgemm/ ./internal/vec/ ./internal/rgb/ ./model/ ./model/engine/ ./bank/ ./patchcore/

# The pure-Go packages' tests cross-compiled for arm64 (run under qemu as a
# Cortex-A72 without dotprod and a Cortex-A76 with it) and armhf (GOARM=7).
test-qemu: deps-qemu
	@cross/qemu-test.sh

# The amd64 package installed, upgraded, rolled back, removed and purged
# with dpkg on this machine (needs root; skips and says so otherwise).
test-deb: cross-amd64
	@deb=$$(cross/deb.sh amd64 bin/linesight-amd64 | sed -n 's|^cross/deb.sh: \([^ ]*\) .*|\1|p'); \
	  [ -n "$$deb" ] || exit 1; \
	  LINESIGHT_DEB=$(CURDIR)/$$deb $(GO) test -count=1 -v -run Deb ./cross/ > bin/deb.log 2>&1; \
	  rc=$$?; grep -E '^(deb:|--- |ok|FAIL)|_test.go|SKIP' bin/deb.log; exit $$rc

# The cross-built arm64 and armhf binaries under qemu with their sysroots:
# the same top-5 as amd64 on every shared photo and both MobileNetV2s, and
# the same pixels from a video decoded by OpenCV.
test-cross: deps-cross cross-amd64 cross-arm64 cross-armhf
	@LINESIGHT_CROSS=1 $(GO) test -count=1 -v -run Cross ./cross/ > bin/cross.log 2>&1; \
	  rc=$$?; grep -E '^(cross:|--- |ok|FAIL)|_test.go|SKIP' bin/cross.log; exit $$rc

# The heavy runs, without the race detector (too slow for whole datasets):
# PatchCore on MVTec AD bottle with the shared MobileNetV2 (acceptance
# figures, int8 against float vectors, determinism), the bank CLI end to end
# and `linesight cmd` and `bank push` against serving stations with trusted
# keys (one behind a 128 KiB packet limit, one through a bridged broker),
# bank import killed with SIGKILL at 20 random moments,
# the ResNet builder against PyTorch (also at non-square inputs), and the
# daemon through MQTT: bottle end to end (published scores = eval's), the PLC
# handshake's timing on bottle frames and a 60 s broker outage at 10 frames/s;
# the input geometries on a sample line of long strips (squash against the
# automatic keep-aspect) and through bank build; the clustered search's work
# on bottle's frames against brute force.
test-accept: deps-test
	@mkdir -p bin
	$(GO) test -p 1 -count=1 -timeout 40m -v -run 'Bottle|Lifecycle|BankAppend|TeachAStation|PyTorch|ModelBuildCommand|OutageOf60|CmdSigned|PushToServing|Kill9|GeometryStrips|BankBuildGeometry|NonSquareInput' ./patchcore/ ./cmd/linesight/ ./model/resnet/ ./daemon/ ./bank/ > bin/accept.log 2>&1; \
	  rc=$$?; grep -E 'bottle_test.go|resnet_test.go|accept_test.go|teach_test.go|geometry_test.go|scada_auth_test.go|^geometry:|^--- |^    --- FAIL|^(ok|FAIL)|SKIP' bin/accept.log; exit $$rc

# The engine against the real TensorFlow Lite (x86-64 only): conformance on
# the shared models and photos, and per-op models built with our writer.
test-tflite: deps-tflite
ifeq ($(HAVE_TFLITE),yes)
	@mkdir -p bin
	$(TFLITE_ENV) $(GO) test -count=1 -tags tflite -v -run 'Conformance|Oracle' ./model/tflitec/ > bin/conformance.log 2>&1; \
	  rc=$$?; grep -E '^(conformance|oracle):|^--- FAIL|^    --- FAIL|_test.go|^(ok|FAIL)' bin/conformance.log; exit $$rc
	$(TFLITE_ENV) $(GO) vet -tags tflite ./...
else
	@echo "test-tflite: skipped (the TensorFlow Lite C library here is linux x86-64 only)"
endif

# gofmt, go.mod and go.sum as go mod tidy leaves them (direct dependencies
# not marked indirect), and vet in the three build flavours.
lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags noasm ./...
	CGO_ENABLED=0 $(GO) vet -tags nogocv ./...

# Benchmarks: engine at 1 and 2 threads beside the TensorFlow Lite C library.
bench: deps-tflite
	$(TFLITE_ENV) $(GO) test -tags tflite -run '^$$' -bench . -benchmem ./internal/... ./model/...

# linesight bench beside ONNX Runtime (../shared/peers) in one run, with ratios.
bench-peer: deps
	@scripts/bench-peer.sh

# Every parser of outside input fuzzed for FUZZ_BRIEF each (one worker),
# starting from its seeds and its corpus in testdata/fuzz: part of make
# test, so a parser that panics on a near miss of its seeds fails CI.
FUZZ_BRIEF ?= 4s
FUZZ_PARSERS = ./model/tflite:FuzzRead ./model/torchckpt:FuzzLoad ./config:FuzzParse ./mqtt:FuzzOutboxEntry \
  ./mqtt:FuzzTransferMessages ./daemon:FuzzCommandPayload ./bank:FuzzReadBundle ./bank:FuzzDecodeBank \
  ./bank:FuzzStoreValues ./internal/rgb:FuzzDecode ./internal/trust:FuzzParseKeys ./daemon:FuzzEvidenceResult \
  ./camera:FuzzJPEGStream ./patchcore:FuzzParsePolygons ./mqtt/sparkplug:FuzzDecodeCommand \
  ./mqtt/sparkplug:FuzzParseState ./daemon:FuzzConsoleUsers ./cmd/linesight:FuzzParseTiles ./internal/jpeg:FuzzDecode \
  ./mqtt:FuzzSessionEntry
# A run that ends with Go's "context deadline exceeded" and no failing input
# is the fuzzing engine stopping while a worker was still inside one slow
# input (FuzzRead mutates multi-MB models; on a loaded 2-core machine one
# input can take seconds): it is run again once, and fails the second time.
fuzz-brief: deps-test
	@for pt in $(FUZZ_PARSERS); do \
	  pkg=$${pt%%:*}; t=$${pt##*:}; \
	  for try in 1 2; do \
	    out=$$($(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZ_BRIEF) -parallel 1 $$pkg 2>&1) && break; \
	    if [ $$try = 1 ] && echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input'; then \
	      echo "fuzz $$pkg $$t: the engine stopped inside a slow input; running it again"; continue; fi; \
	    echo "fuzz $$pkg $$t failed:"; echo "$$out"; exit 1; \
	  done; \
	done; echo "fuzz-brief: $(words $(FUZZ_PARSERS)) parsers fuzzed for $(FUZZ_BRIEF) each, no failure"

# Each fuzz target for FUZZTIME.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; done

# Regenerates the flatbuffers Go code (needs Debian's flatc 2.0.8).
generate: deps-generate
	$(GO) generate ./model/tflite

clean:
	rm -rf bin
