"""PyTorch reference training of SimpleNet on a {train,val,test}/{real,fake} dataset with the
course recipe (resize 256, random crop 256 with 4 px padding, horizontal flip, course
mean/std; Adam; cross-entropy), printing the same per-epoch table as `fakelens train`.
Needs torch, numpy and pillow. Usage:
  python3 tools/reference/train_simplenet.py DATA [--lr 1e-4] [--epochs 5] [--batch-size 32]"""
import argparse, os, sys, time
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benches", "reference"))
from torch_models import SimpleNet  # noqa: E402

MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2023, 0.1994, 0.2010], dtype=np.float32)


def load_split(root, split):
    items = []
    for label, cls in enumerate(["real", "fake"]):
        d = os.path.join(root, split, cls)
        items += [(os.path.join(d, f), label) for f in sorted(os.listdir(d)) if not f.endswith("_mask.png")]
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((256, 256), Image.BILINEAR)) for p, _ in items])
    return images, np.array([l for _, l in items])


def to_tensor(batch_u8, rng=None):
    x = batch_u8.astype(np.float32) / 255.0
    if rng is not None:
        padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
        out = np.empty_like(x)
        for i in range(len(x)):
            dy, dx = rng.integers(0, 9, size=2)
            crop = padded[i, dy:dy + 256, dx:dx + 256]
            out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
        x = out
    x = (x - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def evaluate(model, images, labels, batch):
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            logits = model(to_tensor(images[i:i + batch]))
            y = torch.from_numpy(labels[i:i + batch])
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    model.train()
    return loss_sum / len(images), correct / len(images)


p = argparse.ArgumentParser()
p.add_argument("data")
p.add_argument("--lr", type=float, default=1e-4)
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)
splits = {s: load_split(args.data, s) for s in ["train", "val", "test"]}
model = SimpleNet()
opt = torch.optim.Adam(model.parameters(), lr=args.lr)
print("epoch  train_loss  train_acc  val_loss  val_acc  test_loss  test_acc  secs", flush=True)
train_x, train_y = splits["train"]
for epoch in range(1, args.epochs + 1):
    start = time.time()
    order = rng.permutation(len(train_x))
    loss_sum, correct = 0.0, 0
    for i in range(0, len(order), args.batch_size):
        idx = order[i:i + args.batch_size]
        x, y = to_tensor(train_x[idx], rng), torch.from_numpy(train_y[idx])
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(idx)
        correct += (logits.argmax(1) == y).sum().item()
    vl, va = evaluate(model, *splits["val"], args.batch_size)
    tl, ta = evaluate(model, *splits["test"], args.batch_size)
    n = len(order)
    print(f"{epoch:>5}  {loss_sum / n:>10.4f}  {100 * correct / n:>8.2f}%  {vl:>8.4f}  {100 * va:>6.2f}%  "
          f"{tl:>9.4f}  {100 * ta:>8.2f}%  {time.time() - start:>5.0f}", flush=True)
