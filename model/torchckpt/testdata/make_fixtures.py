"""Writes the small checkpoints of torchckpt's tests (run by hand with
Debian's python3-torch; the outputs are committed):

  zip.pth      OrderedDict state_dict, torch.save's zip format
  legacy.pth   {"state_dict": ..., "epoch": 7}, legacy format, "module." prefixes
"""
import collections
import torch

sd = collections.OrderedDict()
sd["conv.weight"] = torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)
sd["fc.weight"] = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()  # strided view
sd["bn.running_var"] = torch.tensor([0.5, 2.0], dtype=torch.float64)
sd["half"] = torch.tensor([1.5, -2.25], dtype=torch.float16)
sd["bn.num_batches_tracked"] = torch.tensor(5)
torch.save(sd, "zip.pth")
wrapped = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
torch.save({"state_dict": wrapped, "epoch": 7}, "legacy.pth", _use_new_zipfile_serialization=False)
