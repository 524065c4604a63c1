"""How far FakeLens' fake probability lies from a PyTorch pipeline's on the same checkpoint
(Pillow decoding, `Image.resize((256, 256), Image.BILINEAR)`, ToTensor + the run's
normalisation, softmax): on N lfw-faceswap val files as JPEG, and as PNG copies of Pillow's
decoded pixels (identical pixels: only the resize can differ). FakeLens' side is
`fakelens predict --crop whole` (its raw, uncalibrated probability). With --saliency N, also
the Pearson correlation of the two saliency maps (|d fake logit / d model input|, max over
colour channels; FakeLens' from `fakelens explain --class fake`, its raw .npy) on the first
N real and N fake of those files, each format. The run must frame whole images.
Run: python3 tools/reference/pillow_parity.py --run RUN_DIR [--count 200] [--saliency 10]
Prints one JSON object with the mean and max absolute differences per format (and the mean
and least correlations)."""
import argparse, csv, json, os, subprocess, sys, tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "benches", "reference"))
from torch_models import MODELS  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--run", required=True)
p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "datasets", "lfw-faceswap"))
p.add_argument("--count", type=int, default=200)
p.add_argument("--saliency", type=int, default=0)
p.add_argument("--fakelens", default=os.path.join(ROOT, "target", "release", "fakelens"))
args = p.parse_args()

record = json.load(open(os.path.join(args.run, "run.json")))
model = MODELS[record["model"]]()
model.load_state_dict(load_file(os.path.join(args.run, "model.safetensors")), strict=False)
model.eval()
norm = record.get("input_profile", {}).get("normalization") or record["normalization"]
mean = torch.tensor(norm["mean"]).view(3, 1, 1)
std = torch.tensor(norm["std"]).view(3, 1, 1)

files = []
for label in ("real", "fake"):
    folder = os.path.join(args.data, "val", label)
    files += [os.path.join(folder, f) for f in sorted(os.listdir(folder))[: args.count // 2]]


def model_input(path):
    image = Image.open(path).convert("RGB").resize((256, 256), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return ((x - mean) / std).unsqueeze(0)


def torch_probability(path):
    with torch.no_grad():
        logits = model(model_input(path))
    return torch.softmax(logits, dim=1)[0, 1].item()


def torch_saliency(path):
    x = model_input(path).requires_grad_(True)
    model(x)[0, 1].backward()
    return x.grad.abs().amax(dim=1)[0].numpy()


def fakelens_saliency(path, folder):
    out = os.path.join(folder, "explain")
    subprocess.run([args.fakelens, "explain", "--run", args.run, "--image", path,
                    "--class", "fake", "--out", out], check=True, capture_output=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    name = next(f for f in os.listdir(out) if f.startswith(stem + ".") and f.endswith(".saliency.npy"))
    return np.load(os.path.join(out, name))


def fakelens_probabilities(paths, folder):
    out = os.path.join(folder, "predict.csv")
    subprocess.run([args.fakelens, "predict", "--run", args.run, "--crop", "whole",
                    "--csv", out, *paths], check=True, capture_output=True)
    with open(out) as fh:
        rows = list(csv.reader(fh))
    column = next(i for i, name in enumerate(rows[0]) if name.endswith("raw_fake_probability"))
    return {os.path.basename(r[0]): float(r[column]) for r in rows[1:]}


result = {"files": len(files), "run": os.path.basename(os.path.normpath(args.run))}
with tempfile.TemporaryDirectory() as folder:
    pngs = []
    for path in files:
        png = os.path.join(folder, os.path.basename(path)[:-4] + ".png")
        Image.open(path).convert("RGB").save(png)
        pngs.append(png)
    for name, paths in (("jpeg", files), ("png", pngs)):
        ours = fakelens_probabilities(paths, folder)
        diffs = [abs(ours[os.path.basename(p)] - torch_probability(p)) for p in paths]
        result[name] = {"mean_abs_diff": float(np.mean(diffs)), "max_abs_diff": float(np.max(diffs))}
        if args.saliency:
            half = len(paths) // 2
            chosen = paths[: args.saliency] + paths[half: half + args.saliency]
            r = [np.corrcoef(fakelens_saliency(p, folder).ravel(), torch_saliency(p).ravel())[0, 1]
                 for p in chosen]
            result[name]["saliency_pearson_mean"] = float(np.mean(r))
            result[name]["saliency_pearson_min"] = float(np.min(r))
            result[name]["saliency_images"] = len(chosen)
print(json.dumps(result))
