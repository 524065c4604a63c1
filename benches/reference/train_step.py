"""PyTorch reference for `fakelens bench`: the same model, shapes, optimiser, thread count
and device, timed the same way (2 warm-up runs, then N timed ones on random 256x256 inputs).
Modes: `train` (Adam steps), `eval` (forward passes without gradients), `saliency` (one
image: forward, then the gradient of the fake logit w.r.t. the input), `gradcam` (one image:
Grad-CAM of the fake logit at `conv3` through a forward hook, as pytorch-grad-cam computes
it, with the resize to the input done by F.interpolate).
`gemm` times a plain 2048x2048 f32 matrix product instead (the machine's matrix-multiply
peak, for `fakelens bench --suite`). With `--flops`, one step's floating-point operations are
also counted with torch.utils.flop_counter (convolutions and matrix products; for `train`,
3x the forward's count). Prints one JSON object: {"images_per_sec", "ms_per_step", "peak_rss_mib",
"threads", ...}."""
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
p.add_argument("--mode", default="train",
               choices=["train", "eval", "saliency", "gradcam", "gemm"])
p.add_argument("--flops", action="store_true")
args = p.parse_args()
dev = torch.device(args.device)
# Full f32 matrix products on the GPU, as FakeLens computes them (no TF32).
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
if args.threads > 0:
    torch.set_num_threads(args.threads)
torch.manual_seed(0)
if args.mode == "gemm":
    n = 2048
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(max(args.steps, 1)):
        start = time.perf_counter()
        a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"gflops": 2 * n**3 / best / 1e9, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))
    sys.exit(0)
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
flops = None
if args.flops:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    if args.mode == "train":
        # The counter's backward of a grouped (depthwise) convolution is counted as if it
        # were dense (10x the forward for Xception): count the forward and use the usual
        # convention, backward = 2x forward.
        with counter, torch.no_grad():
            model(x)
        flops = 3 * counter.get_total_flops()
    else:
        with counter:
            step()
        flops = counter.get_total_flops()
print(json.dumps({
    "flops_per_step": flops,
    "images_per_sec": args.steps * batch / elapsed,
    "ms_per_step": 1000 * elapsed / args.steps,
    "peak_rss_mib": peak_rss_mib(),
    "threads": torch.get_num_threads(),
    "device": str(dev),
    "mode": args.mode,
    "torch": torch.__version__,
}))
