"""Independent reference values for patchcore's tests.

Reads a JSON request on stdin and prints a JSON answer. Uses scipy's
gaussian_filter, torch's avg_pool2d / interpolate / softmax and sklearn's
roc_auc_score, and a plain numpy AUPRO that follows Bergmann et al.'s
definition (MVTec AD, IJCV 2021) at every distinct threshold.
"""
import json
import sys

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score


def aupro(maps, masks, max_fpr):
    maps = [np.asarray(m, dtype=np.float64) for m in maps]
    masks = [np.asarray(m, dtype=bool) for m in masks]
    scores = np.concatenate([m.ravel() for m in maps])
    regions = []  # (image index, boolean region mask)
    for i, m in enumerate(masks):
        lab, n = ndi.label(m, structure=np.ones((3, 3)))
        for k in range(1, n + 1):
            regions.append((i, lab == k))
    normal = np.concatenate([(~m).ravel() for m in masks])
    thresholds = np.unique(scores)[::-1]
    fprs, pros = [0.0], [0.0]
    for t in thresholds:
        fpr = np.sum(scores[normal] >= t) / normal.sum()
        pro = np.mean([np.mean(maps[i][r] >= t) for i, r in regions])
        fprs.append(fpr)
        pros.append(pro)
        if fpr >= max_fpr:
            break
    fprs, pros = np.array(fprs), np.array(pros)
    if fprs[-1] > max_fpr:
        f0, f1, p0, p1 = fprs[-2], fprs[-1], pros[-2], pros[-1]
        pros[-1] = p0 + (p1 - p0) * (max_fpr - f0) / (f1 - f0)
        fprs[-1] = max_fpr
    return float(np.trapz(pros, fprs) / max_fpr)


def main():
    req = json.load(sys.stdin)
    out = {}
    for b in req.get("blur", []):
        x = np.array(b["map"], dtype=np.float64).reshape(b["h"], b["w"])
        out.setdefault("blur", []).append(
            ndi.gaussian_filter(x, b["sigma"], mode="reflect", truncate=4.0).ravel().tolist())
    for u in req.get("upsample", []):
        x = torch.tensor(u["map"], dtype=torch.float32).reshape(1, 1, u["h"], u["w"])
        y = F.interpolate(x, size=(u["oh"], u["ow"]), mode="bilinear", align_corners=False)
        out.setdefault("upsample", []).append(y.ravel().tolist())
    if "embed" in req:
        feats = []
        grid = None
        for t in req["embed"]["taps"]:
            q = torch.tensor(t["q"], dtype=torch.float64).reshape(1, t["h"], t["w"], t["c"])
            x = ((q - t["zp"]) * t["scale"]).permute(0, 3, 1, 2)
            x = F.avg_pool2d(x, 3, stride=1, padding=1)  # count_include_pad=True
            if grid is None:
                grid = x.shape[-2:]
            else:
                x = F.interpolate(x, size=grid, mode="bilinear", align_corners=False)
            feats.append(x)
        e = torch.cat(feats, 1).permute(0, 2, 3, 1).reshape(-1)
        out["embed"] = e.tolist()
    for a in req.get("auroc", []):
        out.setdefault("auroc", []).append(roc_auc_score(a["labels"], a["scores"]))
    for a in req.get("aupro", []):
        maps = [np.array(m).reshape(a["h"], a["w"]) for m in a["maps"]]
        masks = [np.array(m).reshape(a["h"], a["w"]) for m in a["masks"]]
        out.setdefault("aupro", []).append(aupro(maps, masks, a["max_fpr"]))
    for r in req.get("eq7", []):
        # anomalib's PatchCore: weights = 1 - softmax(distances)[0], m* first.
        d = torch.tensor(r["dists"], dtype=torch.float64)
        out.setdefault("eq7", []).append(float((1 - F.softmax(d, 0)[0]) * d[0]))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
