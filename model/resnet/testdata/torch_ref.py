"""PyTorch side of the ResNet builder tests (Debian's python3-torch).

  torch_ref.py make SEED ZIP LEGACY
      writes a seeded ResNet18 with randomised BatchNorm statistics as a zip
      state_dict (torch.save default) and as a legacy-format checkpoint dict.
  torch_ref.py compare CKPT DIR
      reads DIR/pixels.npy (N,H,W,3 uint8) and our outputs DIR/{int8,float}_{layer2,layer3}.npy
      (NHWC float32), runs torch's float layer2/layer3 on the same pixels, and
      prints SQNR, cosine similarity and relative error as JSON.

The network is written out here (torchvision is not in Debian 12) with
torchvision's module names, so its state_dict has torchvision's keys.
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + idt)


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (c, s) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            setattr(self, "layer%d" % (i + 1), nn.Sequential(BasicBlock(cin, c, s), BasicBlock(c, c, 1)))
            cin = c
        self.fc = nn.Linear(512, 1000)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        l2 = self.layer2(x)
        l3 = self.layer3(l2)
        return l2, l3


def make(seed, zip_path, legacy_path):
    torch.manual_seed(seed)
    net = ResNet18()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if isinstance(m, nn.BatchNorm2d):
                # Randomised statistics and affine parameters exercise the folding.
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    sd = net.state_dict()
    torch.save(sd, zip_path)
    torch.save({"state_dict": sd, "epoch": 1, "arch": "resnet18"}, legacy_path, _use_new_zipfile_serialization=False)


def stats(ours, ref):
    ours, ref = ours.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    err = ours - ref
    return {
        "sqnr_db": float(10 * np.log10(np.sum(ref ** 2) / max(np.sum(err ** 2), 1e-300))),
        "cosine": float(np.dot(ours, ref) / (np.linalg.norm(ours) * np.linalg.norm(ref))),
        "rel_error": float(np.linalg.norm(err) / np.linalg.norm(ref)),
        "max_abs_error": float(np.max(np.abs(err))),
    }


def compare(ckpt, d):
    net = ResNet18()
    net.load_state_dict(torch.load(ckpt))
    net.eval()
    pix = np.load(d + "/pixels.npy")
    x = torch.tensor(pix, dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        l2, l3 = net.features((x - mean) / std)
    ref = {"layer2": l2.permute(0, 2, 3, 1).numpy(), "layer3": l3.permute(0, 2, 3, 1).numpy()}
    out = {}
    for kind in ("int8", "float"):
        for layer in ("layer2", "layer3"):
            out[kind + "_" + layer] = stats(np.load("%s/%s_%s.npy" % (d, kind, layer)), ref[layer])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        compare(sys.argv[2], sys.argv[3])
