#!/bin/bash
# make demo: the whole station on this machine, from nothing but the repo.
# Draws a sample line (good washers, and washers with scratches, holes and
# stains), builds a RANDOM-WEIGHT ResNet18 and a bank from the good parts,
# starts `linesight serve` with the embedded MQTT broker and a folder camera,
# feeds the test parts into the folder, and prints what a PLC would receive.
#
# It needs nothing but Go: the folder camera reads images with Go's decoders,
# so the binary is built without GoCV and without cgo (-tags nogocv,
# CGO_ENABLED=0: static), and the embedded broker is Go too.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh demo
L=bin/linesight-demo
echo "== building $L (static, no GoCV: the folder camera needs none)"
CGO_ENABLED=0 go build -tags nogocv -ldflags "-X main.version=$(cross/version.sh)" -o "$L" ./cmd/linesight
D=demo
rm -rf "$D"
mkdir -p "$D/incoming" "$D/maps"
echo "== 1/5 a sample line"
$L sample-line "$D/line" --train 60 --test-good 10 --per-defect 5
echo "== 2/5 a backbone: ResNet18 with RANDOM weights (no download needed)"
$L model build --random-init --seed 1 --calib "$D/line/train/good" --calib-count 30 --out "$D/resnet18-random.tflite"
echo "== 3/5 a memory bank from the good parts"
$L bank build --model "$D/resnet18-random.tflite" --images "$D/line/train/good" --db "$D/banks.db" --seed 1
# free_port prints a loopback port nothing listens on, drawn below Linux's
# ephemeral range (32768-60999) so that no outgoing connection holds it.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "demo: no free port in 20000-31999" >&2; return 1
}
MQTT_PORT=$(free_port)
HTTP_PORT=$(free_port)
while [ "$HTTP_PORT" = "$MQTT_PORT" ]; do HTTP_PORT=$(free_port); done
echo "== 4/5 serving: embedded broker on 127.0.0.1:$MQTT_PORT, camera = folder $D/incoming"
$L serve --set station.id=demo --set camera.source="dir:$D/incoming" --set camera.folder.settle=100ms \
  --set camera.folder.done="move:$D/done" --set model.path="$D/resnet18-random.tflite" --set bank.db="$D/banks.db" \
  --set mqtt.embedded_listen="127.0.0.1:$MQTT_PORT" --set http.listen="127.0.0.1:$HTTP_PORT" \
  --set maps.dir="$D/maps" --set log.level=warn &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null && break
  sleep 0.2
done
N=$(ls "$D"/line/test/*/*.png | wc -l)
echo "== 5/5 feeding $N test parts; one line per inspected frame (subscribed to linesight/demo/#):"
: > "$D/labels.txt"
$L watch --broker "tcp://127.0.0.1:$MQTT_PORT" --station demo --count "$N" --timeout 60s --labels "$D/labels.txt" &
WATCH=$!
sleep 1
seq=0
for f in $(ls "$D"/line/test/*/*.png | shuf --random-source=<(yes)); do
  seq=$((seq + 1))
  type=$(basename "$(dirname "$f")")
  echo "$seq $type" >> "$D/labels.txt"
  cp "$f" "$D/incoming/$(printf '%03d' $seq)_${type}.png"
  sleep 0.3
done
wait $WATCH
kill -TERM $SERVE
wait $SERVE 2>/dev/null || true
trap - EXIT
echo
echo "Heatmaps of the failed parts are in $D/maps/ (jet over the part, contour and boxes)."
echo "Health and metrics were at http://127.0.0.1:$HTTP_PORT/healthz and /metrics."
echo
echo "NOTE: this demo uses a ResNet18 with RANDOM weights: it shows the whole path, not"
echo "real accuracy. For a real station, build the backbone from torchvision's ImageNet"
echo "checkpoint: linesight model build --from resnet18-f37072fd.pth --calib PHOTOS --out resnet18.tflite"
echo "(see README: Building the backbone), then bank build, then serve with your camera."
