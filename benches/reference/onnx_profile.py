"""Where ONNX Runtime's time goes, node by node: the model of `onnx_eval.py` (the same
PyTorch definitions, the same export and session options), run with onnxruntime's profiler,
printing each node's best and median kernel time over the timed runs and the whole run's.
Used to compare FakeLens' stages (its frozen path, one block at a time) with ONNX Runtime's
nodes on the same machine: `python3 benches/reference/onnx_profile.py --model lilxception
--batch-size 1 --steps 60 --threads 1`."""
import argparse, collections, json, os, sys, tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_session import exported_session  # noqa: E402
from torch_models import MODELS  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--model", default="lilxception", choices=sorted(MODELS))
p.add_argument("--batch-size", type=int, default=1)
p.add_argument("--steps", type=int, default=60)
p.add_argument("--threads", type=int, default=2)
args = p.parse_args()

WARMUP = 3
torch.manual_seed(0)
model = MODELS[args.model]().eval()
x = torch.randn(args.batch_size, 3, 256, 256)
with tempfile.TemporaryDirectory() as folder:
    session = exported_session(model, x, args.threads, folder, profile=True)
    feed = {"input": x.numpy()}
    for _ in range(WARMUP + args.steps):
        session.run(None, feed)
    with open(session.end_profiling()) as fh:
        events = json.load(fh)


def best_and_median(values):
    values = sorted(values)
    return values[0], values[len(values) // 2]


runs = [e["dur"] for e in events if e.get("name") == "model_run"][WARMUP:]
print("whole run (us): best %d, median %d" % best_and_median(runs))
nodes = collections.OrderedDict()
for e in events:
    if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
        name = e["name"][: -len("_kernel_time")]
        entry = nodes.setdefault(name, (e["args"].get("op_name"), e["args"].get("output_type_shape"), []))
        entry[2].append(e["dur"])
best_sum = 0
for name, (op, shape, durations) in nodes.items():
    durations = durations[WARMUP:]
    if not durations:
        continue
    best, median = best_and_median(durations)
    best_sum += best
    print(f"{name:58s} {op or '':18s} best {best:7d} median {median:7d}  {shape}")
print("sum of the nodes' best (us):", best_sum)
