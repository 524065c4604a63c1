"""ONNX Runtime reference for `fakelens bench --mode eval` (and the suite's ONNX rows): the
same PyTorch definitions (`torch_models.py`), exported with `torch.onnx.export` (opset 17,
the TorchScript exporter, eval mode, batch as a fixed dimension), run by onnxruntime's CPU
provider with every graph optimisation and the same thread count, timed like the PyTorch
reference (2 warm-up runs, then N timed ones on random 256x256 inputs).
Prints one JSON object: {"images_per_sec", "ms_per_step", "peak_rss_mib", "threads", ...}."""
import argparse, json, os, sys, tempfile, time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_session import exported_session  # noqa: E402
from torch_models import MODELS  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--model", default="simplenet", choices=sorted(MODELS))
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--threads", type=int, default=0)
p.add_argument("--device", default="cpu", choices=["cpu"])
p.add_argument("--mode", default="eval", choices=["eval"])
args = p.parse_args()

import onnxruntime as ort  # noqa: E402  (after argparse, so --help works without it)

torch.manual_seed(0)
model = MODELS[args.model]().eval()
x = torch.randn(args.batch_size, 3, 256, 256)
with tempfile.TemporaryDirectory() as folder:
    session = exported_session(model, x, args.threads, folder)
    del model
feed = {"input": x.numpy()}
for _ in range(2):
    session.run(None, feed)
start = time.perf_counter()
for _ in range(args.steps):
    session.run(None, feed)
elapsed = time.perf_counter() - start


def peak_rss_mib():
    """This process's peak resident set (Linux VmHWM), as the PyTorch reference reads it.
    It includes the export's PyTorch model, so it is an upper bound on ONNX Runtime's own."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


print(json.dumps({
    "images_per_sec": args.steps * args.batch_size / elapsed,
    "ms_per_step": 1000 * elapsed / args.steps,
    "peak_rss_mib": peak_rss_mib(),
    "threads": args.threads,
    "device": "cpu",
    "mode": "eval",
    "onnxruntime": ort.__version__,
}))
