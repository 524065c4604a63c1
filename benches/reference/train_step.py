"""PyTorch reference for `fakelens bench`: the same model, shapes, optimiser and thread count,
timed the same way on the same device (2 warm-up steps, then N timed Adam steps on random 256x256 inputs).
Prints one JSON object: {"train_images_per_sec": ..., "ms_per_step": ..., "threads": ...}."""
import argparse, json, os, sys, time
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import MODELS  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--model", default="simplenet", choices=sorted(MODELS))
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--threads", type=int, default=0)
p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
args = p.parse_args()
dev = torch.device(args.device)
# Full f32 matrix products on the GPU, as FakeLens computes them (no TF32).
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
if args.threads > 0:
    torch.set_num_threads(args.threads)
torch.manual_seed(0)
model = MODELS[args.model]().to(dev)
model.train()
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
x = torch.randn(args.batch_size, 3, 256, 256, device=dev)
y = torch.arange(args.batch_size, device=dev) % 2


def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


for _ in range(2):
    step()
sync()
start = time.perf_counter()
for _ in range(args.steps):
    step()
sync()
elapsed = time.perf_counter() - start
print(json.dumps({
    "train_images_per_sec": args.steps * args.batch_size / elapsed,
    "ms_per_step": 1000 * elapsed / args.steps,
    "threads": torch.get_num_threads(),
    "device": str(dev),
    "torch": torch.__version__,
}))
