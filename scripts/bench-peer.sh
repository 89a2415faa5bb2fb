#!/bin/bash
# `linesight bench` and the speed peer (ONNX Runtime 1.30, ../shared/peers)
# in one run, on the same machine, then the ratios:
#   - ResNet18 to layer3, int8: our backbone stage vs ORT's int8 QDQ model,
#   - MobileNetV2 full forward: our engine on the shared tf2 int8 model vs
#     ORT's float MobileNetV2 (the peer has no int8 MobileNetV2),
#   - bank search (784 x 15680 x 384) beside the reference figure for faiss.
# at 1 and 2 threads. Needs ../shared/peers (node + npm + Debian's torch).
set -euo pipefail
cd "$(dirname "$0")/.."
peers=../shared/peers
[ -x "$peers/run.sh" ] || { echo "bench-peer: skipped ($peers/run.sh not beside the checkout)"; exit 0; }
make -s build
out=bin/bench
mkdir -p "$out"
for t in 1 2; do
  bin/linesight bench --bank random --threads $t --frames ${FRAMES:-100} --json >"$out/linesight-$t.json"
done
go test -run '^$' -bench 'InterpreterMobileNetV2' -benchtime 50x ./model/engine/ >"$out/mnv2.txt"
# End to end on bottle: the shared tf2 MobileNetV2 and a 10% bank of the
# good training photos (built once), on a test photo.
mvtec=../shared/data/mvtec_ad/bottle
tf2=../shared/models/mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite
if [ -d "$mvtec" ] && [ -f "$tf2" ]; then
  [ -f "$out/bottle.db" ] || bin/linesight bank build --model "$tf2" --images "$mvtec/train/good" --db "$out/bottle.db" >/dev/null
  for t in 1 2; do
    bin/linesight bench --db "$out/bottle.db" --image "$mvtec/test/broken_large/000.png" --threads $t --frames ${FRAMES:-100} --json >"$out/bottle-$t.json"
  done
fi
"$peers/run.sh" .cache/peers 1 2 >"$out/ort.jsonl"
# ResNet18 again, paired: ROUNDS rounds of our backbone then ORT's int8
# model right after it, so that drift in this shared machine's speed falls
# on both sides of each ratio; the table gives the median over rounds, and
# ORT's best round. Ours twice: the backbone stage inside the frame's
# pipeline (the station's figure) and its passes back to back with nothing
# between (backbone_alone), which is how bench_ort.js times ORT.
: >"$out/pairs.jsonl"
for r in $(seq "${ROUNDS:-5}"); do
  for t in 1 2; do
    bin/linesight bench --bank random --threads $t --frames 50 --json | /usr/bin/python3 -c 'import json,sys; b=json.load(sys.stdin); print(json.dumps({"threads": b["threads"], "ours_ms": b["stages"]["backbone"]["median_ms"], "alone_ms": b["backbone_alone"]["median_ms"]}))' >>"$out/pairs.jsonl"
    NODE_PATH=.cache/peers/node_modules node "$peers/bench_ort.js" time .cache/peers/models/resnet18_l3_qdq.onnx $t 50 10 >>"$out/pairs.jsonl"
  done
done
/usr/bin/python3 - "$out" <<'PY'
import json, re, sys
d = sys.argv[1]
ort = {}
for line in open(f"{d}/ort.jsonl"):
    r = json.loads(line)
    ort[(r["model"].replace(".onnx", ""), r["threads"])] = r["median_ms"]
mn = {int(t): float(ms) for t, ms in re.findall(r"threads=(\d+)\S*\s+\d+\s+\d+ ns/op\s+([\d.]+) ms/frame", open(f"{d}/mnv2.txt").read())}
print("| threads | stage | linesight (median) | peer | ratio (peer / linesight) |")
print("|---|---|---|---|---|")
# Paired rounds: (ours, ORT) per round and thread count.
pairs, alone, last = {1: [], 2: []}, {1: [], 2: []}, None
for line in open(f"{d}/pairs.jsonl"):
    r = json.loads(line)
    if "ours_ms" in r:
        last = r
    else:
        pairs[r["threads"]].append((last["ours_ms"], r["median_ms"]))
        alone[r["threads"]].append((last["alone_ms"], r["median_ms"]))
def med(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
for t in (1, 2):
    b = json.load(open(f"{d}/linesight-{t}.json"))
    s = b["stages"]
    bb, q = s["backbone"]["median_ms"], ort[("resnet18_l3_qdq", t)]
    print(f"| {t} | ResNet18->layer3 int8 | {bb:.2f} ms ({s['backbone']['gmacs']:.0f} GMAC/s, {s['backbone']['pct_of_peak']:.0f}% of peak) | ORT int8 QDQ {q:.2f} ms | {q/bb:.2f}x |")
    for what, pr in (("backbone stage in the pipeline", pairs[t]), ("backbone alone, back to back as ORT is timed", alone[t])):
        if not pr:
            continue
        ours, theirs, best = med([p[0] for p in pr]), med([p[1] for p in pr]), min(p[1] for p in pr)
        ratios = sorted(p[1] / p[0] for p in pr)
        print(f"| {t} | ResNet18->layer3 int8, {what}, {len(pr)} paired rounds | median {ours:.2f} ms | ORT int8 QDQ median {theirs:.2f} ms, best round {best:.2f} ms | {med(ratios):.2f}x (rounds {ratios[0]:.2f}-{ratios[-1]:.2f}x); our median vs ORT's best round {best/ours:.2f}x |")
    if t in mn:
        f = ort[("mnv2_full_f32", t)]
        print(f"| {t} | MobileNetV2 full | {mn[t]:.2f} ms (tf2 int8) | ORT float32 {f:.2f} ms | {f/mn[t]:.2f}x |")
    sr = s["search"]
    print(f"| {t} | search {b['patches']}x{b['bank_vectors']}x{b['dim']} | {sr['median_ms']:.2f} ms ({sr['gmacs']:.0f} GMAC/s, {sr['pct_of_peak']:.0f}% of peak) | faiss 1.7.3, 2 threads, 16385 vectors: 69 ms (peers/README, not rerun) | {69.0/sr['median_ms']:.2f}x |")
    print(f"| {t} | ResNet18 end to end (frame..map, 1280x720) | {s['total']['median_ms']:.2f} ms, p99 {s['total']['p99_ms']:.2f} ms, {b['allocs_per_frame']:.1f} allocs/frame; with JPEG decode {s['total_with_decode']['median_ms']:.2f} ms | | |")
    try:
        e = json.load(open(f"{d}/bottle-{t}.json"))
        es = e["stages"]
        parts = ", ".join(f"{k} {es[k]['median_ms']:.2f}" for k in ("preprocess", "backbone", "embed", "search", "map"))
        print(f"| {t} | bottle end to end (tf2 MobileNetV2, {e['bank_vectors']}x{e['dim']} bank, 900x900 frame) | {es['total']['median_ms']:.2f} ms, p99 {es['total']['p99_ms']:.2f} ms ({parts}); with PNG decode {es['total_with_decode']['median_ms']:.2f} ms | | |")
    except FileNotFoundError:
        pass
    print(f"|   | peak | {b['peak_gmacs_per_core']:.1f} GMAC/s per core ({b['kernels']['backbone']}) | | |")
PY
