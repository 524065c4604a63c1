"""PyTorch reference for `fakelens bench`: the same model, shapes, optimiser, thread count
and device, timed the same way (2 warm-up runs, then N timed ones on random 256x256 inputs).
Modes: `train` (Adam steps), `eval` (forward passes without gradients), `saliency` (one
image: forward, then the gradient of the fake logit w.r.t. the input), `gradcam` (one image:
Grad-CAM of the fake logit at `conv3` through a forward hook, as pytorch-grad-cam computes
it, with the resize to the input done by F.interpolate).
Prints one JSON object: {"images_per_sec", "ms_per_step", "peak_rss_mib", "threads", ...}."""
import argparse, json, os, resource, sys, time
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
p.add_argument("--mode", default="train", choices=["train", "eval", "saliency", "gradcam"])
args = p.parse_args()
dev = torch.device(args.device)
# Full f32 matrix products on the GPU, as FakeLens computes them (no TF32).
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
if args.threads > 0:
    torch.set_num_threads(args.threads)
torch.manual_seed(0)
model = MODELS[args.model]().to(dev)
batch = 1 if args.mode in ("saliency", "gradcam") else args.batch_size
x = torch.randn(batch, 3, 256, 256, device=dev)
y = torch.arange(batch, device=dev) % 2
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
if args.mode in ("saliency", "gradcam"):
    # Only the input's (or the layer's) gradient is wanted: no weight gradients, as FakeLens
    # computes none when explaining.
    model.requires_grad_(False)


def step():
    if args.mode == "train":
        model.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    elif args.mode == "eval":
        model.eval()
        with torch.no_grad():
            model(x)
    elif args.mode == "saliency":
        model.eval()
        xi = x.clone().requires_grad_(True)
        model(xi)[0, 1].backward()
        xi.grad.abs().amax(dim=1)
    else:
        model.eval()
        seen = {}

        def keep(_module, _inputs, output):
            # With frozen weights the layer's output is a leaf: the graph starts there.
            output.requires_grad_(True)
            seen["a"] = output

        hook = model.conv3.register_forward_hook(keep)
        model(x)[0, 1].backward()
        hook.remove()
        a = seen["a"]
        weights = a.grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * a).sum(dim=1, keepdim=True)).detach()
        F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)


def peak_rss_mib():
    """This process's peak resident set (Linux VmHWM). Not ru_maxrss: Linux carries that
    over from the parent across fork and exec, so under `fakelens bench` it would report
    FakeLens' own peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    "images_per_sec": args.steps * batch / elapsed,
    "ms_per_step": 1000 * elapsed / args.steps,
    "peak_rss_mib": peak_rss_mib(),
    "threads": torch.get_num_threads(),
    "device": str(dev),
    "mode": args.mode,
    "torch": torch.__version__,
}))
